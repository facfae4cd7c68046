//! One WebSocket session: the client's messages in, its friends' updates out.
//!
//! Written against `Stream`/`Sink` of axum WebSocket messages, so tests can drive it with
//! channels as well as real sockets. A session:
//!
//! 1. listens to its own control topic and to the location topic of every friend;
//! 2. on each location from the client: checks the per-user rate and that the move is
//!    plausible, publishes it (cache, bus, history) and re-evaluates which friends are within
//!    the radius; the first one is answered with the snapshot;
//! 3. on friends' events (from its mailbox, coalesced per friend): pushes `friend_location`
//!    or `friend_gone`, with hysteresis at the edge — only for a friend whose grant (their
//!    sharing setting, as last read) lets this user see them now, while the node's audience
//!    log is fresh (see [`crate::audience`]);
//! 4. applies changes to friendships and sharing that the audience watcher marks in its
//!    mailbox: re-reads them, withholding the friends concerned until the read succeeds
//!    (retried, never "until the next change");
//! 5. forgets friends silent past the TTL, pings idle clients, and closes clients that flood,
//!    send oversize frames, stop reading or stop answering, or are replaced by a newer
//!    session of the same user past the per-user limit (4002).

use crate::approximate;
use crate::clock;
use crate::event::{Event, Topic};
use crate::friends::{Audience, Grant, Precision, Sharing};
use crate::gateway::Gateway;
use crate::hub::Mailbox;
use crate::protocol::{
    CLOSE_GOING_AWAY, CLOSE_INVALID_PAYLOAD, CLOSE_MOVED, CLOSE_POLICY_VIOLATION,
    CLOSE_PROTOCOL_ERROR, CLOSE_REPLACED, CLOSE_SERVICE_RESTART, CLOSE_TOO_BIG, CLOSE_UNRESPONSIVE,
    ClientMessage, Fix, FriendView, MessageError, ServerMessage, parse_client_message,
};
use crate::users::Bucket;
use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use geo_index::LatLng;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How soon a failed re-read of friendships or sharing is tried again.
const RETRY_AFTER: Duration = Duration::from_millis(200);
/// Past this many friends to re-check at once, one full reload is cheaper than one read each.
const RECHECK_ONE_BY_ONE: usize = 16;

/// A friend's last known location, as this session saw it.
#[derive(Clone, Copy, Debug)]
struct Known {
    /// The friend's real position (never sent to a viewer who may see it only approximately).
    fix: Fix,
    /// When it expires (TTL after the update).
    expires: Instant,
    /// Whether the client is currently shown this friend.
    shown: bool,
    /// How precisely the client was last shown this friend.
    precision: Precision,
    /// Where the client is shown this friend, when approximately: the cell with its centre
    /// and accuracy, kept so that re-evaluating costs one cell lookup, not a boundary.
    approximately: Option<Apparent>,
}

impl Known {
    /// The cell the client is shown, when approximately.
    fn cell(&self) -> Option<h3o::CellIndex> {
        self.approximately.and_then(|a| a.cell)
    }

    /// What the client was shown approximately, when it still holds for `precision`.
    fn carried(&self, precision: Precision) -> Option<Apparent> {
        self.approximately
            .filter(|_| self.shown && self.precision == precision)
    }
}

/// Where a viewer sees a friend: their position, or the centre of a cell.
#[derive(Clone, Copy, Debug)]
struct Apparent {
    position: LatLng,
    cell: Option<h3o::CellIndex>,
    accuracy_m: Option<f64>,
}

/// What a viewer with `precision` is shown of `fix`; `shown` is what it was shown so far
/// (`None` the first time: the current cell as it is). Staying in the shown cell reuses its
/// centre and accuracy; only a new cell computes them.
fn apparent(precision: Precision, fix: Fix, shown: Option<Apparent>) -> Apparent {
    match precision {
        Precision::Approximate => {
            let cell = approximate::next_cell(shown.and_then(|s| s.cell), fix.position);
            match shown {
                Some(shown) if shown.cell == Some(cell) => shown,
                _ => Apparent {
                    position: approximate::centre(cell),
                    cell: Some(cell),
                    accuracy_m: Some(approximate::circumradius_m(cell).round()),
                },
            }
        }
        Precision::Exact | Precision::Hidden => Apparent {
            position: fix.position,
            cell: None,
            accuracy_m: None,
        },
    }
}

/// Whether a friend at `distance_m` is (still) shown: enter at the radius, leave only past
/// radius + hysteresis, so a friend standing on the edge does not flicker.
///
/// ```text
/// shown  distance            result
/// no     <= radius           yes
/// yes    <= radius + hyst.   yes
/// ```
fn within(shown: bool, distance_m: f64, radius_m: f64, hysteresis_m: f64) -> bool {
    if shown {
        distance_m <= radius_m + hysteresis_m
    } else {
        distance_m <= radius_m
    }
}

/// What woke the session's loop.
enum Wake {
    Frame(Option<Result<Message, axum::Error>>),
    Mailbox,
    Expiry,
    Flip,
    Retry,
    Ping,
    Shutdown,
    Membership,
    Replaced,
}

/// Why a session ended, for logs and close frames.
enum End {
    /// The client closed or the connection dropped.
    ClientGone,
    /// Close with this code and reason (at most 123 bytes, the WebSocket limit).
    Close(u16, Cow<'static, str>),
}

/// What the user's friendships and sharing were when the session started (loaded before the
/// upgrade, so a store outage is an HTTP 503 rather than a socket that closes at once).
pub struct Start {
    /// The authenticated user.
    pub user: u64,
    /// Their sharing setting and their friends with what each grants them.
    pub audience: Audience,
    /// The audience watcher's cursor, noted *before* `audience` was read: changes after it
    /// are applied once the session has subscribed.
    pub log_cursor: Option<i64>,
}

struct Session {
    gateway: Gateway,
    user: u64,
    mailbox: Arc<Mailbox>,
    /// Friends, each with what they grant this user.
    friends: HashMap<u64, Grant>,
    /// Friends whose grant changed and is being re-read: none of their locations is shown
    /// until it is.
    uncertain: HashSet<u64>,
    /// The user's own sharing setting.
    sharing: Sharing,
    /// The user's own friendships or sharing changed and were not re-read yet: the user's
    /// location is not published meanwhile.
    own_reload: bool,
    /// When to try a failed re-read again.
    retry_at: Option<Instant>,
    /// The next instant a timed sharing setting (the user's or a friend's) flips.
    flip_at: Option<Instant>,
    /// The client's last accepted location.
    last_fix: Option<Fix>,
    /// Whether the client got its snapshot (a failed one is retried at the next location).
    snapshot_sent: bool,
    /// Whether this session last told friends the user is gone (sharing off).
    hidden: bool,
    known: HashMap<u64, Known>,
    next_expiry: Option<Instant>,
    frame_bucket: Bucket,
    last_heard: Instant,
    outbox: Vec<ServerMessage>,
    /// Notified when a newer session of the user replaced this one.
    replaced: Arc<Notify>,
}

/// Runs a session on `socket` until it ends; every subscription it made is undone.
pub async fn run<S>(gateway: Gateway, start: Start, mut socket: S)
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    let metrics_started = Instant::now();
    let now = Instant::now();
    let config = gateway.config().clone();
    let mailbox = gateway.hub().mailbox();
    let registration = gateway.users().register(start.user, mailbox.session(), now);
    gateway
        .metrics()
        .sessions_replaced
        .fetch_add(registration.evicted as u64, Ordering::Relaxed);
    let mut session = Session {
        user: start.user,
        mailbox,
        friends: HashMap::new(),
        uncertain: HashSet::new(),
        sharing: start.audience.sharing,
        own_reload: false,
        retry_at: None,
        flip_at: None,
        last_fix: None,
        snapshot_sent: false,
        hidden: false,
        known: HashMap::new(),
        next_expiry: None,
        frame_bucket: Bucket::new(config.frame_rate_per_s, config.frame_burst, now),
        last_heard: now,
        outbox: Vec::new(),
        replaced: registration.replaced,
        gateway,
    };
    let gateway = session.gateway.clone();
    let metrics = gateway.metrics();
    metrics.sessions.fetch_add(1, Ordering::AcqRel);
    metrics.sessions_opened.fetch_add(1, Ordering::Relaxed);
    // Subscribe first, then ask what changed since the state was read: a change that landed
    // in between is either in the watcher's tail now or marked in the mailbox later.
    session.subscribe(Topic::Control(session.user));
    for (friend, grant) in start.audience.friends {
        session.add_friend(friend, grant);
    }
    match gateway.audience().since(start.log_cursor) {
        None => session.own_reload = true,
        Some(users) => {
            for user in users {
                if user == session.user {
                    session.own_reload = true;
                } else if session.friends.contains_key(&user) {
                    session.uncertain.insert(user);
                }
            }
        }
    }
    if session.own_reload || !session.uncertain.is_empty() {
        session.apply_audience().await;
    }
    session.flip_at = session.next_flip(clock::now_ms());
    tracing::debug!(
        user = session.user,
        friends = session.friends.len(),
        "session opened"
    );

    let end = session.serve(&mut socket).await;
    if let End::ClientGone = end {
        // The client's close frame was answered by tungstenite but the reply is only queued:
        // flush it (bounded), or the client sees an abnormal closure (1006).
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.flush()).await;
    }
    if let End::Close(code, reason) = end {
        let frame = CloseFrame {
            code,
            reason: reason.to_string().into(),
        };
        // Best effort, bounded: the peer may be the reason we are closing. Then read (and
        // discard) until the peer answers the close or goes away: dropping a socket with
        // unread input makes the kernel reset the connection, and the peer could lose the
        // close frame (and its code) to the reset.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            socket.send(Message::Close(Some(frame))).await?;
            while socket.next().await.is_some() {}
            Ok::<(), axum::Error>(())
        })
        .await;
        tracing::debug!(
            user = session.user,
            code,
            reason = %reason,
            "session closed by server"
        );
    }
    session.finish().await;
    metrics.sessions.fetch_sub(1, Ordering::AcqRel);
    tracing::debug!(
        user = session.user,
        lasted_s = metrics_started.elapsed().as_secs(),
        "session ended"
    );
}

impl Session {
    fn subscribe(&self, topic: Topic) {
        if self.gateway.hub().subscribe(topic, &self.mailbox) {
            self.gateway.bus().interest_changed(topic);
        }
    }

    fn unsubscribe(&self, topic: Topic) {
        if self.gateway.hub().unsubscribe(topic, &self.mailbox) {
            self.gateway.bus().interest_changed(topic);
        }
    }

    fn add_friend(&mut self, friend: u64, grant: Grant) {
        if friend == self.user {
            return;
        }
        if self.friends.insert(friend, grant).is_none() {
            self.subscribe(Topic::Location(friend));
        }
    }

    fn remove_friend(&mut self, friend: u64) {
        self.uncertain.remove(&friend);
        if self.friends.remove(&friend).is_some() {
            self.unsubscribe(Topic::Location(friend));
            if self.known.remove(&friend).is_some_and(|k| k.shown) {
                self.outbox
                    .push(ServerMessage::FriendGone { user_id: friend });
            }
        }
    }

    /// The one rule for showing a friend's location: they are a friend whose grant is
    /// settled (not being re-read) and lets this user see them at `now_ms`, and the node has
    /// read the audience log recently enough (`fresh`).
    fn may_see(&self, friend: u64, now_ms: i64, fresh: bool) -> bool {
        fresh
            // (An empty set answers without hashing: the common case on the hot path.)
            && (self.uncertain.is_empty() || !self.uncertain.contains(&friend))
            && self.precision(friend, now_ms) != Precision::Hidden
    }

    /// How precisely `friend` lets this user see them at `now_ms` (hidden for a stranger).
    fn precision(&self, friend: u64, now_ms: i64) -> Precision {
        self.friends
            .get(&friend)
            .map_or(Precision::Hidden, |grant| grant.precision_at(now_ms))
    }

    fn is_fresh(&self) -> bool {
        self.gateway.audience().is_fresh(Instant::now())
    }

    async fn serve<S>(&mut self, socket: &mut S) -> End
    where
        S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
    {
        let config = self.gateway.config().clone();
        let mut shutdown = self.gateway.shutdown_signal();
        let mut members = self.gateway.membership().subscribe();
        // A node may have joined between the upgrade's ownership check and now.
        members.mark_changed();
        let mut ping = tokio::time::interval(config.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await; // the first tick is immediate
        let mailbox = Arc::clone(&self.mailbox);
        let replaced = Arc::clone(&self.replaced);
        loop {
            let wake = tokio::select! {
                frame = socket.next() => Wake::Frame(frame),
                () = mailbox.wait() => Wake::Mailbox,
                () = sleep_until_opt(self.next_expiry) => Wake::Expiry,
                () = sleep_until_opt(self.flip_at) => Wake::Flip,
                () = sleep_until_opt(self.retry_at) => Wake::Retry,
                _ = ping.tick() => Wake::Ping,
                _ = shutdown.wait_for(|stop| *stop) => Wake::Shutdown,
                Ok(()) = members.changed() => Wake::Membership,
                () = replaced.notified() => Wake::Replaced,
            };
            let step = match wake {
                Wake::Frame(frame) => self.on_frame(frame).await,
                Wake::Mailbox => {
                    self.on_mailbox().await;
                    None
                }
                Wake::Expiry => {
                    self.expire(Instant::now());
                    None
                }
                Wake::Flip => {
                    self.on_flip().await;
                    None
                }
                Wake::Retry => {
                    self.retry_at = None;
                    self.apply_audience().await;
                    None
                }
                Wake::Ping if self.last_heard.elapsed() > config.idle_timeout => {
                    self.gateway
                        .metrics()
                        .closed_unresponsive
                        .fetch_add(1, Ordering::Relaxed);
                    Some(End::Close(
                        CLOSE_UNRESPONSIVE,
                        "no message or pong within the idle timeout".into(),
                    ))
                }
                Wake::Ping => self
                    .send(socket, &[], Some(Message::Ping(Default::default())))
                    .await
                    .err(),
                Wake::Shutdown => Some(self.shutdown_close()),
                Wake::Membership => self.moved(),
                Wake::Replaced => Some(End::Close(
                    CLOSE_REPLACED,
                    "replaced by a newer session of this user".into(),
                )),
            };
            if let Some(end) = step {
                return end;
            }
            if !self.outbox.is_empty() {
                let messages = std::mem::take(&mut self.outbox);
                if let Err(end) = self.send(socket, &messages, None).await {
                    return end;
                }
            }
        }
    }

    /// How a session ends when its node shuts down: with other nodes to move to, 1012
    /// (service restart) naming the user's next owner; alone, 1001 (going away).
    fn shutdown_close(&self) -> End {
        let membership = self.gateway.membership();
        if !membership.is_clustered() {
            return End::Close(CLOSE_GOING_AWAY, "server shutting down".into());
        }
        self.gateway
            .metrics()
            .sessions_moved
            .fetch_add(1, Ordering::Relaxed);
        match membership.successor(self.user) {
            Some(next) => End::Close(CLOSE_SERVICE_RESTART, next.websocket_url().into()),
            None => End::Close(CLOSE_SERVICE_RESTART, "server restarting".into()),
        }
    }

    /// After a membership change: if another node now owns the user, ends the session with
    /// 4001 and that node's WebSocket URL, so the client reconnects there.
    fn moved(&self) -> Option<End> {
        let membership = self.gateway.membership();
        if membership.is_leaving() {
            // The drain closes every session itself (1012).
            return None;
        }
        let owner = membership.owner(self.user);
        if owner.id() == membership.me().id() {
            return None;
        }
        self.gateway
            .metrics()
            .sessions_moved
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            user = self.user,
            owner = owner.id(),
            "user moved to another node"
        );
        Some(End::Close(CLOSE_MOVED, owner.websocket_url().into()))
    }

    /// The next instant, still ahead, at which the user's or a friend's timed sharing flips.
    fn next_flip(&self, now_ms: i64) -> Option<Instant> {
        let ahead = self
            .sharing
            .until_ms
            .into_iter()
            .chain(self.friends.values().flat_map(Grant::flips))
            .filter(|&until| until > now_ms)
            .min()?;
        let wait = u64::try_from(ahead - now_ms).ok()?;
        Some(Instant::now() + Duration::from_millis(wait))
    }

    /// A timed sharing setting flipped: show or hide the user now (not at their next
    /// update), and stop showing friends whose sharing ended.
    async fn on_flip(&mut self) {
        self.publish_own().await;
        if let Some(fix) = self.last_fix {
            self.reevaluate(fix.position);
        }
        self.flip_at = self.next_flip(clock::now_ms());
    }

    /// Counts a message over the flood limit; the close to end the session with.
    fn flood(&self) -> End {
        self.gateway
            .metrics()
            .closed_abuse
            .fetch_add(1, Ordering::Relaxed);
        End::Close(CLOSE_POLICY_VIOLATION, "message rate limit exceeded".into())
    }

    /// Handles one frame from the client; `Some` ends the session.
    async fn on_frame(&mut self, frame: Option<Result<Message, axum::Error>>) -> Option<End> {
        let now = Instant::now();
        let message = match frame {
            None => return Some(End::ClientGone),
            Some(Err(err)) => return Some(self.read_error(&err)),
            Some(Ok(message)) => message,
        };
        self.last_heard = now;
        match message {
            Message::Text(text) => {
                if !self.frame_bucket.take(now) {
                    return Some(self.flood());
                }
                if text.len() > self.gateway.config().max_message_bytes {
                    self.gateway
                        .metrics()
                        .closed_abuse
                        .fetch_add(1, Ordering::Relaxed);
                    return Some(End::Close(CLOSE_TOO_BIG, "message too big".into()));
                }
                match parse_client_message(text.as_str(), clock::now_ms()) {
                    Ok(ClientMessage::Location(fix)) => {
                        if self.gateway.users().take_location(self.user, now) {
                            self.on_location(fix, now).await;
                        } else {
                            self.refuse(MessageError::new(
                                "rate_limited",
                                "too many location messages; this one was dropped",
                            ));
                        }
                    }
                    Err(err) => self.refuse(err),
                }
            }
            Message::Binary(_) => {
                if !self.frame_bucket.take(now) {
                    return Some(self.flood());
                }
                self.refuse(MessageError::new(
                    "unsupported_frame",
                    "binary frames are not supported; send JSON text frames",
                ));
            }
            Message::Close(_) => return Some(End::ClientGone),
            Message::Ping(_) | Message::Pong(_) => {}
        }
        None
    }

    fn read_error(&self, err: &axum::Error) -> End {
        let cause = std::error::Error::source(err)
            .and_then(|source| source.downcast_ref::<tungstenite::Error>());
        let end = match cause {
            Some(tungstenite::Error::Capacity(_)) => {
                End::Close(CLOSE_TOO_BIG, "frame or message over the size limit".into())
            }
            Some(tungstenite::Error::Utf8(_)) => End::Close(
                CLOSE_INVALID_PAYLOAD,
                "text frame is not valid UTF-8".into(),
            ),
            Some(tungstenite::Error::Protocol(_)) => {
                End::Close(CLOSE_PROTOCOL_ERROR, "websocket protocol violation".into())
            }
            _ => return End::ClientGone,
        };
        self.gateway
            .metrics()
            .closed_abuse
            .fetch_add(1, Ordering::Relaxed);
        end
    }

    fn refuse(&mut self, err: MessageError) {
        self.gateway
            .metrics()
            .message_errors
            .fetch_add(1, Ordering::Relaxed);
        self.outbox.push(err.into());
    }

    /// Publishes the client's location and updates what the client sees; an implausible move
    /// is refused and changes nothing.
    async fn on_location(&mut self, fix: Fix, now: Instant) {
        if let Err(implausible) = self.gateway.users().accept_move(self.user, fix, now) {
            self.gateway
                .metrics()
                .implausible
                .fetch_add(1, Ordering::Relaxed);
            self.refuse(MessageError::new(
                "implausible_movement",
                format!(
                    "{:.0} km from your last location at {:.0} km/h: refused, your previous location stands",
                    implausible.distance_m / 1_000.0,
                    implausible.speed_kmh
                ),
            ));
            return;
        }
        self.gateway
            .metrics()
            .locations
            .fetch_add(1, Ordering::Relaxed);
        self.last_fix = Some(fix);
        self.publish_own().await;
        if self.snapshot_sent {
            self.reevaluate(fix.position);
        } else {
            self.snapshot(fix.position).await;
        }
    }

    /// Shares (or hides) the client's latest location per its sharing setting. While the
    /// user's own setting is being re-read nothing is published: it may just have been
    /// turned off.
    async fn publish_own(&mut self) {
        let Some(fix) = self.last_fix else { return };
        if self.own_reload {
            return;
        }
        if self.sharing.effective(clock::now_ms()) {
            self.hidden = false;
            self.gateway.history().record(self.user, fix);
            let (cached, published) = tokio::join!(
                self.gateway.cache().set(self.user, fix),
                self.gateway
                    .bus()
                    .publish(Topic::Location(self.user), Event::Location(fix)),
            );
            if let Err(err) = &cached {
                self.gateway
                    .metrics()
                    .bus_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(user = self.user, error = %err, "location not cached");
            }
            if cached.is_err() || published.is_err() {
                self.outbox.push(
                    MessageError::new(
                        "unavailable",
                        "your location could not be shared right now; send it again later",
                    )
                    .into(),
                );
            }
        } else if !self.hidden {
            self.hidden = true;
            if let Err(err) = self.gateway.hide(self.user).await {
                tracing::debug!(user = self.user, error = %err, "could not hide the user");
            }
        }
    }

    /// Answers the first location: every friend within the radius, from the cache. When the
    /// cache or the audience log cannot be read, says so (`unavailable`) rather than sending
    /// an empty list that would read as "nobody nearby"; the next location tries again.
    async fn snapshot(&mut self, me: LatLng) {
        if !self.is_fresh() {
            self.refuse(MessageError::new(
                "unavailable",
                "friends' locations are unavailable right now; they will follow when they are",
            ));
            return;
        }
        let now_ms = clock::now_ms();
        let visible: Vec<u64> = self
            .friends
            .keys()
            .copied()
            .filter(|&friend| self.may_see(friend, now_ms, true))
            .collect();
        if let Err(err) = self.load_known(&visible).await {
            tracing::debug!(user = self.user, error = %err, "snapshot without the cache");
            self.refuse(MessageError::new(
                "unavailable",
                "friends' locations are unavailable right now; they will follow when they are",
            ));
            return;
        }
        let (radius, _) = self.radius();
        let mut shown = Vec::new();
        let precisions: HashMap<u64, Precision> = visible
            .iter()
            .map(|&friend| (friend, self.precision(friend, now_ms)))
            .collect();
        for (&friend, known) in &mut self.known {
            let Some(&precision) = precisions.get(&friend) else {
                known.shown = false;
                continue;
            };
            let seen = apparent(precision, known.fix, None);
            let distance = me.distance_m(seen.position);
            known.shown = distance <= radius;
            known.precision = precision;
            known.approximately = seen.cell.and(Some(seen)).filter(|_| known.shown);
            if known.shown {
                shown.push(view(friend, known.fix, &seen, precision, distance));
            }
        }
        shown.sort_by(|a, b| {
            a.distance_m
                .total_cmp(&b.distance_m)
                .then(a.user_id.cmp(&b.user_id))
        });
        self.snapshot_sent = true;
        self.outbox
            .push(ServerMessage::NearbyFriends { friends: shown });
    }

    fn radius(&self) -> (f64, f64) {
        let config = self.gateway.config();
        (config.radius_m, config.hysteresis_m)
    }

    /// Fills `known` with the cached locations of `friends`.
    async fn load_known(&mut self, friends: &[u64]) -> Result<(), crate::cache::CacheError> {
        if friends.is_empty() {
            return Ok(());
        }
        let now_ms = clock::now_ms();
        let cached = self.gateway.cache().get_many(friends).await?;
        let ttl = self.gateway.config().location_ttl;
        let now = Instant::now();
        for (&friend, fix) in friends.iter().zip(cached) {
            let Some(fix) = fix else { continue };
            if !self.friends.contains_key(&friend) {
                continue;
            }
            // The cache keeps an entry for the TTL after its last write; the fix's own
            // timestamp tells how much of it is left.
            let age = Duration::from_millis(
                u64::try_from(now_ms.saturating_sub(fix.timestamp_ms)).unwrap_or(0),
            );
            let expires = now + ttl.saturating_sub(age).max(Duration::from_millis(1));
            self.remember(friend, fix, expires);
        }
        Ok(())
    }

    fn remember(&mut self, friend: u64, fix: Fix, expires: Instant) -> &mut Known {
        self.next_expiry = Some(self.next_expiry.map_or(expires, |next| next.min(expires)));
        let entry = self.known.entry(friend).or_insert(Known {
            fix,
            expires,
            shown: false,
            precision: Precision::Hidden,
            approximately: None,
        });
        entry.fix = fix;
        entry.expires = expires;
        entry
    }

    /// After the client moved or what friends grant changed: friends entering or leaving the
    /// radius, and shown friends who may no longer be seen.
    fn reevaluate(&mut self, me: LatLng) {
        let (radius, hysteresis) = self.radius();
        let now_ms = clock::now_ms();
        if !self.is_fresh() {
            // The node cannot vouch for any grant right now: show nothing new, but do not hide
            // friends either — their last position is not new information, and an overloaded
            // or cut-off node would otherwise make every friend flicker off and on.
            return;
        }
        let fresh = true;
        let mut changes = Vec::new();
        for (&friend, known) in &self.known {
            let precision = if self.may_see(friend, now_ms, fresh) {
                self.precision(friend, now_ms)
            } else {
                Precision::Hidden
            };
            if precision == Precision::Hidden {
                if known.shown {
                    changes.push((friend, None));
                }
                continue;
            }
            let seen = apparent(precision, known.fix, known.carried(precision));
            let distance = me.distance_m(seen.position);
            let show = within(known.shown, distance, radius, hysteresis);
            if show != known.shown
                || (show && (known.precision != precision || known.cell() != seen.cell))
            {
                changes.push((friend, show.then_some((seen, precision, distance))));
            }
        }
        for (friend, shown) in changes {
            let Some(known) = self.known.get_mut(&friend) else {
                continue;
            };
            match shown {
                Some((seen, precision, distance)) => {
                    known.shown = true;
                    known.precision = precision;
                    known.approximately = seen.cell.and(Some(seen));
                    self.outbox.push(ServerMessage::FriendLocation(view(
                        friend, known.fix, &seen, precision, distance,
                    )));
                }
                None => {
                    known.shown = false;
                    known.approximately = None;
                    self.outbox
                        .push(ServerMessage::FriendGone { user_id: friend });
                }
            }
        }
    }

    /// Friends' events, and changes to friendships and sharing marked by the audience
    /// watcher (applied first: an event is judged by the newest grant).
    async fn on_mailbox(&mut self) {
        let pending = self.mailbox.take();
        if pending.reload {
            self.own_reload = true;
        }
        for friend in pending.recheck {
            if self.friends.contains_key(&friend) {
                self.uncertain.insert(friend);
            }
        }
        if self.own_reload || !self.uncertain.is_empty() {
            self.apply_audience().await;
        }
        let now = Instant::now();
        let now_ms = clock::now_ms();
        let fresh = self.is_fresh();
        let ttl = self.gateway.config().location_ttl;
        let me = self.last_fix.map(|fix| fix.position);
        let (radius, hysteresis) = self.radius();
        for (friend, event) in pending.events {
            // Privacy guard: only current friends' events are ever looked at, whatever
            // reached the mailbox before an unfriending was processed.
            if !self.friends.contains_key(&friend) {
                continue;
            }
            match event {
                Event::Location(fix) => {
                    // A fix this session already holds (the snapshot read it from the cache
                    // while the same fix waited in the mailbox; a message delivered twice) or
                    // an older one (overtaken on the way) is not news: nothing to push, and
                    // the friend's expiry stays what the held fix's age makes it.
                    if self.known.get(&friend).is_some_and(|held| {
                        held.fix == fix || fix.timestamp_ms < held.fix.timestamp_ms
                    }) {
                        continue;
                    }
                    let allowed = self.may_see(friend, now_ms, fresh);
                    let known = *self.remember(friend, fix, now + ttl);
                    let Some(me) = me else { continue };
                    if !allowed {
                        self.gateway
                            .metrics()
                            .withheld
                            .fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let precision = self.precision(friend, now_ms);
                    if precision == Precision::Approximate
                        && known.shown
                        && known.precision == precision
                        && known.cell() == Some(approximate::cell_of(fix.position))
                    {
                        // Moving inside the cell the viewer is shown sends nothing: settle it
                        // with one cell lookup, before any centre or boundary is computed.
                        continue;
                    }
                    let seen = apparent(precision, fix, known.carried(precision));
                    let distance = me.distance_m(seen.position);
                    let show = within(known.shown, distance, radius, hysteresis);
                    // An approximate viewer hears only of a change of cell.
                    let same_cell = known.shown
                        && precision == Precision::Approximate
                        && known.precision == precision
                        && known.cell() == seen.cell;
                    if show && !same_cell {
                        let latency_ms = now_ms.saturating_sub(fix.timestamp_ms);
                        if latency_ms >= 0 {
                            self.gateway
                                .metrics()
                                .observe_push_latency(latency_ms as f64 / 1e3);
                        }
                        self.outbox.push(ServerMessage::FriendLocation(view(
                            friend, fix, &seen, precision, distance,
                        )));
                    } else if !show && known.shown {
                        self.outbox
                            .push(ServerMessage::FriendGone { user_id: friend });
                    }
                    if let Some(entry) = self.known.get_mut(&friend) {
                        entry.shown = show;
                        entry.precision = precision;
                        entry.approximately = seen.cell.and(Some(seen)).filter(|_| show);
                    }
                }
                Event::Gone => {
                    if self.known.remove(&friend).is_some_and(|k| k.shown) {
                        self.outbox
                            .push(ServerMessage::FriendGone { user_id: friend });
                    }
                }
                Event::Changed => {}
            }
        }
    }

    /// Re-reads what changed: the user's own friendships and sharing when marked (or when
    /// many friends are), else what each marked friend grants. A failed read leaves the marks
    /// in place (those friends stay withheld, the user's location unpublished) and is retried
    /// shortly.
    async fn apply_audience(&mut self) {
        if self.uncertain.len() > RECHECK_ONE_BY_ONE {
            self.own_reload = true;
        }
        let mut failed = false;
        if self.own_reload {
            match self.gateway.friends().audience(self.user).await {
                Ok(audience) => {
                    self.own_reload = false;
                    self.apply_full(audience).await;
                }
                Err(err) => {
                    failed = true;
                    tracing::debug!(user = self.user, error = %err, "cannot reload friendships; retrying");
                }
            }
        }
        let marked: Vec<u64> = self.uncertain.iter().copied().collect();
        for friend in marked {
            match self.gateway.friends().grant(self.user, friend).await {
                Ok(Some(grant)) => {
                    self.uncertain.remove(&friend);
                    self.friends.insert(friend, grant);
                }
                Ok(None) => self.remove_friend(friend),
                Err(err) => {
                    failed = true;
                    tracing::debug!(user = self.user, friend, error = %err, "cannot re-read a grant; retrying");
                }
            }
        }
        self.retry_at = failed.then(|| Instant::now() + RETRY_AFTER);
        self.flip_at = self.next_flip(clock::now_ms());
        if let Some(fix) = self.last_fix {
            self.reevaluate(fix.position);
        }
    }

    /// Applies a full read of the user's friendships and sharing.
    async fn apply_full(&mut self, audience: Audience) {
        let current: HashMap<u64, Grant> = audience.friends.into_iter().collect();
        let removed: Vec<u64> = self
            .friends
            .keys()
            .filter(|friend| !current.contains_key(friend))
            .copied()
            .collect();
        for friend in removed {
            self.remove_friend(friend);
        }
        let mut added = Vec::new();
        for (&friend, &grant) in &current {
            if !self.friends.contains_key(&friend) {
                added.push(friend);
            }
            self.add_friend(friend, grant);
            self.friends.insert(friend, grant);
        }
        // The read started after every mark taken so far: they are all settled.
        self.uncertain.clear();
        let now_ms = clock::now_ms();
        let was = self.sharing.effective(now_ms);
        self.sharing = audience.sharing;
        if was != self.sharing.effective(now_ms) {
            self.publish_own().await;
        }
        if !added.is_empty()
            && self.last_fix.is_some()
            && let Err(err) = self.load_known(&added).await
        {
            tracing::debug!(user = self.user, error = %err, "new friends' locations not read");
        }
    }

    /// Forgets friends silent past the TTL.
    fn expire(&mut self, now: Instant) {
        let mut next: Option<Instant> = None;
        let mut gone = Vec::new();
        self.known.retain(|&friend, known| {
            if known.expires <= now {
                if known.shown {
                    gone.push(friend);
                }
                false
            } else {
                next = Some(next.map_or(known.expires, |n| n.min(known.expires)));
                true
            }
        });
        self.next_expiry = next;
        for friend in gone {
            self.outbox
                .push(ServerMessage::FriendGone { user_id: friend });
        }
    }

    /// Writes `messages` (then `extra`, a control frame), then flushes once, within the send
    /// timeout; a client that cannot take them in time is closed (1001).
    async fn send<S>(
        &mut self,
        socket: &mut S,
        messages: &[ServerMessage],
        extra: Option<Message>,
    ) -> Result<(), End>
    where
        S: Sink<Message, Error = axum::Error> + Unpin,
    {
        let pushes = messages
            .iter()
            .filter(|m| !matches!(m, ServerMessage::Error { .. }))
            .count();
        let timeout = self.gateway.config().send_timeout;
        let write = async {
            for message in messages {
                socket.feed(Message::Text(message.to_json().into())).await?;
            }
            if let Some(extra) = extra {
                socket.feed(extra).await?;
            }
            socket.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => {
                self.gateway
                    .metrics()
                    .pushes
                    .fetch_add(pushes as u64, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(_)) => Err(End::ClientGone),
            Err(_) => {
                self.gateway
                    .metrics()
                    .closed_unresponsive
                    .fetch_add(1, Ordering::Relaxed);
                Err(End::Close(
                    CLOSE_UNRESPONSIVE,
                    "pushes could not be delivered in time".into(),
                ))
            }
        }
    }

    /// Undoes the session's subscriptions; if it was the user's last session here, tells
    /// friends the user is gone.
    async fn finish(&mut self) {
        self.gateway
            .users()
            .unregister(self.user, self.mailbox.session(), Instant::now());
        for friend in std::mem::take(&mut self.friends).into_keys() {
            self.unsubscribe(Topic::Location(friend));
        }
        self.unsubscribe(Topic::Control(self.user));
        let last_session = !self
            .gateway
            .hub()
            .has_subscribers(Topic::Control(self.user));
        if last_session
            && self.last_fix.is_some()
            && !self.hidden
            && let Err(err) = self.gateway.hide(self.user).await
        {
            tracing::debug!(user = self.user, error = %err, "could not announce the disconnect");
        }
    }
}

/// The message body for a friend seen at `seen`: for an approximate viewer the cell's centre
/// and accuracy, never the friend's coordinates.
fn view(
    user_id: u64,
    fix: Fix,
    seen: &Apparent,
    precision: Precision,
    distance_m: f64,
) -> FriendView {
    FriendView {
        user_id,
        latitude: seen.position.lat(),
        longitude: seen.position.lng(),
        distance_m: (distance_m * 10.0).round() / 10.0,
        timestamp: fix.timestamp_ms,
        precision: if precision == Precision::Approximate {
            "approximate"
        } else {
            "exact"
        },
        accuracy_m: seen.accuracy_m,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::friends::FriendStore;
    use crate::gateway::{Authenticator, Backend, GatewayConfig};
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll};
    use tokio::sync::mpsc;

    struct IdIsToken;

    impl Authenticator for IdIsToken {
        fn authenticate(&self, token: &str) -> Result<u64, String> {
            token.parse().map_err(|_| "not a user id".to_owned())
        }
    }

    /// A socket made of a channel in and a vector out; `stuck` makes every write pend forever
    /// (a client that stopped reading, with full buffers).
    struct TestSocket {
        incoming: mpsc::Receiver<Message>,
        sent: Arc<Mutex<Vec<Message>>>,
        stuck: bool,
    }

    impl Stream for TestSocket {
        type Item = Result<Message, axum::Error>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.incoming.poll_recv(cx).map(|m| m.map(Ok))
        }
    }

    impl Sink<Message> for TestSocket {
        type Error = axum::Error;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
            if self.stuck {
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        }

        fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), axum::Error> {
            self.sent.lock().unwrap().push(item);
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
            self.poll_ready(cx)
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    struct Client {
        tx: mpsc::Sender<Message>,
        sent: Arc<Mutex<Vec<Message>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Client {
        async fn open(gateway: &Gateway, user: u64, stuck: bool) -> Client {
            let log_cursor = gateway.audience().cursor();
            let start = Start {
                user,
                audience: gateway.friends().audience(user).await.unwrap(),
                log_cursor,
            };
            Client::open_with(gateway, start, stuck)
        }

        fn open_with(gateway: &Gateway, start: Start, stuck: bool) -> Client {
            let (tx, incoming) = mpsc::channel(16);
            let sent = Arc::new(Mutex::new(Vec::new()));
            let socket = TestSocket {
                incoming,
                sent: Arc::clone(&sent),
                stuck,
            };
            let task = tokio::spawn(run(gateway.clone(), start, socket));
            Client { tx, sent, task }
        }

        async fn locate(&self, lat: f64, lng: f64) {
            let text = format!(r#"{{"type":"location","latitude":{lat},"longitude":{lng}}}"#);
            self.tx.send(Message::Text(text.into())).await.unwrap();
        }

        /// Waits until `count` messages were sent, then returns their JSON.
        async fn sent(&self, count: usize) -> Vec<serde_json::Value> {
            for _ in 0..500 {
                if self.sent.lock().unwrap().len() >= count {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            self.sent
                .lock()
                .unwrap()
                .iter()
                .filter_map(|m| match m {
                    Message::Text(text) => serde_json::from_str(text.as_str()).ok(),
                    _ => None,
                })
                .collect()
        }
    }

    impl Client {
        /// Every text message sent so far, as JSON.
        fn messages(&self) -> Vec<serde_json::Value> {
            self.sent
                .lock()
                .unwrap()
                .iter()
                .filter_map(|m| match m {
                    Message::Text(text) => serde_json::from_str(text.as_str()).ok(),
                    _ => None,
                })
                .collect()
        }

        /// Waits (at most `limit`) for a message matching `wanted` at index `from` or later;
        /// panics with everything sent when none comes.
        async fn wait_for(
            &self,
            from: usize,
            limit: Duration,
            wanted: impl Fn(&serde_json::Value) -> bool,
        ) -> serde_json::Value {
            let deadline = Instant::now() + limit;
            loop {
                if let Some(found) = self.messages().into_iter().skip(from).find(&wanted) {
                    return found;
                }
                assert!(
                    Instant::now() < deadline,
                    "no matching message within {limit:?}; sent: {:?}",
                    self.messages()
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    fn is_location_of(user: u64) -> impl Fn(&serde_json::Value) -> bool {
        move |m| m["type"] == "friend_location" && m["user_id"] == user
    }

    fn is_gone(user: u64) -> impl Fn(&serde_json::Value) -> bool {
        move |m| m["type"] == "friend_gone" && m["user_id"] == user
    }

    /// A friend's node that keeps publishing whatever it was told: the revoker's location
    /// goes out on the bus as if their own node had missed the change.
    async fn publish_from_elsewhere(gateway: &Gateway, user: u64, step: u32) {
        let fix = Fix {
            position: LatLng::new(10.0, 20.0 + 0.000_1 * f64::from(step)).unwrap(),
            timestamp_ms: clock::now_ms(),
        };
        gateway.cache().set(user, fix).await.unwrap();
        gateway
            .bus()
            .publish(Topic::Location(user), Event::Location(fix))
            .await
            .unwrap();
    }

    /// Publishes `user` every 100 ms for `span`, then returns.
    async fn keep_publishing(gateway: &Gateway, user: u64, span: Duration) {
        let started = Instant::now();
        let mut step = 0;
        while started.elapsed() < span {
            publish_from_elsewhere(gateway, user, step).await;
            step += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn fast_audience() -> GatewayConfig {
        GatewayConfig {
            audience: crate::audience::AudienceConfig {
                poll_interval: Duration::from_millis(50),
                max_staleness: Duration::from_millis(300),
                ..crate::audience::AudienceConfig::default()
            },
            ..GatewayConfig::default()
        }
    }

    fn memory(gateway: &Gateway) -> &crate::friends::MemoryFriends {
        match gateway.friends() {
            FriendStore::Memory(store) => store,
            FriendStore::Postgres(_) => unreachable!("the tests use the memory store"),
        }
    }

    const GHOST: Sharing = Sharing {
        enabled: false,
        until_ms: None,
        precision: Precision::Exact,
    };

    #[tokio::test]
    async fn a_failed_reread_is_retried_and_the_friend_is_withheld_meanwhile() {
        let gateway = gateway(fast_audience(), &[(1, 2)]).await;
        let alice = Client::open(&gateway, 1, false).await;
        alice.locate(10.0, 20.0).await;
        alice
            .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
            .await;
        publish_from_elsewhere(&gateway, 2, 0).await;
        alice
            .wait_for(0, Duration::from_secs(2), is_location_of(2))
            .await;

        // Bob turns ghost mode on; the first five re-reads of what he grants Alice fail (a
        // database blip), and his node never learns of it (his locations keep coming).
        memory(&gateway).faults.lock().unwrap().failing_reads = 5;
        gateway.friends().set_sharing(2, GHOST).await.unwrap();
        let changed = Instant::now();
        tokio::time::sleep(Duration::from_millis(150)).await; // a poll of the log, and margin
        let after_change = alice.messages().len();
        keep_publishing(&gateway, 2, Duration::from_millis(2_500)).await;
        // Retried until it succeeded (200 ms apart: about a second of failures)...
        assert_eq!(memory(&gateway).faults.lock().unwrap().failing_reads, 0);
        // ...withholding every one of Bob's 25 updates meanwhile, and after: he is hidden.
        let late: Vec<_> = alice
            .messages()
            .into_iter()
            .skip(after_change)
            .filter(is_location_of(2))
            .collect();
        assert!(
            late.is_empty(),
            "leaked after {:?}: {late:?}",
            changed.elapsed()
        );
        alice.wait_for(0, Duration::from_secs(1), is_gone(2)).await;
        assert!(gateway.metrics().withheld.load(Ordering::Relaxed) > 0);
    }

    #[tokio::test]
    async fn while_the_audience_log_cannot_be_read_no_location_is_forwarded() {
        let gateway = gateway(fast_audience(), &[(1, 2)]).await;
        let alice = Client::open(&gateway, 1, false).await;
        alice.locate(10.0, 20.0).await;
        alice
            .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
            .await;
        publish_from_elsewhere(&gateway, 2, 0).await;
        alice
            .wait_for(0, Duration::from_secs(2), is_location_of(2))
            .await;

        // The store is unreachable: a revocation could be waiting there unseen, so after the
        // staleness bound the node forwards nothing.
        memory(&gateway).faults.lock().unwrap().log_down = true;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let stale_from = alice.messages().len();
        keep_publishing(&gateway, 2, Duration::from_millis(1_500)).await;
        let leaked: Vec<_> = alice
            .messages()
            .into_iter()
            .skip(stale_from)
            .filter(is_location_of(2))
            .collect();
        assert!(leaked.is_empty(), "forwarded while stale: {leaked:?}");
        assert!(gateway.metrics().withheld.load(Ordering::Relaxed) >= 10);

        // Readable again: updates flow within a poll or two.
        memory(&gateway).faults.lock().unwrap().log_down = false;
        let recovered_from = alice.messages().len();
        let flowing = async {
            let mut step = 100;
            loop {
                publish_from_elsewhere(&gateway, 2, step).await;
                step += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                if alice
                    .messages()
                    .iter()
                    .skip(recovered_from)
                    .any(is_location_of(2))
                {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(2), flowing)
            .await
            .expect("updates flow again once the log is read");
    }

    #[tokio::test]
    async fn a_snapshot_that_cannot_be_trusted_says_unavailable_and_comes_later() {
        let gateway = gateway(fast_audience(), &[(1, 2)]).await;
        publish_from_elsewhere(&gateway, 2, 0).await;
        let alice = Client::open(&gateway, 1, false).await;
        memory(&gateway).faults.lock().unwrap().log_down = true;
        tokio::time::sleep(Duration::from_millis(400)).await;
        alice.locate(10.0, 20.0).await;
        let refused = alice
            .wait_for(0, Duration::from_secs(2), |m| m["type"] == "error")
            .await;
        assert_eq!(refused["code"], "unavailable", "{refused}");
        assert!(
            !alice
                .messages()
                .iter()
                .any(|m| m["type"] == "nearby_friends"),
            "no empty list that reads as 'nobody nearby'"
        );
        memory(&gateway).faults.lock().unwrap().log_down = false;
        tokio::time::sleep(Duration::from_millis(200)).await;
        tokio::time::sleep(Duration::from_millis(1_000)).await; // the location rate
        alice.locate(10.0, 20.0).await;
        let snapshot = alice
            .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
            .await;
        assert_eq!(snapshot["friends"][0]["user_id"], 2, "{snapshot}");
    }

    #[tokio::test]
    async fn a_change_between_the_load_and_the_subscription_is_applied() {
        let gateway = gateway(fast_audience(), &[(1, 2)]).await;
        // The upgrade notes the cursor and reads Alice's friends (Bob among them)...
        let log_cursor = gateway.audience().cursor();
        let audience = gateway.friends().audience(1).await.unwrap();
        assert_eq!(audience.friends.len(), 1);
        // ...then Bob unfriends her, and the watcher reads that while no session of hers
        // exists to be told.
        gateway.friends().remove(2, 1).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while gateway.audience().cursor() <= log_cursor {
            assert!(
                Instant::now() < deadline,
                "the watcher never read the change"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        publish_from_elsewhere(&gateway, 2, 0).await;
        let alice = Client::open_with(
            &gateway,
            Start {
                user: 1,
                audience,
                log_cursor,
            },
            false,
        );
        alice.locate(10.0, 20.0).await;
        let snapshot = alice
            .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
            .await;
        assert_eq!(snapshot["friends"], serde_json::json!([]), "{snapshot}");
        keep_publishing(&gateway, 2, Duration::from_millis(1_500)).await;
        let leaked: Vec<_> = alice
            .messages()
            .into_iter()
            .filter(is_location_of(2))
            .collect();
        assert!(leaked.is_empty(), "{leaked:?}");
        assert!(!gateway.hub().has_subscribers(Topic::Location(2)));
    }

    async fn publish_at(gateway: &Gateway, user: u64, lat: f64, lng: f64) {
        let fix = Fix {
            position: LatLng::new(lat, lng).unwrap(),
            timestamp_ms: clock::now_ms(),
        };
        gateway.cache().set(user, fix).await.unwrap();
        gateway
            .bus()
            .publish(Topic::Location(user), Event::Location(fix))
            .await
            .unwrap();
    }

    fn set(precision: Precision, until_ms: Option<i64>) -> Option<crate::friends::FriendSetting> {
        Some(crate::friends::FriendSetting {
            precision,
            until_ms,
        })
    }

    #[tokio::test]
    async fn an_approximate_viewer_sees_cell_centres_and_only_changes_of_cell() {
        let gateway = gateway(fast_audience(), &[(1, 2)]).await;
        gateway
            .friends()
            .set_friend_setting(2, 1, set(Precision::Approximate, None))
            .await
            .unwrap();
        let alice = Client::open(&gateway, 1, false).await;
        alice.locate(48.8566, 2.3522).await;
        alice
            .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
            .await;
        // Bob walks 3 km east in 30 m steps.
        let mut sent = Vec::new();
        for step in 0..100 {
            let (lat, lng) = (48.86, 2.34 + 0.000_41 * f64::from(step));
            publish_at(&gateway, 2, lat, lng).await;
            sent.push((lat, lng));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seen: Vec<serde_json::Value> = alice
            .messages()
            .into_iter()
            .filter(is_location_of(2))
            .collect();
        assert!(!seen.is_empty());
        assert!(
            seen.len() <= 6,
            "one message per cell entered, not per step: {seen:?}"
        );
        for message in &seen {
            assert_eq!(message["precision"], "approximate", "{message}");
            let accuracy = message["accuracy_m"].as_f64().unwrap();
            assert!((1_000.0..2_000.0).contains(&accuracy), "{message}");
            let shown = LatLng::new(
                message["latitude"].as_f64().unwrap(),
                message["longitude"].as_f64().unwrap(),
            )
            .unwrap();
            // A cell centre, never one of Bob's positions.
            assert_eq!(
                approximate::centre(approximate::cell_of(shown)),
                shown,
                "{message}"
            );
            assert!(
                sent.iter()
                    .all(|&(lat, lng)| (lat, lng) != (shown.lat(), shown.lng())),
                "{message}"
            );
            // Distance measured from the centre.
            let me = LatLng::new(48.8566, 2.3522).unwrap();
            let distance = message["distance_m"].as_f64().unwrap();
            assert!((distance - me.distance_m(shown)).abs() < 0.1, "{message}");
        }
        assert!(seen.len() >= 2, "a 3 km walk changes cell: {seen:?}");
    }

    #[tokio::test]
    async fn hidden_sends_friend_gone_and_nothing_more_and_keeps_out_of_snapshots() {
        let gateway = gateway(fast_audience(), &[(1, 2), (1, 3)]).await;
        publish_at(&gateway, 3, 10.0, 20.001).await;
        let alice = Client::open(&gateway, 1, false).await;
        alice.locate(10.0, 20.0).await;
        alice
            .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
            .await;
        publish_from_elsewhere(&gateway, 2, 0).await;
        alice
            .wait_for(0, Duration::from_secs(2), is_location_of(2))
            .await;
        gateway
            .friends()
            .set_friend_setting(2, 1, set(Precision::Hidden, None))
            .await
            .unwrap();
        gateway
            .friends()
            .set_friend_setting(3, 1, set(Precision::Hidden, None))
            .await
            .unwrap();
        alice.wait_for(0, Duration::from_secs(1), is_gone(2)).await;
        let after = alice.messages().len();
        keep_publishing(&gateway, 2, Duration::from_millis(1_500)).await;
        let leaked: Vec<_> = alice
            .messages()
            .into_iter()
            .skip(after)
            .filter(|m| m["user_id"] == 2 || m["user_id"] == 3)
            .collect();
        assert!(leaked.is_empty(), "{leaked:?}");
        // A second device of Alice's: its snapshot has neither.
        let phone = Client::open(&gateway, 1, false).await;
        phone.locate(10.0, 20.0).await;
        let snapshot = phone
            .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
            .await;
        assert_eq!(snapshot["friends"], serde_json::json!([]), "{snapshot}");
    }

    #[tokio::test]
    async fn a_setting_that_expires_into_a_narrower_default_narrows_on_time() {
        let gateway = gateway(fast_audience(), &[(1, 2)]).await;
        let approximate_default = Sharing {
            precision: Precision::Approximate,
            ..Sharing::default()
        };
        gateway
            .friends()
            .set_sharing(2, approximate_default)
            .await
            .unwrap();
        let until = clock::now_ms() + 1_000;
        gateway
            .friends()
            .set_friend_setting(2, 1, set(Precision::Exact, Some(until)))
            .await
            .unwrap();
        let alice = Client::open(&gateway, 1, false).await;
        alice.locate(10.0, 20.0).await;
        alice
            .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
            .await;
        publish_from_elsewhere(&gateway, 2, 0).await;
        let exact = alice
            .wait_for(0, Duration::from_secs(2), is_location_of(2))
            .await;
        assert_eq!(exact["precision"], "exact", "{exact}");
        // Past `until` (no change in the store, no message on the bus): the next message
        // about Bob is approximate, pushed by the session's own timer, and so is every later one.
        let publishing = keep_publishing(&gateway, 2, Duration::from_millis(2_000));
        let started = Instant::now();
        publishing.await;
        let messages = alice.messages();
        let first_approximate = messages
            .iter()
            .position(|m| is_location_of(2)(m) && m["precision"] == "approximate")
            .expect("narrowed to approximate");
        let exact_after: Vec<_> = messages
            .iter()
            .skip(first_approximate)
            .filter(|m| is_location_of(2)(m) && m["precision"] == "exact")
            .collect();
        assert!(exact_after.is_empty(), "{exact_after:?}");
        assert!(started.elapsed() >= Duration::from_millis(1_500));
        assert!(clock::now_ms() > until);
    }

    async fn gateway(config: GatewayConfig, pairs: &[(u64, u64)]) -> Gateway {
        let friends = FriendStore::memory();
        friends.seed(pairs).await.unwrap();
        Gateway::start(config, IdIsToken, friends, Backend::Local, None)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_friend_moving_is_pushed_and_a_stranger_is_not() {
        let gateway = gateway(GatewayConfig::default(), &[(1, 2)]).await;
        let alice = Client::open(&gateway, 1, false).await;
        let bob = Client::open(&gateway, 2, false).await;
        let stranger = Client::open(&gateway, 3, false).await;
        alice.locate(10.0, 20.0).await;
        assert_eq!(alice.sent(1).await[0]["type"], "nearby_friends");
        stranger.locate(10.0, 20.0).await;
        bob.locate(10.001, 20.0).await;
        let to_bob = bob.sent(1).await;
        assert_eq!(to_bob[0]["friends"][0]["user_id"], 1);
        let to_alice = alice.sent(2).await;
        assert_eq!(to_alice[1]["type"], "friend_location");
        assert_eq!(to_alice[1]["user_id"], 2);
        assert_eq!(stranger.sent(1).await.len(), 1, "only its own snapshot");
        drop(bob.tx);
        bob.task.await.unwrap();
        assert_eq!(alice.sent(3).await[2]["type"], "friend_gone");
        assert_eq!(gateway.metrics().sessions.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_fix_delivered_again_or_late_is_not_pushed_again() {
        let gateway = gateway(GatewayConfig::default(), &[(1, 2)]).await;
        let alice = Client::open(&gateway, 1, false).await;
        let first = Fix {
            position: LatLng::new(10.001, 20.0).unwrap(),
            timestamp_ms: clock::now_ms(),
        };
        gateway.cache().set(2, first).await.unwrap();
        alice.locate(10.0, 20.0).await;
        let snapshot = alice.sent(1).await;
        assert_eq!(snapshot[0]["friends"][0]["user_id"], 2, "{snapshot:?}");
        // The fix the snapshot showed arrives again, then an older one: both are dropped.
        let older = Fix {
            position: LatLng::new(10.002, 20.0).unwrap(),
            timestamp_ms: first.timestamp_ms - 1_000,
        };
        // (One at a time: the mailbox keeps only the latest event per friend.)
        for fix in [first, older, first] {
            gateway
                .bus()
                .publish(Topic::Location(2), Event::Location(fix))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Then a newer one, which must arrive after them: a late duplicate would be seen
        // before it, since the mailbox is read in order.
        let newer = Fix {
            position: LatLng::new(10.003, 20.0).unwrap(),
            timestamp_ms: first.timestamp_ms + 1,
        };
        gateway
            .bus()
            .publish(Topic::Location(2), Event::Location(newer))
            .await
            .unwrap();
        let pushed = alice
            .wait_for(1, Duration::from_secs(5), is_location_of(2))
            .await;
        assert_eq!(pushed["latitude"], 10.003, "{:?}", alice.messages());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(alice.messages().len(), 2, "{:?}", alice.messages());
    }

    #[tokio::test]
    async fn a_connection_that_never_sends_anything_is_closed_after_the_idle_timeout() {
        let config = GatewayConfig {
            ping_interval: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(250),
            ..GatewayConfig::default()
        };
        let gateway = gateway(config, &[]).await;
        let silent = Client::open(&gateway, 1, false).await;
        // Pinged at 100 ms and 200 ms without an answer; at the 300 ms ping it has been silent
        // past the 250 ms idle timeout: closed with 1001, and the session is gone.
        tokio::time::timeout(Duration::from_secs(5), silent.task)
            .await
            .expect("the session ends")
            .unwrap();
        let sent = silent.sent.lock().unwrap().clone();
        let pings = sent
            .iter()
            .filter(|m| matches!(m, Message::Ping(_)))
            .count();
        assert!((1..=3).contains(&pings), "{sent:?}");
        match sent.last() {
            Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CLOSE_UNRESPONSIVE),
            other => panic!("expected a close frame, got {other:?}"),
        }
        assert_eq!(gateway.metrics().sessions.load(Ordering::Relaxed), 0);
        assert_eq!(
            gateway
                .metrics()
                .closed_unresponsive
                .load(Ordering::Relaxed),
            1
        );
    }

    #[tokio::test]
    async fn a_stuck_client_is_disconnected_and_its_backlog_coalesces() {
        let config = GatewayConfig {
            send_timeout: Duration::from_millis(200),
            location_burst: 10,
            ..GatewayConfig::default()
        };
        let gateway = gateway(config, &[(1, 2)]).await;
        let stuck = Client::open(&gateway, 1, true).await;
        let mover = Client::open(&gateway, 2, false).await;
        stuck.locate(0.0, 0.0).await; // its snapshot cannot be written
        for step in 0..8 {
            mover.locate(0.0, 0.0001 * f64::from(step)).await;
        }
        tokio::time::timeout(Duration::from_secs(5), stuck.task)
            .await
            .expect("the stuck session ends")
            .unwrap();
        let metrics = gateway.metrics();
        assert_eq!(metrics.closed_unresponsive.load(Ordering::Relaxed), 1);
        // While it was stuck, the mover's updates replaced one another in its mailbox.
        assert!(metrics.coalesced.load(Ordering::Relaxed) >= 4);
        assert_eq!(metrics.sessions.load(Ordering::Relaxed), 1);
        // Nothing was written to it, and the hub no longer holds its mailbox.
        assert!(stuck.sent.lock().unwrap().is_empty());
        assert!(!gateway.hub().has_subscribers(Topic::Location(2)));
    }
}

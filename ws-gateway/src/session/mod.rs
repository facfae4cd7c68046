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
//!
//! The decisions are pure functions of (state, input, now), one concern per file:
//! `visibility.rs` (who may see what: the friend table, the hysteresis rule, approximate
//! precision, expiry, timed flips), `rate.rs` (the flood and size limits on client frames),
//! `close.rs` (every close code and reason, and the counter each bumps). This file is the
//! transport: the select loop, reading and writing frames, and calling the stores, the bus
//! and the cache, feeding what they answer into those functions. It reads the time through
//! its [`Clock`] (only the audience log's freshness is asked with the system's monotonic
//! clock, which the watcher keeps). The pure parts are unit-tested in their files with the time as a
//! plain value; `tests.rs` drives whole sessions through a test socket.

mod close;
mod rate;
mod visibility;

use crate::clock::{Clock, Now};
use crate::event::{Event, Topic};
use crate::friends::{Audience, Grant, Sharing};
use crate::gateway::Gateway;
use crate::hub::Mailbox;
use crate::protocol::{ClientMessage, Fix, MessageError, ServerMessage, parse_client_message};
use axum::extract::ws::{CloseFrame, Message};
use close::{Close, End};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use geo_index::LatLng;
use rate::{Frame, FrameLimit};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use visibility::{Delivery, Edge, Friends};

/// How soon a failed re-read of friendships or sharing is tried again.
const RETRY_AFTER: Duration = Duration::from_millis(200);
/// Past this many friends to re-check at once, one full reload is cheaper than one read each.
const RECHECK_ONE_BY_ONE: usize = 16;
/// How long the server waits for its close frame to be written and answered, and for the
/// reply to a client's close to be flushed.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(1);

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
    clock: Clock,
    user: u64,
    mailbox: Arc<Mailbox>,
    /// Friends, what each grants, what the client is shown of each.
    friends: Friends,
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
    frame_limit: FrameLimit,
    last_heard: Instant,
    outbox: Vec<ServerMessage>,
    /// Notified when a newer session of the user replaced this one.
    replaced: Arc<Notify>,
}

/// Runs a session on `socket` until it ends; every subscription it made is undone.
pub async fn run<S>(gateway: Gateway, start: Start, socket: S)
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    run_with_clock(gateway, start, socket, Clock::system()).await;
}

/// [`run`], reading the time from `clock`.
pub async fn run_with_clock<S>(gateway: Gateway, start: Start, mut socket: S, clock: Clock)
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    let started = clock.now();
    let config = gateway.config().clone();
    let mailbox = gateway.hub().mailbox();
    let registration =
        gateway
            .users()
            .register(start.user, mailbox.session(), started.instant.into_std());
    gateway
        .metrics()
        .sessions_replaced
        .fetch_add(registration.evicted as u64, Ordering::Relaxed);
    let edge = Edge {
        radius_m: config.radius_m,
        hysteresis_m: config.hysteresis_m,
    };
    let mut session = Session {
        clock,
        user: start.user,
        mailbox,
        friends: Friends::new(start.user, edge, config.location_ttl),
        sharing: start.audience.sharing,
        own_reload: false,
        retry_at: None,
        flip_at: None,
        last_fix: None,
        snapshot_sent: false,
        hidden: false,
        frame_limit: FrameLimit::new(
            config.frame_rate_per_s,
            config.frame_burst,
            config.max_message_bytes,
            started.instant,
        ),
        last_heard: started.instant,
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
                } else {
                    session.friends.mark(user);
                }
            }
        }
    }
    if session.own_reload || session.friends.marked_count() > 0 {
        session.apply_audience().await;
    }
    session.schedule_flip();
    tracing::debug!(
        user = session.user,
        friends = session.friends.len(),
        "session opened"
    );

    let end = session.serve(&mut socket).await;
    match &end {
        End::ClientGone => {
            // The client's close frame was answered by tungstenite but the reply is only
            // queued: flush it (bounded), or the client sees an abnormal closure (1006).
            let _ = tokio::time::timeout(CLOSE_HANDSHAKE, socket.flush()).await;
        }
        End::Close(close) => {
            close.count(metrics);
            let frame = CloseFrame {
                code: close.code(),
                reason: close.reason().as_ref().into(),
            };
            // Best effort, bounded: the peer may be the reason we are closing. Then read (and
            // discard) until the peer answers the close or goes away: dropping a socket with
            // unread input makes the kernel reset the connection, and the peer could lose the
            // close frame (and its code) to the reset.
            let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
                socket.send(Message::Close(Some(frame))).await?;
                while socket.next().await.is_some() {}
                Ok::<(), axum::Error>(())
            })
            .await;
            tracing::debug!(
                user = session.user,
                code = close.code(),
                reason = %close.reason(),
                "session closed by server"
            );
        }
    }
    session.finish().await;
    metrics.sessions.fetch_sub(1, Ordering::AcqRel);
    tracing::debug!(
        user = session.user,
        lasted_s = started.instant.elapsed().as_secs(),
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
        if self.friends.add(friend, grant) {
            self.subscribe(Topic::Location(friend));
        }
    }

    fn remove_friend(&mut self, friend: u64) {
        if self.friends.remove(friend, &mut self.outbox) {
            self.unsubscribe(Topic::Location(friend));
        }
    }

    /// Whether the node read the audience log recently enough to vouch for grants (on tokio's
    /// monotonic clock, the one the watcher and the session's timers use).
    fn is_fresh(&self) -> bool {
        self.gateway
            .audience()
            .is_fresh(tokio::time::Instant::now())
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
                () = sleep_until_opt(self.friends.next_expiry()) => Wake::Expiry,
                () = sleep_until_opt(self.flip_at) => Wake::Flip,
                () = sleep_until_opt(self.retry_at) => Wake::Retry,
                _ = ping.tick() => Wake::Ping,
                _ = shutdown.wait_for(|stop| *stop) => Wake::Shutdown,
                Ok(()) = members.changed() => Wake::Membership,
                () = replaced.notified() => Wake::Replaced,
            };
            let now = self.clock.now();
            let step = match wake {
                Wake::Frame(frame) => self.on_frame(frame, now).await,
                Wake::Mailbox => {
                    self.on_mailbox(now).await;
                    None
                }
                Wake::Expiry => {
                    self.friends.expire(now.instant, &mut self.outbox);
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
                Wake::Ping
                    if now.instant.saturating_duration_since(self.last_heard)
                        > config.idle_timeout =>
                {
                    Some(End::Close(Close::Idle))
                }
                Wake::Ping => self
                    .send(socket, &[], Some(Message::Ping(Default::default())))
                    .await
                    .err(),
                Wake::Shutdown => Some(End::Close(self.shutdown_close())),
                Wake::Membership => self.moved().map(End::Close),
                Wake::Replaced => Some(End::Close(Close::Replaced)),
            };
            if let Some(end) = step {
                return end;
            }
            if !self.outbox.is_empty() {
                let messages = std::mem::take(&mut self.outbox);
                let sent = self.send(socket, &messages, None).await;
                // Hand the buffer back: its capacity serves the next wake.
                self.outbox = messages;
                self.outbox.clear();
                if let Err(end) = sent {
                    return end;
                }
            }
        }
    }

    /// How a session ends when its node shuts down: with other nodes to move to, 1012
    /// (service restart) naming the user's next owner; alone, 1001 (going away).
    fn shutdown_close(&self) -> Close {
        let membership = self.gateway.membership();
        if !membership.is_clustered() {
            return Close::GoingAway;
        }
        Close::Restart(
            membership
                .successor(self.user)
                .map(|next| next.websocket_url()),
        )
    }

    /// After a membership change: if another node now owns the user, the close (4001) that
    /// sends the client to that node's WebSocket URL.
    fn moved(&self) -> Option<Close> {
        let membership = self.gateway.membership();
        if membership.is_leaving() {
            // The drain closes every session itself (1012).
            return None;
        }
        let owner = membership.owner(self.user);
        if owner.id() == membership.me().id() {
            return None;
        }
        tracing::debug!(
            user = self.user,
            owner = owner.id(),
            "user moved to another node"
        );
        Some(Close::Moved(owner.websocket_url()))
    }

    /// Arms the timer for the next instant, still ahead, at which the user's or a friend's
    /// timed sharing flips.
    fn schedule_flip(&mut self) {
        let now = self.clock.now();
        self.flip_at = self
            .friends
            .next_flip(&self.sharing, now.unix_ms)
            .map(|wait| now.instant + wait);
    }

    /// A timed sharing setting flipped: show or hide the user now (not at their next
    /// update), and stop showing friends whose sharing ended.
    async fn on_flip(&mut self) {
        self.publish_own().await;
        self.reevaluate();
        self.schedule_flip();
    }

    /// Handles one frame from the client; `Some` ends the session.
    async fn on_frame(
        &mut self,
        frame: Option<Result<Message, axum::Error>>,
        now: Now,
    ) -> Option<End> {
        let message = match frame {
            None => return Some(End::ClientGone),
            Some(Err(err)) => return Some(close::read_error(&err)),
            Some(Ok(message)) => message,
        };
        self.last_heard = now.instant;
        let admitted = match &message {
            Message::Text(text) => Frame::Text(text.len()),
            Message::Binary(_) => Frame::Binary,
            Message::Close(_) => return Some(End::ClientGone),
            Message::Ping(_) | Message::Pong(_) => return None,
        };
        if let Err(close) = self.frame_limit.admit(admitted, now.instant) {
            return Some(End::Close(close));
        }
        let Message::Text(text) = message else {
            self.refuse(MessageError::new(
                "unsupported_frame",
                "binary frames are not supported; send JSON text frames",
            ));
            return None;
        };
        match parse_client_message(text.as_str(), now.unix_ms) {
            Ok(ClientMessage::Location(fix)) => {
                if self
                    .gateway
                    .users()
                    .take_location(self.user, now.instant.into_std())
                {
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
        None
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
    async fn on_location(&mut self, fix: Fix, now: Now) {
        if let Err(implausible) =
            self.gateway
                .users()
                .accept_move(self.user, fix, now.instant.into_std())
        {
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
            self.reevaluate();
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
        if self.sharing.effective(self.clock.now().unix_ms) {
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
        let now_ms = self.clock.now().unix_ms;
        let visible = self.friends.visible(now_ms);
        if let Err(err) = self.load_known(&visible).await {
            tracing::debug!(user = self.user, error = %err, "snapshot without the cache");
            self.refuse(MessageError::new(
                "unavailable",
                "friends' locations are unavailable right now; they will follow when they are",
            ));
            return;
        }
        let snapshot = self.friends.snapshot(me, now_ms);
        self.snapshot_sent = true;
        self.outbox.push(snapshot);
    }

    /// Fills the friend table with the cached locations of `friends`.
    async fn load_known(&mut self, friends: &[u64]) -> Result<(), crate::cache::CacheError> {
        if friends.is_empty() {
            return Ok(());
        }
        let read_at = self.clock.now();
        let cached = self.gateway.cache().get_many(friends).await?;
        let now = self.clock.now();
        for (&friend, fix) in friends.iter().zip(cached) {
            if let Some(fix) = fix {
                self.friends
                    .remember_cached(friend, fix, now.instant, read_at.unix_ms);
            }
        }
        Ok(())
    }

    /// After the client moved or what friends grant changed: see
    /// [`Friends::reevaluate`], which runs only while the node can vouch for grants.
    fn reevaluate(&mut self) {
        let Some(fix) = self.last_fix else { return };
        if !self.is_fresh() {
            return;
        }
        let now_ms = self.clock.now().unix_ms;
        self.friends
            .reevaluate(fix.position, now_ms, &mut self.outbox);
    }

    /// Friends' events, and changes to friendships and sharing marked by the audience
    /// watcher (applied first: an event is judged by the newest grant).
    async fn on_mailbox(&mut self, woken: Now) {
        let pending = self.mailbox.take();
        if pending.reload {
            self.own_reload = true;
        }
        for friend in pending.recheck {
            self.friends.mark(friend);
        }
        // The wake's reading of the clocks serves unless a re-read of the store was awaited.
        let now = if self.own_reload || self.friends.marked_count() > 0 {
            self.apply_audience().await;
            self.clock.now()
        } else {
            woken
        };
        let fresh = self.is_fresh();
        let me = self.last_fix.map(|fix| fix.position);
        let metrics = self.gateway.metrics();
        for (friend, event) in pending.events {
            match event {
                Event::Location(fix) => {
                    match self
                        .friends
                        .on_location(friend, fix, me, now, fresh, &mut self.outbox)
                    {
                        Delivery::Withheld => {
                            metrics.withheld.fetch_add(1, Ordering::Relaxed);
                        }
                        Delivery::Judged { pushed: true } => {
                            let latency_ms = now.unix_ms.saturating_sub(fix.timestamp_ms);
                            if latency_ms >= 0 {
                                metrics.observe_push_latency(latency_ms as f64 / 1e3);
                            }
                        }
                        Delivery::Judged { pushed: false } | Delivery::Ignored => {}
                    }
                }
                Event::Gone => self.friends.on_gone(friend, &mut self.outbox),
                Event::Changed => {}
            }
        }
    }

    /// Re-reads what changed: the user's own friendships and sharing when marked (or when
    /// many friends are), else what each marked friend grants. A failed read leaves the marks
    /// in place (those friends stay withheld, the user's location unpublished) and is retried
    /// shortly.
    async fn apply_audience(&mut self) {
        if self.friends.marked_count() > RECHECK_ONE_BY_ONE {
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
        for friend in self.friends.marked() {
            match self.gateway.friends().grant(self.user, friend).await {
                Ok(Some(grant)) => self.friends.settle(friend, grant),
                Ok(None) => self.remove_friend(friend),
                Err(err) => {
                    failed = true;
                    tracing::debug!(user = self.user, friend, error = %err, "cannot re-read a grant; retrying");
                }
            }
        }
        self.retry_at = failed.then(|| self.clock.now().instant + RETRY_AFTER);
        self.schedule_flip();
        self.reevaluate();
    }

    /// Applies a full read of the user's friendships and sharing.
    async fn apply_full(&mut self, audience: Audience) {
        let current: HashMap<u64, Grant> = audience.friends.into_iter().collect();
        let removed: Vec<u64> = self
            .friends
            .ids()
            .filter(|friend| !current.contains_key(friend))
            .collect();
        for friend in removed {
            self.remove_friend(friend);
        }
        let mut added = Vec::new();
        for (&friend, &grant) in &current {
            if !self.friends.contains(friend) {
                added.push(friend);
            }
            self.add_friend(friend, grant);
        }
        // The read started after every mark taken so far: they are all settled.
        self.friends.settle_all();
        let now_ms = self.clock.now().unix_ms;
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
        let write = async {
            for message in messages {
                socket.feed(Message::Text(message.to_json().into())).await?;
            }
            if let Some(extra) = extra {
                socket.feed(extra).await?;
            }
            socket.flush().await
        };
        let written = tokio::time::timeout(self.gateway.config().send_timeout, write).await;
        close::write_outcome(written)?;
        self.gateway
            .metrics()
            .pushes
            .fetch_add(pushes as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Undoes the session's subscriptions; if it was the user's last session here, tells
    /// friends the user is gone.
    async fn finish(&mut self) {
        self.gateway.users().unregister(
            self.user,
            self.mailbox.session(),
            self.clock.now().instant.into_std(),
        );
        for friend in self.friends.ids() {
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

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;

//! Who may see what: a session's friends, what each grants the user, and what the client is
//! shown of each.
//!
//! Pure: every method takes the time as an argument and appends the messages to send to an
//! outbox; nothing here reads a clock, a store or a socket, so the rules are tested without
//! any of them (see the tests below). The transport ([`super`]) subscribes and unsubscribes
//! the topics these methods report, reads the cache and feeds the results back in.

use crate::approximate;
use crate::clock::Now;
use crate::friends::{Grant, Precision, Sharing};
use crate::protocol::{Fix, FriendView, ServerMessage};
use geo_index::LatLng;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// The radius friends are shown within, and the margin past it before they are hidden again.
#[derive(Clone, Copy, Debug)]
pub(super) struct Edge {
    /// Friends enter at this distance, metres.
    pub(super) radius_m: f64,
    /// ...and leave only past radius + hysteresis, so one standing on the edge does not flicker.
    pub(super) hysteresis_m: f64,
}

impl Edge {
    /// Whether a friend at `distance_m` is (still) shown: enter at the radius, leave only past
    /// radius + hysteresis.
    ///
    /// ```text
    /// shown  distance            result
    /// no     <= radius           yes
    /// yes    <= radius + hyst.   yes
    /// ```
    fn within(self, shown: bool, distance_m: f64) -> bool {
        if shown {
            distance_m <= self.radius_m + self.hysteresis_m
        } else {
            distance_m <= self.radius_m
        }
    }
}

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

/// Where a viewer sees a friend: their position, or the centre of a cell.
#[derive(Clone, Copy, Debug)]
struct Apparent {
    position: LatLng,
    cell: Option<h3o::CellIndex>,
    accuracy_m: Option<f64>,
}

/// What to tell the client about one friend after judging it.
#[derive(Clone, Copy, Debug)]
enum Verdict {
    /// Nothing new for the client.
    Unchanged,
    /// Show the friend there.
    Show { seen: Apparent, distance_m: f64 },
    /// The friend was shown and no longer is.
    Gone,
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

    /// The one rule for what the client is shown of this friend, from `me`, when the friend
    /// may be seen with `precision` (`Hidden` when not at all): the hysteresis at the edge,
    /// the approximate cell (sticky, see [`approximate::next_cell`]), and what is news. When
    /// `moved` (the friend's fix is new) an exact viewer hears every move; otherwise only a
    /// change of what is shown (entering, leaving, precision, cell) is news. An approximate
    /// viewer hears only of a change of cell either way. Records what the client is now shown.
    fn judge(&mut self, precision: Precision, me: LatLng, edge: Edge, moved: bool) -> Verdict {
        if precision == Precision::Hidden {
            let was_shown = self.shown;
            self.shown = false;
            self.approximately = None;
            return if was_shown {
                Verdict::Gone
            } else {
                Verdict::Unchanged
            };
        }
        let same_precision = self.shown && self.precision == precision;
        if moved
            && same_precision
            && precision == Precision::Approximate
            && self.cell() == Some(approximate::cell_of(self.fix.position))
        {
            // Moving inside the cell the viewer is shown sends nothing: settle it with one
            // cell lookup, before any centre or boundary is computed.
            return Verdict::Unchanged;
        }
        let seen = apparent(precision, self.fix, self.carried(precision));
        let distance_m = me.distance_m(seen.position);
        let show = edge.within(self.shown, distance_m);
        let news = !same_precision
            || self.cell() != seen.cell
            || (moved && precision != Precision::Approximate);
        let verdict = match (show, self.shown) {
            (true, _) if news => Verdict::Show { seen, distance_m },
            (false, true) => Verdict::Gone,
            _ => Verdict::Unchanged,
        };
        self.shown = show;
        self.precision = precision;
        self.approximately = seen.cell.and(Some(seen)).filter(|_| show);
        verdict
    }
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

/// What became of a friend's location event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Not news: from a stranger, a fix already held or an older one, or nothing to judge
    /// it from (the client has not sent its own location yet).
    Ignored,
    /// Held back: the friend may not be seen now (see [`Friends::may_see`]).
    Withheld,
    /// Judged: `pushed` when it was sent to the client as `friend_location`.
    Judged {
        /// Whether a `friend_location` was sent.
        pushed: bool,
    },
}

/// A session's friends: what each grants the user, which are being re-checked, and what the
/// client knows and is shown of each.
#[derive(Debug)]
pub(super) struct Friends {
    /// The session's user (never their own friend).
    user: u64,
    edge: Edge,
    /// How long a friend's location is kept after its last update.
    ttl: Duration,
    /// Friends, each with what they grant this user.
    grants: HashMap<u64, Grant>,
    /// Friends whose grant changed and is being re-read: none of their locations is shown
    /// until it is.
    uncertain: HashSet<u64>,
    /// Friends' last locations (bounded by the friend count).
    known: HashMap<u64, Known>,
    /// The earliest `expires` in `known`.
    next_expiry: Option<Instant>,
}

impl Friends {
    /// No friends yet.
    pub(super) fn new(user: u64, edge: Edge, ttl: Duration) -> Self {
        Self {
            user,
            edge,
            ttl,
            grants: HashMap::new(),
            uncertain: HashSet::new(),
            known: HashMap::new(),
            next_expiry: None,
        }
    }

    /// How many friends.
    pub(super) fn len(&self) -> usize {
        self.grants.len()
    }

    /// Whether `friend` is a friend.
    pub(super) fn contains(&self, friend: u64) -> bool {
        self.grants.contains_key(&friend)
    }

    /// Every friend.
    pub(super) fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.grants.keys().copied()
    }

    /// Adds or updates a friend and what they grant; `true` when they are new (the caller
    /// subscribes to their location). The user is never their own friend.
    pub(super) fn add(&mut self, friend: u64, grant: Grant) -> bool {
        friend != self.user && self.grants.insert(friend, grant).is_none()
    }

    /// Removes a friend, telling the client they are gone if shown; `true` when they were a
    /// friend (the caller unsubscribes from their location).
    pub(super) fn remove(&mut self, friend: u64, outbox: &mut Vec<ServerMessage>) -> bool {
        self.uncertain.remove(&friend);
        if self.grants.remove(&friend).is_none() {
            return false;
        }
        if self.known.remove(&friend).is_some_and(|k| k.shown) {
            outbox.push(ServerMessage::FriendGone { user_id: friend });
        }
        true
    }

    /// Marks a friend's grant as changed: withheld until [`Friends::settle`] or
    /// [`Friends::settle_all`]. Strangers are ignored.
    pub(super) fn mark(&mut self, friend: u64) {
        if self.grants.contains_key(&friend) {
            self.uncertain.insert(friend);
        }
    }

    /// How many friends are being re-checked.
    pub(super) fn marked_count(&self) -> usize {
        self.uncertain.len()
    }

    /// The friends being re-checked.
    pub(super) fn marked(&self) -> Vec<u64> {
        self.uncertain.iter().copied().collect()
    }

    /// A re-read grant: the friend is shown by it again.
    pub(super) fn settle(&mut self, friend: u64, grant: Grant) {
        self.uncertain.remove(&friend);
        self.grants.insert(friend, grant);
    }

    /// A full read of the friendships settled every mark.
    pub(super) fn settle_all(&mut self) {
        self.uncertain.clear();
    }

    /// The one rule for showing a friend's location: they are a friend whose grant is
    /// settled (not being re-read) and lets this user see them at `now_ms`, and the node has
    /// read the audience log recently enough (`fresh`).
    pub(super) fn may_see(&self, friend: u64, now_ms: i64, fresh: bool) -> bool {
        visible_precision(&self.grants, &self.uncertain, friend, now_ms, fresh) != Precision::Hidden
    }

    /// The friends the client may see now, whose cached locations a snapshot needs.
    pub(super) fn visible(&self, now_ms: i64) -> Vec<u64> {
        self.grants
            .keys()
            .copied()
            .filter(|&friend| self.may_see(friend, now_ms, true))
            .collect()
    }

    /// The next instant (Unix ms, after `now_ms`) at which the user's own sharing (`own`) or
    /// what a friend grants flips by time alone, as a wait from now.
    pub(super) fn next_flip(&self, own: &Sharing, now_ms: i64) -> Option<Duration> {
        let ahead = own
            .until_ms
            .into_iter()
            .chain(self.grants.values().flat_map(Grant::flips))
            .filter(|&until| until > now_ms)
            .min()?;
        Some(Duration::from_millis(u64::try_from(ahead - now_ms).ok()?))
    }

    /// When the next known location expires.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.next_expiry
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

    /// Takes in a friend's location read from the cache at `now` (`now_ms`): it expires when
    /// the cache entry does, a TTL after the fix's own timestamp.
    pub(super) fn remember_cached(&mut self, friend: u64, fix: Fix, now: Instant, now_ms: i64) {
        if !self.grants.contains_key(&friend) {
            return;
        }
        let age = Duration::from_millis(
            u64::try_from(now_ms.saturating_sub(fix.timestamp_ms)).unwrap_or(0),
        );
        let expires = now + self.ttl.saturating_sub(age).max(Duration::from_millis(1));
        self.remember(friend, fix, expires);
    }

    /// The snapshot for a client at `me`: every friend it may see within the radius, nearest
    /// first (ties by id). Friends it may not see are marked not shown.
    pub(super) fn snapshot(&mut self, me: LatLng, now_ms: i64) -> ServerMessage {
        let Friends {
            grants,
            uncertain,
            known,
            edge,
            ..
        } = self;
        let mut shown = Vec::new();
        for (&friend, known) in known.iter_mut() {
            // Nothing is shown before the snapshot: judge each as entering.
            known.shown = false;
            known.approximately = None;
            let precision = visible_precision(grants, uncertain, friend, now_ms, true);
            if let Verdict::Show { seen, distance_m } = known.judge(precision, me, *edge, true) {
                shown.push(view(friend, known.fix, &seen, precision, distance_m));
            }
        }
        shown.sort_by(|a, b| {
            a.distance_m
                .total_cmp(&b.distance_m)
                .then(a.user_id.cmp(&b.user_id))
        });
        ServerMessage::NearbyFriends { friends: shown }
    }

    /// After the client moved to `me` or what friends grant changed: friends entering or
    /// leaving the radius, and shown friends who may no longer be seen. Call only while the
    /// audience log is fresh: a node that cannot vouch for any grant shows nothing new and
    /// hides nothing either (their last position is not new information, and an overloaded
    /// or cut-off node would otherwise make every friend flicker off and on).
    pub(super) fn reevaluate(&mut self, me: LatLng, now_ms: i64, outbox: &mut Vec<ServerMessage>) {
        let Friends {
            grants,
            uncertain,
            known,
            edge,
            ..
        } = self;
        for (&friend, known) in known.iter_mut() {
            let precision = visible_precision(grants, uncertain, friend, now_ms, true);
            match known.judge(precision, me, *edge, false) {
                Verdict::Show { seen, distance_m } => outbox.push(ServerMessage::FriendLocation(
                    view(friend, known.fix, &seen, precision, distance_m),
                )),
                Verdict::Gone => outbox.push(ServerMessage::FriendGone { user_id: friend }),
                Verdict::Unchanged => {}
            }
        }
    }

    /// A friend's new location, received at `now`, for a client at `me` (`None` before its
    /// first location). `fresh`: whether the audience log was read recently.
    pub(super) fn on_location(
        &mut self,
        friend: u64,
        fix: Fix,
        me: Option<LatLng>,
        now: Now,
        fresh: bool,
        outbox: &mut Vec<ServerMessage>,
    ) -> Delivery {
        // Privacy guard: only current friends' events are ever looked at, whatever reached
        // the mailbox before an unfriending was processed.
        if !self.grants.contains_key(&friend) {
            return Delivery::Ignored;
        }
        // A fix this session already holds (the snapshot read it from the cache while the
        // same fix waited in the mailbox; a message delivered twice) or an older one
        // (overtaken on the way) is not news: nothing to push, and the friend's expiry stays
        // what the held fix's age makes it.
        if self
            .known
            .get(&friend)
            .is_some_and(|held| held.fix == fix || fix.timestamp_ms < held.fix.timestamp_ms)
        {
            return Delivery::Ignored;
        }
        let precision =
            visible_precision(&self.grants, &self.uncertain, friend, now.unix_ms, fresh);
        let expires = now.instant + self.ttl;
        let edge = self.edge;
        let known = self.remember(friend, fix, expires);
        let Some(me) = me else {
            return Delivery::Ignored;
        };
        if precision == Precision::Hidden {
            return Delivery::Withheld;
        }
        match known.judge(precision, me, edge, true) {
            Verdict::Show { seen, distance_m } => {
                outbox.push(ServerMessage::FriendLocation(view(
                    friend, fix, &seen, precision, distance_m,
                )));
                Delivery::Judged { pushed: true }
            }
            Verdict::Gone => {
                outbox.push(ServerMessage::FriendGone { user_id: friend });
                Delivery::Judged { pushed: false }
            }
            Verdict::Unchanged => Delivery::Judged { pushed: false },
        }
    }

    /// A friend announced they are gone (disconnected, or hid).
    pub(super) fn on_gone(&mut self, friend: u64, outbox: &mut Vec<ServerMessage>) {
        if !self.grants.contains_key(&friend) {
            return;
        }
        if self.known.remove(&friend).is_some_and(|k| k.shown) {
            outbox.push(ServerMessage::FriendGone { user_id: friend });
        }
    }

    /// Forgets friends silent past the TTL at `now`.
    pub(super) fn expire(&mut self, now: Instant, outbox: &mut Vec<ServerMessage>) {
        let mut next: Option<Instant> = None;
        self.known.retain(|&friend, known| {
            if known.expires <= now {
                if known.shown {
                    outbox.push(ServerMessage::FriendGone { user_id: friend });
                }
                false
            } else {
                next = Some(next.map_or(known.expires, |n| n.min(known.expires)));
                true
            }
        });
        self.next_expiry = next;
    }
}

/// How precisely `friend` may be seen at `now_ms`: `Hidden` unless [`Friends::may_see`]
/// holds, else what their grant says. (A free function so that it can borrow the grants
/// while the known locations are borrowed mutably.)
fn visible_precision(
    grants: &HashMap<u64, Grant>,
    uncertain: &HashSet<u64>,
    friend: u64,
    now_ms: i64,
    fresh: bool,
) -> Precision {
    // (An empty set answers without hashing: the common case on the hot path.)
    if !fresh || (!uncertain.is_empty() && uncertain.contains(&friend)) {
        return Precision::Hidden;
    }
    grants
        .get(&friend)
        .map_or(Precision::Hidden, |grant| grant.precision_at(now_ms))
}

#[cfg(test)]
mod tests {
    //! The rules alone: no socket, no store, no clock — every instant is an argument.

    use super::*;
    use crate::friends::FriendSetting;

    const ALICE: u64 = 1;
    const BOB: u64 = 2;
    const EDGE: Edge = Edge {
        radius_m: 1_000.0,
        hysteresis_m: 100.0,
    };
    const TTL: Duration = Duration::from_secs(600);
    const EARTH_RADIUS_M: f64 = 6_371_008.8;
    /// Unix ms of the tests' "now".
    const T0: i64 = 1_800_000_000_000;

    fn here() -> LatLng {
        LatLng::new(48.8566, 2.3522).unwrap()
    }

    /// The point `metres` due north of `here()`.
    fn north(metres: f64) -> LatLng {
        LatLng::new(48.8566 + (metres / EARTH_RADIUS_M).to_degrees(), 2.3522).unwrap()
    }

    fn fix(position: LatLng, timestamp_ms: i64) -> Fix {
        Fix {
            position,
            timestamp_ms,
        }
    }

    fn at(instant: Instant, unix_ms: i64) -> Now {
        Now { instant, unix_ms }
    }

    fn exact() -> Grant {
        Grant::default()
    }

    fn with_bob(grant: Grant) -> Friends {
        let mut friends = Friends::new(ALICE, EDGE, TTL);
        assert!(friends.add(BOB, grant));
        friends
    }

    /// Feeds Bob's fix at `position` (timestamped `ms`) to a client at `here()`.
    fn bob_at(
        friends: &mut Friends,
        position: LatLng,
        now: Instant,
        ms: i64,
        outbox: &mut Vec<ServerMessage>,
    ) -> Delivery {
        friends.on_location(
            BOB,
            fix(position, ms),
            Some(here()),
            at(now, ms),
            true,
            outbox,
        )
    }

    fn kinds(outbox: &[ServerMessage]) -> Vec<String> {
        outbox
            .iter()
            .map(|m| {
                let json: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
                format!("{} {}", json["type"].as_str().unwrap(), json["user_id"])
            })
            .collect()
    }

    #[test]
    fn a_friend_enters_at_the_radius_and_leaves_past_the_hysteresis() {
        let now = Instant::now();
        let mut friends = with_bob(exact());
        let mut outbox = Vec::new();
        // Outside the radius, not shown yet: nothing.
        bob_at(&mut friends, north(1_050.0), now, T0, &mut outbox);
        assert!(outbox.is_empty());
        // Within: shown.
        let pushed = bob_at(&mut friends, north(990.0), now, T0 + 1, &mut outbox);
        assert_eq!(pushed, Delivery::Judged { pushed: true });
        // Past the radius but within the hysteresis: still shown (moves are pushed).
        bob_at(&mut friends, north(1_090.0), now, T0 + 2, &mut outbox);
        // Past the hysteresis: gone; further out: nothing more.
        bob_at(&mut friends, north(1_110.0), now, T0 + 3, &mut outbox);
        bob_at(&mut friends, north(5_000.0), now, T0 + 4, &mut outbox);
        // Back within the hysteresis only: not shown again.
        bob_at(&mut friends, north(1_050.0), now, T0 + 5, &mut outbox);
        assert_eq!(
            kinds(&outbox),
            ["friend_location 2", "friend_location 2", "friend_gone 2"]
        );
    }

    #[test]
    fn the_same_rule_holds_when_the_viewer_moves() {
        let now = Instant::now();
        let mut friends = with_bob(exact());
        let mut outbox = Vec::new();
        bob_at(&mut friends, here(), now, T0, &mut outbox);
        outbox.clear();
        // Alice walks south: within the hysteresis nothing changes, past it Bob is gone, and
        // he comes back only within the radius.
        for (metres, expected) in [
            (-1_050.0, None),
            (-1_110.0, Some("friend_gone 2")),
            (-1_050.0, None),
            (-900.0, Some("friend_location 2")),
            (-950.0, None),
        ] {
            friends.reevaluate(north(metres), T0, &mut outbox);
            assert_eq!(
                kinds(&outbox).first().map(String::as_str),
                expected,
                "at {metres} m"
            );
            outbox.clear();
        }
    }

    #[test]
    fn a_friend_being_rechecked_or_a_stale_log_withholds_and_strangers_are_ignored() {
        let now = Instant::now();
        let mut friends = with_bob(exact());
        let mut outbox = Vec::new();
        friends.mark(BOB);
        assert_eq!(
            bob_at(&mut friends, here(), now, T0, &mut outbox),
            Delivery::Withheld
        );
        friends.settle(BOB, exact());
        let stale = friends.on_location(
            BOB,
            fix(here(), T0 + 1),
            Some(here()),
            at(now, T0 + 1),
            false,
            &mut outbox,
        );
        assert_eq!(stale, Delivery::Withheld);
        assert!(outbox.is_empty(), "{:?}", kinds(&outbox));
        let stranger = friends.on_location(
            3,
            fix(here(), T0),
            Some(here()),
            at(now, T0),
            true,
            &mut outbox,
        );
        assert_eq!(stranger, Delivery::Ignored);
        // Marking a stranger does not make them a friend.
        friends.mark(3);
        assert_eq!(friends.marked_count(), 0);
        // Settled: the next fix is shown; the same fix again, or an older one, is not news.
        bob_at(&mut friends, here(), now, T0 + 2, &mut outbox);
        assert_eq!(kinds(&outbox), ["friend_location 2"]);
        for ms in [T0 + 2, T0 + 1] {
            assert_eq!(
                bob_at(&mut friends, here(), now, ms, &mut outbox),
                Delivery::Ignored
            );
        }
        assert_eq!(outbox.len(), 1);
        // Before the client sent its own location nothing is judged.
        let blind = friends.on_location(
            BOB,
            fix(here(), T0 + 3),
            None,
            at(now, T0 + 3),
            true,
            &mut outbox,
        );
        assert_eq!(blind, Delivery::Ignored);
    }

    #[test]
    fn an_approximate_viewer_hears_only_of_a_change_of_cell_and_never_the_position() {
        let now = Instant::now();
        let approximate_grant = Grant {
            sharing: Sharing {
                precision: Precision::Approximate,
                ..Sharing::default()
            },
            setting: None,
        };
        let mut friends = Friends::new(
            ALICE,
            Edge {
                radius_m: 50_000.0,
                hysteresis_m: 100.0,
            },
            TTL,
        );
        friends.add(BOB, approximate_grant);
        let mut outbox = Vec::new();
        // Bob walks 3 km north in 30 m steps.
        for step in 0..100 {
            let position = north(30.0 * f64::from(step));
            bob_at(
                &mut friends,
                position,
                now,
                T0 + i64::from(step),
                &mut outbox,
            );
        }
        assert!((2..=6).contains(&outbox.len()), "{:?}", kinds(&outbox));
        for message in &outbox {
            let ServerMessage::FriendLocation(view) = message else {
                panic!("{:?}", kinds(&outbox));
            };
            let shown = LatLng::new(view.latitude, view.longitude).unwrap();
            assert_eq!(approximate::centre(approximate::cell_of(shown)), shown);
            assert_eq!(view.precision, "approximate");
            assert!(view.accuracy_m.is_some());
        }
    }

    #[test]
    fn a_timed_setting_flips_at_its_until() {
        let now = Instant::now();
        // Bob hides from Alice until T0 + 1000.
        let hidden_for_a_while = Grant {
            sharing: Sharing::default(),
            setting: Some(FriendSetting {
                precision: Precision::Hidden,
                until_ms: Some(T0 + 1_000),
            }),
        };
        let mut friends = with_bob(hidden_for_a_while);
        let mut outbox = Vec::new();
        assert_eq!(
            bob_at(&mut friends, here(), now, T0, &mut outbox),
            Delivery::Withheld
        );
        assert_eq!(
            friends.next_flip(&Sharing::default(), T0),
            Some(Duration::from_millis(1_000))
        );
        friends.reevaluate(here(), T0 + 999, &mut outbox);
        assert!(outbox.is_empty(), "{:?}", kinds(&outbox));
        // At `until` the timer's re-evaluation shows him, with no new fix.
        friends.reevaluate(here(), T0 + 1_000, &mut outbox);
        assert_eq!(kinds(&outbox), ["friend_location 2"]);
        assert_eq!(friends.next_flip(&Sharing::default(), T0 + 1_000), None);
        // The user's own timed sharing counts too.
        let own = Sharing {
            until_ms: Some(T0 + 5_000),
            ..Sharing::default()
        };
        assert_eq!(
            friends.next_flip(&own, T0 + 1_000),
            Some(Duration::from_millis(4_000))
        );
    }

    #[test]
    fn silent_friends_expire_after_the_ttl_and_only_shown_ones_are_announced() {
        let now = Instant::now();
        let mut friends = with_bob(exact());
        friends.add(3, exact());
        let mut outbox = Vec::new();
        bob_at(&mut friends, here(), now, T0, &mut outbox);
        // Carol is far away: known, not shown.
        friends.on_location(
            3,
            fix(north(5_000.0), T0),
            Some(here()),
            at(now + Duration::from_secs(1), T0),
            true,
            &mut outbox,
        );
        outbox.clear();
        assert_eq!(friends.next_expiry(), Some(now + TTL));
        friends.expire(now + TTL - Duration::from_millis(1), &mut outbox);
        assert!(outbox.is_empty());
        friends.expire(now + TTL, &mut outbox);
        assert_eq!(kinds(&outbox), ["friend_gone 2"]);
        assert_eq!(
            friends.next_expiry(),
            Some(now + Duration::from_secs(1) + TTL)
        );
        friends.expire(now + Duration::from_secs(1) + TTL, &mut outbox);
        assert_eq!(
            outbox.len(),
            1,
            "Carol was never shown: {:?}",
            kinds(&outbox)
        );
        assert_eq!(friends.next_expiry(), None);
    }

    #[test]
    fn a_snapshot_lists_visible_friends_within_the_radius_nearest_first() {
        let now = Instant::now();
        let mut friends = Friends::new(ALICE, EDGE, TTL);
        for (friend, grant) in [(2, exact()), (3, exact()), (4, exact()), (5, exact())] {
            friends.add(friend, grant);
        }
        friends.mark(5); // being re-checked: left out
        assert_eq!(friends.visible(T0).len(), 3);
        for (friend, metres) in [(2, 800.0), (3, 200.0), (4, 1_050.0), (5, 10.0)] {
            friends.remember_cached(friend, fix(north(metres), T0 - 1_000), now, T0);
        }
        // The cache entry expires a TTL after the fix's timestamp.
        assert_eq!(
            friends.next_expiry(),
            Some(now + TTL - Duration::from_secs(1))
        );
        let ServerMessage::NearbyFriends { friends: shown } = friends.snapshot(here(), T0) else {
            panic!("not a snapshot");
        };
        let ids: Vec<u64> = shown.iter().map(|f| f.user_id).collect();
        assert_eq!(ids, [3, 2]);
        // Removing a shown friend announces them gone; removing a stranger does nothing.
        let mut outbox = Vec::new();
        assert!(friends.remove(3, &mut outbox));
        assert!(!friends.remove(9, &mut outbox));
        assert_eq!(kinds(&outbox), ["friend_gone 3"]);
        // The user is never their own friend.
        assert!(!friends.add(ALICE, exact()));
    }
}

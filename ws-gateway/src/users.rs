//! Per-user limits, shared by all of a user's sessions: how many may be open, how often the
//! user may connect and send a location, and whether a new location is a plausible move from
//! the last one.
//!
//! Every session of a user lives on the user's owner node (upgrades elsewhere are redirected,
//! sessions left behind by a membership change are closed with 4001), so a table per node
//! enforces the limits across the deployment. An entry outlives the user's last session by
//! [`UserLimits::forget_after`], so a reconnect does not reset the rates nor the last position.

use crate::protocol::Fix;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Lock shards of the user table.
const SHARDS: usize = 32;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is a few field updates that cannot leave an entry inconsistent.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A token bucket: `burst` tokens, refilled at `rate_per_s`.
///
/// ```
/// use nearby_ws_gateway::users::Bucket;
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// let mut bucket = Bucket::new(1.0, 2, start);
/// assert!(bucket.take(start) && bucket.take(start));
/// assert!(!bucket.take(start));
/// assert_eq!(bucket.wait(start), Duration::from_secs(1));
/// assert!(bucket.take(start + Duration::from_secs(1)));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    tokens: f64,
    burst: f64,
    rate_per_s: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate_per_s: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            tokens: burst,
            burst,
            rate_per_s,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate_per_s).min(self.burst);
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is available.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 || self.rate_per_s <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / self.rate_per_s)
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}

/// The limits.
///
/// ```
/// let limits = nearby_ws_gateway::users::UserLimits::default();
/// assert_eq!(limits.max_sessions, 5);
/// assert_eq!(limits.max_speed_kmh, 1_200.0);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct UserLimits {
    /// Most sessions one user may have open; a new one beyond it closes the oldest (4002).
    pub max_sessions: usize,
    /// Connection attempts per second per user, sustained.
    pub connect_rate_per_s: f64,
    /// Connection attempts a user may make at once.
    pub connect_burst: u32,
    /// Location messages per second per user (all sessions together), sustained.
    pub location_rate_per_s: f64,
    /// Location messages a user may send at once.
    pub location_burst: u32,
    /// A move farther than this from the last accepted location...
    pub max_jump_m: f64,
    /// ...is refused when it implies a speed above this.
    pub max_speed_kmh: f64,
    /// How long a user's entry is kept after their last session ended.
    pub forget_after: Duration,
}

impl Default for UserLimits {
    fn default() -> Self {
        Self {
            max_sessions: 5,
            connect_rate_per_s: 0.5,
            connect_burst: 10,
            location_rate_per_s: 1.0,
            location_burst: 5,
            max_jump_m: 20_000.0,
            max_speed_kmh: 1_200.0,
            forget_after: Duration::from_secs(600),
        }
    }
}

/// A location refused as implausible: the distance and the speed it implies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Implausible {
    /// Metres from the last accepted location.
    pub distance_m: f64,
    /// Kilometres per hour that would take.
    pub speed_kmh: f64,
}

struct Entry {
    /// Open sessions, oldest first, each with the signal that closes it.
    sessions: VecDeque<(u64, Arc<Notify>)>,
    connects: Bucket,
    locations: Bucket,
    /// The last accepted location and when the server accepted it.
    last_fix: Option<(Fix, Instant)>,
    /// When the last session ended (entries without sessions are forgotten after a while).
    idle_since: Instant,
}

/// The table of users with limits in force on this node.
pub struct Users {
    limits: UserLimits,
    /// Lock shards (by user), so sessions of different users rarely meet on one lock.
    shards: Box<[Mutex<HashMap<u64, Entry>>]>,
}

/// What [`Users::register`] hands a new session.
pub struct Registration {
    /// Notified when a newer session of the same user replaced this one.
    pub replaced: Arc<Notify>,
    /// How many older sessions were told to close.
    pub evicted: usize,
}

impl Users {
    /// An empty table.
    pub fn new(limits: UserLimits) -> Self {
        Self {
            limits,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &UserLimits {
        &self.limits
    }

    fn lock(&self, user: u64) -> MutexGuard<'_, HashMap<u64, Entry>> {
        // Fibonacci hashing spreads consecutive ids over the shards.
        let index = (user.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 59) as usize % self.shards.len();
        lock(&self.shards[index])
    }

    fn entry<'a>(
        &self,
        table: &'a mut HashMap<u64, Entry>,
        user: u64,
        now: Instant,
    ) -> &'a mut Entry {
        let limits = self.limits;
        table.entry(user).or_insert_with(|| Entry {
            sessions: VecDeque::new(),
            connects: Bucket::new(limits.connect_rate_per_s, limits.connect_burst, now),
            locations: Bucket::new(limits.location_rate_per_s, limits.location_burst, now),
            last_fix: None,
            idle_since: now,
        })
    }

    /// Counts a connection attempt; `Err` with how long to wait when over the rate.
    ///
    /// ```
    /// use nearby_ws_gateway::users::{UserLimits, Users};
    /// let users = Users::new(UserLimits { connect_burst: 1, ..UserLimits::default() });
    /// let now = std::time::Instant::now();
    /// assert!(users.try_connect(1, now).is_ok());
    /// assert!(users.try_connect(1, now).is_err());
    /// assert!(users.try_connect(2, now).is_ok());
    /// ```
    pub fn try_connect(&self, user: u64, now: Instant) -> Result<(), Duration> {
        let mut table = self.lock(user);
        let entry = self.entry(&mut table, user, now);
        if entry.connects.take(now) {
            Ok(())
        } else {
            Err(entry.connects.wait(now).max(Duration::from_secs(1)))
        }
    }

    /// Adds a session; past the limit, the oldest sessions are told to close.
    ///
    /// ```
    /// use nearby_ws_gateway::users::{UserLimits, Users};
    /// let users = Users::new(UserLimits { max_sessions: 1, ..UserLimits::default() });
    /// let now = std::time::Instant::now();
    /// let first = users.register(1, 10, now);
    /// let second = users.register(1, 11, now);
    /// assert_eq!((first.evicted, second.evicted), (0, 1));
    /// assert_eq!(users.sessions(1), 1);
    /// ```
    pub fn register(&self, user: u64, session: u64, now: Instant) -> Registration {
        let replaced = Arc::new(Notify::new());
        let max = self.limits.max_sessions.max(1);
        let mut table = self.lock(user);
        let entry = self.entry(&mut table, user, now);
        entry.sessions.push_back((session, Arc::clone(&replaced)));
        let mut evicted = 0;
        while entry.sessions.len() > max {
            if let Some((_, close)) = entry.sessions.pop_front() {
                // A stored permit: the session sees it even if it is not waiting right now.
                close.notify_one();
                evicted += 1;
            }
        }
        Registration { replaced, evicted }
    }

    /// Removes a session (a no-op if it was already replaced).
    pub fn unregister(&self, user: u64, session: u64, now: Instant) {
        let mut table = self.lock(user);
        if let Some(entry) = table.get_mut(&user) {
            entry.sessions.retain(|(id, _)| *id != session);
            if entry.sessions.is_empty() {
                entry.idle_since = now;
            }
        }
    }

    /// Open sessions of `user` on this node.
    pub fn sessions(&self, user: u64) -> usize {
        self.lock(user)
            .get(&user)
            .map_or(0, |entry| entry.sessions.len())
    }

    /// Takes a location token of `user`; false when over the rate.
    pub fn take_location(&self, user: u64, now: Instant) -> bool {
        let mut table = self.lock(user);
        self.entry(&mut table, user, now).locations.take(now)
    }

    /// Accepts `fix` as the user's new position unless it is an implausible move from the
    /// last accepted one: farther than [`UserLimits::max_jump_m`] at more than
    /// [`UserLimits::max_speed_kmh`], timed by the server's clock (a client cannot stretch
    /// the interval with its own timestamps). After a long enough gap (a flight, a reconnect)
    /// any distance is plausible.
    ///
    /// ```
    /// use geo_index::LatLng;
    /// use nearby_ws_gateway::{protocol::Fix, users::{UserLimits, Users}};
    /// use std::time::{Duration, Instant};
    /// let users = Users::new(UserLimits::default());
    /// let now = Instant::now();
    /// let paris = Fix { position: LatLng::new(48.8566, 2.3522)?, timestamp_ms: 0 };
    /// let lyon = Fix { position: LatLng::new(45.764, 4.8357)?, timestamp_ms: 0 };
    /// assert!(users.accept_move(1, paris, now).is_ok());
    /// let refused = users.accept_move(1, lyon, now + Duration::from_secs(2)).unwrap_err();
    /// assert!(refused.speed_kmh > 1_200.0);
    /// // Two hours later (a train), Lyon is plausible.
    /// assert!(users.accept_move(1, lyon, now + Duration::from_secs(7_200)).is_ok());
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Implausible`]: the previous position stands.
    pub fn accept_move(&self, user: u64, fix: Fix, now: Instant) -> Result<(), Implausible> {
        let mut table = self.lock(user);
        let limits = self.limits;
        let entry = self.entry(&mut table, user, now);
        if let Some((last, at)) = entry.last_fix {
            let distance_m = last.position.distance_m(fix.position);
            if distance_m > limits.max_jump_m {
                // At least a second, so a burst of messages is not an infinite speed.
                let hours = now.saturating_duration_since(at).as_secs_f64().max(1.0) / 3_600.0;
                let speed_kmh = distance_m / 1_000.0 / hours;
                if speed_kmh > limits.max_speed_kmh {
                    return Err(Implausible {
                        distance_m,
                        speed_kmh,
                    });
                }
            }
        }
        entry.last_fix = Some((fix, now));
        Ok(())
    }

    /// Forgets users with no session for longer than [`UserLimits::forget_after`] whose
    /// connection budget is whole again; returns how many.
    pub fn prune(&self, now: Instant) -> usize {
        let forget_after = self.limits.forget_after;
        let mut forgotten = 0;
        for shard in &self.shards {
            let mut table = lock(shard);
            let before = table.len();
            table.retain(|_, entry| {
                !(entry.sessions.is_empty()
                    && now.saturating_duration_since(entry.idle_since) >= forget_after
                    && entry.connects.is_full(now))
            });
            forgotten += before - table.len();
        }
        forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_index::LatLng;

    fn fix(lat: f64, lng: f64) -> Fix {
        Fix {
            position: LatLng::new(lat, lng).unwrap(),
            timestamp_ms: 0,
        }
    }

    #[test]
    fn the_newest_sessions_win_and_the_oldest_are_told() {
        let users = Users::new(UserLimits::default());
        let now = Instant::now();
        let registrations: Vec<Registration> = (0..7)
            .map(|session| users.register(9, session, now))
            .collect();
        assert_eq!(users.sessions(9), 5);
        let evicted: usize = registrations.iter().map(|r| r.evicted).sum();
        assert_eq!(evicted, 2);
        // Sessions 0 and 1 hold a permit; a replaced session unregistering changes nothing.
        users.unregister(9, 0, now);
        assert_eq!(users.sessions(9), 5);
        users.unregister(9, 6, now);
        assert_eq!(users.sessions(9), 4);
    }

    #[test]
    fn the_location_rate_is_per_user_not_per_session() {
        let users = Users::new(UserLimits::default());
        let now = Instant::now();
        let accepted = (0..10).filter(|_| users.take_location(4, now)).count();
        assert_eq!(accepted, 5, "the burst, whichever session sent them");
        assert!(users.take_location(4, now + Duration::from_secs(1)));
    }

    #[test]
    fn short_jumps_are_always_plausible_and_long_ones_need_time() {
        let users = Users::new(UserLimits::default());
        let now = Instant::now();
        assert!(users.accept_move(1, fix(0.0, 0.0), now).is_ok());
        // 15 km in a second: a GPS glitch or a correction, under the 20 km floor.
        assert!(
            users
                .accept_move(1, fix(0.135, 0.0), now + Duration::from_secs(1))
                .is_ok()
        );
        // 390 km in 1.2 s: refused, and the previous position stands.
        let refused = users
            .accept_move(1, fix(3.6, 0.0), now + Duration::from_millis(2_200))
            .unwrap_err();
        assert!(refused.distance_m > 380_000.0, "{refused:?}");
        // The same 390 km from the last accepted point one hour later: 350-ish km/h, a fast
        // train.
        assert!(
            users
                .accept_move(1, fix(3.6, 0.0), now + Duration::from_secs(3_601))
                .is_ok()
        );
    }

    #[test]
    fn idle_users_are_forgotten_once_their_budgets_are_whole() {
        let users = Users::new(UserLimits::default());
        let now = Instant::now();
        users.register(1, 1, now);
        users.try_connect(2, now).unwrap();
        assert_eq!(users.prune(now + Duration::from_secs(3_600)), 1);
        assert_eq!(users.sessions(1), 1);
    }
}

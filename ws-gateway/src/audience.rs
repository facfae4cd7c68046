//! Revocation that holds when a message is lost: every node follows the audience log.
//!
//! A change to who may see a user (unfriend, ghost mode, a new friend) is committed together
//! with an entry in the friend store's audience log (see [`crate::friends`]). The pub/sub
//! `Changed` message that announces it is only a hint that makes it fast: it can be lost (a
//! Redis restart, subscriber connections down, a full push queue). This watcher is what makes
//! it certain: every node reads the log after its cursor every [`AudienceConfig::poll_interval`]
//! (and at once on a hint), and for each entry marks the local sessions concerned — the user's
//! own sessions reload their friends and sharing, and sessions that watch the user (friends
//! subscribed to the user's location) re-read what the user grants them before they show
//! another of the user's locations.
//!
//! **Fail closed.** A read of the log that *started* at instant `t` saw every change committed
//! before `t`. The watcher records the start of its last successful read; while that is older
//! than [`AudienceConfig::max_staleness`], sessions forward no friend's location at all (the
//! store is unreachable, so a revocation may be waiting unseen). So after a change commits,
//! either the next read sees it (within a poll interval) or every session on the node stops
//! forwarding within `max_staleness`: no location reaches a revoked viewer more than about a
//! second later, whatever was lost.
//!
//! **Sessions starting.** A session notes [`AudienceWatcher::cursor`] *before* loading its
//! friends, subscribes, then asks [`AudienceWatcher::since`] for the changes after that cursor,
//! so a change that lands between its load and its subscription is not missed.

use crate::friends::FriendStore;
use crate::hub::Hub;
use crate::metrics::GatewayMetrics;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

// Tokio's clock (the system's monotonic clock outside paused tests): sessions judge freshness
// on the same clock as their timers, so a paused test moves both together.
use tokio::time::Instant;

/// How the watcher follows the log.
///
/// ```
/// let config = nearby_ws_gateway::audience::AudienceConfig::default();
/// assert_eq!(config.poll_interval.as_millis(), 250);
/// assert_eq!(config.max_staleness.as_millis(), 1_000);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct AudienceConfig {
    /// How often the log is read without a hint.
    pub poll_interval: Duration,
    /// Sessions forward no location while the last successful read of the log started longer
    /// ago than this.
    pub max_staleness: Duration,
    /// Log entries older than this are trimmed (by any node, every minute).
    pub retention: Duration,
}

impl Default for AudienceConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(250),
            max_staleness: Duration::from_secs(1),
            retention: Duration::from_secs(3_600),
        }
    }
}

/// Entries of the log the watcher keeps for sessions that are starting.
const TAIL_ENTRIES: usize = 65_536;

struct Tail {
    /// The last sequence number read (`None` until the first read of the head succeeds).
    cursor: Option<i64>,
    /// Recent entries, ascending.
    entries: VecDeque<(i64, u64)>,
    /// `since(c)` can answer for every `c >= floor`.
    floor: i64,
}

/// Follows the audience log; one per gateway. See the module docs.
pub struct AudienceWatcher {
    config: AudienceConfig,
    tail: Mutex<Tail>,
    epoch: Instant,
    /// Milliseconds after `epoch` at which the last successful read started, plus one (0:
    /// never).
    fresh_ms: AtomicU64,
}

impl AudienceWatcher {
    /// A watcher that has not read the log yet (so it is not fresh).
    ///
    /// ```
    /// use nearby_ws_gateway::audience::{AudienceConfig, AudienceWatcher};
    /// let watcher = AudienceWatcher::new(AudienceConfig::default());
    /// assert!(!watcher.is_fresh(tokio::time::Instant::now()));
    /// assert_eq!(watcher.cursor(), None);
    /// ```
    pub fn new(config: AudienceConfig) -> Self {
        Self {
            config,
            tail: Mutex::new(Tail {
                cursor: None,
                entries: VecDeque::new(),
                floor: i64::MAX,
            }),
            epoch: Instant::now(),
            fresh_ms: AtomicU64::new(0),
        }
    }

    /// The settings.
    pub fn config(&self) -> &AudienceConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Tail> {
        self.tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The last sequence number read, if the log was read yet.
    pub fn cursor(&self) -> Option<i64> {
        self.lock().cursor
    }

    /// The users whose audience changed after `cursor` (as far as read so far), or `None`
    /// when the watcher no longer holds every entry since then (the caller must then assume
    /// anything changed).
    ///
    /// ```
    /// use nearby_ws_gateway::audience::{AudienceConfig, AudienceWatcher};
    /// let watcher = AudienceWatcher::new(AudienceConfig::default());
    /// watcher.start_at(10);
    /// watcher.record(&[(11, 7), (12, 8)]);
    /// assert_eq!(watcher.since(Some(11)), Some(vec![8]));
    /// assert_eq!(watcher.since(Some(10)).map(|users| users.len()), Some(2));
    /// assert_eq!(watcher.since(Some(9)), None);
    /// assert_eq!(watcher.since(None), None);
    /// ```
    pub fn since(&self, cursor: Option<i64>) -> Option<Vec<u64>> {
        let cursor = cursor?;
        let tail = self.lock();
        if cursor < tail.floor {
            return None;
        }
        let start = tail.entries.partition_point(|&(seq, _)| seq <= cursor);
        let users: HashSet<u64> = tail.entries.iter().skip(start).map(|&(_, u)| u).collect();
        Some(users.into_iter().collect())
    }

    /// Sets the cursor at the log's head, read when nothing is held yet.
    pub fn start_at(&self, head: i64) {
        let mut tail = self.lock();
        if tail.cursor.is_none() {
            tail.cursor = Some(head);
            tail.floor = head;
        }
    }

    /// Keeps entries just read (ascending) and advances the cursor.
    pub fn record(&self, entries: &[(i64, u64)]) {
        let mut tail = self.lock();
        for &(seq, user) in entries {
            tail.entries.push_back((seq, user));
            tail.cursor = Some(tail.cursor.map_or(seq, |cursor| cursor.max(seq)));
        }
        while tail.entries.len() > TAIL_ENTRIES {
            if let Some((seq, _)) = tail.entries.pop_front() {
                tail.floor = seq;
            }
        }
    }

    /// Forgets every kept entry: sessions that start from an older cursor reload everything.
    fn lose_tail(&self) {
        let mut tail = self.lock();
        tail.entries.clear();
        tail.floor = tail.cursor.unwrap_or(i64::MAX);
    }

    /// Records that a read of the whole log that started at `started` succeeded.
    pub fn mark_fresh(&self, started: Instant) {
        let ms = u64::try_from(started.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX - 1);
        self.fresh_ms.fetch_max(ms + 1, Ordering::AcqRel);
    }

    /// Whether every change committed more than [`AudienceConfig::max_staleness`] before `now`
    /// has been seen: sessions forward locations only then.
    pub fn is_fresh(&self, now: Instant) -> bool {
        match self.fresh_ms.load(Ordering::Acquire) {
            0 => false,
            ms => {
                let fresh_at = self.epoch + Duration::from_millis(ms - 1);
                now.saturating_duration_since(fresh_at) <= self.config.max_staleness
            }
        }
    }

    /// Reads the log until it is exhausted, marking the sessions concerned.
    ///
    /// # Errors
    /// The store could not be read (the watcher is then not fresh).
    pub async fn read_log(&self, store: &FriendStore, hub: &Hub) -> Result<(), String> {
        let started = Instant::now();
        let mut cursor = match self.cursor() {
            Some(cursor) => cursor,
            None => {
                let head = store.log_head().await.map_err(|err| err.to_string())?;
                self.start_at(head);
                head
            }
        };
        loop {
            let page = store
                .log_after(cursor)
                .await
                .map_err(|err| err.to_string())?;
            if !page.complete {
                // Entries this node never read were trimmed: anything may have changed.
                tracing::warn!(
                    cursor,
                    "audience log trimmed past this node; reloading every session"
                );
                self.lose_tail();
                hub.reload_all();
            }
            // Keep before dispatching: a session that subscribes after the dispatch finds the
            // entry in `since` (see the module docs).
            self.record(&page.entries);
            for &(_, user) in &page.entries {
                hub.audience_changed(user);
            }
            match page.entries.last() {
                Some(&(last, _)) if page.entries.len() >= crate::friends::LOG_PAGE => {
                    cursor = last;
                }
                _ => break,
            }
        }
        self.mark_fresh(started);
        Ok(())
    }

    /// Follows the log until `hub` is dropped: reads every poll interval and at once when the
    /// hub hears a `Changed` hint; trims old entries every minute.
    pub async fn run(
        self: Arc<Self>,
        store: FriendStore,
        hub: std::sync::Weak<Hub>,
        metrics: Arc<GatewayMetrics>,
    ) {
        let mut last_trim = Instant::now();
        let mut failures = 0u32;
        loop {
            let Some(hub) = hub.upgrade() else { return };
            match self.read_log(&store, &hub).await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(failures, "audience log readable again");
                    }
                    failures = 0;
                    metrics.audience_stale.store(0, Ordering::Relaxed);
                }
                Err(err) => {
                    failures = failures.saturating_add(1);
                    metrics.audience_errors.fetch_add(1, Ordering::Relaxed);
                    if !self.is_fresh(Instant::now()) {
                        metrics.audience_stale.store(1, Ordering::Relaxed);
                    }
                    // One line per outage, then one every ~10 s of it.
                    if failures == 1 || failures.is_multiple_of(40) {
                        tracing::warn!(error = %err, failures, "cannot read the audience log; sessions withhold locations until it is read");
                    }
                }
            }
            if last_trim.elapsed() >= Duration::from_secs(60) {
                last_trim = Instant::now();
                if let Err(err) = store.trim_log(self.config.retention).await {
                    tracing::debug!(error = %err, "cannot trim the audience log");
                }
            }
            let hint = hub.control_hint();
            // A failed read is retried sooner than the poll interval: the node forwards
            // nothing until it succeeds.
            let wait = if failures > 0 {
                (self.config.poll_interval / 2).max(Duration::from_millis(50))
            } else {
                self.config.poll_interval
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = hint.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_lapses_after_the_bound() {
        let watcher = AudienceWatcher::new(AudienceConfig {
            max_staleness: Duration::from_millis(500),
            ..AudienceConfig::default()
        });
        let start = Instant::now();
        watcher.mark_fresh(start);
        assert!(watcher.is_fresh(start));
        assert!(watcher.is_fresh(start + Duration::from_millis(400)));
        assert!(!watcher.is_fresh(start + Duration::from_millis(600)));
        // An older read never moves freshness back.
        watcher.mark_fresh(start - Duration::from_millis(10));
        assert!(watcher.is_fresh(start + Duration::from_millis(450)));
    }

    #[test]
    fn the_tail_is_bounded_and_says_when_it_cannot_answer() {
        let watcher = AudienceWatcher::new(AudienceConfig::default());
        watcher.start_at(0);
        let entries: Vec<(i64, u64)> = (1..=TAIL_ENTRIES as i64 + 10)
            .map(|seq| (seq, seq as u64 % 3))
            .collect();
        watcher.record(&entries);
        assert_eq!(watcher.cursor(), Some(TAIL_ENTRIES as i64 + 10));
        assert_eq!(watcher.since(Some(0)), None);
        assert_eq!(watcher.since(Some(10)).map(|users| users.len()), Some(3));
        watcher.lose_tail();
        assert_eq!(watcher.since(Some(10)), None);
        assert_eq!(watcher.since(watcher.cursor()), Some(vec![]));
    }

    #[tokio::test]
    async fn changes_reach_the_sessions_that_watch_or_own_the_user() {
        use crate::event::Topic;
        let store = FriendStore::memory();
        store.seed(&[(1, 2)]).await.unwrap();
        let hub = Arc::new(Hub::default());
        let watcher = AudienceWatcher::new(AudienceConfig::default());
        watcher.read_log(&store, &hub).await.unwrap();
        assert!(watcher.is_fresh(Instant::now()));
        let own = hub.mailbox();
        let viewer = hub.mailbox();
        hub.subscribe(Topic::Control(2), &own);
        hub.subscribe(Topic::Location(2), &viewer);
        store
            .set_sharing(
                2,
                crate::friends::Sharing {
                    enabled: false,
                    ..crate::friends::Sharing::default()
                },
            )
            .await
            .unwrap();
        watcher.read_log(&store, &hub).await.unwrap();
        assert!(own.take().reload);
        assert_eq!(
            viewer.take().recheck.into_iter().collect::<Vec<_>>(),
            vec![2]
        );
    }
}

//! What every connection task shares: the run's arguments, counters, histograms, tallies,
//! and the messages read from the server.

use crate::RunArgs;
use crate::circles::{Clock, Offset};
use nearby_bench::latency;
use nearby_services::auth::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::http;

/// Distinct error codes and close codes kept; a misbehaving server cannot grow the maps.
pub(crate) const MAX_CODES: usize = 32;
/// Per user, the last few positions sent, which an approximate push must not carry.
pub(crate) const RECENT: usize = 8;
/// Two coordinates closer than this (degrees, ~0.1 m) are the same position.
pub(crate) const SAME_POSITION_DEG: f64 = 1e-6;

/// A bounded tally of codes (error codes, close codes).
#[derive(Default)]
pub(crate) struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    pub(crate) fn add(&self, code: &str) {
        let mut map = match self.0.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(count) = map.get_mut(code) {
            *count += 1;
        } else if map.len() < MAX_CODES {
            map.insert(code.to_owned(), 1);
        } else {
            *map.entry("(other)".to_owned()).or_insert(0) += 1;
        }
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<String, u64> {
        match self.0.lock() {
            Ok(map) => map.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

// --- run --------------------------------------------------------------------------------

/// Where the run is; every connection task watches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Connections are being opened.
    Connecting,
    /// Updates are sent (unless idle).
    Running,
    /// No more updates; pushes still in flight are read.
    Draining,
    /// Close everything.
    Stop,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) attempted: AtomicU64,
    pub(crate) held: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Tasks that finished connecting, successfully or not.
    pub(crate) settled: AtomicU64,
    pub(crate) snapshots: AtomicU64,
    pub(crate) snapshot_friends: AtomicU64,
    /// Snapshot entries by the precision they announce.
    pub(crate) snapshot_exact: AtomicU64,
    pub(crate) snapshot_approximate: AtomicU64,
    pub(crate) updates_sent: AtomicU64,
    /// Of `updates_sent`, those of approximate sharers.
    pub(crate) approximate_updates_sent: AtomicU64,
    /// Pushes expected from exact sharers' updates: one per connected friend.
    pub(crate) expected: AtomicU64,
    /// Exact pushes (`"precision":"exact"`) received for updates of the timed phase.
    pub(crate) deliveries: AtomicU64,
    /// Approximate sharers' updates times their connected friends: the most approximate
    /// pushes there could be (one arrives only when the sender's cell changes).
    pub(crate) approximate_pair_updates: AtomicU64,
    /// Approximate pushes received for updates of the timed phase.
    pub(crate) approximate_deliveries: AtomicU64,
    /// Pushes or snapshot entries that break what the sender shares: must stay 0.
    pub(crate) violations: AtomicU64,
    /// `friend_location` for a location sent before the timed phase (first locations).
    pub(crate) early_deliveries: AtomicU64,
    /// Deliveries whose send instant was overwritten by a newer update: timed in ms.
    pub(crate) coarse: AtomicU64,
    /// `friend_location` (or snapshot entry) about someone outside the receiver's circle:
    /// must stay 0.
    pub(crate) strangers: AtomicU64,
    pub(crate) gone: AtomicU64,
    /// `friend_gone` once the run is over: friends whose connections are being closed.
    pub(crate) gone_at_close: AtomicU64,
    /// Connections that ended while they should have been held.
    pub(crate) dropped: AtomicU64,
    /// Update ticks skipped because the socket could not take the message.
    pub(crate) send_errors: AtomicU64,
}

pub(crate) struct Shared {
    pub(crate) args: RunArgs,
    pub(crate) clock: Clock,
    pub(crate) counters: Counters,
    pub(crate) latency: latency::Shared,
    /// The same latencies by minute of the timed phase: is p99 stable over a long run?
    pub(crate) latency_by_minute: Vec<latency::Shared>,
    pub(crate) errors: Tally,
    pub(crate) closes: Tally,
    pub(crate) failures: Tally,
    /// Per circle: connections held, so an update expects a push only to friends that are
    /// actually connected (a failed connection is reported as such, not as lost pushes).
    pub(crate) held_in_circle: Vec<AtomicU64>,
    /// Per user (index user - 1): µs since start of their latest update, 0 when none yet.
    pub(crate) sent_at: Vec<AtomicU64>,
    /// Per user (index user - 1): the positions they sent last, which no approximate push
    /// about them may carry.
    pub(crate) recent: Vec<Mutex<Recent>>,
    /// Update-to-push latency of the approximate pushes (`latency` holds the exact ones).
    pub(crate) approximate_latency: latency::Shared,
    /// Precision violations by kind.
    pub(crate) violation_kinds: Tally,
    /// The timed phase's start, Unix ms; deliveries stamped before it are the first
    /// locations'.
    pub(crate) run_start_unix_ms: AtomicU64,
    pub(crate) secret: Secret,
    pub(crate) target: SocketAddr,
    pub(crate) request: http::Request<()>,
    pub(crate) connect_gate: Semaphore,
    pub(crate) next_source: AtomicUsize,
    /// Set just before the connections are closed: from then on `friend_gone` is expected.
    pub(crate) stopping: AtomicBool,
}

/// A server message, as much as the bench reads of it.
#[derive(Deserialize)]
pub(crate) struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: &'a str,
    pub(crate) user_id: Option<u64>,
    pub(crate) timestamp: Option<u64>,
    #[serde(borrow)]
    pub(crate) code: Option<&'a str>,
    #[serde(borrow)]
    pub(crate) friends: Option<Vec<Shown<'a>>>,
    pub(crate) latitude: Option<f64>,
    pub(crate) longitude: Option<f64>,
    #[serde(borrow)]
    pub(crate) precision: Option<&'a str>,
    pub(crate) accuracy_m: Option<f64>,
}

impl<'a> Incoming<'a> {
    /// The friend a `friend_location` shows.
    pub(crate) fn shown(&self) -> Shown<'a> {
        Shown {
            user_id: self.user_id,
            latitude: self.latitude,
            longitude: self.longitude,
            precision: self.precision,
            accuracy_m: self.accuracy_m,
        }
    }
}

/// What a push or a snapshot entry shows of a friend.
#[derive(Deserialize, Clone, Copy)]
pub(crate) struct Shown<'a> {
    pub(crate) user_id: Option<u64>,
    pub(crate) latitude: Option<f64>,
    pub(crate) longitude: Option<f64>,
    #[serde(borrow)]
    pub(crate) precision: Option<&'a str>,
    pub(crate) accuracy_m: Option<f64>,
}

/// A user's last positions sent (timestamp ms, latitude, longitude), a ring.
#[derive(Default)]
pub(crate) struct Recent {
    pub(crate) at: [(u64, f64, f64); RECENT],
    pub(crate) next: usize,
}

impl Recent {
    pub(crate) fn push(&mut self, timestamp_ms: u64, (lat, lng): (f64, f64)) {
        if let Some(slot) = self.at.get_mut(self.next % RECENT) {
            *slot = (timestamp_ms, lat, lng);
        }
        self.next = self.next.wrapping_add(1);
    }

    pub(crate) fn holds(&self, lat: f64, lng: f64) -> bool {
        self.at
            .iter()
            .take(self.next.min(RECENT))
            .any(|&(_, la, ln)| {
                (la - lat).abs() < SAME_POSITION_DEG && (ln - lng).abs() < SAME_POSITION_DEG
            })
    }
}

/// Notes a position `user` is about to send, before sending it (a push can arrive before
/// `send` returns).
pub(crate) fn remember(shared: &Shared, user: u64, timestamp_ms: u64, position: Offset) {
    if let Some(recent) = shared.recent.get((user - 1) as usize) {
        let mut recent = match recent.lock() {
            Ok(recent) => recent,
            Err(poisoned) => poisoned.into_inner(),
        };
        recent.push(timestamp_ms, position.lat_lng());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_is_read_with_its_precision() {
        let text = r#"{"type":"friend_location","user_id":2,"latitude":48.85,"longitude":2.35,"distance_m":10.0,"timestamp":5,"precision":"approximate","accuracy_m":1300.0}"#;
        let message: Incoming<'_> = serde_json::from_str(text).unwrap();
        let shown = message.shown();
        assert_eq!(shown.precision, Some("approximate"));
        assert_eq!(shown.accuracy_m, Some(1300.0));
        let text = r#"{"type":"nearby_friends","friends":[{"user_id":2,"latitude":48.85,"longitude":2.35,"distance_m":1.0,"timestamp":5,"precision":"exact"}]}"#;
        let message: Incoming<'_> = serde_json::from_str(text).unwrap();
        let friends = message.friends.unwrap();
        assert_eq!(friends[0].precision, Some("exact"));
        assert_eq!(friends[0].accuracy_m, None);
    }

    #[test]
    fn recent_positions_are_a_ring() {
        let mut recent = Recent::default();
        assert!(!recent.holds(0.0, 0.0));
        for i in 0..20 {
            recent.push(i, (48.0 + i as f64 * 0.001, 2.0));
        }
        assert!(recent.holds(48.019, 2.0));
        assert!(recent.holds(48.0120000001, 2.0));
        assert!(!recent.holds(48.011, 2.0));
    }
}

//! The one retry backoff of the service (built with `backon`): the change feed's reconnects,
//! the bus's subscription changes and the location history's batch writes all wait by it.
//!
//! Delays start at [`FIRST`], double after each consecutive failure up to a cap chosen per
//! use, and carry up to 100 % random jitter (nodes that lost Redis or the database together
//! do not all retry in the same instant). Attempts never run out: these loops retry until
//! the service stops, and a success starts over from [`FIRST`].

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::time::Duration;

/// The first delay.
pub const FIRST: Duration = Duration::from_millis(100);

/// Consecutive failures of one loop and the delay before its next attempt.
///
/// ```
/// use nearby_ws_gateway::retry::{Retry, FIRST};
/// use std::time::Duration;
/// let mut retry = Retry::capped_at(Duration::from_secs(1));
/// let first = retry.failed();
/// assert!(first >= FIRST && first <= FIRST * 2, "{first:?}");
/// for _ in 0..10 {
///     assert!(retry.failed() <= Duration::from_secs(2), "capped, jitter included");
/// }
/// assert_eq!(retry.failures(), 11);
/// retry.succeeded();
/// assert_eq!(retry.failures(), 0);
/// assert!(retry.failed() <= FIRST * 2, "a success starts over");
/// ```
#[derive(Debug)]
pub struct Retry {
    cap: Duration,
    backoff: Option<ExponentialBackoff>,
    failures: u32,
}

impl Retry {
    /// A loop whose delays grow to `cap` (before jitter, which may double it).
    pub fn capped_at(cap: Duration) -> Self {
        Self {
            cap: cap.max(FIRST),
            backoff: None,
            failures: 0,
        }
    }

    /// Records a failure; returns how long to wait before the next attempt.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let cap = self.cap;
        self.backoff
            .get_or_insert_with(|| {
                ExponentialBuilder::new()
                    .with_min_delay(FIRST)
                    .with_factor(2.0)
                    .with_max_delay(cap)
                    .with_jitter()
                    .without_max_times()
                    .build()
            })
            .next()
            // Unreachable without a limit on attempts; the cap is the sane answer anyway.
            .unwrap_or(cap)
    }

    /// Records a success: the next failure waits [`FIRST`] again.
    pub fn succeeded(&mut self) {
        self.backoff = None;
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_start_over_after_a_success() {
        let cap = Duration::from_millis(800);
        let mut retry = Retry::capped_at(cap);
        let delays: Vec<Duration> = (0..8).map(|_| retry.failed()).collect();
        for (i, delay) in delays.iter().enumerate() {
            let base = (FIRST * 2_u32.pow(i as u32)).min(cap);
            assert!(*delay >= base && *delay <= base * 2, "{i}: {delay:?}");
        }
        retry.succeeded();
        assert!(retry.failed() <= FIRST * 2);
    }
}

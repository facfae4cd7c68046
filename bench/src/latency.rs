//! Latency histograms: HdrHistogram in microseconds, three significant digits.
//!
//! A timed run at tens of thousands of requests per second keeps millions of samples; a
//! histogram keeps a fixed size instead (about 180 KiB, whatever the count) at a relative
//! error under 0.1 %, far below the run-to-run noise of a loaded 2-core machine.

use std::sync::Mutex;
use std::time::Duration;

/// The largest latency told apart from larger ones: an hour, in microseconds. Longer ones
/// are counted as an hour (a load generator's request never waits that long).
const HIGHEST_US: u64 = 3_600_000_000;
/// Significant decimal digits kept: values are exact below 2,048 µs, then within 0.1 %.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Latencies in microseconds.
#[derive(Clone)]
pub struct Histogram(hdrhistogram::Histogram<u64>);

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("max_us", &self.max_us())
            .finish()
    }
}

impl Histogram {
    /// An empty histogram.
    #[must_use]
    pub fn new() -> Self {
        // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 low,
        // digits <= 5), so this cannot fail; a fallback keeps it panic-free regardless.
        let histogram = hdrhistogram::Histogram::new_with_bounds(1, HIGHEST_US, SIGNIFICANT_DIGITS)
            .or_else(|_| hdrhistogram::Histogram::new(SIGNIFICANT_DIGITS))
            .unwrap_or_else(|_| unreachable!("constant histogram bounds"));
        Self(histogram)
    }

    /// Counts one latency of `micros` microseconds (an hour or more counts as an hour).
    pub fn record_us(&mut self, micros: u64) {
        self.0.saturating_record(micros);
    }

    /// Counts one latency.
    pub fn record(&mut self, latency: Duration) {
        self.record_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        // Both have the same bounds, so every value of `other` fits.
        let _ = self.0.add(&other.0);
    }

    /// How many latencies were counted.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The largest latency, µs (0 when empty).
    #[must_use]
    pub fn max_us(&self) -> u64 {
        if self.0.is_empty() { 0 } else { self.0.max() }
    }

    /// The mean latency, µs, rounded down (0 when empty).
    #[must_use]
    pub fn mean_us(&self) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.mean() as u64
        }
    }

    /// The `q`-quantile (`q` in [0, 1]) in µs, 0 when empty: the largest value equivalent
    /// to the smallest recorded value whose cumulative count reaches `ceil(q * count)`,
    /// capped at the maximum.
    #[must_use]
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            return 0;
        }
        self.0
            .value_at_quantile(q.clamp(0.0, 1.0))
            .min(self.0.max())
    }

    /// The `q`-quantile as a duration, `None` when empty.
    #[must_use]
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        (!self.0.is_empty()).then(|| Duration::from_micros(self.quantile_us(q)))
    }
}

/// A histogram many tasks record into: a mutex around [`Histogram`] (a record is a few
/// nanoseconds under the lock, next to a WebSocket message's microseconds).
#[derive(Default, Debug)]
pub struct Shared(Mutex<Histogram>);

impl Shared {
    /// Counts one latency of `micros` microseconds.
    pub fn record_us(&self, micros: u64) {
        self.lock().record_us(micros);
    }

    /// A copy of the counts so far.
    #[must_use]
    pub fn snapshot(&self) -> Histogram {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Histogram> {
        // A panic while recording leaves consistent counts: keep using them.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_uniform_run() {
        let mut h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        // Below 2,048 µs every value is exact.
        assert_eq!(h.quantile_us(0.5), 500);
        assert_eq!(h.quantile_us(0.99), 990);
        assert_eq!(h.quantile_us(1.0), 1000);
        assert_eq!(h.max_us(), 1000);
        assert_eq!(h.mean_us(), 500);
        let mut other = Histogram::default();
        other.merge(&h);
        assert_eq!(other.count(), 1000);
        assert_eq!(Histogram::default().quantile(0.5), None);
        assert_eq!(Histogram::default().quantile_us(0.5), 0);
    }

    #[test]
    fn large_values_keep_three_digits_and_saturate() {
        let mut h = Histogram::default();
        h.record_us(123_456_789);
        let got = h.quantile_us(0.5) as f64;
        assert!((got - 123_456_789.0).abs() / 123_456_789.0 < 1e-3, "{got}");
        h.record(Duration::from_secs(100_000));
        assert!(h.max_us() >= HIGHEST_US && h.max_us() < HIGHEST_US + HIGHEST_US / 1000);
    }

    #[test]
    fn shared_records_from_threads() {
        let shared = std::sync::Arc::new(Shared::default());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let shared = std::sync::Arc::clone(&shared);
                std::thread::spawn(move || (1..=100).for_each(|us| shared.record_us(us)))
            })
            .collect();
        for handle in handles {
            assert!(handle.join().is_ok());
        }
        assert_eq!(shared.snapshot().count(), 400);
    }
}

//! The limits every frame from the client passes before it is looked at: the flood limit (a
//! token bucket per session) and, for text, the size cap. Pure: the time is an argument.
//!
//! (The per-user limits shared by a user's sessions — locations per second, plausible
//! movement — are in [`crate::users`], which owns the [`Bucket`] both use.)

use super::close::Close;
use crate::users::Bucket;
use tokio::time::Instant;

/// What a client frame is, as far as the limits care.
#[derive(Clone, Copy, Debug)]
pub(super) enum Frame {
    /// A text frame of this many bytes.
    Text(usize),
    /// A binary frame (refused with an error after it passed the flood limit).
    Binary,
}

/// A session's frame limits.
#[derive(Debug)]
pub(super) struct FrameLimit {
    bucket: Bucket,
    max_text_bytes: usize,
}

impl FrameLimit {
    /// Full: `burst` frames at once, then `rate_per_s`; text up to `max_text_bytes`.
    pub(super) fn new(rate_per_s: f64, burst: u32, max_text_bytes: usize, now: Instant) -> Self {
        Self {
            bucket: Bucket::new(rate_per_s, burst, now.into_std()),
            max_text_bytes,
        }
    }

    /// Admits a data frame received at `now`, or says how the session must close: a flood
    /// before anything else, then an oversize text.
    pub(super) fn admit(&mut self, frame: Frame, now: Instant) -> Result<(), Close> {
        if !self.bucket.take(now.into_std()) {
            return Err(Close::Flood);
        }
        match frame {
            Frame::Text(bytes) if bytes > self.max_text_bytes => Err(Close::MessageTooBig),
            Frame::Text(_) | Frame::Binary => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate_then_a_flood_close() {
        let start = Instant::now();
        let mut limit = FrameLimit::new(10.0, 3, 100, start);
        for _ in 0..3 {
            assert_eq!(limit.admit(Frame::Text(10), start), Ok(()));
        }
        assert_eq!(limit.admit(Frame::Binary, start), Err(Close::Flood));
        // A tenth of a second later one more token is there, and only one.
        let later = start + Duration::from_millis(100);
        assert_eq!(limit.admit(Frame::Binary, later), Ok(()));
        assert_eq!(limit.admit(Frame::Text(10), later), Err(Close::Flood));
    }

    #[test]
    fn an_oversize_text_closes_but_binary_frames_are_not_measured_here() {
        let now = Instant::now();
        let mut limit = FrameLimit::new(10.0, 5, 100, now);
        assert_eq!(limit.admit(Frame::Text(100), now), Ok(()));
        assert_eq!(
            limit.admit(Frame::Text(101), now),
            Err(Close::MessageTooBig)
        );
        assert_eq!(limit.admit(Frame::Binary, now), Ok(()));
    }
}

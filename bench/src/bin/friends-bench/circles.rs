//! The workload's geometry: circles of friends around Paris, positions, steps, the clock.

use nearby_data::SplitMix64;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Paris: the city the circles are spread over.
pub(crate) const CITY: (f64, f64) = (48.8566, 2.3522);
/// Side of the box the circle centres are drawn in, metres.
pub(crate) const CITY_BOX_M: f64 = 50_000.0;
/// Members stay within this distance of their circle's centre, so two friends are at most
/// 2 km apart: far inside the default 8 km radius and its hysteresis band.
pub(crate) const CIRCLE_SPREAD_M: f64 = 1_000.0;
/// Largest step of one update, metres.
pub(crate) const STEP_M: f64 = 5.0;
pub(crate) const METRES_PER_DEGREE: f64 = 111_320.0;

/// The circle (0-based) of a user, and its first and last member.
pub(crate) fn circle_of(user: u64, circle: u64, users: u64) -> (u64, u64, u64) {
    let index = (user - 1) / circle;
    let first = index * circle + 1;
    let last = (first + circle - 1).min(users);
    (index, first, last)
}

/// Whether `user` (1-based) shares only approximately when a fraction `share` of the users
/// does: the users at which `floor(id * share)` steps up, so exactly `floor(N * share)` of
/// users `1..=N` do, spread evenly over the ids (with 0.5, the even ids: half of every
/// circle). `k6/nearby_friends.js` picks the same users.
pub(crate) fn approximate_sharer(user: u64, share: f64) -> bool {
    user > 0 && share > 0.0 && (user as f64 * share).floor() > ((user - 1) as f64 * share).floor()
}

/// Where a circle's members gather: its own point of the box around the city.
pub(crate) fn circle_centre(seed: u64, circle_index: u64) -> Offset {
    let mut centre_rng = rng(seed ^ circle_index.wrapping_mul(0x9e37_79b9));
    Offset {
        east: signed(&mut centre_rng) * CITY_BOX_M / 2.0,
        north: signed(&mut centre_rng) * CITY_BOX_M / 2.0,
    }
}

/// The workload's random stream for `seed`: the data crate's SplitMix64, started where the
/// bench's former private copy started, so a seed still gives the same circles, moves and
/// graph order as in earlier recorded runs.
pub(crate) fn rng(seed: u64) -> SplitMix64 {
    SplitMix64::new(seed ^ 0x9e37_79b9_7f4a_7c15)
}

/// Uniform in [-1, 1).
pub(crate) fn signed(rng: &mut SplitMix64) -> f64 {
    rng.next_f64() * 2.0 - 1.0
}

/// A position as metres east and north of the city centre (a flat approximation is plenty
/// at 50 km; the server measures great-circle distances).
#[derive(Clone, Copy)]
pub(crate) struct Offset {
    pub(crate) east: f64,
    pub(crate) north: f64,
}

impl Offset {
    pub(crate) fn lat_lng(self) -> (f64, f64) {
        let lat = CITY.0 + self.north / METRES_PER_DEGREE;
        let lng = CITY.1 + self.east / (METRES_PER_DEGREE * CITY.0.to_radians().cos());
        (lat, lng)
    }
}

/// The shared clock: one wall-clock reading at start plus a monotonic offset, so message
/// timestamps (Unix ms) and send instants (µs since start) agree exactly.
pub(crate) struct Clock {
    pub(crate) start: Instant,
    pub(crate) start_unix_us: u64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let start_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Self {
            start: Instant::now(),
            start_unix_us,
        }
    }

    pub(crate) fn micros(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    pub(crate) fn unix_ms_at(&self, micros: u64) -> u64 {
        (self.start_unix_us + micros) / 1_000
    }
}

/// A random step of up to STEP_M metres, turned back towards the centre when it would leave
/// the circle's disc.
pub(crate) fn step(offset: (f64, f64), rng: &mut SplitMix64) -> (f64, f64) {
    let (dx, dy) = (signed(rng) * STEP_M, signed(rng) * STEP_M);
    let (x, y) = (offset.0 + dx, offset.1 + dy);
    if x.hypot(y) <= CIRCLE_SPREAD_M {
        (x, y)
    } else {
        (
            offset.0 - dx.abs() * offset.0.signum(),
            offset.1 - dy.abs() * offset.1.signum(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circles_split_users() {
        assert_eq!(circle_of(1, 10, 25), (0, 1, 10));
        assert_eq!(circle_of(10, 10, 25), (0, 1, 10));
        assert_eq!(circle_of(11, 10, 25), (1, 11, 20));
        assert_eq!(circle_of(25, 10, 25), (2, 21, 25));
    }

    #[test]
    fn approximate_sharers_are_the_fraction_asked_spread_evenly() {
        for (share, users, expected) in [(0.0, 100, 0), (0.5, 100, 50), (0.25, 10, 2), (1.0, 7, 7)]
        {
            let picked = (1..=users)
                .filter(|&user| approximate_sharer(user, share))
                .count();
            assert_eq!(picked, expected, "{share} of {users}");
        }
        // Half of every circle of 10.
        let in_circle = (11..=20).filter(|&u| approximate_sharer(u, 0.5)).count();
        assert_eq!(in_circle, 5);
        assert!(approximate_sharer(2, 0.5) && !approximate_sharer(1, 0.5));
    }

    #[test]
    fn steps_stay_in_the_disc() {
        let mut rng = rng(1);
        let mut offset = (CIRCLE_SPREAD_M - 1.0, 0.0);
        for _ in 0..100_000 {
            offset = step(offset, &mut rng);
            assert!(offset.0.hypot(offset.1) <= CIRCLE_SPREAD_M + STEP_M * 2.0);
        }
    }

    #[test]
    fn the_stream_is_the_former_private_generator() {
        // The bench's former SplitMix64 copy started at `seed ^ GAMMA`; recorded runs used
        // its stream, so the shared generator must give the same one.
        let mut state: u64 = 7 ^ 0x9e37_79b9_7f4a_7c15;
        let mut former = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut shared = rng(7);
        for _ in 0..100 {
            assert_eq!(shared.next_u64(), former());
        }
    }
}

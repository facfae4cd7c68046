//! Result-set comparison: before anything is timed, the three systems must return the same
//! top-20 sets, up to differences that their geometry explains.
//!
//! The systems do not measure on the same sphere, so a place can legitimately be in one
//! answer and not another:
//!
//! - **Nearby**: haversine on a sphere of radius [`NEARBY_RADIUS_M`] (6,371,008.8 m, the
//!   IUGG mean radius), exact stored coordinates.
//! - **PostGIS** with `use_spheroid = false`: the sphere of radius [`POSTGIS_RADIUS_M`],
//!   `(2a + b) / 3` of WGS84 = 6,371,008.7714 m (`WGS84_RADIUS` in PostGIS's
//!   `geography.h`), 4.5e-9 shorter: distances agree to 0.1 mm at 20 km, so only a place
//!   that sits on the radius to within that, or ties with the 20th place, can differ.
//! - **Redis**: coordinates stored as a 52-bit geohash (26 bits per axis, each stored
//!   point moved by up to ~0.3 m to the centre of its cell) and distances on a sphere of
//!   radius [`REDIS_RADIUS_M`] (`EARTH_RADIUS_IN_METERS` in Redis's `geohash_helper.c`,
//!   6,372,797.560856 m), 2.8e-4 longer: Redis finds everything 5.6 m further than Nearby
//!   at 20 km, so places in the outer 5.6 m of the radius are missing from its answer, and
//!   places within ~1 m of each other's distance can swap across the 20th place.
//!
//! A difference is *explained* when every place in one answer but not the other lies within
//! such a margin of the radius or of the last (20th) distance of the answer that lacks it;
//! anything else is *unexplained* and reported as a failure of the comparison.

use super::targets::{Hit, LIMIT};
use geo_index::LatLng;
use std::collections::{HashMap, HashSet};

/// Nearby's sphere, metres.
pub const NEARBY_RADIUS_M: f64 = 6_371_008.8;
/// PostGIS's sphere for geography with `use_spheroid = false`: `(2a + b) / 3` of WGS84.
pub const POSTGIS_RADIUS_M: f64 = (2.0 * 6_378_137.0 + 6_356_752.314_245_179) / 3.0;
/// Redis's sphere (`geohash_helper.c`).
pub const REDIS_RADIUS_M: f64 = 6_372_797.560_856;
/// Redis refuses latitudes beyond ±85.05112878° (the Web Mercator limit of its geohash).
pub const REDIS_MAX_LATITUDE: f64 = 85.051_128_78;

/// How far apart two systems' notions of distance may be.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    /// Relative difference of the two spheres (plus rounding).
    pub relative: f64,
    /// Absolute slack in metres: position quantisation and printed-digit rounding.
    pub absolute_m: f64,
}

impl Tolerance {
    /// Nearby against itself: floating-point rounding only.
    pub const NONE: Tolerance = Tolerance {
        relative: 0.0,
        absolute_m: 1e-6,
    };

    /// Two systems' tolerances against Nearby added up, for comparing them with each other.
    pub fn plus(self, other: Tolerance) -> Tolerance {
        Tolerance {
            relative: self.relative + other.relative,
            absolute_m: self.absolute_m + other.absolute_m,
        }
    }

    /// PostGIS against Nearby: the 4.5e-9 sphere difference, a different great-circle
    /// formula, and a millimetre for rounding.
    pub fn postgis() -> Tolerance {
        Tolerance {
            relative: (NEARBY_RADIUS_M / POSTGIS_RADIUS_M - 1.0).abs() + 1e-9,
            absolute_m: 1e-3,
        }
    }

    /// Redis against Nearby: the 2.8e-4 sphere difference, then one metre for the geohash
    /// cell (a stored point moves by at most ~0.33 m) and the 4 decimals Redis prints.
    pub fn redis() -> Tolerance {
        Tolerance {
            relative: (REDIS_RADIUS_M / NEARBY_RADIUS_M - 1.0).abs() + 1e-9,
            absolute_m: 1.0,
        }
    }

    fn margin(&self, distance_m: f64) -> f64 {
        self.relative * distance_m + self.absolute_m
    }
}

/// One system's answers compared with the reference's, over the sample of queries.
#[derive(Clone, Debug)]
pub struct Comparison {
    tolerance: Tolerance,
    redis_involved: bool,
    /// Queries compared.
    pub queries: usize,
    /// Queries whose two id sets are equal.
    pub identical: usize,
    /// Queries whose sets differ only by places the geometry explains.
    pub explained: usize,
    /// Queries with at least one unexplained difference.
    pub unexplained: usize,
    /// Results returned by the compared system, summed over the queries.
    pub results: usize,
    /// Largest |reported distance − Nearby's distance| for a place in both answers, metres.
    pub max_distance_gap_m: f64,
    /// Mean of reported distance / Nearby's distance over common places further than
    /// 100 m (shows the sphere the system uses).
    pub mean_distance_ratio: f64,
    ratio_sum: f64,
    ratio_count: usize,
    /// A few unexplained differences, for the report.
    pub examples: Vec<String>,
    /// A few explained differences, to show what they look like.
    pub explained_examples: Vec<String>,
}

/// What a place in one answer and not the other is.
enum Difference {
    Explained(String),
    Unexplained(String),
}

impl Comparison {
    /// An empty comparison of two systems whose distances may differ by `tolerance`;
    /// `redis_involved` (one of them is Redis) also explains places Redis cannot store.
    pub fn new(tolerance: Tolerance, redis_involved: bool) -> Self {
        Self {
            tolerance,
            redis_involved,
            queries: 0,
            identical: 0,
            explained: 0,
            unexplained: 0,
            results: 0,
            max_distance_gap_m: 0.0,
            mean_distance_ratio: f64::NAN,
            ratio_sum: 0.0,
            ratio_count: 0,
            examples: Vec::new(),
            explained_examples: Vec::new(),
        }
    }

    /// Compares one query's answers: `reference` (Nearby's, or the first target's) and
    /// `other`. `positions` maps place ids to their stored coordinates; distances for the
    /// classification are recomputed on Nearby's sphere from them, so the verdict does not
    /// depend on any system's own arithmetic.
    pub fn add(
        &mut self,
        centre: LatLng,
        radius_m: f64,
        reference: &[Hit],
        other: &[Hit],
        positions: &HashMap<String, LatLng>,
    ) {
        let (tolerance, redis_involved) = (self.tolerance, self.redis_involved);
        self.queries += 1;
        self.results += other.len();
        let distance = |id: &str| positions.get(id).map(|&p| centre.distance_m(p));
        for hit in other {
            if let Some(d) = distance(&hit.id) {
                self.max_distance_gap_m = self.max_distance_gap_m.max((hit.distance_m - d).abs());
                if d > 100.0 {
                    self.ratio_sum += hit.distance_m / d;
                    self.ratio_count += 1;
                    self.mean_distance_ratio = self.ratio_sum / self.ratio_count as f64;
                }
            }
        }
        let reference_ids: HashSet<&str> = reference.iter().map(|h| h.id.as_str()).collect();
        let other_ids: HashSet<&str> = other.iter().map(|h| h.id.as_str()).collect();
        if reference_ids == other_ids {
            self.identical += 1;
            return;
        }
        // The last (largest) distance of a full answer, on Nearby's sphere: a place just
        // beyond it may have lost a near-tie.
        let cutoff = |hits: &[Hit]| {
            (hits.len() >= LIMIT).then(|| {
                hits.iter()
                    .filter_map(|h| distance(&h.id))
                    .fold(0.0_f64, f64::max)
            })
        };
        let (reference_cutoff, other_cutoff) = (cutoff(reference), cutoff(other));
        let classify = |id: &str, lacking_cutoff: Option<f64>| {
            let Some(position) = positions.get(id) else {
                return Difference::Unexplained(format!("{id} is not in the dataset"));
            };
            let d = centre.distance_m(*position);
            let on_radius = (d - radius_m).abs() <= tolerance.margin(radius_m);
            let near_tie = lacking_cutoff.is_some_and(|c| d >= c - tolerance.margin(c));
            let not_in_redis = redis_involved && position.lat().abs() > REDIS_MAX_LATITUDE;
            let what = format!(
                "centre {centre}, radius {radius_m} m: {id} at {d:.4} m{}",
                lacking_cutoff.map_or(String::new(), |c| format!(
                    " (the answer lacking it ends at {c:.4} m)"
                ))
            );
            if on_radius || near_tie || not_in_redis {
                Difference::Explained(what)
            } else {
                Difference::Unexplained(what)
            }
        };
        let mut unexplained = Vec::new();
        let mut explained = Vec::new();
        let differences = reference_ids
            .difference(&other_ids)
            .map(|id| ("missing", classify(id, other_cutoff)))
            .chain(
                other_ids
                    .difference(&reference_ids)
                    .map(|id| ("extra", classify(id, reference_cutoff))),
            );
        for (kind, difference) in differences {
            match difference {
                Difference::Explained(what) => explained.push(format!("{kind} {what}")),
                Difference::Unexplained(what) => unexplained.push(format!("{kind} {what}")),
            }
        }
        if unexplained.is_empty() {
            self.explained += 1;
            if self.explained_examples.len() < 3 {
                explained.sort();
                self.explained_examples
                    .extend(explained.into_iter().take(1));
            }
        } else {
            self.unexplained += 1;
            if self.examples.len() < 5 {
                unexplained.sort();
                self.examples.extend(unexplained.into_iter().take(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, distance_m: f64) -> Hit {
        Hit {
            id: id.into(),
            distance_m,
        }
    }

    #[test]
    fn spheres_are_the_documented_ones() {
        assert!((POSTGIS_RADIUS_M - 6_371_008.771_4).abs() < 1e-4);
        // Redis at 20 km reaches 5.6 m less far than Nearby.
        let shortfall = 20_000.0 * (1.0 - NEARBY_RADIUS_M / REDIS_RADIUS_M);
        assert!((shortfall - 5.61).abs() < 0.01, "{shortfall}");
    }

    #[test]
    fn classifies_boundary_and_unexplained_differences() {
        let centre = LatLng::new(0.0, 0.0).unwrap();
        // Places due north at known distances on Nearby's sphere.
        let at = |m: f64| LatLng::new((m / NEARBY_RADIUS_M).to_degrees(), 0.0).unwrap();
        let positions: HashMap<String, LatLng> = [
            ("near", at(100.0)),
            ("edge", at(19_997.0)),
            ("mid", at(10_000.0)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let reference = [
            hit("near", 100.0),
            hit("mid", 10_000.0),
            hit("edge", 19_997.0),
        ];
        let mut redis = Comparison::new(Tolerance::redis(), true);
        // Redis drops the place 3 m inside the radius: explained by its larger sphere.
        let answer = [hit("near", 100.03), hit("mid", 10_002.8)];
        redis.add(centre, 20_000.0, &reference, &answer, &positions);
        assert_eq!((redis.explained, redis.unexplained), (1, 0));
        assert!((redis.mean_distance_ratio - 1.00029).abs() < 2e-5);
        // Dropping a place in the middle is never explained.
        let wrong = [hit("near", 100.0), hit("edge", 19_997.0)];
        redis.add(centre, 20_000.0, &reference, &wrong, &positions);
        assert_eq!(redis.unexplained, 1);
        assert!(
            redis
                .examples
                .iter()
                .any(|e| e.contains("missing") && e.contains("mid"))
        );
        assert!(redis.max_distance_gap_m < 3.0);
        // PostGIS dropping the edge place is not explained: its sphere is within 0.1 mm
        // of Nearby's at 20 km.
        let mut postgis = Comparison::new(Tolerance::postgis(), false);
        let answer = [hit("near", 100.0), hit("mid", 10_000.0)];
        postgis.add(centre, 20_000.0, &reference, &answer, &positions);
        assert_eq!(postgis.unexplained, 1);
        postgis.add(centre, 20_000.0, &reference, &reference, &positions);
        assert_eq!((postgis.queries, postgis.identical), (2, 1));
    }
}

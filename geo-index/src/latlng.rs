//! Checked coordinates and the one Earth model used everywhere.

use crate::Error;
use std::fmt;

/// Mean Earth radius in metres (IUGG), the radius of the sphere every distance in Nearby is
/// measured on.
///
/// ```
/// assert_eq!(geo_index::EARTH_RADIUS_M, 6_371_008.8);
/// ```
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Half the circumference of the Earth sphere: no two points are further apart than this.
///
/// ```
/// use geo_index::{LatLng, HALF_CIRCUMFERENCE_M};
/// let north = LatLng::new(90.0, 0.0)?;
/// let south = LatLng::new(-90.0, 0.0)?;
/// assert!((north.distance_m(south) - HALF_CIRCUMFERENCE_M).abs() < 1e-6);
/// # Ok::<(), geo_index::Error>(())
/// ```
pub const HALF_CIRCUMFERENCE_M: f64 = std::f64::consts::PI * EARTH_RADIUS_M;

/// A point on the sphere, in degrees (WGS 84 latitude and longitude read as spherical
/// coordinates).
///
/// A `LatLng` cannot hold NaN, infinities or out-of-range values: latitude is in [-90, 90] and
/// longitude in [-180, 180]. Note the order: latitude first, as in `h3o` and `s2`; `geohash`
/// and PostGIS take longitude first.
///
/// ```
/// use geo_index::LatLng;
/// let paris = LatLng::new(48.8566, 2.3522)?;
/// assert_eq!(paris.lat(), 48.8566);
/// assert!(LatLng::new(91.0, 0.0).is_err());
/// assert!(LatLng::new(0.0, f64::NAN).is_err());
/// # Ok::<(), geo_index::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, PartialOrd)]
pub struct LatLng {
    pub(crate) lat: f64,
    pub(crate) lng: f64,
}

impl LatLng {
    /// Validates and builds a coordinate from degrees.
    ///
    /// # Errors
    /// [`Error::InvalidLatitude`] or [`Error::InvalidLongitude`] for NaN, infinite or out of
    /// range values.
    ///
    /// ```
    /// use geo_index::{Error, LatLng};
    /// assert_eq!(LatLng::new(0.0, 180.5).unwrap_err(), Error::InvalidLongitude(180.5));
    /// ```
    pub fn new(lat: f64, lng: f64) -> Result<Self, Error> {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(Error::InvalidLatitude(lat));
        }
        if !(-180.0..=180.0).contains(&lng) {
            return Err(Error::InvalidLongitude(lng));
        }
        // `-0.0` and `0.0` compare equal but hash and print differently; fold them.
        Ok(Self {
            lat: lat + 0.0,
            lng: lng + 0.0,
        })
    }

    /// Latitude in degrees, in [-90, 90].
    ///
    /// ```
    /// # use geo_index::LatLng;
    /// assert_eq!(LatLng::new(-33.9, 18.4)?.lat(), -33.9);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    #[inline]
    pub fn lat(self) -> f64 {
        self.lat
    }

    /// Longitude in degrees, in [-180, 180].
    ///
    /// ```
    /// # use geo_index::LatLng;
    /// assert_eq!(LatLng::new(-33.9, 18.4)?.lng(), 18.4);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    #[inline]
    pub fn lng(self) -> f64 {
        self.lng
    }

    /// Great-circle distance in metres on the sphere of radius [`EARTH_RADIUS_M`] (haversine).
    ///
    /// Every index computes distances with exactly this arithmetic, so results and their order
    /// match a brute-force scan bit for bit.
    ///
    /// ```
    /// # use geo_index::LatLng;
    /// let a = LatLng::new(0.0, 179.9)?;
    /// let b = LatLng::new(0.0, -179.9)?;
    /// // Across the antimeridian: 0.2 degrees of longitude on the equator.
    /// assert!((a.distance_m(b) - 22_239.016).abs() < 0.01);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    #[inline]
    pub fn distance_m(self, other: LatLng) -> f64 {
        Origin::new(self).distance_m(other)
    }
}

impl fmt::Debug for LatLng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LatLng({}, {})", self.lat, self.lng)
    }
}

impl fmt::Display for LatLng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.lat, self.lng)
    }
}

/// A query centre with its trigonometry computed once, so that measuring many points from it
/// costs one `sin`, one `cos`, one `sqrt` and one `asin` each.
///
/// [`LatLng::distance_m`] is defined through this type, which keeps every distance in the crate
/// bit-identical.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin {
    pub(crate) point: LatLng,
    pub(crate) lat_rad: f64,
    pub(crate) lng_rad: f64,
    pub(crate) cos_lat: f64,
}

impl Origin {
    #[inline]
    pub(crate) fn new(point: LatLng) -> Self {
        let lat_rad = point.lat.to_radians();
        Self {
            point,
            lat_rad,
            lng_rad: point.lng.to_radians(),
            cos_lat: libm::cos(lat_rad),
        }
    }

    /// Haversine. The trigonometry is the pure-Rust `libm`, not the platform's: the platform
    /// library may differ between machines by an ulp, and the compiler may fold calls on
    /// constants with its own correctly rounded arithmetic. Either would let two nodes (or a
    /// test and the index) disagree on the last bit of a distance, and keyset cursors carry
    /// exact distances.
    #[inline]
    pub(crate) fn distance_m(&self, other: LatLng) -> f64 {
        let other_lat = other.lat.to_radians();
        let half_dlat = (other_lat - self.lat_rad) * 0.5;
        let half_dlng = (other.lng.to_radians() - self.lng_rad) * 0.5;
        let sin_lat = libm::sin(half_dlat);
        let sin_lng = libm::sin(half_dlng);
        let h = sin_lat * sin_lat + self.cos_lat * libm::cos(other_lat) * sin_lng * sin_lng;
        2.0 * EARTH_RADIUS_M * libm::asin(h.sqrt().min(1.0))
    }

    /// A lower bound of [`Origin::distance_m`] without trigonometry: the haversine terms
    /// with `sin x ≥ x − x³/6` (x ≥ 0), `cos t ≥ 1 − t²/2 + t⁴/24 − t⁶/720 + t⁸/40320 − t¹⁰/3628800` and
    /// `asin y ≥ y`, each an alternating series cut after a negative term. Within a relative
    /// 1e-9 (far above rounding) of the exact value for nearby points, and never above it.
    #[inline]
    pub(crate) fn distance_lower_bound_m(&self, other: LatLng) -> f64 {
        let other_lat = other.lat.to_radians();
        let half_dlat = ((other_lat - self.lat_rad) * 0.5).abs();
        let mut dlng = (other.lng.to_radians() - self.lng_rad).abs();
        if dlng > std::f64::consts::PI {
            dlng = 2.0 * std::f64::consts::PI - dlng;
        }
        let half_dlng = dlng * 0.5;
        let s_lat = sin_lower(half_dlat);
        let s_lng = sin_lower(half_dlng);
        let h = s_lat * s_lat + self.cos_lat.max(0.0) * cos_lower(other_lat) * s_lng * s_lng;
        2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0) * (1.0 - 1e-9)
    }
}

/// `sin x ≥ x − x³/6` for `x ≥ 0` (an alternating series cut after a negative term), and
/// non-negative for `x ≤ π/2`.
#[inline]
pub(crate) fn sin_lower(x: f64) -> f64 {
    x - x * x * x * (1.0 / 6.0)
}

/// `cos t ≥ 1 − t²/2 + t⁴/24 − t⁶/720 + t⁸/40320 − t¹⁰/3628800`, clamped at 0: a lower bound
/// of the cosine of a latitude (|t| ≤ π/2), within 2e-7 of it.
#[inline]
pub(crate) fn cos_lower(t: f64) -> f64 {
    let t2 = t * t;
    (1.0 - t2
        * (0.5
            - t2 * (1.0 / 24.0
                - t2 * (1.0 / 720.0 - t2 * (1.0 / 40_320.0 - t2 * (1.0 / 3_628_800.0))))))
        .max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_finite_and_out_of_range() {
        for (lat, lng) in [
            (f64::NAN, 0.0),
            (0.0, f64::NAN),
            (f64::INFINITY, 0.0),
            (0.0, f64::NEG_INFINITY),
            (90.000_001, 0.0),
            (-90.000_001, 0.0),
            (0.0, 180.000_001),
            (0.0, -180.000_001),
        ] {
            assert!(LatLng::new(lat, lng).is_err(), "{lat},{lng}");
        }
        for (lat, lng) in [(90.0, 180.0), (-90.0, -180.0), (0.0, 0.0)] {
            assert!(LatLng::new(lat, lng).is_ok());
        }
    }

    #[test]
    fn negative_zero_is_folded() {
        let p = LatLng::new(-0.0, -0.0).unwrap();
        assert!(p.lat().is_sign_positive() && p.lng().is_sign_positive());
    }

    #[test]
    fn lower_bound_never_exceeds_the_distance() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |scale: f64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        };
        for _ in 0..200_000 {
            let a = LatLng::new(next(90.0), next(180.0)).unwrap();
            // Mostly nearby points, where the bound is tight, some anywhere.
            let spread = if next(1.0) > 0.0 { 0.01 } else { 180.0 };
            let b = LatLng::new(
                (a.lat() + next(spread)).clamp(-90.0, 90.0),
                (a.lng() + next(spread)).clamp(-180.0, 180.0),
            )
            .unwrap();
            let origin = Origin::new(a);
            let exact = origin.distance_m(b);
            let lower = origin.distance_lower_bound_m(b);
            assert!(lower <= exact, "{a:?} {b:?}: {lower} > {exact}");
            if exact < 10_000.0 {
                assert!(
                    lower >= exact * 0.999,
                    "{a:?} {b:?}: {lower} loose for {exact}"
                );
            }
        }
    }

    #[test]
    fn known_distances() {
        // One degree of arc on the equator and along a meridian.
        let one_degree = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
        let a = LatLng::new(0.0, 0.0).unwrap();
        assert!((a.distance_m(LatLng::new(0.0, 1.0).unwrap()) - one_degree).abs() < 1e-6);
        assert!((a.distance_m(LatLng::new(1.0, 0.0).unwrap()) - one_degree).abs() < 1e-6);
        // Antipodes are half a circumference apart.
        let b = LatLng::new(0.0, 180.0).unwrap();
        assert!((a.distance_m(b) - HALF_CIRCUMFERENCE_M).abs() < 1e-3);
        // Paris to London, a classic: about 343.5 km on this sphere.
        let paris = LatLng::new(48.8566, 2.3522).unwrap();
        let london = LatLng::new(51.5074, -0.1278).unwrap();
        let d = paris.distance_m(london);
        assert!((343_000.0..344_000.0).contains(&d), "{d}");
        // The two poles meet every meridian.
        let pole1 = LatLng::new(90.0, -180.0).unwrap();
        let pole2 = LatLng::new(90.0, 45.0).unwrap();
        assert!(pole1.distance_m(pole2) < 1e-6);
    }
}

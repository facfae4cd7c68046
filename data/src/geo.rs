//! Spherical geometry: destination point, great-circle distance, longitude wrapping.
//!
//! All transcendental functions come from the pure-Rust `libm` crate rather than the
//! platform's C library, so results are bit-identical on every machine.

/// Mean Earth radius in metres (IUGG R1), the sphere every computation here uses.
///
/// ```
/// assert_eq!(nearby_data::EARTH_RADIUS_M, 6_371_008.8);
/// ```
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Wraps a longitude in degrees into `[-180, 180]`.
///
/// ```
/// use nearby_data::wrap_longitude;
///
/// assert_eq!(wrap_longitude(190.0), -170.0);
/// assert_eq!(wrap_longitude(-540.0), -180.0);
/// assert_eq!(wrap_longitude(45.0), 45.0);
/// ```
#[must_use]
pub fn wrap_longitude(lon: f64) -> f64 {
    if (-180.0..=180.0).contains(&lon) {
        return lon;
    }
    let wrapped = (lon + 180.0).rem_euclid(360.0) - 180.0;
    // rem_euclid may round up to exactly 360 for tiny negative inputs.
    wrapped.clamp(-180.0, 180.0)
}

/// The point reached from (`lat`, `lon`) (degrees) by travelling `distance_m` metres along
/// the great circle with initial `bearing` (radians clockwise from north).
///
/// Crossing a pole or the antimeridian is handled: the result always has latitude in
/// `[-90, 90]` and longitude in `[-180, 180]`.
///
/// ```
/// use nearby_data::{destination, EARTH_RADIUS_M};
/// use std::f64::consts::PI;
///
/// // A quarter of a great circle due north from the equator reaches the North Pole.
/// let (lat, _) = destination(0.0, 10.0, 0.0, EARTH_RADIUS_M * PI / 2.0);
/// assert!((lat - 90.0).abs() < 1e-9);
/// // Eastwards across the antimeridian.
/// let (lat, lon) = destination(0.0, 179.9, PI / 2.0, 22_239.0);
/// assert!(lat.abs() < 1e-9 && (lon + 179.9).abs() < 1e-4);
/// ```
#[must_use]
pub fn destination(lat: f64, lon: f64, bearing: f64, distance_m: f64) -> (f64, f64) {
    let phi = lat.to_radians();
    destination_from(
        libm::sin(phi),
        libm::cos(phi),
        lon,
        libm::sin(bearing),
        libm::cos(bearing),
        distance_m / EARTH_RADIUS_M,
    )
}

/// [`destination`] with the start latitude's sine and cosine, the bearing's sine and cosine
/// and the angular distance precomputed (the generator's hot path).
pub(crate) fn destination_from(
    sin_phi1: f64,
    cos_phi1: f64,
    lon1_deg: f64,
    sin_theta: f64,
    cos_theta: f64,
    delta: f64,
) -> (f64, f64) {
    let (sin_d, cos_d) = (libm::sin(delta), libm::cos(delta));
    let sin_phi2 = (sin_phi1 * cos_d + cos_phi1 * sin_d * cos_theta).clamp(-1.0, 1.0);
    let phi2 = libm::asin(sin_phi2);
    let dlambda = libm::atan2(sin_theta * sin_d * cos_phi1, cos_d - sin_phi1 * sin_phi2);
    let lat2 = phi2.to_degrees().clamp(-90.0, 90.0);
    let lon2 = wrap_longitude(lon1_deg + dlambda.to_degrees());
    (lat2, lon2)
}

/// Great-circle distance in metres between two points given in degrees (haversine).
///
/// ```
/// use nearby_data::distance_m;
///
/// // Paris to London is about 344 km.
/// let d = distance_m(48.8566, 2.3522, 51.5074, -0.1278);
/// assert!((d - 343_900.0).abs() < 1_000.0);
/// assert_eq!(distance_m(10.0, 20.0, 10.0, 20.0), 0.0);
/// ```
#[must_use]
pub fn distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let s1 = libm::sin(dp / 2.0);
    let s2 = libm::sin(dl / 2.0);
    let h = (s1 * s1 + libm::cos(p1) * libm::cos(p2) * s2 * s2).clamp(0.0, 1.0);
    2.0 * EARTH_RADIUS_M * libm::asin(h.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    #[test]
    fn destination_distance_round_trips() {
        let starts = [
            (0.0, 0.0),
            (48.85, 2.35),
            (-33.9, 151.2),
            (89.9, 0.0),
            (-89.99, 120.0),
        ];
        for &(lat, lon) in &starts {
            for k in 0..16 {
                let bearing = f64::from(k) * PI / 8.0;
                for &d in &[1.0, 250.0, 12_000.0, 40_000.0] {
                    let (lat2, lon2) = destination(lat, lon, bearing, d);
                    assert!((-90.0..=90.0).contains(&lat2) && (-180.0..=180.0).contains(&lon2));
                    let back = distance_m(lat, lon, lat2, lon2);
                    // asin loses digits near the poles: micrometres, far below any use here.
                    assert!(
                        (back - d).abs() < 1e-5 + 1e-9 * d,
                        "{lat},{lon} {k} {d}: {back}"
                    );
                }
            }
        }
    }

    #[test]
    fn crossing_the_pole_flips_longitude() {
        // 20 km north from 89.9°N at 0°E ends up on the 180° meridian side.
        let (lat, lon) = destination(89.9, 0.0, 0.0, 20_000.0);
        assert!(lat < 90.0 && lat > 89.8);
        assert!((lon.abs() - 180.0).abs() < 1e-6);
    }

    #[test]
    fn wraps_longitudes() {
        assert_eq!(wrap_longitude(180.0), 180.0);
        assert_eq!(wrap_longitude(-180.0), -180.0);
        assert_eq!(wrap_longitude(360.0), 0.0);
        assert_eq!(wrap_longitude(181.0), -179.0);
        assert_eq!(wrap_longitude(-181.0), 179.0);
        assert!((-180.0..=180.0).contains(&wrap_longitude(-1e-300)));
    }
}

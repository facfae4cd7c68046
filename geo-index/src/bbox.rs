//! Latitude/longitude boxes, including boxes that cross the antimeridian, and the bounding box
//! of a circle on the sphere.

use crate::latlng::{EARTH_RADIUS_M, HALF_CIRCUMFERENCE_M};
use crate::{Error, LatLng};

/// A latitude/longitude box in degrees, edges included.
///
/// When `west > east` the box crosses the antimeridian: it covers `[west, 180]` and
/// `[-180, east]`. Longitudes -180 and 180 are the same meridian.
///
/// ```
/// use geo_index::{BoundingBox, LatLng};
/// // Fiji straddles 180°.
/// let fiji = BoundingBox::new(-21.0, 177.0, -12.0, -178.0)?;
/// assert!(fiji.crosses_antimeridian());
/// assert!(fiji.contains(LatLng::new(-17.8, 178.1)?));
/// assert!(fiji.contains(LatLng::new(-16.5, -179.9)?));
/// assert!(!fiji.contains(LatLng::new(-17.0, 0.0)?));
/// # Ok::<(), geo_index::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoundingBox {
    south: f64,
    west: f64,
    north: f64,
    east: f64,
}

impl BoundingBox {
    /// Builds a box from its south-west and north-east corners.
    ///
    /// # Errors
    /// Invalid coordinates, or `south > north`.
    ///
    /// ```
    /// use geo_index::BoundingBox;
    /// assert!(BoundingBox::new(10.0, 0.0, -10.0, 5.0).is_err());
    /// ```
    pub fn new(south: f64, west: f64, north: f64, east: f64) -> Result<Self, Error> {
        let sw = LatLng::new(south, west)?;
        let ne = LatLng::new(north, east)?;
        if sw.lat() > ne.lat() {
            return Err(Error::InvalidBoundingBox { south, north });
        }
        Ok(Self {
            south: sw.lat(),
            west: sw.lng(),
            north: ne.lat(),
            east: ne.lng(),
        })
    }

    /// The whole sphere.
    ///
    /// ```
    /// # use geo_index::{BoundingBox, LatLng};
    /// assert!(BoundingBox::WORLD.contains(LatLng::new(-90.0, 180.0)?));
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub const WORLD: BoundingBox = BoundingBox {
        south: -90.0,
        west: -180.0,
        north: 90.0,
        east: 180.0,
    };

    /// Southern edge in degrees.
    ///
    /// ```
    /// # use geo_index::BoundingBox;
    /// assert_eq!(BoundingBox::WORLD.south(), -90.0);
    /// ```
    pub fn south(&self) -> f64 {
        self.south
    }

    /// Western edge in degrees.
    ///
    /// ```
    /// # use geo_index::BoundingBox;
    /// assert_eq!(BoundingBox::WORLD.west(), -180.0);
    /// ```
    pub fn west(&self) -> f64 {
        self.west
    }

    /// Northern edge in degrees.
    ///
    /// ```
    /// # use geo_index::BoundingBox;
    /// assert_eq!(BoundingBox::WORLD.north(), 90.0);
    /// ```
    pub fn north(&self) -> f64 {
        self.north
    }

    /// Eastern edge in degrees.
    ///
    /// ```
    /// # use geo_index::BoundingBox;
    /// assert_eq!(BoundingBox::WORLD.east(), 180.0);
    /// ```
    pub fn east(&self) -> f64 {
        self.east
    }

    /// True when the box wraps from 180° to -180°.
    ///
    /// ```
    /// # use geo_index::BoundingBox;
    /// assert!(BoundingBox::new(0.0, 170.0, 1.0, -170.0)?.crosses_antimeridian());
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn crosses_antimeridian(&self) -> bool {
        self.west > self.east
    }

    /// Whether `point` is inside the box or on its edge.
    ///
    /// ```
    /// # use geo_index::{BoundingBox, LatLng};
    /// let b = BoundingBox::new(0.0, 170.0, 10.0, 180.0)?;
    /// assert!(b.contains(LatLng::new(5.0, -180.0)?)); // -180 is 180
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn contains(&self, point: LatLng) -> bool {
        if point.lat() < self.south || point.lat() > self.north {
            return false;
        }
        self.lng_intervals()
            .into_iter()
            .flatten()
            .any(|(west, east)| {
                let lng = point.lng();
                (west..=east).contains(&lng)
                    || (lng == -180.0 && east == 180.0)
                    || (lng == 180.0 && west == -180.0)
            })
    }

    /// The box's longitude span as one or two non-wrapping intervals.
    pub(crate) fn lng_intervals(&self) -> [Option<(f64, f64)>; 2] {
        if self.crosses_antimeridian() {
            [Some((self.west, 180.0)), Some((-180.0, self.east))]
        } else {
            [Some((self.west, self.east)), None]
        }
    }

    /// A box containing every point within `radius_m` of `centre`, slightly enlarged so that
    /// rounding never leaves a point of the circle outside it.
    ///
    /// Exact for a spherical cap: latitudes `φ ± δ`, and longitudes `λ ± asin(sin δ / cos φ)`
    /// unless the cap contains a pole, in which case every longitude.
    ///
    /// ```
    /// # use geo_index::{BoundingBox, LatLng};
    /// let b = BoundingBox::around(LatLng::new(89.9, 0.0)?, 50_000.0);
    /// assert_eq!((b.north(), b.west(), b.east()), (90.0, -180.0, 180.0));
    /// let b = BoundingBox::around(LatLng::new(0.0, 179.99)?, 10_000.0);
    /// assert!(b.crosses_antimeridian());
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn around(centre: LatLng, radius_m: f64) -> BoundingBox {
        if radius_m.is_nan() || radius_m >= HALF_CIRCUMFERENCE_M {
            return BoundingBox::WORLD;
        }
        let radius_m = radius_m.max(0.0);
        // Angular radius in degrees, enlarged by a margin far above rounding error.
        let delta = (radius_m / EARTH_RADIUS_M).to_degrees() * (1.0 + 1e-9) + 1e-9;
        let south = centre.lat() - delta;
        let north = centre.lat() + delta;
        if south <= -90.0 || north >= 90.0 {
            return BoundingBox {
                south: south.max(-90.0),
                west: -180.0,
                north: north.min(90.0),
                east: 180.0,
            };
        }
        // Near a pole `ratio` approaches 1, where asin's slope is unbounded: an ulp of error
        // in `ratio` becomes ~1e-6° of longitude. Inflating `ratio` by a relative 1e-9 (far
        // above its rounding error) keeps the box a superset; it is only a search seed.
        let ratio =
            libm::sin(delta.to_radians()) / libm::cos(centre.lat().to_radians()) * (1.0 + 1e-9);
        if ratio >= 1.0 {
            return BoundingBox {
                south,
                west: -180.0,
                north,
                east: 180.0,
            };
        }
        let dlng = libm::asin(ratio).to_degrees() + 1e-9;
        if dlng >= 180.0 {
            return BoundingBox {
                south,
                west: -180.0,
                north,
                east: 180.0,
            };
        }
        let mut west = centre.lng() - dlng;
        let mut east = centre.lng() + dlng;
        if west < -180.0 {
            west += 360.0;
        }
        if east > 180.0 {
            east -= 360.0;
        }
        BoundingBox {
            south,
            west,
            north,
            east,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ll(lat: f64, lng: f64) -> LatLng {
        LatLng::new(lat, lng).unwrap()
    }

    #[test]
    fn around_contains_the_circle() {
        // Walk the boundary of circles and check every boundary point is in the box.
        let centres = [
            ll(0.0, 0.0),
            ll(60.0, 179.5),
            ll(-70.0, -179.9),
            ll(89.0, 10.0),
        ];
        for centre in centres {
            for radius in [1.0, 1_000.0, 150_000.0, 1_500_000.0] {
                let b = BoundingBox::around(centre, radius);
                let delta = radius / EARTH_RADIUS_M;
                for step in 0..360 {
                    let bearing = f64::from(step).to_radians();
                    let lat1 = centre.lat().to_radians();
                    let lat2 = (lat1.sin() * delta.cos()
                        + lat1.cos() * delta.sin() * bearing.cos())
                    .asin();
                    let lng2 = centre.lng().to_radians()
                        + (bearing.sin() * delta.sin() * lat1.cos())
                            .atan2(delta.cos() - lat1.sin() * lat2.sin());
                    let mut lng2 = lng2.to_degrees();
                    while lng2 > 180.0 {
                        lng2 -= 360.0;
                    }
                    while lng2 < -180.0 {
                        lng2 += 360.0;
                    }
                    let p = ll(lat2.to_degrees().clamp(-90.0, 90.0), lng2);
                    assert!(b.contains(p), "{centre:?} r={radius} {p:?} not in {b:?}");
                }
            }
        }
    }

    #[test]
    fn antimeridian_box() {
        let b = BoundingBox::new(-10.0, 170.0, 10.0, -170.0).unwrap();
        assert!(b.contains(ll(0.0, 180.0)));
        assert!(b.contains(ll(0.0, -180.0)));
        assert!(b.contains(ll(0.0, -175.0)));
        assert!(!b.contains(ll(0.0, 0.0)));
        assert!(!b.contains(ll(11.0, 175.0)));
    }
}

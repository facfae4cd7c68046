//! The crate's one error type.

use std::fmt;

/// Why a value was refused at the crate's boundary.
///
/// ```
/// use geo_index::{Error, LatLng};
/// let err = LatLng::new(95.0, 0.0).unwrap_err();
/// assert_eq!(err, Error::InvalidLatitude(95.0));
/// assert_eq!(err.to_string(), "latitude must be a number in [-90, 90], got 95");
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// Latitude NaN, infinite or outside [-90, 90].
    InvalidLatitude(f64),
    /// Longitude NaN, infinite or outside [-180, 180].
    InvalidLongitude(f64),
    /// Radius NaN, infinite or negative.
    InvalidRadius(f64),
    /// A bounding box whose south edge is north of its north edge.
    InvalidBoundingBox {
        /// Southern latitude.
        south: f64,
        /// Northern latitude.
        north: f64,
    },
    /// A quadtree leaf capacity outside the supported range.
    InvalidLeafCapacity(usize),
    /// A polygon that is not valid GeoJSON (RFC 7946), or too large; the reason.
    InvalidPolygon(&'static str),
    /// A map tile zoom beyond [`crate::MAX_TILE_ZOOM`].
    InvalidZoom(u8),
    /// A tag number of 64 or more.
    InvalidTag(u8),
    /// An entry id too far beyond the ids in use: ids index a dense table (see
    /// [`crate::EntryId`]), so accepting it would allocate memory for every id below it.
    SparseId {
        /// The id refused.
        id: crate::EntryId,
        /// Ids below this were accepted.
        limit: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidLatitude(v) => {
                write!(f, "latitude must be a number in [-90, 90], got {v}")
            }
            Error::InvalidLongitude(v) => {
                write!(f, "longitude must be a number in [-180, 180], got {v}")
            }
            Error::InvalidRadius(v) => {
                write!(f, "radius must be a finite number of metres >= 0, got {v}")
            }
            Error::InvalidBoundingBox { south, north } => {
                write!(
                    f,
                    "bounding box south ({south}) is north of its north ({north})"
                )
            }
            Error::InvalidLeafCapacity(v) => {
                write!(f, "leaf capacity must be in 1..=4096, got {v}")
            }
            Error::InvalidPolygon(reason) => write!(f, "invalid polygon: {reason}"),
            Error::InvalidTag(n) => write!(f, "a tag must be below 64, got {n}"),
            Error::SparseId { id, limit } => write!(
                f,
                "entry id {id} is too sparse: ids index a dense table, this index takes ids \
                 below {limit}"
            ),
            Error::InvalidZoom(z) => {
                write!(
                    f,
                    "tile zoom must be at most {}, got {z}",
                    crate::MAX_TILE_ZOOM
                )
            }
        }
    }
}

impl std::error::Error for Error {}

//! Test and benchmark data for the `nearby` geospatial indexes.
//!
//! Real places — the GeoNames "cities with a population of at least 1000" extract, bundled
//! in the crate (CC-BY 4.0, <https://www.geonames.org/>) — and a seeded generator of
//! synthetic businesses clustered around them in proportion to population, so benchmarks
//! see dense cities and empty oceans.
//!
//! ```
//! use nearby_data::{cities, Generator};
//!
//! let cities = cities()?;
//! let generator = Generator::new(&cities, 42)?;
//! for b in generator.businesses(3) {
//!     println!("{} {:?} at ({:.6}, {:.6}) is a {}", b.id, b.name, b.latitude, b.longitude, b.category);
//! }
//! // Benchmarks: millions of name-less points, no allocation per point.
//! let points: Vec<(f64, f64)> =
//!     generator.points(10_000).map(|p| (p.latitude, p.longitude)).collect();
//! assert_eq!(points.len(), 10_000);
//! # Ok::<(), nearby_data::DataError>(())
//! ```
//!
//! # Layout
//!
//! - `city`: [`City`], the bundled [`CITIES_CSV`], [`cities`] and [`parse_cities`].
//! - `csv`: the small RFC 4180 splitter and quoter the parser and the CLI share.
//! - `generator`: [`Generator`], [`Business`], [`Point`]: population-weighted city draw,
//!   truncated exponential offset ([`offset_scale_m`], [`MAX_OFFSET_M`]), category, name.
//! - `alias`: the exact integer alias table behind the population-weighted city draw.
//! - `category`: [`CATEGORIES`] and their weights ([`TOTAL_CATEGORY_WEIGHT`]).
//! - `names`: word lists and patterns for business names ("Golden Lotus Restaurant").
//! - `geo`: [`EARTH_RADIUS_M`], [`destination`], [`distance_m`], [`wrap_longitude`], all on
//!   pure-Rust `libm` so every machine computes the same bits.
//! - `uniform`: [`uniform_points`], uniform on the sphere, for contrast in benchmarks.
//! - `rng`: [`SplitMix64`] and [`mix64`], the only randomness.
//! - `error`: [`DataError`].
//! - `bin/generate.rs`: the `generate` command writing businesses as CSV
//!   (`id,name,latitude,longitude,category`), see the crate's README.

mod alias;
mod category;
mod city;
mod csv;
mod error;
mod generator;
mod geo;
mod names;
mod rng;
mod uniform;

pub use category::{CATEGORIES, Category, TOTAL_CATEGORY_WEIGHT};
pub use city::{CITIES_CSV, CITIES_HEADER, City, cities, parse_cities};
pub use error::DataError;
pub use generator::{Business, Generator, MAX_OFFSET_M, Point, offset_scale_m};
pub use geo::{EARTH_RADIUS_M, destination, distance_m, wrap_longitude};
pub use rng::{SplitMix64, mix64};
pub use uniform::uniform_points;

/// Appends `field` to `out` as one CSV field, wrapped in double quotes (inner quotes
/// doubled) only when it contains a comma, a quote or a line break.
///
/// ```
/// let mut line = String::new();
/// nearby_data::push_csv_field(&mut line, "Brgy. Tinigao, Kalibo");
/// assert_eq!(line, "\"Brgy. Tinigao, Kalibo\"");
/// ```
pub fn push_csv_field(out: &mut String, field: &str) {
    csv::push_field(out, field);
}

/// Splits one CSV line (no line breaks inside fields) into its fields, undoing
/// [`push_csv_field`]'s quoting. Errors describe malformed quoting.
///
/// ```
/// let fields = nearby_data::split_csv_line(r#"7,"Ñuñoa, ""Santiago""",cafe"#)?;
/// assert_eq!(fields, ["7", "Ñuñoa, \"Santiago\"", "cafe"]);
/// # Ok::<(), String>(())
/// ```
pub fn split_csv_line(line: &str) -> Result<Vec<String>, String> {
    csv::split_record(line)
}

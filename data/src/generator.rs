//! Synthetic businesses clustered around real cities.

use crate::alias::AliasTable;
use crate::category::{self, CATEGORIES, TOTAL_CATEGORY_WEIGHT};
use crate::geo::{EARTH_RADIUS_M, destination_from};
use crate::{City, DataError, SplitMix64, mix64, names};
use std::f64::consts::TAU;
use std::ops::Range;

/// No business lies farther than this from the city it was drawn around (metres).
///
/// ```
/// assert_eq!(nearby_data::MAX_OFFSET_M, 40_000.0);
/// ```
pub const MAX_OFFSET_M: f64 = 40_000.0;

/// Mean distance scale of the smallest towns (population 1000), in metres.
const BASE_SCALE_M: f64 = 300.0;
/// Upper bound on the distance scale, reached at about 2.5 million inhabitants.
const MAX_SCALE_M: f64 = 15_000.0;

/// Mean offset (metres) of businesses from a city of `population` before truncation at
/// [`MAX_OFFSET_M`]: `300 m × sqrt(population / 1000)`, clamped to `[300 m, 15 km]`.
/// Offsets are exponentially distributed with this mean, so towns are tight and
/// metropolises sprawl.
///
/// ```
/// use nearby_data::offset_scale_m;
///
/// assert_eq!(offset_scale_m(1_000), 300.0);
/// assert_eq!(offset_scale_m(100_000), 3_000.0);
/// assert_eq!(offset_scale_m(20_000_000), 15_000.0);
/// ```
#[must_use]
pub fn offset_scale_m(population: u32) -> f64 {
    (BASE_SCALE_M * (f64::from(population) / 1000.0).sqrt()).clamp(BASE_SCALE_M, MAX_SCALE_M)
}

/// A synthetic business.
///
/// ```
/// let cities = nearby_data::cities()?;
/// let b = nearby_data::Generator::new(&cities, 1)?.business(0);
/// assert_eq!(b.id, 0);
/// assert!(!b.name.is_empty());
/// # Ok::<(), nearby_data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Business {
    /// Position in the generated sequence: `0..n`.
    pub id: u64,
    /// A plausible name such as "Golden Lotus Restaurant". May contain commas and quotes
    /// (some names include the city's name).
    pub name: String,
    /// Latitude in degrees, `[-90, 90]`.
    pub latitude: f64,
    /// Longitude in degrees, `[-180, 180]`.
    pub longitude: f64,
    /// One of the [`CATEGORIES`] names.
    pub category: &'static str,
}

/// A business without its name: what benchmarks need, produced without allocating.
///
/// ```
/// let cities = nearby_data::cities()?;
/// let p = nearby_data::Generator::new(&cities, 1)?.point(0);
/// assert!(cities[p.city as usize].population > 0);
/// # Ok::<(), nearby_data::DataError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Latitude in degrees, `[-90, 90]`.
    pub latitude: f64,
    /// Longitude in degrees, `[-180, 180]`.
    pub longitude: f64,
    /// One of the [`CATEGORIES`] names.
    pub category: &'static str,
    /// Index, in the slice given to [`Generator::new`], of the city it was drawn around.
    pub city: u32,
}

/// Per-city constants of the hot path.
#[derive(Debug, Clone, Copy)]
struct Site {
    sin_lat: f64,
    cos_lat: f64,
    lon: f64,
    /// Mean angular offset (radians).
    scale: f64,
    /// `1 - exp(-MAX_OFFSET_M / scale_m)`: maps a uniform draw onto the truncated exponential.
    truncation: f64,
}

/// How many businesses the iterators draw at once: the table look-ups of a batch are
/// independent, so their cache misses overlap instead of queueing one per business.
const BATCH: usize = 64;

/// A seeded, deterministic source of businesses spread over the world like its people.
///
/// Business `id` is a pure function of (cities, seed, id): [`Generator::point`] and
/// [`Generator::business`] give random access, the iterators are `0..n` in order, and the
/// same seed produces the same bits on every machine (integer randomness, pure-Rust
/// `libm` trigonometry, no hash maps).
///
/// For each business: a city is drawn with probability proportional to its population
/// (Walker's alias table, exact integer weights); a bearing uniformly; a distance from an
/// exponential distribution with mean [`offset_scale_m`] truncated at [`MAX_OFFSET_M`];
/// the position is the great-circle destination on the sphere of radius
/// [`EARTH_RADIUS_M`](crate::EARTH_RADIUS_M), longitude wrapped across ±180° and the
/// poles crossed correctly. The category follows the [`CATEGORIES`] weights.
///
/// ```
/// use nearby_data::{cities, Generator};
///
/// let cities = cities()?;
/// let generator = Generator::new(&cities, 42)?;
/// let first: Vec<_> = generator.businesses(3).collect();
/// assert_eq!(first, Generator::new(&cities, 42)?.businesses(3).collect::<Vec<_>>());
/// assert_eq!(first[2], generator.business(2));
/// # Ok::<(), nearby_data::DataError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Generator {
    seed: u64,
    key: u64,
    /// Draws a city index with probability proportional to its population.
    sites: AliasTable<Site>,
    city_names: Vec<Box<str>>,
}

impl Generator {
    /// Prepares a generator over `cities` (typically [`cities()`](crate::cities)); takes
    /// about 20 ms for the bundled 112,000 cities.
    ///
    /// Cities with population 0 are never drawn. Fails with [`DataError::NoPopulation`] if
    /// no city has inhabitants, and with [`DataError::InvalidCity`] for a coordinate that
    /// is not finite or out of range.
    ///
    /// ```
    /// use nearby_data::{City, DataError, Generator};
    ///
    /// let ghost = City {
    ///     geonameid: 1,
    ///     name: "Ghost Town".into(),
    ///     country: "US".into(),
    ///     latitude: 35.0,
    ///     longitude: -115.0,
    ///     population: 0,
    /// };
    /// assert_eq!(Generator::new(&[ghost], 1).unwrap_err(), DataError::NoPopulation);
    /// assert_eq!(Generator::new(&[], 1).unwrap_err(), DataError::NoPopulation);
    /// ```
    pub fn new(cities: &[City], seed: u64) -> Result<Self, DataError> {
        if u32::try_from(cities.len()).is_err() {
            return Err(DataError::InvalidCity {
                index: cities.len() - 1,
                message: "more than u32::MAX cities".to_owned(),
            });
        }
        let mut items = Vec::with_capacity(cities.len());
        for (index, city) in cities.iter().enumerate() {
            let valid = city.latitude.is_finite()
                && city.longitude.is_finite()
                && (-90.0..=90.0).contains(&city.latitude)
                && (-180.0..=180.0).contains(&city.longitude);
            if !valid {
                return Err(DataError::InvalidCity {
                    index,
                    message: format!(
                        "coordinates ({}, {}) out of range",
                        city.latitude, city.longitude
                    ),
                });
            }
            let phi = city.latitude.to_radians();
            let scale_m = offset_scale_m(city.population);
            let site = Site {
                sin_lat: libm::sin(phi),
                cos_lat: libm::cos(phi),
                lon: city.longitude,
                scale: scale_m / EARTH_RADIUS_M,
                truncation: -libm::expm1(-MAX_OFFSET_M / scale_m),
            };
            items.push((city.population, site));
        }
        let sites = AliasTable::new(items).ok_or(DataError::NoPopulation)?;
        let city_names = cities.iter().map(|c| c.name.as_str().into()).collect();
        Ok(Self {
            seed,
            key: mix64(seed ^ 0x6E65_6172_6279_2D64),
            sites,
            city_names,
        })
    }

    /// The seed this generator was built with.
    ///
    /// ```
    /// let cities = nearby_data::cities()?;
    /// assert_eq!(nearby_data::Generator::new(&cities, 9)?.seed(), 9);
    /// # Ok::<(), nearby_data::DataError>(())
    /// ```
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The random stream of business `id`, independent of every other id.
    fn stream(&self, id: u64) -> SplitMix64 {
        SplitMix64::new(mix64(
            self.key
                .wrapping_add(id.wrapping_mul(0xD1B5_4A32_D192_ED03)),
        ))
    }

    /// Everything about a business but its name, from its city onwards; `rng` is left
    /// ready for the name. Returns the point and its category's index.
    fn place(rng: &mut SplitMix64, city: usize, site: &Site) -> (Point, usize) {
        let bearing = rng.next_f64() * TAU;
        let u = rng.next_f64();
        let delta = -site.scale * libm::log1p(-u * site.truncation);
        let (sin_t, cos_t) = libm::sincos(bearing);
        let (latitude, longitude) =
            destination_from(site.sin_lat, site.cos_lat, site.lon, sin_t, cos_t, delta);
        let r = u32::try_from(rng.below(u64::from(TOTAL_CATEGORY_WEIGHT))).unwrap_or(0);
        let category = category::pick(r);
        // `new` guarantees that city indexes fit in u32.
        let city = u32::try_from(city).unwrap_or(u32::MAX);
        (
            Point {
                latitude,
                longitude,
                category: CATEGORIES[category].name,
                city,
            },
            category,
        )
    }

    /// Names a business drawn by [`place`](Self::place).
    fn name(&self, rng: &mut SplitMix64, point: &Point, category: usize) -> String {
        let mut name = String::with_capacity(32);
        // Looked up only for the names that use it: a cache miss saved for most.
        let city = || self.city_names.get(point.city as usize).map_or("", |n| n);
        names::build(rng, &CATEGORIES[category], city, &mut name);
        name
    }

    /// Business `id` without its name.
    ///
    /// ```
    /// let cities = nearby_data::cities()?;
    /// let g = nearby_data::Generator::new(&cities, 5)?;
    /// let (p, b) = (g.point(17), g.business(17));
    /// assert_eq!((p.latitude, p.longitude, p.category), (b.latitude, b.longitude, b.category));
    /// # Ok::<(), nearby_data::DataError>(())
    /// ```
    #[must_use]
    pub fn point(&self, id: u64) -> Point {
        let mut rng = self.stream(id);
        let city = self.sites.sample(&mut rng);
        Self::place(&mut rng, city, self.sites.payload(city)).0
    }

    /// Business `id`, name included.
    ///
    /// ```
    /// let cities = nearby_data::cities()?;
    /// let g = nearby_data::Generator::new(&cities, 5)?;
    /// assert_eq!(g.business(3), g.businesses(4).last().expect("4 items"));
    /// # Ok::<(), nearby_data::DataError>(())
    /// ```
    #[must_use]
    pub fn business(&self, id: u64) -> Business {
        let mut rng = self.stream(id);
        let city = self.sites.sample(&mut rng);
        let (p, category) = Self::place(&mut rng, city, self.sites.payload(city));
        let name = self.name(&mut rng, &p, category);
        Business {
            id,
            name,
            latitude: p.latitude,
            longitude: p.longitude,
            category: p.category,
        }
    }

    /// Businesses `0..n` without names, equal to `(0..n).map(|id| self.point(id))` but
    /// faster (batched) and with no allocation per item: about 10 million in 2–4 s on one
    /// core of a release build.
    ///
    /// ```
    /// let cities = nearby_data::cities()?;
    /// let g = nearby_data::Generator::new(&cities, 5)?;
    /// let points: Vec<_> = g.points(1000).collect();
    /// assert_eq!(points.len(), 1000);
    /// assert_eq!(points[999], g.point(999));
    /// assert!(points.iter().all(|p| p.latitude.abs() <= 90.0 && p.longitude.abs() <= 180.0));
    /// # Ok::<(), nearby_data::DataError>(())
    /// ```
    pub fn points(&self, n: usize) -> impl ExactSizeIterator<Item = Point> + '_ {
        self.points_range(0..n as u64)
    }

    /// Businesses with the given ids, without names: the same points as
    /// [`points`](Self::points) yields at those positions. Lets threads split the work.
    ///
    /// ```
    /// let cities = nearby_data::cities()?;
    /// let g = nearby_data::Generator::new(&cities, 5)?;
    /// let tail: Vec<_> = g.points_range(600..1000).collect();
    /// assert_eq!(tail, g.points(1000).skip(600).collect::<Vec<_>>());
    /// # Ok::<(), nearby_data::DataError>(())
    /// ```
    pub fn points_range(&self, ids: Range<u64>) -> impl ExactSizeIterator<Item = Point> + '_ {
        Batched::new(self, ids).map(|(_, point, _, _)| point)
    }

    /// Businesses `0..n`, names included (one `String` allocation each); equal to
    /// `(0..n).map(|id| self.business(id))`.
    ///
    /// ```
    /// let cities = nearby_data::cities()?;
    /// let g = nearby_data::Generator::new(&cities, 5)?;
    /// let ids: Vec<u64> = g.businesses(3).map(|b| b.id).collect();
    /// assert_eq!(ids, [0, 1, 2]);
    /// # Ok::<(), nearby_data::DataError>(())
    /// ```
    pub fn businesses(&self, n: usize) -> impl ExactSizeIterator<Item = Business> + '_ {
        self.businesses_range(0..n as u64)
    }

    /// Businesses with the given ids, names included.
    ///
    /// ```
    /// let cities = nearby_data::cities()?;
    /// let g = nearby_data::Generator::new(&cities, 5)?;
    /// let b: Vec<_> = g.businesses_range(10..12).collect();
    /// assert_eq!((b[0].id, b[1].id), (10, 11));
    /// assert_eq!(b[1], g.business(11));
    /// # Ok::<(), nearby_data::DataError>(())
    /// ```
    pub fn businesses_range(
        &self,
        ids: Range<u64>,
    ) -> impl ExactSizeIterator<Item = Business> + '_ {
        Batched::new(self, ids).map(|(id, p, category, mut rng)| Business {
            id,
            name: self.name(&mut rng, &p, category),
            latitude: p.latitude,
            longitude: p.longitude,
            category: p.category,
        })
    }
}

/// A range of ids drawn [`BATCH`] at a time: first every city of the batch (independent
/// table look-ups the CPU overlaps), then their positions. Yields, per id, the point, its
/// category index and the stream positioned for the name, exactly as the one-at-a-time
/// path would.
struct Batched<'a> {
    generator: &'a Generator,
    next_id: u64,
    end: u64,
    /// Per slot: the point, its category index and the stream state after placing it.
    buffer: [(Point, usize, u64); BATCH],
    pos: usize,
    len: usize,
}

impl<'a> Batched<'a> {
    fn new(generator: &'a Generator, ids: Range<u64>) -> Self {
        let empty = Point {
            latitude: 0.0,
            longitude: 0.0,
            category: "",
            city: 0,
        };
        Self {
            generator,
            next_id: ids.start,
            end: ids.end.max(ids.start),
            buffer: [(empty, 0, 0); BATCH],
            pos: 0,
            len: 0,
        }
    }

    fn refill(&mut self) {
        let first = self.next_id;
        self.len = usize::try_from(self.end - first).map_or(BATCH, |left| left.min(BATCH));
        let sites = &self.generator.sites;
        let blank = Site {
            sin_lat: 0.0,
            cos_lat: 0.0,
            lon: 0.0,
            scale: 0.0,
            truncation: 0.0,
        };
        let mut drawn = [(0u64, 0usize, blank); BATCH];
        for (k, slot) in drawn.iter_mut().enumerate().take(self.len) {
            let mut rng = self.generator.stream(first + k as u64);
            let city = sites.sample(&mut rng);
            // Copying the site here lets the CPU overlap the batch's memory loads.
            *slot = (rng.state(), city, *sites.payload(city));
        }
        for (slot, (state, city, site)) in self.buffer.iter_mut().zip(&drawn).take(self.len) {
            let mut rng = SplitMix64::new(*state);
            let (point, category) = Generator::place(&mut rng, *city, site);
            *slot = (point, category, rng.state());
        }
        self.pos = 0;
    }
}

impl Iterator for Batched<'_> {
    type Item = (u64, Point, usize, SplitMix64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos == self.len {
            if self.next_id == self.end {
                return None;
            }
            self.refill();
        }
        let (point, category, state) = self.buffer[self.pos];
        let id = self.next_id;
        self.pos += 1;
        self.next_id += 1;
        Some((id, point, category, SplitMix64::new(state)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.end - self.next_id).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batched<'_> {}

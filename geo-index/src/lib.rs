//! In-memory geospatial indexes answering *what is near this point?* on a sphere.
//!
//! Every index kind implements [`SpatialIndex`]: insert, remove and move entries by id in
//! O(log n), bulk build, and radius queries that return entries **nearest first, lazily**,
//! resumable after a [`Keyset`] and filtered during the traversal.
//!
//! One Earth model everywhere: a sphere of radius [`EARTH_RADIUS_M`] = 6,371,008.8 m, with
//! great-circle distances by the haversine formula ([`LatLng::distance_m`]).
//!
//! ```
//! use geo_index::{LatLng, QuadTree, Query, SpatialIndex};
//!
//! let index = QuadTree::build(vec![
//!     (1, LatLng::new(48.8584, 2.2945)?),  // Eiffel Tower
//!     (2, LatLng::new(48.8606, 2.3376)?),  // Louvre
//!     (3, LatLng::new(51.5007, -0.1246)?), // Big Ben
//! ]);
//! let nearest: Vec<u32> = index
//!     .nearest(LatLng::new(48.8566, 2.3522)?, 2, 10_000.0)?
//!     .iter()
//!     .map(|n| n.id)
//!     .collect();
//! assert_eq!(nearest, [2, 1]);
//! # Ok::<(), geo_index::Error>(())
//! ```
//!
//! # Features
//!
//! The [`QuadTree`] (what the service uses) and [`BruteForce`] (the reference) are always
//! built. The other kinds are measured baselines behind features, so that their
//! dependencies are compiled only where asked for: `geohash` (`GeohashIndex`, the
//! `geohash` and `geohash_key` functions), `s2` (`S2Index`), `h3` (`H3Index`), and
//! `all-kinds` for all three (the benchmarks need it).
//!
//! # Layout
//!
//! - [`latlng`](LatLng): the checked coordinate type and the haversine distance; every other
//!   module measures through it, so distances are bit-identical across index kinds.
//! - `bbox`: [`BoundingBox`], boxes that may cross the antimeridian, and the bounding box of a
//!   circle on the sphere (exact for caps that contain a pole).
//! - `query`: [`Query`], [`Keyset`] and [`Neighbour`]: what a search asks and answers.
//! - `region`: [`Region`] and [`Polygon`]: a box or GeoJSON polygons a search is restricted
//!   to, and how an index cell relates to them (outside, inside, or both).
//! - `tag`: [`Tag`], one of 64 labels an entry may carry; the quadtree prunes subtrees by it.
//! - `ties`: [`TieOrder::ties_by`], equal distances in the caller's order (a business id, not
//!   an entry id), lazily.
//! - `tile`: Web Mercator [`Tile`]s and the [`Cluster`]s a zoomed-out map draws.
//! - `search`: the best-first traversal all index kinds share; an index kind only says how to
//!   open one of its cells.
//! - `slots`: the dense id to position table each index keeps.
//! - `brute`: [`BruteForce`], the reference every index kind is tested against.
//! - `geohash_index` (feature `geohash`): `GeohashIndex`, 64-bit interleaved cells in a B-tree.
//! - `quadtree`: [`QuadTree`], adaptive, splitting and merging as entries come and go.
//! - `cell_table`: the storage S2 and H3 share: fine cell keys in a B-tree, so a coarser
//!   cell is a key range.
//! - `s2_index` (feature `s2`): `S2Index`, S2 cell ids covered with `RegionCoverer` over a cap.
//! - `h3_index` (feature `h3`): `H3Index`, H3 cells gathered with `grid_disk`, filtered exactly.

mod bbox;
mod brute;
#[cfg(any(feature = "s2", feature = "h3"))]
mod cell_table;
mod error;
#[cfg(feature = "geohash")]
mod geohash_index;
#[cfg(feature = "h3")]
mod h3_index;
mod latlng;
mod quadtree;
mod query;
mod region;
#[cfg(feature = "s2")]
mod s2_index;
mod search;
mod slots;
mod tag;
mod ties;
mod tile;

pub use bbox::BoundingBox;
pub use brute::BruteForce;
pub use error::Error;
#[cfg(feature = "geohash")]
pub use geohash_index::{GeohashIndex, geohash, geohash_key};
#[cfg(feature = "h3")]
pub use h3_index::H3Index;
pub use latlng::{EARTH_RADIUS_M, HALF_CIRCUMFERENCE_M, LatLng};
pub use quadtree::QuadTree;
pub use query::{Keyset, Neighbour, Query};
pub use region::{MAX_VERTICES, Polygon, Region};
#[cfg(feature = "s2")]
pub use s2_index::S2Index;
pub use tag::Tag;
pub use ties::{Ranked, TieOrder, TiesBy};
pub use tile::{Cluster, MAX_TILE_ZOOM, MERCATOR_MAX_LATITUDE, Tile, TileGrid};

/// An entry's id. Ids index a dense table, so memory grows with the largest id: allocate them
/// densely (the service keeps a free list).
///
/// An index takes an id only below [`dense_id_limit`] of its table and entry count (the
/// table's size or twice the entries, whichever is larger, plus [`SPARE_IDS`]): a sparse id
/// is [`Error::SparseId`] from [`SpatialIndex::try_insert`] and [`SpatialIndex::try_build`],
/// and a panic from `insert` and `build`, never a table grown to it (a single id near
/// `u32::MAX` would otherwise allocate 64 GiB).
pub type EntryId = u32;

/// Ids an index accepts beyond its table and twice its entries: room for a caller that
/// numbers entries from a counter with gaps.
pub const SPARE_IDS: usize = 1 << 16;

/// One past the largest id an index whose id table has `id_bound` slots and which holds
/// `len` entries accepts: the table grows at most to about twice what its entries need.
///
/// ```
/// assert_eq!(geo_index::dense_id_limit(0, 0), geo_index::SPARE_IDS);
/// assert_eq!(geo_index::dense_id_limit(10, 1_000), 2_000 + geo_index::SPARE_IDS);
/// ```
#[must_use]
pub const fn dense_id_limit(id_bound: usize, len: usize) -> usize {
    let twice = len.saturating_mul(2);
    let base = if id_bound > twice { id_bound } else { twice };
    base.saturating_add(SPARE_IDS)
}

/// [`Error::SparseId`] unless `id` is below [`dense_id_limit`].
pub(crate) fn check_dense(id: EntryId, id_bound: usize, len: usize) -> Result<(), Error> {
    let limit = dense_id_limit(id_bound, len);
    if (id as usize) < limit {
        Ok(())
    } else {
        Err(Error::SparseId { id, limit })
    }
}

/// Panics with [`Error::SparseId`]'s message on a sparse id: for the unchecked `insert` and
/// `build`, where the alternative is allocating a table up to the id.
pub(crate) fn assert_dense(id: EntryId, id_bound: usize, len: usize) {
    if let Err(err) = check_dense(id, id_bound, len) {
        panic!("{err} (use try_insert or try_build for ids from outside)");
    }
}

/// The operations every index kind offers.
///
/// ```
/// use geo_index::{BruteForce, LatLng, SpatialIndex};
/// fn nearest_id(index: &impl SpatialIndex, at: LatLng) -> Option<u32> {
///     index.nearest(at, 1, 1_000.0).ok()?.first().map(|n| n.id)
/// }
/// let index = BruteForce::build(vec![(9, LatLng::new(0.0, 0.0)?)]);
/// assert_eq!(nearest_id(&index, LatLng::new(0.0, 0.001)?), Some(9));
/// # Ok::<(), geo_index::Error>(())
/// ```
pub trait SpatialIndex {
    /// Builds an index from entries in one go (much faster than inserting one by one). A
    /// repeated id keeps its last position.
    ///
    /// ```
    /// # use geo_index::{BruteForce, LatLng, SpatialIndex};
    /// let p = LatLng::new(0.0, 0.0)?;
    /// assert_eq!(BruteForce::build(vec![(1, p), (1, p)]).len(), 1);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn build(entries: Vec<(EntryId, LatLng)>) -> Self
    where
        Self: Sized;

    /// [`SpatialIndex::build`], or [`Error::SparseId`] when the largest id is not below
    /// [`dense_id_limit`]`(0, entries.len())`.
    ///
    /// # Errors
    /// [`Error::SparseId`].
    ///
    /// ```
    /// # use geo_index::{BruteForce, Error, LatLng, SpatialIndex};
    /// let p = LatLng::new(0.0, 0.0)?;
    /// assert!(BruteForce::try_build(vec![(0, p), (1, p)]).is_ok());
    /// assert!(matches!(BruteForce::try_build(vec![(u32::MAX, p)]), Err(Error::SparseId { .. })));
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn try_build(entries: Vec<(EntryId, LatLng)>) -> Result<Self, Error>
    where
        Self: Sized,
    {
        if let Some(max) = entries.iter().map(|(id, _)| *id).max() {
            check_dense(max, 0, entries.len())?;
        }
        Ok(Self::build(entries))
    }

    /// Number of entries.
    ///
    /// ```
    /// # use geo_index::{BruteForce, SpatialIndex};
    /// assert_eq!(BruteForce::default().len(), 0);
    /// ```
    fn len(&self) -> usize;

    /// True when the index holds no entry.
    ///
    /// ```
    /// # use geo_index::{BruteForce, SpatialIndex};
    /// assert!(BruteForce::default().is_empty());
    /// ```
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where entry `id` is.
    ///
    /// ```
    /// # use geo_index::{BruteForce, LatLng, SpatialIndex};
    /// let mut index = BruteForce::default();
    /// index.insert(3, LatLng::new(1.0, 2.0)?);
    /// assert_eq!(index.get(3), Some(LatLng::new(1.0, 2.0)?));
    /// assert_eq!(index.get(4), None);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn get(&self, id: EntryId) -> Option<LatLng>;

    /// Inserts entry `id` at `position`, or moves it there if it exists; returns its previous
    /// position. O(log n).
    ///
    /// ```
    /// # use geo_index::{BruteForce, LatLng, SpatialIndex};
    /// let mut index = BruteForce::default();
    /// let a = LatLng::new(1.0, 2.0)?;
    /// assert_eq!(index.insert(3, a), None);
    /// assert_eq!(index.insert(3, LatLng::new(5.0, 6.0)?), Some(a));
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    ///
    /// # Panics
    /// On a sparse id (see [`EntryId`]); [`SpatialIndex::try_insert`] returns an error instead.
    fn insert(&mut self, id: EntryId, position: LatLng) -> Option<LatLng>;

    /// One past the largest id the index's id table holds without growing.
    ///
    /// ```
    /// # use geo_index::{BruteForce, LatLng, SpatialIndex};
    /// let index = BruteForce::build(vec![(9, LatLng::new(0.0, 0.0)?)]);
    /// assert_eq!(index.id_bound(), 10);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn id_bound(&self) -> usize;

    /// [`SpatialIndex::insert`], or [`Error::SparseId`] (and no change) when `id` is not
    /// below [`dense_id_limit`]`(self.id_bound(), self.len())`: the way to insert ids that
    /// come from outside.
    ///
    /// # Errors
    /// [`Error::SparseId`].
    ///
    /// ```
    /// # use geo_index::{BruteForce, Error, LatLng, SpatialIndex};
    /// let mut index = BruteForce::default();
    /// let p = LatLng::new(1.0, 2.0)?;
    /// assert_eq!(index.try_insert(3, p)?, None);
    /// assert!(matches!(index.try_insert(4_000_000_000, p), Err(Error::SparseId { .. })));
    /// assert_eq!(index.len(), 1);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn try_insert(&mut self, id: EntryId, position: LatLng) -> Result<Option<LatLng>, Error> {
        check_dense(id, self.id_bound(), self.len())?;
        Ok(self.insert(id, position))
    }

    /// Removes entry `id`, returning its position. O(log n).
    ///
    /// ```
    /// # use geo_index::{BruteForce, LatLng, SpatialIndex};
    /// let mut index = BruteForce::default();
    /// index.insert(3, LatLng::new(1.0, 2.0)?);
    /// assert!(index.remove(3).is_some());
    /// assert!(index.remove(3).is_none());
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn remove(&mut self, id: EntryId) -> Option<LatLng>;

    /// Moves an existing entry; does nothing and returns `None` when `id` is absent.
    ///
    /// ```
    /// # use geo_index::{BruteForce, LatLng, SpatialIndex};
    /// let mut index = BruteForce::default();
    /// assert_eq!(index.move_to(3, LatLng::new(1.0, 2.0)?), None);
    /// assert!(index.is_empty());
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn move_to(&mut self, id: EntryId, position: LatLng) -> Option<LatLng> {
        self.get(id)?;
        self.insert(id, position)
    }

    /// Runs `query`: entries within its radius, nearest first, ties by id, lazily.
    ///
    /// ```
    /// # use geo_index::{BruteForce, LatLng, Query, SpatialIndex};
    /// let index = BruteForce::build(vec![
    ///     (1, LatLng::new(0.0, 0.002)?),
    ///     (2, LatLng::new(0.0, 0.001)?),
    /// ]);
    /// let page: Vec<_> = index.search(Query::within(LatLng::new(0.0, 0.0)?, 500.0)?).collect();
    /// assert_eq!(page.iter().map(|n| n.id).collect::<Vec<_>>(), [2, 1]);
    /// let rest: Vec<_> = index
    ///     .search(Query::within(LatLng::new(0.0, 0.0)?, 500.0)?.after(page[0].keyset()))
    ///     .collect();
    /// assert_eq!(rest.len(), 1);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn search<'a>(&'a self, query: Query<'a>) -> impl Iterator<Item = Neighbour> + 'a;

    /// Entries within `radius_m` of `centre`, nearest first, lazily.
    ///
    /// # Errors
    /// [`Error::InvalidRadius`].
    ///
    /// ```
    /// # use geo_index::{BruteForce, LatLng, SpatialIndex};
    /// let index = BruteForce::build(vec![(1, LatLng::new(0.0, 0.0)?)]);
    /// assert_eq!(index.within(LatLng::new(0.0, 0.0)?, 1.0)?.count(), 1);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn within(
        &self,
        centre: LatLng,
        radius_m: f64,
    ) -> Result<impl Iterator<Item = Neighbour> + '_, Error> {
        Ok(self.search(Query::within(centre, radius_m)?))
    }

    /// The `k` entries nearest to `centre` no further than `max_radius_m`.
    ///
    /// # Errors
    /// [`Error::InvalidRadius`].
    ///
    /// ```
    /// # use geo_index::{BruteForce, LatLng, SpatialIndex};
    /// let index = BruteForce::build(vec![(1, LatLng::new(0.0, 0.0)?), (2, LatLng::new(0.0, 1.0)?)]);
    /// assert_eq!(index.nearest(LatLng::new(0.0, 0.1)?, 5, 50_000.0)?.len(), 1);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn nearest(
        &self,
        centre: LatLng,
        k: usize,
        max_radius_m: f64,
    ) -> Result<Vec<Neighbour>, Error> {
        Ok(self.within(centre, max_radius_m)?.take(k).collect())
    }

    /// How many entries lie within `radius_m` of `centre`.
    ///
    /// # Errors
    /// [`Error::InvalidRadius`].
    ///
    /// ```
    /// # use geo_index::{BruteForce, LatLng, SpatialIndex};
    /// let index = BruteForce::build(vec![(1, LatLng::new(0.0, 0.0)?), (2, LatLng::new(0.0, 1.0)?)]);
    /// assert_eq!(index.count_within(LatLng::new(0.0, 0.5)?, 60_000.0)?, 2);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn count_within(&self, centre: LatLng, radius_m: f64) -> Result<usize, Error> {
        Ok(self.within(centre, radius_m)?.count())
    }

    /// Ids of the entries inside `bbox` (edges included), in no particular order.
    ///
    /// ```
    /// # use geo_index::{BoundingBox, BruteForce, LatLng, SpatialIndex};
    /// let index = BruteForce::build(vec![(1, LatLng::new(0.0, 179.5)?), (2, LatLng::new(0.0, 0.0)?)]);
    /// let bbox = BoundingBox::new(-1.0, 179.0, 1.0, -179.0)?;
    /// assert_eq!(index.in_bbox(&bbox), [1]);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn in_bbox(&self, bbox: &BoundingBox) -> Vec<EntryId>;

    /// The tag entry `id` carries: [`Tag::UNTAGGED`] unless the index kind keeps tags (the
    /// quadtree and the brute force do, through their `insert_tagged`) and it was given one.
    ///
    /// ```
    /// # use geo_index::{BruteForce, LatLng, SpatialIndex, Tag};
    /// let mut index = BruteForce::default();
    /// index.insert(1, LatLng::new(0.0, 0.0)?);
    /// assert_eq!(index.tag(1), Tag::UNTAGGED);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn tag(&self, id: EntryId) -> Tag {
        let _ = id;
        Tag::UNTAGGED
    }

    /// The entries in `region` with `tag` (if given) that `filter` accepts (if given), grouped
    /// by the Web Mercator tile at
    /// `zoom` holding each: exact counts, mean positions on the sphere, sorted by tile
    /// `(x, y)`. This default visits every entry of the region's bounding box; the quadtree
    /// adds whole subtrees from their counts (with a tag: subtrees holding only that tag).
    ///
    /// # Errors
    /// [`Error::InvalidZoom`] beyond [`MAX_TILE_ZOOM`].
    ///
    /// ```
    /// # use geo_index::{BoundingBox, BruteForce, LatLng, Region, SpatialIndex};
    /// let index = BruteForce::build(vec![(1, LatLng::new(1.0, 1.0)?), (2, LatLng::new(-1.0, -1.0)?)]);
    /// let clusters = index.clusters(&Region::bbox(BoundingBox::WORLD), 1, None, None)?;
    /// assert_eq!(clusters.iter().map(|c| c.count).collect::<Vec<_>>(), [1, 1]);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn clusters(
        &self,
        region: &Region,
        zoom: u8,
        filter: Option<&dyn Fn(EntryId) -> bool>,
        tag: Option<Tag>,
    ) -> Result<Vec<Cluster>, Error> {
        let mut out = tile::ClusterSet::new(TileGrid::new(zoom)?);
        for id in self.in_bbox(&region.bounding_box()) {
            if let Some(position) = self.get(id)
                && region.contains(position)
                && tag.is_none_or(|tag| self.tag(id) == tag)
                && filter.is_none_or(|accept| accept(id))
            {
                out.add_point(id, position);
            }
        }
        Ok(out.finish())
    }
}

/// The heap memory an index holds: for benchmarks and memory gauges, apart from the query
/// operations of [`SpatialIndex`]. Every index kind implements it.
///
/// ```
/// use geo_index::{BruteForce, HeapSize, LatLng, QuadTree, SpatialIndex};
/// assert_eq!(BruteForce::default().heap_bytes(), 0);
/// let tree = QuadTree::build(vec![(0, LatLng::new(0.0, 0.0)?)]);
/// assert!(tree.heap_bytes() > 0);
/// # Ok::<(), geo_index::Error>(())
/// ```
pub trait HeapSize {
    /// Bytes of heap memory held (capacity, not just length).
    ///
    /// ```
    /// # use geo_index::{BruteForce, HeapSize};
    /// assert_eq!(BruteForce::default().heap_bytes(), 0);
    /// ```
    fn heap_bytes(&self) -> usize;
}

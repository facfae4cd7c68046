//! An adaptive quadtree over the latitude/longitude rectangle.
//!
//! # Design
//!
//! The tree covers [`Rect::WORLD`], `[-90, 90] × [-180, 180]` degrees; every inner node splits
//! its rectangle into four equal quarters ([`Rect::quarters`]). Rectangles are never stored: a
//! node at depth `d` is cell `(x, y)` of the `2^d × 2^d` grid, and its edges are dyadic
//! fractions of 180° and 360°, exact in `f64` at every depth the tree reaches. Whether a
//! rectangle is derived from its grid position ([`Cell::rect`]) or by quartering its parent,
//! it is the same, bit for bit, so "which quarter holds this point" (descent, split, build)
//! and "what does this cell cover" (search bounds) can never disagree.
//!
//! - **Adaptive.** A leaf holding more than `leaf_capacity` entries splits into four; a subtree
//!   whose count falls to `leaf_capacity / 2` or below after removals merges back into one
//!   leaf. The gap between the two thresholds is hysteresis: an entry moving back and forth
//!   across a boundary cannot make a node split and merge on every move. Dense clusters get
//!   deep, small cells while empty oceans stay as a few big leaves, which a fixed grid
//!   (geohash) cannot do.
//! - **Bounded depth.** At [`MAX_DEPTH`] a leaf no longer splits but simply grows: entries
//!   sharing one coordinate can never be separated, and splitting them would recurse forever.
//!   Finding an entry in such a leaf is a scan of that leaf, the one place an operation costs
//!   more than O(depth + capacity); it takes more than a leaf of entries within millimetres.
//! - **Compact arena.** Nodes are 8 bytes (entry count and first child) in one `Vec`, indices
//!   instead of pointers. The four children of a node are one block of four consecutive nodes,
//!   so deciding which children a search must visit reads 32 contiguous bytes, and the nodes
//!   of a 10-million-entry tree (about 1.1 million, 9 MB) fit in the last-level cache. Keeping
//!   each leaf's vector beside its node instead (32-byte nodes) measured slightly slower. Blocks freed by merges go on a
//!   free list and are reused by the next split.
//! - **Entries inline in leaves.** Each leaf owns a vector of `(position, id)` (a table
//!   parallel to the arena, empty for inner nodes), so measuring a leaf's points reads one
//!   short contiguous array instead of chasing every id into the id table, a random access
//!   into a table as large as the data set: on 10 million clustered points, looking the
//!   positions up in the id table instead made queries twice as slow. The id table holds
//!   only the leaf of each id (4 bytes, not a 16-byte position): `get` scans that one leaf
//!   (at most a capacity of entries) and removal and moves find the position there, then
//!   descend by it, so they are O(depth + capacity), never a scan of the tree.
//! - **Counts in nodes.** Every node knows how many entries its subtree holds: the search
//!   skips empty children without bounding them, merges know when to happen, and
//!   [`SpatialIndex::count_within`] adds whole subtrees lying inside the circle without
//!   visiting them.
//! - **Search.** Queries run on the shared best-first engine ([`BestFirst`]): a cell is a node
//!   with its grid position; expanding an inner node queues its non-empty children with lower
//!   bounds of their distance, expanding a leaf measures its entries, so results come out
//!   nearest first and lazily. Two savings, both exact:
//!   - the search starts at the deepest node whose rectangle contains the query circle's
//!     bounding box instead of the root: nothing outside that node can be an answer, and the
//!     levels above it would cost four bounds each for nothing;
//!   - the four children's lower bounds are computed together ([`QuarterBounds`]): they share
//!     two latitude bands and two longitude bands, so one expansion costs a handful of sines
//!     and cosines instead of four full [`Rect::bounds`]. The arithmetic is that of
//!     [`Rect::bounds`], so the values are identical (a unit test checks it). The upper bound
//!     only serves to skip cells wholly before a resumed keyset, so it is computed only for
//!     queries that have one.
//!
//! Ties on a quarter boundary go north and east (`>=` the midpoint); any fixed rule works as
//! long as descent, bulk build, split and the search seed all use it, which they do through
//! [`quadrant`].

use crate::latlng::{EARTH_RADIUS_M, Origin, cos_lower, sin_lower};
use crate::region::{Relation, relate_box};
use crate::search::{BOUND_SLACK_M, BestFirst, Bounds, Expand, Frontier, Rect};
use crate::slots::Slots;
use crate::tile::{ClusterSet, TileGrid, unit_vector};
use crate::{
    BoundingBox, Cluster, EntryId, Error, HALF_CIRCUMFERENCE_M, HeapSize, LatLng, Neighbour, Query,
    Region, SpatialIndex, Tag,
};
use std::fmt;

/// Deepest level a node can sit at; leaves there grow instead of splitting. A cell at depth 32
/// is 180° / 2³² ≈ 4.7 mm tall, far below any positioning precision, so real data never needs
/// more; a pile of duplicates costs at most 32 levels of single-child nodes; and grid positions
/// fit in `u32`.
const MAX_DEPTH: u32 = 32;

/// The root's index in the arena. The root is nobody's child, which frees `first_child == 0`
/// to mean "leaf".
const ROOT: u32 = 0;

/// One entry as a leaf stores it: the position inline, so that measuring a leaf reads one
/// contiguous array.
#[derive(Clone, Copy, Debug)]
struct Entry {
    position: LatLng,
    id: EntryId,
    /// The entry's tag (one byte, in the padding: the entry stays 24 bytes).
    tag: Tag,
}

/// A node of the arena, 8 bytes so that the hot part of the tree stays in cache.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Node {
    /// Entries in the subtree. `u32` is enough: [`QuadTree`] refuses a 2³²nd entry.
    count: u32,
    /// Index of the first of the four children, in the order of [`Rect::quarters`]; 0 for a
    /// leaf.
    first_child: u32,
}

impl Node {
    #[inline]
    fn is_leaf(self) -> bool {
        self.first_child == 0
    }
}

/// A node together with its place in the grid of its depth, which gives its rectangle: what
/// the search queues, and what recursive traversals carry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Cell {
    node: u32,
    x: u32,
    y: u32,
    depth: u32,
}

impl Cell {
    const ROOT: Cell = Cell {
        node: ROOT,
        x: 0,
        y: 0,
        depth: 0,
    };

    /// The cell's rectangle. Every value is a multiple of `180 / 2^depth` (or `360 / 2^depth`)
    /// needing at most `depth + 6` significant bits, so each product and sum here is exact and
    /// the result equals quartering the parent's rectangle bit for bit.
    #[inline]
    fn rect(self) -> Rect {
        // Exact: a power of two no larger than 2^32.
        let cells = (1u64 << self.depth) as f64;
        let lat_step = 180.0 / cells;
        let lng_step = 360.0 / cells;
        let (x, y) = (f64::from(self.x), f64::from(self.y));
        Rect {
            south: -90.0 + y * lat_step,
            west: -180.0 + x * lng_step,
            north: -90.0 + (y + 1.0) * lat_step,
            east: -180.0 + (x + 1.0) * lng_step,
        }
    }

    /// The child in `quarter` (an index into [`Rect::quarters`]) of this cell, an inner node
    /// whose first child is `first_child`.
    #[inline]
    fn child(self, first_child: u32, quarter: u32) -> Cell {
        Cell {
            node: first_child + quarter,
            x: self.x * 2 + (quarter & 1),
            y: self.y * 2 + (quarter >> 1),
            depth: self.depth + 1,
        }
    }
}

/// Which quarter of `rect` holds `position`, as an index into [`Rect::quarters`]: south-west 0,
/// south-east 1, north-west 2, north-east 3. Points on a midline go north or east.
///
/// The midpoints are computed exactly as [`Rect::quarters`] computes them, so the chosen
/// quarter always contains the point.
#[inline]
fn quadrant(rect: &Rect, position: LatLng) -> u32 {
    let mid_lat = (rect.south + rect.north) * 0.5;
    let mid_lng = (rect.west + rect.east) * 0.5;
    u32::from(position.lat >= mid_lat) * 2 + u32::from(position.lng >= mid_lng)
}

/// The fixed-point unit vectors of `entries`, summed.
fn sum_of(entries: &[Entry]) -> [i64; 3] {
    let mut sum = [0; 3];
    for e in entries {
        add_to(&mut sum, unit_vector(e.position), 1);
    }
    sum
}

/// What a count by tile takes: entries in `region`, with `tag` (if any), that `filter`
/// accepts (if any).
#[derive(Clone, Copy)]
struct Wanted<'a> {
    region: &'a Region,
    filter: Option<&'a dyn Fn(EntryId) -> bool>,
    tag: Option<Tag>,
}

/// The set of tags `entries` carry.
fn tags_of(entries: &[Entry]) -> u64 {
    entries.iter().fold(0, |all, e| all | e.tag.bit())
}

/// `total += sign * vector`, component-wise.
#[inline]
fn add_to(total: &mut [i64; 3], vector: [i64; 3], sign: i64) {
    for (t, v) in total.iter_mut().zip(vector) {
        *t += sign * v;
    }
}

/// No leaf: the id is not in the tree.
const NO_LEAF: u32 = u32::MAX;

/// Leaf node by id, 4 bytes per id up to the largest (ids are dense).
#[derive(Clone, Default)]
struct LeafTable {
    leaf: Vec<u32>,
    len: usize,
}

impl LeafTable {
    /// A table for ids below `id_bound` holding `len` entries, leaves to be assigned.
    fn with_ids(id_bound: usize, len: usize) -> Self {
        Self {
            leaf: vec![NO_LEAF; id_bound],
            len,
        }
    }

    fn get(&self, id: EntryId) -> Option<u32> {
        self.leaf
            .get(id as usize)
            .copied()
            .filter(|&leaf| leaf != NO_LEAF)
    }

    /// Counts a new id; its leaf is assigned when it lands in one.
    fn add(&mut self, id: EntryId) {
        let index = id as usize;
        if index >= self.leaf.len() {
            crate::assert_dense(id, self.leaf.len(), self.len);
            self.leaf.resize(index + 1, NO_LEAF);
        }
        self.len += 1;
    }

    /// Records that `id` (already counted) is in `leaf`.
    fn assign(&mut self, id: EntryId, leaf: u32) {
        if let Some(slot) = self.leaf.get_mut(id as usize) {
            *slot = leaf;
        }
    }

    fn clear(&mut self, id: EntryId) {
        if let Some(slot) = self.leaf.get_mut(id as usize)
            && *slot != NO_LEAF
        {
            *slot = NO_LEAF;
            self.len -= 1;
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn heap_bytes(&self) -> usize {
        self.leaf.capacity() * std::mem::size_of::<u32>()
    }
}

/// Lower bounds of the distance from an origin to the four quarters of a rectangle.
///
/// This is the lower bound of [`Rect::bounds`], same expressions in the same order, so the
/// values are identical; it only shares the work between the quarters. Their latitude bands
/// are two (south and north of the midline), their longitude bands two: the gap sines and the
/// band cosines are computed once per band instead of once per quarter, and skipped when a
/// gap is zero (then they cannot change the result). What remains per quarter is one `sqrt`
/// and nothing for the quarter holding the origin.
struct QuarterBounds {
    /// Per latitude band (south, north): the gap in degrees and the sine of half of it.
    lat_gap: [(f64, f64); 2],
    /// Per latitude band: the smallest cosine of latitude over the band, when a longitude gap
    /// needs it.
    cos_min: [f64; 2],
    /// Per longitude band (west, east): the gap in degrees and the sine of half of it.
    lng_gap: [(f64, f64); 2],
    cos_lat: f64,
}

impl QuarterBounds {
    #[inline]
    fn new(rect: &Rect, origin: &Origin) -> Self {
        let mid_lat = (rect.south + rect.north) * 0.5;
        let mid_lng = (rect.west + rect.east) * 0.5;
        let lat = origin.point.lat;
        let lng = origin.point.lng;
        let lat_gap = |south: f64, north: f64| {
            let dlat = if lat < south {
                south - lat
            } else if lat > north {
                lat - north
            } else {
                0.0
            };
            // sin(0) is 0: skipping the call changes nothing.
            let s_lat = if dlat == 0.0 {
                0.0
            } else {
                sin_lower(dlat.to_radians() * 0.5)
            };
            (dlat, s_lat)
        };
        let lng_gap = |west: f64, east: f64| {
            let dlng = if lng >= west && lng <= east {
                0.0
            } else {
                let to_west = (west - lng).rem_euclid(360.0);
                let to_east = (lng - east).rem_euclid(360.0);
                to_west.min(to_east).min(180.0)
            };
            let s_lng = if dlng == 0.0 {
                0.0
            } else {
                sin_lower(dlng.to_radians() * 0.5)
            };
            (dlng, s_lng)
        };
        let cos_min = |south: f64, north: f64| cos_lower(south.abs().max(north.abs()).to_radians());
        let lng_gap = [lng_gap(rect.west, mid_lng), lng_gap(mid_lng, rect.east)];
        // With no longitude gap the cosine is multiplied by zero: do not compute it.
        let cos_min = if lng_gap[0].1 == 0.0 && lng_gap[1].1 == 0.0 {
            [0.0; 2]
        } else {
            [cos_min(rect.south, mid_lat), cos_min(mid_lat, rect.north)]
        };
        Self {
            lat_gap: [lat_gap(rect.south, mid_lat), lat_gap(mid_lat, rect.north)],
            cos_min,
            lng_gap,
            cos_lat: origin.cos_lat.max(0.0),
        }
    }

    /// The lower bound for `quarter`, an index into [`Rect::quarters`].
    #[inline]
    fn min_m(&self, quarter: usize) -> f64 {
        let (dlat, s_lat) = self.lat_gap[quarter >> 1];
        let (dlng, s_lng) = self.lng_gap[quarter & 1];
        if dlat == 0.0 && dlng == 0.0 {
            return 0.0;
        }
        let h = if s_lng == 0.0 {
            // What `Rect::bounds` computes too: the product below is +0 and x + 0 = x.
            s_lat * s_lat
        } else {
            s_lat * s_lat + self.cos_lat * self.cos_min[quarter >> 1] * s_lng * s_lng
        };
        2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0)
    }
}

/// Reorders `entries` so that those satisfying `first` come before the others; returns how
/// many do. Unstable, in place, one pass.
fn partition(entries: &mut [Entry], first: impl Fn(&Entry) -> bool) -> usize {
    let mut split = 0;
    for i in 0..entries.len() {
        if first(&entries[i]) {
            entries.swap(split, i);
            split += 1;
        }
    }
    split
}

/// A count of entries as a node stores it. Callers keep the total below 2³² (see
/// [`QuadTree::insert`]), so this never fails.
#[inline]
/// Reorders `entries` (all inside `rect`) by quarter and returns the four runs, in the order
/// of [`Rect::quarters`].
fn split_quarters<'a>(rect: &Rect, entries: &'a mut [Entry]) -> [&'a mut [Entry]; 4] {
    let south_len = partition(entries, |e| quadrant(rect, e.position) < 2);
    let (south, north) = entries.split_at_mut(south_len);
    let west_len = partition(south, |e| quadrant(rect, e.position) & 1 == 0);
    let (south_west, south_east) = south.split_at_mut(west_len);
    let west_len = partition(north, |e| quadrant(rect, e.position) & 1 == 0);
    let (north_west, north_east) = north.split_at_mut(west_len);
    [south_west, south_east, north_west, north_east]
}

/// Quarters of the root (their index in [`Rect::quarters`] and entries) one thread builds.
type QuarterParts<'a> = Vec<(usize, &'a mut [Entry])>;

/// Entries from which a bulk build uses more than one thread: below it, starting threads
/// costs more than it saves.
const PARALLEL_BUILD_MIN: usize = 1 << 20;

/// Threads for a bulk build of `len` entries: one per core, up to one per quarter.
fn build_threads(len: usize) -> usize {
    if len < PARALLEL_BUILD_MIN {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

fn small_count(n: usize) -> u32 {
    u32::try_from(n).expect("a QuadTree holds fewer than 2^32 entries")
}

/// An adaptive quadtree: leaves split into four when they overflow and subtrees merge back when
/// they empty, so cells are small where entries are dense and large where they are sparse.
///
/// Holds at most 2³² − 1 entries (inserting one more panics, as a `Vec` does on capacity
/// overflow); the id table alone would then take 16 GiB.
///
/// ```
/// use geo_index::{LatLng, QuadTree, SpatialIndex};
///
/// let mut index = QuadTree::build(vec![
///     (1, LatLng::new(48.8584, 2.2945)?),  // Eiffel Tower
///     (2, LatLng::new(48.8606, 2.3376)?),  // Louvre
///     (3, LatLng::new(51.5007, -0.1246)?), // Big Ben
/// ]);
/// index.insert(4, LatLng::new(48.8530, 2.3499)?); // Notre-Dame
/// let nearest: Vec<u32> = index
///     .nearest(LatLng::new(48.8566, 2.3522)?, 3, 10_000.0)?
///     .iter()
///     .map(|n| n.id)
///     .collect();
/// assert_eq!(nearest, [4, 2, 1]);
/// # Ok::<(), geo_index::Error>(())
/// ```
#[derive(Clone)]
pub struct QuadTree {
    /// The arena; `nodes[ROOT]` is the root, children come in blocks of four.
    nodes: Vec<Node>,
    /// Entries of each leaf, parallel to `nodes`; empty for inner and unused nodes.
    leaves: Vec<Vec<Entry>>,
    /// Sum of the unit vectors (fixed point) of the entries under each node, parallel to
    /// `nodes`: a cluster of a whole subtree gets its mean position without visiting it.
    sums: Vec<[i64; 3]>,
    /// The set of tags (one bit each) carried under each node, parallel to `nodes`, exact:
    /// a search or count for a tag skips every subtree without its bit.
    tags: Vec<u64>,
    /// First indices of blocks of four nodes freed by merges, ready for reuse.
    free_blocks: Vec<u32>,
    /// The leaf holding each id: positions live only in the leaves, so `get` scans one leaf
    /// (at most a capacity of entries) and removal finds the position there.
    leaf_of: LeafTable,
    leaf_capacity: usize,
}

impl QuadTree {
    /// The leaf capacity of [`QuadTree::default`] and [`SpatialIndex::build`].
    ///
    /// Measured on 10 million points clustered around the world's cities, 20 nearest within
    /// 5 km: the median query time is flat between 16 and 48 (smaller leaves measure fewer
    /// points per query but expand more cells, larger ones the reverse) and rises outside
    /// that range; 32 sits in the flat part with less memory and a faster build than 16.
    ///
    /// ```
    /// use geo_index::QuadTree;
    /// assert_eq!(QuadTree::default().leaf_capacity(), QuadTree::DEFAULT_LEAF_CAPACITY);
    /// ```
    pub const DEFAULT_LEAF_CAPACITY: usize = 32;

    /// The largest leaf capacity [`QuadTree::with_leaf_capacity`] accepts.
    ///
    /// ```
    /// use geo_index::QuadTree;
    /// assert!(QuadTree::with_leaf_capacity(QuadTree::MAX_LEAF_CAPACITY).is_ok());
    /// assert!(QuadTree::with_leaf_capacity(QuadTree::MAX_LEAF_CAPACITY + 1).is_err());
    /// ```
    pub const MAX_LEAF_CAPACITY: usize = 4096;

    /// An empty tree whose leaves split when they hold more than `leaf_capacity` entries.
    ///
    /// # Errors
    /// [`Error::InvalidLeafCapacity`] unless `1 <= leaf_capacity <= 4096`.
    ///
    /// ```
    /// use geo_index::{Error, LatLng, QuadTree, SpatialIndex};
    /// let mut index = QuadTree::with_leaf_capacity(8)?;
    /// index.insert(1, LatLng::new(0.0, 0.0)?);
    /// assert_eq!(index.len(), 1);
    /// assert_eq!(QuadTree::with_leaf_capacity(0).err(), Some(Error::InvalidLeafCapacity(0)));
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn with_leaf_capacity(leaf_capacity: usize) -> Result<Self, Error> {
        if !(1..=Self::MAX_LEAF_CAPACITY).contains(&leaf_capacity) {
            return Err(Error::InvalidLeafCapacity(leaf_capacity));
        }
        Ok(Self::empty(leaf_capacity))
    }

    /// Builds a tree from entries in one go, top-down, with the given leaf capacity. A
    /// repeated id keeps its last position.
    ///
    /// # Errors
    /// [`Error::InvalidLeafCapacity`] unless `1 <= leaf_capacity <= 4096`.
    ///
    /// ```
    /// use geo_index::{LatLng, QuadTree, SpatialIndex};
    /// let index = QuadTree::build_with_leaf_capacity(
    ///     vec![(1, LatLng::new(0.0, 0.0)?), (2, LatLng::new(1.0, 1.0)?), (1, LatLng::new(2.0, 2.0)?)],
    ///     1,
    /// )?;
    /// assert_eq!(index.len(), 2);
    /// assert_eq!(index.get(1), Some(LatLng::new(2.0, 2.0)?));
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn build_with_leaf_capacity(
        entries: Vec<(EntryId, LatLng)>,
        leaf_capacity: usize,
    ) -> Result<Self, Error> {
        let mut tree = Self::with_leaf_capacity(leaf_capacity)?;
        tree.fill(entries);
        Ok(tree)
    }

    /// The number of entries above which a leaf splits.
    ///
    /// ```
    /// use geo_index::QuadTree;
    /// assert_eq!(QuadTree::with_leaf_capacity(16)?.leaf_capacity(), 16);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn leaf_capacity(&self) -> usize {
        self.leaf_capacity
    }

    /// Builds a tree in one go from entries carrying tags, with
    /// [`QuadTree::DEFAULT_LEAF_CAPACITY`]. A repeated id keeps its last position and tag.
    ///
    /// ```
    /// use geo_index::{LatLng, QuadTree, SpatialIndex, Tag};
    /// let index = QuadTree::build_tagged(vec![(1, LatLng::new(0.0, 0.0)?, Tag::new(4)?)]);
    /// assert_eq!(index.tag(1), Tag::new(4)?);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn build_tagged(entries: Vec<(EntryId, LatLng, Tag)>) -> Self {
        let mut tree = Self::empty(Self::DEFAULT_LEAF_CAPACITY);
        tree.fill_tagged(entries);
        tree
    }

    /// Inserts entry `id` at `position` carrying `tag`, or moves and re-tags it; returns its
    /// previous position. O(log n).
    ///
    /// # Panics
    /// When the tree already holds 2³² − 1 entries and `id` is new.
    ///
    /// ```
    /// use geo_index::{LatLng, QuadTree, SpatialIndex, Tag};
    /// let mut index = QuadTree::default();
    /// let here = LatLng::new(0.0, 0.0)?;
    /// assert_eq!(index.insert_tagged(1, here, Tag::new(1)?), None);
    /// assert_eq!(index.insert_tagged(1, here, Tag::new(2)?), Some(here));
    /// assert_eq!(index.tag(1), Tag::new(2)?);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn insert_tagged(&mut self, id: EntryId, position: LatLng, tag: Tag) -> Option<LatLng> {
        match self.entry(id).copied() {
            Some(old) => {
                // A move in place keeps the leaf and every tag set; a new tag goes through
                // remove and insert, which keep the tag sets exact.
                if old.tag != tag || !self.move_within_leaf(id, old.position, position) {
                    self.remove_entry(id, old.position);
                    self.insert_entry(Entry { position, id, tag });
                }
                Some(old.position)
            }
            None => {
                assert!(
                    self.leaf_of.len() < u32::MAX as usize,
                    "a QuadTree holds fewer than 2^32 entries"
                );
                self.leaf_of.add(id);
                self.insert_entry(Entry { position, id, tag });
                None
            }
        }
    }

    /// The stored entry of `id`: its leaf from the id table, then a scan of that leaf.
    fn entry(&self, id: EntryId) -> Option<&Entry> {
        let leaf = self.leaf_of.get(id)?;
        self.leaves[leaf as usize].iter().find(|e| e.id == id)
    }

    /// An empty tree; `leaf_capacity` is already validated.
    fn empty(leaf_capacity: usize) -> Self {
        Self {
            nodes: vec![Node::default()],
            leaves: vec![Vec::new()],
            sums: vec![[0; 3]],
            tags: vec![0],
            free_blocks: Vec::new(),
            leaf_of: LeafTable::default(),
            leaf_capacity,
        }
    }

    /// Bulk-builds an empty tree from `entries`, top-down.
    fn fill(&mut self, entries: Vec<(EntryId, LatLng)>) {
        self.fill_tagged(
            entries
                .into_iter()
                .map(|(id, position)| (id, position, Tag::UNTAGGED))
                .collect(),
        );
    }

    /// Bulk-builds an empty tree from tagged entries, top-down.
    fn fill_tagged(&mut self, entries: Vec<(EntryId, LatLng, Tag)>) {
        if entries.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            // Every id once already (the common case of a caller numbering its entries):
            // the entries become the leaves' entries in place, no table of slots needed.
            let id_bound = entries.last().map_or(0, |&(id, _, _)| {
                crate::assert_dense(id, 0, entries.len());
                id as usize + 1
            });
            let mut all: Vec<Entry> = entries
                .into_iter()
                .map(|(id, position, tag)| Entry { position, id, tag })
                .collect();
            self.leaf_of = LeafTable::with_ids(id_bound, all.len());
            small_count(all.len());
            let threads = build_threads(all.len());
            self.build_top(&mut all, threads);
            return;
        }
        // Keeps every id once, at its last position (and with its last tag).
        let positions: Vec<(EntryId, LatLng)> = entries
            .iter()
            .map(|&(id, position, _)| (id, position))
            .collect();
        let slots = Slots::from_entries(&positions);
        drop(positions);
        let mut tags = vec![Tag::UNTAGGED; slots.id_bound()];
        for &(id, _, tag) in &entries {
            tags[id as usize] = tag;
        }
        drop(entries);
        let mut all: Vec<Entry> = slots
            .iter()
            .map(|(id, position)| Entry {
                position,
                id,
                tag: tags[id as usize],
            })
            .collect();
        drop(tags);
        self.leaf_of = LeafTable::with_ids(slots.id_bound(), all.len());
        drop(slots);
        // At most 2^32 distinct ids exist; the one count that does not fit is refused here.
        small_count(all.len());
        let threads = build_threads(all.len());
        self.build_top(&mut all, threads);
    }

    /// Builds the whole tree from `entries` (the root empty, `leaf_of` sized): with more than
    /// one thread, the root's four quarters are built as separate trees at the same time and
    /// grafted in order, which gives exactly the arena the sequential build gives.
    fn build_top(&mut self, entries: &mut [Entry], threads: usize) {
        if threads < 2 || entries.len() <= self.leaf_capacity {
            self.build_node(ROOT, Rect::WORLD, 0, entries);
            return;
        }
        let count = small_count(entries.len());
        let parts = split_quarters(&Rect::WORLD, entries);
        let first_child = self.alloc_block();
        self.nodes[ROOT as usize] = Node { count, first_child };
        let leaf_capacity = self.leaf_capacity;
        let quarters = Rect::WORLD.quarters();
        // Quarters are far from even (most of the world's places are in the north-east), so
        // the largest goes first to the thread with the least work so far.
        let mut parts: Vec<(usize, &mut [Entry])> = parts.into_iter().enumerate().collect();
        parts.sort_by_key(|(_, part)| std::cmp::Reverse(part.len()));
        let mut work: Vec<(usize, QuarterParts<'_>)> =
            (0..threads).map(|_| (0, Vec::new())).collect();
        for (k, part) in parts {
            if let Some((load, quarters)) = work.iter_mut().min_by_key(|(load, _)| *load) {
                *load += part.len();
                quarters.push((k, part));
            }
        }
        let mut subtrees: Vec<(usize, QuadTree)> = std::thread::scope(|scope| {
            let builders: Vec<_> = work
                .into_iter()
                .map(|(_, parts)| {
                    scope.spawn(move || {
                        parts
                            .into_iter()
                            .map(|(k, part)| {
                                // Its own arena; its entries' leaves are recorded after the
                                // graft (its empty id table ignores them here).
                                let mut subtree = QuadTree::empty(leaf_capacity);
                                subtree.build_node(ROOT, quarters[k], 1, part);
                                (k, subtree)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            builders
                .into_iter()
                .flat_map(|builder| {
                    builder
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        subtrees.sort_by_key(|(k, _)| *k);
        let mut sum = [0; 3];
        let mut tags = 0;
        for (child, (_, subtree)) in (first_child..).zip(subtrees) {
            self.graft(child, subtree);
            add_to(&mut sum, self.sums[child as usize], 1);
            tags |= self.tags[child as usize];
        }
        self.sums[ROOT as usize] = sum;
        self.tags[ROOT as usize] = tags;
        for (node, leaf) in (0..).zip(&self.leaves) {
            for e in leaf {
                self.leaf_of.assign(e.id, node);
            }
        }
    }

    /// Puts `subtree` (built apart, its root at index 0) at `node`, a leaf of this tree: its
    /// other nodes go at the end of the arena, in their order, children indices shifted.
    fn graft(&mut self, node: u32, mut subtree: QuadTree) {
        let base = u32::try_from(self.nodes.len())
            .ok()
            .filter(|base| {
                base.checked_add(u32::try_from(subtree.nodes.len()).unwrap_or(u32::MAX))
                    .is_some()
            })
            .expect("a QuadTree has fewer than 2^32 nodes");
        // Subtree index i >= 1 lands at base + i - 1; a leaf keeps first_child 0.
        let moved = |n: Node| {
            if n.is_leaf() {
                n
            } else {
                Node {
                    first_child: base + n.first_child - 1,
                    ..n
                }
            }
        };
        self.nodes[node as usize] = moved(subtree.nodes[ROOT as usize]);
        self.leaves[node as usize] = std::mem::take(&mut subtree.leaves[ROOT as usize]);
        self.sums[node as usize] = subtree.sums[ROOT as usize];
        self.tags[node as usize] = subtree.tags[ROOT as usize];
        self.nodes
            .extend(subtree.nodes.iter().skip(1).map(|&n| moved(n)));
        self.leaves.extend(subtree.leaves.drain(1..));
        self.sums.extend_from_slice(&subtree.sums[1..]);
        self.tags.extend_from_slice(&subtree.tags[1..]);
        // A fresh build frees no blocks.
        debug_assert!(subtree.free_blocks.is_empty());
    }

    /// Makes `node`, a cell `rect` at `depth`, hold exactly `entries`: a leaf if they fit,
    /// otherwise an inner node over the four quarters, recursively.
    fn build_node(&mut self, node: u32, rect: Rect, depth: u32, entries: &mut [Entry]) {
        let count = small_count(entries.len());
        if entries.len() <= self.leaf_capacity || depth >= MAX_DEPTH {
            self.nodes[node as usize] = Node {
                count,
                first_child: 0,
            };
            for e in entries.iter() {
                self.leaf_of.assign(e.id, node);
            }
            self.sums[node as usize] = sum_of(entries);
            self.tags[node as usize] = tags_of(entries);
            self.leaves[node as usize] = entries.to_vec();
            return;
        }
        let parts = split_quarters(&rect, entries);
        let first_child = self.alloc_block();
        self.nodes[node as usize] = Node { count, first_child };
        let mut sum = [0; 3];
        let mut tags = 0;
        for ((child, part), quarter) in (first_child..).zip(parts).zip(rect.quarters()) {
            self.build_node(child, quarter, depth + 1, part);
            add_to(&mut sum, self.sums[child as usize], 1);
            tags |= self.tags[child as usize];
        }
        self.sums[node as usize] = sum;
        self.tags[node as usize] = tags;
    }

    /// A block of four empty leaves, reused from the free list when possible.
    fn alloc_block(&mut self) -> u32 {
        if let Some(first) = self.free_blocks.pop() {
            return first;
        }
        let first = u32::try_from(self.nodes.len())
            .ok()
            .filter(|first| first.checked_add(4).is_some())
            .expect("a QuadTree has fewer than 2^32 nodes");
        self.nodes.extend([Node::default(); 4]);
        self.leaves.extend((0..4).map(|_| Vec::new()));
        self.sums.extend([[0; 3]; 4]);
        self.tags.extend([0; 4]);
        first
    }

    /// Adds an entry whose id is not in the tree: one descent, counting it on the way, then a
    /// split if its leaf overflows.
    fn insert_entry(&mut self, entry: Entry) {
        let vector = unit_vector(entry.position);
        let mut node = ROOT;
        let mut rect = Rect::WORLD;
        let mut depth = 0;
        let bit = entry.tag.bit();
        loop {
            add_to(&mut self.sums[node as usize], vector, 1);
            self.tags[node as usize] |= bit;
            let n = &mut self.nodes[node as usize];
            n.count += 1;
            if n.is_leaf() {
                self.leaf_of.assign(entry.id, node);
                let leaf = &mut self.leaves[node as usize];
                leaf.push(entry);
                if leaf.len() > self.leaf_capacity && depth < MAX_DEPTH {
                    self.split(node, rect, depth);
                }
                return;
            }
            let quarter = quadrant(&rect, entry.position);
            node = n.first_child + quarter;
            rect = rect.quarters()[quarter as usize];
            depth += 1;
        }
    }

    /// Turns the overflowing leaf `node` (cell `rect` at `depth`) into an inner node over four
    /// new leaves, splitting again any quarter that still overflows.
    fn split(&mut self, node: u32, rect: Rect, depth: u32) {
        let entries = std::mem::take(&mut self.leaves[node as usize]);
        let mut parts: [Vec<Entry>; 4] = Default::default();
        for entry in entries {
            parts[quadrant(&rect, entry.position) as usize].push(entry);
        }
        let first_child = self.alloc_block();
        self.nodes[node as usize].first_child = first_child;
        for ((child, part), quarter) in (first_child..).zip(parts).zip(rect.quarters()) {
            let overflows = part.len() > self.leaf_capacity;
            self.nodes[child as usize] = Node {
                count: small_count(part.len()),
                first_child: 0,
            };
            for e in &part {
                self.leaf_of.assign(e.id, child);
            }
            self.sums[child as usize] = sum_of(&part);
            self.tags[child as usize] = tags_of(&part);
            self.leaves[child as usize] = part;
            if overflows && depth + 1 < MAX_DEPTH {
                self.split(child, quarter, depth + 1);
            }
        }
    }

    /// Removes entry `id`, which the tree holds at `position`: one descent, uncounting it on
    /// the way, then a merge of the highest subtree that became small enough.
    fn remove_entry(&mut self, id: EntryId, position: LatLng) {
        // Inner nodes sit at depths 0..MAX_DEPTH, so the path fits without allocating.
        let mut path = [ROOT; MAX_DEPTH as usize];
        let mut path_len = 0;
        let vector = unit_vector(position);
        let mut node = ROOT;
        let mut rect = Rect::WORLD;
        loop {
            add_to(&mut self.sums[node as usize], vector, -1);
            let n = &mut self.nodes[node as usize];
            n.count -= 1;
            if n.is_leaf() {
                break;
            }
            path[path_len] = node;
            path_len += 1;
            let quarter = quadrant(&rect, position);
            node = n.first_child + quarter;
            rect = rect.quarters()[quarter as usize];
        }
        let leaf = &mut self.leaves[node as usize];
        let removed = leaf
            .iter()
            .position(|e| e.id == id)
            .map(|at| leaf.swap_remove(at).tag);
        // Tag sets stay exact: when the leaf still holds the removed entry's tag nothing
        // changes; otherwise the leaf's set from its entries, then each ancestor's from its
        // children, bottom-up.
        if removed.is_some_and(|tag| leaf.iter().all(|e| e.tag != tag)) {
            self.tags[node as usize] = tags_of(leaf);
            for &inner in path[..path_len].iter().rev() {
                let first = self.nodes[inner as usize].first_child as usize;
                self.tags[inner as usize] =
                    self.tags[first..first + 4].iter().fold(0, |all, t| all | t);
            }
        }
        let leaf = &mut self.leaves[node as usize];
        debug_assert_eq!(leaf.len(), self.nodes[node as usize].count as usize);
        // Only leaves that grew past the capacity (at the depth limit) can hold much spare
        // room; give it back once they are mostly empty.
        if leaf.capacity() > 2 * self.leaf_capacity && leaf.len() < leaf.capacity() / 4 {
            leaf.shrink_to(leaf.len() * 2);
        }
        // Counts only shrink along the path, so the highest small node contains all others.
        let merge = path[..path_len]
            .iter()
            .copied()
            .find(|&n| self.nodes[n as usize].count as usize <= self.leaf_capacity / 2);
        if let Some(top) = merge {
            self.merge(top);
        }
    }

    /// Collapses the subtree under `node` into one leaf, freeing its blocks.
    fn merge(&mut self, node: u32) {
        let count = self.nodes[node as usize].count;
        let mut entries = Vec::with_capacity(count as usize);
        self.drain(node, &mut entries);
        self.nodes[node as usize] = Node {
            count,
            first_child: 0,
        };
        for e in &entries {
            self.leaf_of.assign(e.id, node);
        }
        self.leaves[node as usize] = entries;
    }

    /// Moves every entry under `node` into `out`, leaving `node` an empty leaf and putting the
    /// blocks below it on the free list.
    fn drain(&mut self, node: u32, out: &mut Vec<Entry>) {
        let n = std::mem::take(&mut self.nodes[node as usize]);
        if n.is_leaf() {
            out.append(&mut std::mem::take(&mut self.leaves[node as usize]));
        } else {
            for child in n.first_child..n.first_child + 4 {
                self.drain(child, out);
            }
            self.free_blocks.push(n.first_child);
        }
    }

    /// Moves entry `id` from `from` to `to` in place when both lie in the same leaf (the common
    /// case of a small move): no count changes, no split, no merge. False when they do not.
    fn move_within_leaf(&mut self, id: EntryId, from: LatLng, to: LatLng) -> bool {
        let mut path = [ROOT; MAX_DEPTH as usize + 1];
        let mut path_len = 0;
        let mut node = ROOT;
        let mut rect = Rect::WORLD;
        loop {
            path[path_len] = node;
            path_len += 1;
            let n = self.nodes[node as usize];
            if n.is_leaf() {
                break;
            }
            let quarter = quadrant(&rect, from);
            if quadrant(&rect, to) != quarter {
                return false;
            }
            node = n.first_child + quarter;
            rect = rect.quarters()[quarter as usize];
        }
        match self.leaves[node as usize].iter_mut().find(|e| e.id == id) {
            Some(entry) => {
                entry.position = to;
                let (old, new) = (unit_vector(from), unit_vector(to));
                for &on_path in &path[..path_len] {
                    let sum = &mut self.sums[on_path as usize];
                    add_to(sum, old, -1);
                    add_to(sum, new, 1);
                }
                true
            }
            None => false,
        }
    }

    /// The deepest cell holding every point of `bbox`. Nothing outside it can answer, so
    /// traversals start there instead of at the root and skip bounding the cells of every
    /// level above. (For a circle, `BoundingBox::around` enlarges the box past its own
    /// rounding, and the callers add a metre for the haversine's.)
    fn enclosing_cell(&self, bbox: &BoundingBox) -> Cell {
        // A box crossing or touching the antimeridian may take points stored on the other
        // side of it (-180 and 180 are one meridian): only the root holds both sides.
        if bbox.crosses_antimeridian() || bbox.west() == -180.0 || bbox.east() == 180.0 {
            return Cell::ROOT;
        }
        let mut cell = Cell::ROOT;
        let mut rect = Rect::WORLD;
        loop {
            let n = self.nodes[cell.node as usize];
            if n.is_leaf() {
                return cell;
            }
            // The tie rule of `quadrant`: a point on a midline belongs to the north or east.
            let mid_lat = (rect.south + rect.north) * 0.5;
            let mid_lng = (rect.west + rect.east) * 0.5;
            let north = if bbox.south() >= mid_lat {
                1
            } else if bbox.north() < mid_lat {
                0
            } else {
                return cell;
            };
            let east = if bbox.west() >= mid_lng {
                1
            } else if bbox.east() < mid_lng {
                0
            } else {
                return cell;
            };
            let quarter = north * 2 + east;
            cell = cell.child(n.first_child, quarter);
            rect = rect.quarters()[quarter as usize];
        }
    }

    /// Entries within `radius_m` of `origin` under `cell`, whose rectangle is `rect`.
    fn count_cell(&self, cell: Cell, rect: &Rect, origin: &Origin, radius_m: f64) -> usize {
        let n = self.nodes[cell.node as usize];
        if n.count == 0 {
            return 0;
        }
        let bounds = rect.bounds(origin);
        // No two points are further apart than half the circumference, whatever the bound says.
        if bounds.max_m.min(HALF_CIRCUMFERENCE_M) + BOUND_SLACK_M <= radius_m {
            return n.count as usize;
        }
        if bounds.min_m - BOUND_SLACK_M > radius_m {
            return 0;
        }
        if n.is_leaf() {
            return self.leaves[cell.node as usize]
                .iter()
                .filter(|e| origin.distance_m(e.position) <= radius_m)
                .count();
        }
        (0..4)
            .zip(rect.quarters())
            .map(|(quarter, q)| {
                self.count_cell(cell.child(n.first_child, quarter), &q, origin, radius_m)
            })
            .sum()
    }

    /// Pushes the ids under `node` (cell `rect`) that lie in `bbox`.
    fn collect_bbox(&self, node: u32, rect: &Rect, bbox: &BoundingBox, out: &mut Vec<EntryId>) {
        let n = self.nodes[node as usize];
        if n.count == 0 {
            return;
        }
        match relate_box(bbox, rect) {
            Relation::Disjoint => return,
            // A cell inside the box needs no per-point test: every point in it is in the box.
            Relation::Inside => {
                self.collect_all(node, out);
                return;
            }
            Relation::Partial => {}
        }
        if n.is_leaf() {
            out.extend(
                self.leaves[node as usize]
                    .iter()
                    .filter(|e| bbox.contains(e.position))
                    .map(|e| e.id),
            );
            return;
        }
        for (child, quarter) in (n.first_child..).zip(rect.quarters()) {
            self.collect_bbox(child, &quarter, bbox, out);
        }
    }

    /// Adds the entries under `cell` (rectangle `rect`) that lie in `region` and pass `filter`
    /// to their tiles' clusters. A subtree inside the region and inside one tile is added
    /// whole, from its count and vector sum, without visiting it (unless filtered: the counts
    /// are of every entry); `inside` says the region is already known to hold `rect`.
    fn cluster_cell(
        &self,
        cell: Cell,
        rect: &Rect,
        selection: &Wanted<'_>,
        inside: bool,
        out: &mut ClusterSet,
    ) {
        let Wanted {
            region,
            filter,
            tag,
        } = *selection;
        let n = self.nodes[cell.node as usize];
        let tags = self.tags[cell.node as usize];
        let wanted = tag.map_or(u64::MAX, Tag::bit);
        if n.count == 0 || tags & wanted == 0 {
            return;
        }
        let inside = inside
            || match region.relate(rect) {
                Relation::Disjoint => return,
                Relation::Inside => true,
                Relation::Partial => false,
            };
        // Two or more: a cluster of one must name its entry, which only a visit finds. With a
        // tag, only a subtree holding that tag alone is all answers.
        if inside
            && filter.is_none()
            && tags & !wanted == 0
            && n.count >= 2
            && let Some(tile) = out
                .grid()
                .cell_tile(cell.depth, rect.south, rect.west, rect.north)
        {
            out.add_sum(tile, u64::from(n.count), self.sums[cell.node as usize]);
            return;
        }
        if n.is_leaf() {
            for e in &self.leaves[cell.node as usize] {
                if (inside || region.contains(e.position))
                    && tag.is_none_or(|tag| e.tag == tag)
                    && filter.is_none_or(|f| f(e.id))
                {
                    out.add_point(e.id, e.position);
                }
            }
            return;
        }
        for (quarter, q) in (0..4).zip(rect.quarters()) {
            self.cluster_cell(
                cell.child(n.first_child, quarter),
                &q,
                selection,
                inside,
                out,
            );
        }
    }

    /// Pushes every id under `node`.
    fn collect_all(&self, node: u32, out: &mut Vec<EntryId>) {
        let n = self.nodes[node as usize];
        if n.is_leaf() {
            out.extend(self.leaves[node as usize].iter().map(|e| e.id));
        } else {
            for child in n.first_child..n.first_child + 4 {
                self.collect_all(child, out);
            }
        }
    }
}

impl Default for QuadTree {
    /// An empty tree with [`QuadTree::DEFAULT_LEAF_CAPACITY`].
    ///
    /// ```
    /// use geo_index::{QuadTree, SpatialIndex};
    /// assert!(QuadTree::default().is_empty());
    /// ```
    fn default() -> Self {
        Self::empty(Self::DEFAULT_LEAF_CAPACITY)
    }
}

impl fmt::Debug for QuadTree {
    /// A summary: printing millions of entries is never what a `{:?}` wants.
    ///
    /// ```
    /// use geo_index::QuadTree;
    /// assert!(format!("{:?}", QuadTree::default()).starts_with("QuadTree"));
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuadTree")
            .field("len", &self.leaf_of.len())
            .field("leaf_capacity", &self.leaf_capacity)
            .field("nodes", &self.nodes.len())
            .field("free_blocks", &self.free_blocks.len())
            .finish()
    }
}

impl Expand for QuadTree {
    type Cell = Cell;

    #[inline]
    fn expand(&self, cell: Cell, frontier: &mut Frontier<'_, Cell>) {
        let n = self.nodes[cell.node as usize];
        if n.is_leaf() {
            for entry in &self.leaves[cell.node as usize] {
                frontier.push_tagged_point(entry.id, entry.position, entry.tag);
            }
            return;
        }
        let first = n.first_child as usize;
        let children = &self.nodes[first..first + 4];
        // A child without the wanted tag holds no answer: skip it like an empty one.
        let wanted = frontier.query().tag().map_or(u64::MAX, Tag::bit);
        let tags = &self.tags[first..first + 4];
        let rect = cell.rect();
        let quarters = rect.quarters();
        let has_region = frontier.query().region().is_some();
        if frontier.query().keyset().is_some() {
            // Resuming: the upper bounds let the engine skip cells wholly before the keyset.
            for ((quarter, child), q) in (0..).zip(children).zip(quarters) {
                if child.count > 0
                    && tags[quarter as usize] & wanted != 0
                    && !(has_region && frontier.outside_region(&q))
                {
                    let bounds = q.bounds(frontier.origin());
                    frontier.push_cell(cell.child(n.first_child, quarter), bounds);
                }
            }
        } else {
            let lower = QuarterBounds::new(&rect, frontier.origin());
            for (quarter, child) in (0..).zip(children) {
                if child.count > 0
                    && tags[quarter as usize] & wanted != 0
                    && !(has_region && frontier.outside_region(&quarters[quarter as usize]))
                {
                    let bounds = Bounds {
                        min_m: lower.min_m(quarter as usize),
                        max_m: f64::INFINITY,
                    };
                    frontier.push_cell(cell.child(n.first_child, quarter), bounds);
                }
            }
        }
    }
}

impl SpatialIndex for QuadTree {
    /// Builds the tree top-down with [`QuadTree::DEFAULT_LEAF_CAPACITY`]: entries are
    /// partitioned by quarter recursively, never inserted one by one.
    ///
    /// ```
    /// use geo_index::{LatLng, QuadTree, SpatialIndex};
    /// let index = QuadTree::build(vec![(1, LatLng::new(0.0, 0.0)?), (1, LatLng::new(1.0, 1.0)?)]);
    /// assert_eq!(index.get(1), Some(LatLng::new(1.0, 1.0)?));
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn build(entries: Vec<(EntryId, LatLng)>) -> Self {
        let mut tree = Self::default();
        tree.fill(entries);
        tree
    }

    /// Number of entries, kept by the id table.
    ///
    /// ```
    /// use geo_index::{LatLng, QuadTree, SpatialIndex};
    /// let index = QuadTree::build(vec![(7, LatLng::new(1.0, 1.0)?), (9, LatLng::new(2.0, 2.0)?)]);
    /// assert_eq!(index.len(), 2);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn id_bound(&self) -> usize {
        self.leaf_of.leaf.len()
    }

    fn len(&self) -> usize {
        self.leaf_of.len()
    }

    /// Where entry `id` is: its leaf from the id table, then a scan of that leaf.
    ///
    /// ```
    /// use geo_index::{LatLng, QuadTree, SpatialIndex};
    /// let index = QuadTree::build(vec![(7, LatLng::new(1.0, 1.0)?)]);
    /// assert_eq!(index.get(7), Some(LatLng::new(1.0, 1.0)?));
    /// assert_eq!(index.get(8), None);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn get(&self, id: EntryId) -> Option<LatLng> {
        self.entry(id).map(|e| e.position)
    }

    /// The tag entry `id` carries ([`Tag::UNTAGGED`] when absent or inserted without one).
    ///
    /// ```
    /// use geo_index::{LatLng, QuadTree, SpatialIndex, Tag};
    /// let mut index = QuadTree::default();
    /// index.insert_tagged(1, LatLng::new(0.0, 0.0)?, Tag::new(2)?);
    /// index.insert(1, LatLng::new(1.0, 1.0)?); // a move keeps the tag
    /// assert_eq!(index.tag(1), Tag::new(2)?);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn tag(&self, id: EntryId) -> Tag {
        self.entry(id).map_or(Tag::UNTAGGED, |e| e.tag)
    }

    /// Inserts or moves entry `id`; a move that stays within its leaf is done in place.
    ///
    /// # Panics
    /// When the tree already holds 2³² − 1 entries and `id` is new.
    ///
    /// ```
    /// use geo_index::{LatLng, QuadTree, SpatialIndex};
    /// let mut index = QuadTree::default();
    /// assert_eq!(index.insert(1, LatLng::new(0.0, 0.0)?), None);
    /// assert_eq!(index.insert(1, LatLng::new(0.0, 1e-6)?), Some(LatLng::new(0.0, 0.0)?));
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn insert(&mut self, id: EntryId, position: LatLng) -> Option<LatLng> {
        let tag = self.entry(id).map_or(Tag::UNTAGGED, |e| e.tag);
        self.insert_tagged(id, position, tag)
    }

    /// Removes entry `id`: one descent to its leaf, then the highest subtree left with half a
    /// leaf or less merges back into one leaf.
    ///
    /// ```
    /// use geo_index::{LatLng, QuadTree, SpatialIndex};
    /// let mut index = QuadTree::with_leaf_capacity(1)?;
    /// index.insert(1, LatLng::new(1.0, 1.0)?);
    /// index.insert(2, LatLng::new(-1.0, -1.0)?);
    /// assert_eq!(index.remove(1), Some(LatLng::new(1.0, 1.0)?));
    /// assert_eq!(index.remove(1), None);
    /// assert_eq!(index.len(), 1);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn remove(&mut self, id: EntryId) -> Option<LatLng> {
        let position = self.get(id)?;
        self.remove_entry(id, position);
        self.leaf_of.clear(id);
        Some(position)
    }

    /// Best-first from the deepest node holding the query circle: entries within the radius,
    /// nearest first, ties by id, computed as they are taken.
    ///
    /// ```
    /// use geo_index::{LatLng, QuadTree, Query, SpatialIndex};
    /// let index = QuadTree::build(vec![
    ///     (1, LatLng::new(0.0, 0.002)?),
    ///     (2, LatLng::new(0.0, 0.001)?),
    ///     (3, LatLng::new(10.0, 10.0)?),
    /// ]);
    /// let ids: Vec<u32> = index
    ///     .search(Query::within(LatLng::new(0.0, 0.0)?, 1_000.0)?)
    ///     .map(|n| n.id)
    ///     .collect();
    /// assert_eq!(ids, [2, 1]);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn search<'a>(&'a self, query: Query<'a>) -> impl Iterator<Item = Neighbour> + 'a {
        BestFirst::new(self, query, |frontier| {
            let circle = BoundingBox::around(query.centre(), query.radius_m() + BOUND_SLACK_M);
            // A region bounds the search too: start from the smaller of the two boxes' cells.
            let cell = match query.region() {
                Some(region) => {
                    let by_region = self.enclosing_cell(&region.bounding_box());
                    let by_circle = self.enclosing_cell(&circle);
                    if by_circle.depth > by_region.depth {
                        by_circle
                    } else {
                        by_region
                    }
                }
                None => self.enclosing_cell(&circle),
            };
            let wanted = query.tag().map_or(u64::MAX, Tag::bit);
            if self.nodes[cell.node as usize].count > 0
                && self.tags[cell.node as usize] & wanted != 0
                && !frontier.outside_region(&cell.rect())
            {
                let bounds = cell.rect().bounds(frontier.origin());
                frontier.push_cell(cell, bounds);
            }
        })
    }

    /// Counts without listing: subtrees wholly inside the circle add their count, subtrees
    /// wholly outside are skipped, and only the leaves the circle's edge crosses are measured.
    ///
    /// ```
    /// use geo_index::{LatLng, QuadTree, SpatialIndex};
    /// let mut index = QuadTree::with_leaf_capacity(4)?;
    /// for i in 0..100 {
    ///     index.insert(i, LatLng::new(0.0, f64::from(i) * 0.001)?);
    /// }
    /// // 0.001° of longitude on the equator is 111.2 m: ids 0 to 44 are within 5 km.
    /// assert_eq!(index.count_within(LatLng::new(0.0, 0.0)?, 5_000.0)?, 45);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn count_within(&self, centre: LatLng, radius_m: f64) -> Result<usize, Error> {
        // Validates the radius exactly as every other query does.
        let query = Query::within(centre, radius_m)?;
        let origin = Origin::new(query.centre());
        let circle = BoundingBox::around(query.centre(), query.radius_m() + BOUND_SLACK_M);
        let cell = self.enclosing_cell(&circle);
        Ok(self.count_cell(cell, &cell.rect(), &origin, query.radius_m()))
    }

    /// Visits only the nodes the box overlaps; nodes wholly inside it are taken without testing
    /// their entries.
    ///
    /// ```
    /// use geo_index::{BoundingBox, LatLng, QuadTree, SpatialIndex};
    /// let index = QuadTree::build(vec![(1, LatLng::new(0.0, 180.0)?), (2, LatLng::new(0.0, 0.0)?)]);
    /// // -180 and 180 are one meridian.
    /// assert_eq!(index.in_bbox(&BoundingBox::new(-1.0, -180.0, 1.0, -179.0)?), [1]);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn in_bbox(&self, bbox: &BoundingBox) -> Vec<EntryId> {
        let mut out = Vec::new();
        self.collect_bbox(ROOT, &Rect::WORLD, bbox, &mut out);
        out
    }

    /// From whole subtrees where it can: a subtree inside the region and inside one tile adds
    /// its count and vector sum without being visited, so a world view costs about the
    /// subtrees cut by tile edges, not the number of entries (unless `filter` is given, which
    /// needs each entry's id).
    ///
    /// ```
    /// use geo_index::{BoundingBox, LatLng, QuadTree, Region, SpatialIndex};
    /// let index = QuadTree::build((0..1_000).map(|i| (i, LatLng::new(48.85, 2.35).unwrap())).collect());
    /// let clusters = index.clusters(&Region::bbox(BoundingBox::WORLD), 4, None, None)?;
    /// assert_eq!(clusters.len(), 1);
    /// assert_eq!(clusters[0].count, 1_000);
    /// assert!((clusters[0].centroid().lat() - 48.85).abs() < 1e-6);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn clusters(
        &self,
        region: &Region,
        zoom: u8,
        filter: Option<&dyn Fn(EntryId) -> bool>,
        tag: Option<Tag>,
    ) -> Result<Vec<Cluster>, Error> {
        let mut out = ClusterSet::new(TileGrid::new(zoom)?);
        let start = self.enclosing_cell(&region.bounding_box());
        let wanted = Wanted {
            region,
            filter,
            tag,
        };
        self.cluster_cell(start, &start.rect(), &wanted, false, &mut out);
        Ok(out.finish())
    }
}

impl HeapSize for QuadTree {
    /// The arena, the leaves' entry vectors (their capacity), the free list and the id table.
    ///
    /// ```
    /// use geo_index::{HeapSize, LatLng, QuadTree, SpatialIndex};
    /// let index = QuadTree::build(vec![(0, LatLng::new(0.0, 0.0)?)]);
    /// assert!(index.heap_bytes() > QuadTree::default().heap_bytes());
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn heap_bytes(&self) -> usize {
        let entries: usize = self.leaves.iter().map(Vec::capacity).sum();
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.sums.capacity() * std::mem::size_of::<[i64; 3]>()
            + self.tags.capacity() * std::mem::size_of::<u64>()
            + self.leaves.capacity() * std::mem::size_of::<Vec<Entry>>()
            + entries * std::mem::size_of::<Entry>()
            + self.free_blocks.capacity() * std::mem::size_of::<u32>()
            + self.leaf_of.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BruteForce;

    fn ll(lat: f64, lng: f64) -> LatLng {
        LatLng::new(lat, lng).expect("valid test coordinate")
    }

    /// Nodes in use: the arena minus the free blocks.
    fn live_nodes(tree: &QuadTree) -> usize {
        tree.nodes.len() - 4 * tree.free_blocks.len()
    }

    /// Checks the structural invariants: counts add up and match the leaves, leaves respect
    /// the capacity unless at the depth limit, every inner node is above the merge threshold,
    /// cell rectangles equal quartered parents, every entry sits in its cell and matches the
    /// id table, and unused nodes are empty.
    fn check_invariants(tree: &QuadTree) {
        fn walk(tree: &QuadTree, cell: Cell, rect: Rect, used: &mut [bool]) -> usize {
            let n = tree.nodes[cell.node as usize];
            assert_eq!(cell.rect(), rect, "grid rectangle differs from quartering");
            used[cell.node as usize] = true;
            let leaf = &tree.leaves[cell.node as usize];
            if n.is_leaf() {
                assert_eq!(leaf.len(), n.count as usize);
                assert!(leaf.len() <= tree.leaf_capacity || cell.depth == MAX_DEPTH);
                for e in leaf {
                    assert!(quadrant_path_ok(&rect, e.position));
                    assert_eq!(tree.leaf_of.get(e.id), Some(cell.node));
                    assert_eq!(tree.get(e.id), Some(e.position));
                }
                return leaf.len();
            }
            assert!(leaf.is_empty());
            assert!(cell.depth < MAX_DEPTH);
            if cell.node != ROOT {
                assert!(
                    n.count as usize > tree.leaf_capacity / 2,
                    "inner node too small"
                );
            }
            let sum: usize = (0..4)
                .zip(rect.quarters())
                .map(|(q, r)| walk(tree, cell.child(n.first_child, q), r, used))
                .sum();
            assert_eq!(sum, n.count as usize);
            sum
        }
        fn quadrant_path_ok(rect: &Rect, p: LatLng) -> bool {
            rect.south <= p.lat && p.lat <= rect.north && rect.west <= p.lng && p.lng <= rect.east
        }
        let mut used = vec![false; tree.nodes.len()];
        let total = walk(tree, Cell::ROOT, Rect::WORLD, &mut used);
        assert_eq!(total, tree.leaf_of.len());
        assert_eq!(tree.nodes.len(), tree.leaves.len());
        for &first in &tree.free_blocks {
            for node in first..first + 4 {
                assert!(!used[node as usize], "free node {node} in use");
                used[node as usize] = true;
                assert_eq!(tree.nodes[node as usize], Node::default());
                assert!(tree.leaves[node as usize].is_empty());
            }
        }
        assert!(used.iter().all(|&u| u), "a node is neither used nor free");
    }

    fn grid(n: u32) -> Vec<(EntryId, LatLng)> {
        (0..n)
            .map(|i| {
                let lat = 48.0 + f64::from(i % 100) * 0.01;
                let lng = 2.0 + f64::from(i / 100) * 0.01;
                (i, ll(lat, lng))
            })
            .collect()
    }

    fn assert_same_answers(tree: &QuadTree, entries: &[(EntryId, LatLng)]) {
        let reference = BruteForce::build(entries.to_vec());
        for (centre, radius) in [
            (ll(48.3, 2.2), 5_000.0),
            (ll(48.0, 2.0), 50_000.0),
            (ll(0.0, 0.0), 2e7),
            (ll(48.5, 2.5), 0.0),
        ] {
            let query = Query::within(centre, radius).expect("valid radius");
            let got: Vec<(EntryId, f64)> =
                tree.search(query).map(|n| (n.id, n.distance_m)).collect();
            let expected: Vec<(EntryId, f64)> = reference
                .search(query)
                .map(|n| (n.id, n.distance_m))
                .collect();
            assert_eq!(got, expected);
            assert_eq!(
                tree.count_within(centre, radius).expect("valid radius"),
                expected.len()
            );
        }
    }

    #[test]
    fn invalid_capacity_is_an_error() {
        assert_eq!(
            QuadTree::with_leaf_capacity(0).err(),
            Some(Error::InvalidLeafCapacity(0))
        );
        assert_eq!(
            QuadTree::with_leaf_capacity(4097).err(),
            Some(Error::InvalidLeafCapacity(4097))
        );
        assert!(QuadTree::build_with_leaf_capacity(Vec::new(), 0).is_err());
        assert!(QuadTree::with_leaf_capacity(1).is_ok());
        assert!(QuadTree::with_leaf_capacity(4096).is_ok());
    }

    #[test]
    fn leaves_split_and_merge_back() {
        let mut tree = QuadTree::with_leaf_capacity(4).expect("valid capacity");
        assert_eq!(live_nodes(&tree), 1);
        let entries = grid(1_000);
        for &(id, p) in &entries {
            assert_eq!(tree.insert(id, p), None);
        }
        check_invariants(&tree);
        let grown = live_nodes(&tree);
        assert!(grown > 250, "{grown} nodes for 1000 entries at capacity 4");
        assert_same_answers(&tree, &entries);

        // Remove all but the first 100: the tree shrinks back and freed blocks are kept.
        for &(id, p) in &entries[100..] {
            assert_eq!(tree.remove(id), Some(p));
        }
        check_invariants(&tree);
        let shrunk = live_nodes(&tree);
        assert!(shrunk < grown / 2, "{shrunk} nodes left of {grown}");
        assert!(!tree.free_blocks.is_empty());
        assert_same_answers(&tree, &entries[..100]);

        // Growing again reuses the freed blocks rather than the end of the arena.
        let arena = tree.nodes.len();
        for &(id, p) in &entries[100..400] {
            tree.insert(id, p);
        }
        check_invariants(&tree);
        assert_eq!(tree.nodes.len(), arena);
        assert_same_answers(&tree, &entries[..400]);

        // Down to nothing: one empty leaf.
        for &(id, _) in &entries[..400] {
            tree.remove(id);
        }
        check_invariants(&tree);
        assert_eq!(live_nodes(&tree), 1);
        assert_eq!(tree.nodes[ROOT as usize], Node::default());
    }

    #[test]
    fn bulk_build_matches_inserts() {
        let entries = grid(5_000);
        let built = QuadTree::build_with_leaf_capacity(entries.clone(), 8).expect("valid");
        check_invariants(&built);
        assert_same_answers(&built, &entries);
        let mut inserted = QuadTree::with_leaf_capacity(8).expect("valid");
        for &(id, p) in &entries {
            inserted.insert(id, p);
        }
        // Same data, same capacity, same splitting rule: the same tree shape.
        assert_eq!(live_nodes(&built), live_nodes(&inserted));
    }

    #[test]
    fn many_duplicates_at_one_coordinate() {
        let p = ll(48.8566, 2.3522);
        let entries: Vec<(EntryId, LatLng)> = (0..5_000).map(|i| (i, p)).collect();
        for capacity in [1, 4, 32] {
            let built = QuadTree::build_with_leaf_capacity(entries.clone(), capacity).expect("ok");
            check_invariants(&built);
            assert_same_answers(&built, &entries);
            // The chain to the shared leaf is bounded by the depth limit.
            assert!(live_nodes(&built) <= 1 + 4 * MAX_DEPTH as usize);

            let mut tree = QuadTree::with_leaf_capacity(capacity).expect("ok");
            for &(id, q) in &entries {
                tree.insert(id, q);
            }
            check_invariants(&tree);
            assert_same_answers(&tree, &entries);
            let found: Vec<EntryId> = tree.within(p, 0.0).expect("ok").map(|n| n.id).collect();
            assert_eq!(found, (0..5_000).collect::<Vec<_>>());
            // Moving one away and back, and removing most, keeps it consistent.
            let away = ll(-33.9, 18.4);
            assert_eq!(tree.move_to(7, away), Some(p));
            assert_eq!(tree.nearest(away, 1, 1.0).expect("ok")[0].id, 7);
            assert_eq!(tree.move_to(7, p), Some(away));
            for id in 10..5_000 {
                assert_eq!(tree.remove(id), Some(p));
            }
            check_invariants(&tree);
            assert_same_answers(&tree, &entries[..10]);
        }
    }

    #[test]
    fn extreme_capacities() {
        let mut entries = grid(3_000);
        entries.extend([
            (3_000, ll(90.0, 0.0)),
            (3_001, ll(-90.0, 180.0)),
            (3_002, ll(0.0, -180.0)),
            (3_003, ll(0.0, 180.0)),
        ]);
        for capacity in [1, 4096] {
            let built = QuadTree::build_with_leaf_capacity(entries.clone(), capacity).expect("ok");
            check_invariants(&built);
            assert_same_answers(&built, &entries);
            let mut tree = QuadTree::with_leaf_capacity(capacity).expect("ok");
            for &(id, p) in &entries {
                tree.insert(id, p);
            }
            check_invariants(&tree);
            assert_same_answers(&tree, &entries);
            if capacity == 4096 {
                // Everything fits in the root leaf.
                assert_eq!(live_nodes(&tree), 1);
            }
            for &(id, p) in entries.iter().step_by(2) {
                assert_eq!(tree.remove(id), Some(p));
            }
            check_invariants(&tree);
            let left: Vec<_> = entries.iter().copied().skip(1).step_by(2).collect();
            assert_same_answers(&tree, &left);
        }
    }

    #[test]
    fn moves_within_and_across_leaves() {
        let entries = grid(2_000);
        let mut tree = QuadTree::build_with_leaf_capacity(entries.clone(), 16).expect("ok");
        let mut moved = entries.clone();
        for (i, (id, p)) in moved.iter_mut().enumerate() {
            // Alternate tiny moves (same leaf) and jumps across the world.
            let to = if i % 2 == 0 {
                ll(p.lat + 1e-7, p.lng)
            } else {
                ll(-p.lat, -p.lng)
            };
            assert_eq!(tree.move_to(*id, to), Some(*p));
            *p = to;
        }
        check_invariants(&tree);
        assert_same_answers(&tree, &moved);
    }

    #[test]
    fn bbox_on_the_antimeridian_and_poles() {
        let entries = vec![
            (0, ll(0.0, -180.0)),
            (1, ll(0.0, 180.0)),
            (2, ll(10.0, 179.0)),
            (3, ll(-10.0, -179.0)),
            (4, ll(90.0, 0.0)),
            (5, ll(0.0, 0.0)),
        ];
        let tree = QuadTree::build_with_leaf_capacity(entries.clone(), 1).expect("ok");
        let reference = BruteForce::build(entries);
        for bbox in [
            BoundingBox::new(-5.0, 170.0, 5.0, 180.0),
            BoundingBox::new(-5.0, -180.0, 5.0, -170.0),
            BoundingBox::new(-20.0, 178.0, 20.0, -178.0),
            BoundingBox::new(80.0, -180.0, 90.0, 180.0),
            Ok(BoundingBox::WORLD),
        ] {
            let bbox = bbox.expect("valid box");
            let mut got = tree.in_bbox(&bbox);
            let mut expected = reference.in_bbox(&bbox);
            got.sort_unstable();
            expected.sort_unstable();
            assert_eq!(got, expected, "{bbox:?}");
        }
    }

    #[test]
    fn a_build_on_threads_gives_the_arena_of_the_sequential_build() {
        let mut entries: Vec<Entry> = grid(6_000)
            .into_iter()
            .map(|(id, position)| Entry {
                position,
                id,
                tag: Tag::new((id % 5) as u8).expect("small"),
            })
            .collect();
        // Duplicate positions at a pole and on the antimeridian too.
        let pole = LatLng::new(90.0, 0.0).expect("valid");
        let edge = LatLng::new(0.0, 180.0).expect("valid");
        for id in 6_000..6_100 {
            let position = if id % 2 == 0 { pole } else { edge };
            entries.push(Entry {
                position,
                id,
                tag: Tag::UNTAGGED,
            });
        }
        let built = |threads: usize| {
            let mut tree = QuadTree::empty(QuadTree::DEFAULT_LEAF_CAPACITY);
            let mut all = entries.clone();
            tree.leaf_of = LeafTable::with_ids(all.len(), all.len());
            tree.build_top(&mut all, threads);
            tree
        };
        let sequential = built(1);
        for threads in [2, 3, 4] {
            let parallel = built(threads);
            assert_eq!(parallel.nodes, sequential.nodes, "{threads} threads");
            assert_eq!(parallel.sums, sequential.sums);
            assert_eq!(parallel.tags, sequential.tags);
            assert_eq!(parallel.leaf_of.leaf, sequential.leaf_of.leaf);
            let ids = |tree: &QuadTree| -> Vec<Vec<EntryId>> {
                tree.leaves
                    .iter()
                    .map(|l| l.iter().map(|e| e.id).collect())
                    .collect()
            };
            assert_eq!(ids(&parallel), ids(&sequential));
            check_invariants(&parallel);
        }
    }

    #[test]
    fn sparse_ids_are_refused_not_allocated() {
        let p = LatLng::new(1.0, 2.0).expect("valid");
        let mut tree = QuadTree::build(vec![(0, p), (1, p)]);
        let limit = crate::dense_id_limit(tree.id_bound(), tree.len());
        assert_eq!(
            tree.try_insert(u32::MAX, p),
            Err(Error::SparseId {
                id: u32::MAX,
                limit
            })
        );
        assert_eq!(tree.len(), 2);
        assert!(tree.id_bound() < 1_000, "the id table did not grow");
        // Just below the limit is taken (the table grows to it, a bounded amount).
        let last = EntryId::try_from(limit - 1).expect("small");
        assert_eq!(tree.try_insert(last, p), Ok(None));
        assert!(matches!(
            QuadTree::try_build(vec![(u32::MAX, p)]),
            Err(Error::SparseId { .. })
        ));
        let refused = std::panic::catch_unwind(|| {
            let mut tree = QuadTree::default();
            tree.insert(u32::MAX, p)
        });
        assert!(refused.is_err(), "insert panics rather than allocating");
    }

    #[test]
    fn heap_bytes_counts_leaves_and_slots() {
        let empty = QuadTree::default();
        let tree = QuadTree::build(grid(1_000));
        assert!(tree.heap_bytes() >= empty.heap_bytes() + 1_000 * std::mem::size_of::<Entry>());
        assert!(tree.heap_bytes() >= tree.leaf_of.heap_bytes() + tree.nodes.len() * 8);
    }

    /// A grid position's rectangle equals the one reached by quartering, down to the depth
    /// limit, along paths hugging every edge and the middle.
    #[test]
    fn grid_rectangles_are_exact() {
        for path in [
            [0u32; 32],
            [3; 32],
            [1; 32],
            [2; 32],
            [0, 3].repeat(16).try_into().expect("32"),
            [1, 2].repeat(16).try_into().expect("32"),
        ] {
            let mut cell = Cell::ROOT;
            let mut rect = Rect::WORLD;
            for quarter in path {
                cell = cell.child(1, quarter);
                rect = rect.quarters()[quarter as usize];
                assert_eq!(cell.rect(), rect);
                assert!(rect.south < rect.north && rect.west < rect.east);
            }
            assert_eq!(cell.depth, MAX_DEPTH);
        }
    }

    /// The batched lower bounds equal those of `Rect::bounds`, bit for bit, so they are exactly
    /// as valid.
    #[test]
    fn quarter_bounds_equal_rect_bounds() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut origins = vec![
            ll(0.0, 0.0),
            ll(90.0, 0.0),
            ll(-90.0, 180.0),
            ll(0.0, -180.0),
            ll(45.0, 180.0),
        ];
        for _ in 0..200 {
            let lat = (next() % 180_001) as f64 / 1000.0 - 90.0;
            let lng = (next() % 360_001) as f64 / 1000.0 - 180.0;
            origins.push(ll(lat, lng));
        }
        for (i, centre) in origins.iter().enumerate() {
            let origin = Origin::new(*centre);
            // Cells of every depth, near the origin (where gaps vanish) and anywhere.
            for depth in 0..=MAX_DEPTH {
                let anywhere = next();
                let cells = 1u64 << depth;
                let (x, y) = if i % 2 == 0 {
                    let x = ((centre.lng + 180.0) / 360.0 * cells as f64) as u64;
                    let y = ((centre.lat + 90.0) / 180.0 * cells as f64) as u64;
                    (x.min(cells - 1), y.min(cells - 1))
                } else {
                    (anywhere % cells, (anywhere >> 32) % cells)
                };
                let cell = Cell {
                    node: 0,
                    x: u32::try_from(x).expect("fits"),
                    y: u32::try_from(y).expect("fits"),
                    depth,
                };
                let rect = cell.rect();
                let lower = QuarterBounds::new(&rect, &origin);
                for (q, quarter) in rect.quarters().iter().enumerate() {
                    let expected = quarter.bounds(&origin).min_m;
                    assert_eq!(
                        lower.min_m(q).to_bits(),
                        expected.to_bits(),
                        "{centre:?} {quarter:?}"
                    );
                }
            }
        }
    }

    /// The search seed holds every answer, on and around the midlines and the antimeridian.
    #[test]
    fn enclosing_cell_holds_the_circle() {
        let mut entries = grid(2_000);
        entries.extend([
            (5_000, ll(0.0, 0.0)),
            (5_001, ll(0.0, -180.0)),
            (5_002, ll(0.0, 180.0)),
            (5_003, ll(45.0, 90.0)),
            (5_004, ll(89.9999, 0.0)),
        ]);
        let tree = QuadTree::build_with_leaf_capacity(entries.clone(), 1).expect("ok");
        let reference = BruteForce::build(entries);
        for centre in [
            ll(0.0, 0.0),
            ll(0.0, 179.99),
            ll(0.0, -179.99),
            ll(45.0, 90.0),
            ll(48.5, 2.5),
            ll(89.99, 10.0),
            ll(0.00001, 0.00001),
        ] {
            for radius in [0.0, 1.0, 100.0, 10_000.0, 1e6] {
                let query = Query::within(centre, radius).expect("valid");
                let got: Vec<EntryId> = tree.search(query).map(|n| n.id).collect();
                let expected: Vec<EntryId> = reference.search(query).map(|n| n.id).collect();
                assert_eq!(got, expected, "{centre:?} {radius}");
            }
        }
    }
}

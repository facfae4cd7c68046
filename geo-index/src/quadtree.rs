//! An adaptive quadtree over the latitude/longitude rectangle.
//!
//! # Design
//!
//! The tree covers [`Rect::WORLD`], `[-90, 90] × [-180, 180]` degrees, and every node is a
//! rectangle split into four equal quarters ([`Rect::quarters`]), so a node's rectangle is
//! never stored for leaves: it is recomputed on the way down, with the very arithmetic the
//! search uses, which keeps "which quarter holds this point" and "which rectangle the search
//! bounds" bit-for-bit consistent. The rectangles are dyadic fractions of 180° and 360°, exact
//! in `f64` at every depth the tree can reach.
//!
//! - **Adaptive.** A leaf holding more than `leaf_capacity` entries splits into four; a subtree
//!   whose count falls to `leaf_capacity / 2` or below after removals merges back into one
//!   leaf. The gap between the two thresholds is hysteresis: an entry moving back and forth
//!   across a boundary cannot make a node split and merge on every move. Dense clusters get
//!   deep, small cells while empty oceans stay as a handful of big leaves, which is what a
//!   fixed grid (geohash) cannot do.
//! - **Bounded depth.** At [`MAX_DEPTH`] a leaf no longer splits but simply grows: entries
//!   sharing one coordinate can never be separated, and splitting them would recurse forever.
//!   Finding an entry in such a leaf is a scan of that leaf, the one place an operation costs
//!   more than O(depth + capacity); it takes thousands of entries within millimetres.
//! - **Arena storage.** Nodes live in one `Vec` and refer to each other by index. The four
//!   children of a node are allocated together as one block of four consecutive nodes, so an
//!   inner node needs a single child index and expanding it touches one or two cache lines.
//!   Blocks freed by merges go on a free list and are reused by the next split.
//! - **Entries inline in leaves.** A leaf holds `(position, id)` pairs contiguously, so
//!   measuring a leaf's points during a search reads one short array instead of chasing every
//!   id into the id table, a random access into a table as large as the data set. The id table
//!   ([`Slots`]) is kept as well: it answers `get` in O(1) and gives the position to descend
//!   by when an entry is removed or moved, so those are O(depth), never a scan.
//! - **Counts in inner nodes.** Every inner node knows how many entries its subtree holds:
//!   the search skips empty children without measuring them, merges know when to happen, and
//!   [`SpatialIndex::count_within`] adds whole subtrees lying inside the circle without
//!   visiting them.
//! - **Search.** Queries run on the shared best-first engine ([`BestFirst`]): a cell is a node
//!   index, expanding an inner node queues its non-empty children with their distance bounds
//!   and expanding a leaf measures its entries, so results come out nearest first and lazily.
//!
//! Ties on a quarter boundary go north and east (`>=` the midpoint); any fixed rule works as
//! long as descent, bulk build and split all use it, which they do through [`quadrant`].

use crate::latlng::Origin;
use crate::search::{BestFirst, Expand, Frontier, Rect};
use crate::slots::Slots;
use crate::{
    BoundingBox, EntryId, Error, HALF_CIRCUMFERENCE_M, LatLng, Neighbour, Query, SpatialIndex,
};
use std::fmt;

/// Deepest level a node can sit at; leaves there grow instead of splitting. A cell at depth 32
/// is 180° / 2³² ≈ 4.7 mm tall, far below any positioning precision, so real data never needs
/// more, and a pile of duplicates costs at most 32 levels of single-child nodes.
const MAX_DEPTH: usize = 32;

/// Slack on the distance bounds in [`SpatialIndex::count_within`]: a node is counted whole only
/// when its upper bound is this far inside the radius, and skipped only when its lower bound is
/// this far outside. Haversine rounding is below 0.1 m even near antipodes, so 1 m keeps the
/// count exactly equal to measuring every point, at no measurable cost.
const COUNT_SLACK_M: f64 = 1.0;

/// The root node's index in the arena; the root is never freed.
const ROOT: usize = 0;

/// One entry as a leaf stores it: the position inline, so that measuring a leaf reads one
/// contiguous array.
#[derive(Clone, Copy, Debug)]
struct Entry {
    position: LatLng,
    id: EntryId,
}

/// A node of the arena.
#[derive(Clone, Debug)]
enum Node {
    /// A leaf and its entries; its count is their number. Its rectangle is not stored: it is
    /// known from the parent whenever it is needed.
    Leaf(Vec<Entry>),
    /// An inner node: its four children are the block `first_child..first_child + 4`, in the
    /// order of [`Rect::quarters`]. The rectangle is stored so that expanding the node in a
    /// search needs nothing but the node.
    Inner {
        count: usize,
        first_child: usize,
        rect: Rect,
    },
}

impl Node {
    #[inline]
    fn count(&self) -> usize {
        match self {
            Node::Leaf(entries) => entries.len(),
            Node::Inner { count, .. } => *count,
        }
    }
}

/// Which quarter of `rect` holds `position`, as an index into [`Rect::quarters`]: south-west 0,
/// south-east 1, north-west 2, north-east 3. Points on a midline go north or east.
///
/// The midpoints are computed exactly as [`Rect::quarters`] computes them, so the chosen
/// quarter always contains the point.
#[inline]
fn quadrant(rect: &Rect, position: LatLng) -> usize {
    let mid_lat = (rect.south + rect.north) * 0.5;
    let mid_lng = (rect.west + rect.east) * 0.5;
    usize::from(position.lat >= mid_lat) * 2 + usize::from(position.lng >= mid_lng)
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

/// An adaptive quadtree: leaves split into four when they overflow and subtrees merge back when
/// they empty, so cells are small where entries are dense and large where they are sparse.
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
    /// First indices of blocks of four nodes freed by merges, ready for reuse.
    free_blocks: Vec<usize>,
    /// Position by id, for `get` and to find an entry's leaf.
    slots: Slots,
    leaf_capacity: usize,
}

impl QuadTree {
    /// The leaf capacity of [`QuadTree::default`] and [`SpatialIndex::build`].
    ///
    /// Chosen by measurement on 10 million clustered points (k = 20 nearest within 5 km):
    /// smaller leaves measure fewer points per query but queue more cells, and bounding a cell
    /// costs about two point distances.
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

    /// An empty tree; `leaf_capacity` is already validated.
    fn empty(leaf_capacity: usize) -> Self {
        Self {
            nodes: vec![Node::Leaf(Vec::new())],
            free_blocks: Vec::new(),
            slots: Slots::default(),
            leaf_capacity,
        }
    }

    /// Bulk-builds an empty tree from `entries`, top-down.
    fn fill(&mut self, entries: Vec<(EntryId, LatLng)>) {
        self.slots = Slots::from_entries(&entries);
        // The slots now hold every entry once (the last position of a repeated id); free the
        // input before copying the entries again.
        drop(entries);
        let mut all: Vec<Entry> = self
            .slots
            .iter()
            .map(|(id, position)| Entry { position, id })
            .collect();
        self.build_node(ROOT, Rect::WORLD, 0, &mut all);
    }

    /// Makes `node`, a cell `rect` at `depth`, hold exactly `entries`: a leaf if they fit,
    /// otherwise an inner node over the four quarters, recursively.
    fn build_node(&mut self, node: usize, rect: Rect, depth: usize, entries: &mut [Entry]) {
        if entries.len() <= self.leaf_capacity || depth >= MAX_DEPTH {
            self.nodes[node] = Node::Leaf(entries.to_vec());
            return;
        }
        let count = entries.len();
        let south_len = partition(entries, |e| quadrant(&rect, e.position) < 2);
        let (south, north) = entries.split_at_mut(south_len);
        let west_len = partition(south, |e| quadrant(&rect, e.position) & 1 == 0);
        let (south_west, south_east) = south.split_at_mut(west_len);
        let west_len = partition(north, |e| quadrant(&rect, e.position) & 1 == 0);
        let (north_west, north_east) = north.split_at_mut(west_len);

        let first_child = self.alloc_block();
        self.nodes[node] = Node::Inner {
            count,
            first_child,
            rect,
        };
        let quarters = rect.quarters();
        let parts = [south_west, south_east, north_west, north_east];
        for (i, (part, quarter)) in parts.into_iter().zip(quarters).enumerate() {
            self.build_node(first_child + i, quarter, depth + 1, part);
        }
    }

    /// A block of four empty leaves, reused from the free list when possible.
    fn alloc_block(&mut self) -> usize {
        if let Some(first) = self.free_blocks.pop() {
            return first;
        }
        let first = self.nodes.len();
        self.nodes.extend((0..4).map(|_| Node::Leaf(Vec::new())));
        first
    }

    /// Adds an entry whose id is not in the tree: one descent, counting it on the way, then a
    /// split if its leaf overflows.
    fn insert_entry(&mut self, entry: Entry) {
        let mut node = ROOT;
        let mut rect = Rect::WORLD;
        let mut depth = 0;
        loop {
            match &mut self.nodes[node] {
                Node::Inner {
                    count,
                    first_child,
                    rect: inner_rect,
                } => {
                    *count += 1;
                    let quarter = quadrant(inner_rect, entry.position);
                    rect = inner_rect.quarters()[quarter];
                    node = *first_child + quarter;
                    depth += 1;
                }
                Node::Leaf(entries) => {
                    entries.push(entry);
                    if entries.len() > self.leaf_capacity && depth < MAX_DEPTH {
                        self.split(node, rect, depth);
                    }
                    return;
                }
            }
        }
    }

    /// Turns the overflowing leaf `node` (cell `rect` at `depth`) into an inner node over four
    /// new leaves, splitting again any quarter that still overflows.
    fn split(&mut self, node: usize, rect: Rect, depth: usize) {
        let Node::Leaf(entries) = std::mem::replace(&mut self.nodes[node], Node::Leaf(Vec::new()))
        else {
            return;
        };
        let count = entries.len();
        let mut parts: [Vec<Entry>; 4] = Default::default();
        for entry in entries {
            parts[quadrant(&rect, entry.position)].push(entry);
        }
        let first_child = self.alloc_block();
        self.nodes[node] = Node::Inner {
            count,
            first_child,
            rect,
        };
        let quarters = rect.quarters();
        for (i, (part, quarter)) in parts.into_iter().zip(quarters).enumerate() {
            let overflows = part.len() > self.leaf_capacity;
            self.nodes[first_child + i] = Node::Leaf(part);
            if overflows && depth + 1 < MAX_DEPTH {
                self.split(first_child + i, quarter, depth + 1);
            }
        }
    }

    /// Removes entry `id`, which the tree holds at `position`: one descent, uncounting it on
    /// the way, then a merge of the highest subtree that became small enough.
    fn remove_entry(&mut self, id: EntryId, position: LatLng) {
        // Inner nodes sit at depths 0..MAX_DEPTH, so the path fits without allocating.
        let mut path = [ROOT; MAX_DEPTH];
        let mut path_len = 0;
        let mut node = ROOT;
        while let Node::Inner {
            count,
            first_child,
            rect,
        } = &mut self.nodes[node]
        {
            *count -= 1;
            path[path_len] = node;
            path_len += 1;
            node = *first_child + quadrant(rect, position);
        }
        if let Node::Leaf(entries) = &mut self.nodes[node] {
            if let Some(at) = entries.iter().position(|e| e.id == id) {
                entries.swap_remove(at);
            }
            debug_assert!(entries.iter().all(|e| e.id != id));
            // Only leaves that grew past the capacity (at the depth limit) can hold much spare
            // room; give it back once they are mostly empty.
            if entries.capacity() > 2 * self.leaf_capacity && entries.len() < entries.capacity() / 4
            {
                entries.shrink_to(entries.len() * 2);
            }
        }
        // Counts only shrink along the path, so the highest small node contains all others.
        let merge = path[..path_len]
            .iter()
            .copied()
            .find(|&n| self.nodes[n].count() <= self.leaf_capacity / 2);
        if let Some(top) = merge {
            self.merge(top);
        }
    }

    /// Collapses the subtree under `node` into one leaf, freeing its blocks.
    fn merge(&mut self, node: usize) {
        let mut entries = Vec::with_capacity(self.nodes[node].count());
        self.drain(node, &mut entries);
        self.nodes[node] = Node::Leaf(entries);
    }

    /// Moves every entry under `node` into `out`, leaving `node` an empty leaf and putting the
    /// blocks below it on the free list.
    fn drain(&mut self, node: usize, out: &mut Vec<Entry>) {
        match std::mem::replace(&mut self.nodes[node], Node::Leaf(Vec::new())) {
            Node::Leaf(entries) => out.extend(entries),
            Node::Inner { first_child, .. } => {
                for child in first_child..first_child + 4 {
                    self.drain(child, out);
                }
                self.free_blocks.push(first_child);
            }
        }
    }

    /// Moves entry `id` from `from` to `to` in place when both lie in the same leaf (the common
    /// case of a small move): no count changes, no split, no merge. False when they do not.
    fn move_within_leaf(&mut self, id: EntryId, from: LatLng, to: LatLng) -> bool {
        let mut node = ROOT;
        while let Node::Inner {
            first_child, rect, ..
        } = &self.nodes[node]
        {
            let quarter = quadrant(rect, from);
            if quadrant(rect, to) != quarter {
                return false;
            }
            node = *first_child + quarter;
        }
        if let Node::Leaf(entries) = &mut self.nodes[node]
            && let Some(entry) = entries.iter_mut().find(|e| e.id == id)
        {
            entry.position = to;
            return true;
        }
        false
    }

    /// Entries within `radius_m` under `node`, whose distance bounds are `bounds`.
    fn count_node(&self, node: usize, rect: &Rect, origin: &Origin, radius_m: f64) -> usize {
        let n = &self.nodes[node];
        let count = n.count();
        if count == 0 {
            return 0;
        }
        let bounds = rect.bounds(origin);
        // No two points are further apart than half the circumference, whatever the bound says.
        if bounds.max_m.min(HALF_CIRCUMFERENCE_M) + COUNT_SLACK_M <= radius_m {
            return count;
        }
        if bounds.min_m - COUNT_SLACK_M > radius_m {
            return 0;
        }
        match n {
            Node::Leaf(entries) => entries
                .iter()
                .filter(|e| origin.distance_m(e.position) <= radius_m)
                .count(),
            Node::Inner { first_child, .. } => rect
                .quarters()
                .iter()
                .enumerate()
                .map(|(i, quarter)| self.count_node(first_child + i, quarter, origin, radius_m))
                .sum(),
        }
    }

    /// Pushes the ids under `node` (cell `rect`) that lie in `bbox`; `intervals` are the box's
    /// longitude intervals, widened to the other side of the antimeridian where they touch it.
    fn collect_bbox(
        &self,
        node: usize,
        rect: &Rect,
        bbox: &BoundingBox,
        intervals: &[(f64, f64)],
        out: &mut Vec<EntryId>,
    ) {
        let n = &self.nodes[node];
        if n.count() == 0 || rect.north < bbox.south() || rect.south > bbox.north() {
            return;
        }
        if !intervals
            .iter()
            .any(|&(west, east)| rect.west <= east && rect.east >= west)
        {
            return;
        }
        // A cell inside the box needs no per-point test: every point in it is in the box.
        if rect.south >= bbox.south()
            && rect.north <= bbox.north()
            && intervals
                .iter()
                .any(|&(west, east)| rect.west >= west && rect.east <= east)
        {
            self.collect_all(node, out);
            return;
        }
        match n {
            Node::Leaf(entries) => out.extend(
                entries
                    .iter()
                    .filter(|e| bbox.contains(e.position))
                    .map(|e| e.id),
            ),
            Node::Inner { first_child, .. } => {
                for (i, quarter) in rect.quarters().iter().enumerate() {
                    self.collect_bbox(first_child + i, quarter, bbox, intervals, out);
                }
            }
        }
    }

    /// Pushes every id under `node`.
    fn collect_all(&self, node: usize, out: &mut Vec<EntryId>) {
        match &self.nodes[node] {
            Node::Leaf(entries) => out.extend(entries.iter().map(|e| e.id)),
            Node::Inner { first_child, .. } => {
                for child in *first_child..*first_child + 4 {
                    self.collect_all(child, out);
                }
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
            .field("len", &self.slots.len())
            .field("leaf_capacity", &self.leaf_capacity)
            .field("nodes", &self.nodes.len())
            .field("free_blocks", &self.free_blocks.len())
            .finish()
    }
}

impl Expand for QuadTree {
    type Cell = usize;

    #[inline]
    fn expand(&self, cell: usize, frontier: &mut Frontier<'_, usize>) {
        match &self.nodes[cell] {
            Node::Leaf(entries) => {
                for entry in entries {
                    frontier.push_point(entry.id, entry.position);
                }
            }
            Node::Inner {
                first_child, rect, ..
            } => {
                let children = &self.nodes[*first_child..*first_child + 4];
                for (i, (child, quarter)) in children.iter().zip(rect.quarters()).enumerate() {
                    if child.count() > 0 {
                        let bounds = quarter.bounds(frontier.origin());
                        frontier.push_cell(first_child + i, bounds);
                    }
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

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn get(&self, id: EntryId) -> Option<LatLng> {
        self.slots.get(id)
    }

    fn insert(&mut self, id: EntryId, position: LatLng) -> Option<LatLng> {
        let previous = self.slots.set(id, position);
        match previous {
            None => self.insert_entry(Entry { position, id }),
            Some(from) => {
                if !self.move_within_leaf(id, from, position) {
                    self.remove_entry(id, from);
                    self.insert_entry(Entry { position, id });
                }
            }
        }
        previous
    }

    fn remove(&mut self, id: EntryId) -> Option<LatLng> {
        let position = self.slots.take(id)?;
        self.remove_entry(id, position);
        Some(position)
    }

    fn search<'a>(&'a self, query: Query<'a>) -> impl Iterator<Item = Neighbour> + 'a {
        BestFirst::new(self, query, |frontier| {
            if self.nodes[ROOT].count() > 0 {
                let bounds = Rect::WORLD.bounds(frontier.origin());
                frontier.push_cell(ROOT, bounds);
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
        Ok(self.count_node(ROOT, &Rect::WORLD, &origin, query.radius_m()))
    }

    fn in_bbox(&self, bbox: &BoundingBox) -> Vec<EntryId> {
        // Longitudes -180 and 180 are one meridian: an interval reaching one also takes the
        // cells that only touch the other.
        let mut intervals = [(0.0, 0.0); 4];
        let mut len = 0;
        for (west, east) in bbox.lng_intervals().into_iter().flatten() {
            intervals[len] = (west, east);
            len += 1;
            if east == 180.0 {
                intervals[len] = (-180.0, -180.0);
                len += 1;
            } else if west == -180.0 {
                intervals[len] = (180.0, 180.0);
                len += 1;
            }
        }
        let mut out = Vec::new();
        self.collect_bbox(ROOT, &Rect::WORLD, bbox, &intervals[..len], &mut out);
        out
    }

    fn heap_bytes(&self) -> usize {
        let leaves: usize = self
            .nodes
            .iter()
            .map(|node| match node {
                Node::Leaf(entries) => entries.capacity() * std::mem::size_of::<Entry>(),
                Node::Inner { .. } => 0,
            })
            .sum();
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + leaves
            + self.free_blocks.capacity() * std::mem::size_of::<usize>()
            + self.slots.heap_bytes()
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

    /// Checks the structural invariants: counts add up, leaves respect the capacity unless at
    /// the depth limit, every inner node is above the merge threshold, every entry sits in the
    /// cell that contains it and matches the id table.
    fn check_invariants(tree: &QuadTree) {
        fn walk(tree: &QuadTree, node: usize, rect: Rect, depth: usize, seen: &mut usize) -> usize {
            match &tree.nodes[node] {
                Node::Leaf(entries) => {
                    assert!(entries.len() <= tree.leaf_capacity || depth == MAX_DEPTH);
                    for e in entries {
                        assert!(rect.south <= e.position.lat && e.position.lat <= rect.north);
                        assert!(rect.west <= e.position.lng && e.position.lng <= rect.east);
                        assert_eq!(tree.slots.get(e.id), Some(e.position));
                    }
                    *seen += entries.len();
                    entries.len()
                }
                Node::Inner {
                    count,
                    first_child,
                    rect: stored,
                } => {
                    assert_eq!(*stored, rect);
                    assert!(depth < MAX_DEPTH);
                    if node != ROOT || *count > 0 {
                        assert!(*count > tree.leaf_capacity / 2, "inner node too small");
                    }
                    let sum: usize = rect
                        .quarters()
                        .into_iter()
                        .enumerate()
                        .map(|(i, q)| walk(tree, first_child + i, q, depth + 1, seen))
                        .sum();
                    assert_eq!(sum, *count);
                    sum
                }
            }
        }
        let mut seen = 0;
        let total = walk(tree, ROOT, Rect::WORLD, 0, &mut seen);
        assert_eq!(total, tree.slots.len());
        assert_eq!(seen, tree.slots.len());
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
        assert!(matches!(&tree.nodes[ROOT], Node::Leaf(e) if e.is_empty()));
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
            assert!(live_nodes(&built) <= 1 + 4 * MAX_DEPTH);

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
    fn heap_bytes_counts_leaves_and_slots() {
        let empty = QuadTree::default();
        let tree = QuadTree::build(grid(1_000));
        assert!(tree.heap_bytes() >= empty.heap_bytes() + 1_000 * std::mem::size_of::<Entry>());
        assert!(tree.heap_bytes() >= tree.slots.heap_bytes() + tree.nodes.len() * 8);
    }
}

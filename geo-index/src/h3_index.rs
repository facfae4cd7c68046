//! [`H3Index`]: entries keyed by their H3 cell at resolution 15 in a B-tree, searched best
//! first from a `grid_disk` around the query centre: **grid_disk + exact post-filter**.
//!
//! # Design
//!
//! Every entry is stored as `(resolution-15 cell index, entry id) → position` in a
//! `BTreeMap`, plus the dense id → position table ([`Slots`]). Insert, remove and move are one
//! or two B-tree operations: O(log n). The position is repeated in the tree so that scanning
//! a cell reads contiguous memory (see the S2 index, which does the same for the same reason).
//!
//! **Coarse cells are key ranges.** An H3 cell index is, from the top bit down: a reserved
//! bit, 4 mode bits, 3 reserved bits, 4 resolution bits, 7 base cell bits, then fifteen 3-bit
//! digits (resolutions 1 to 15), the digits past the cell's resolution set to `0b111`. Every
//! stored key has resolution 15, so the resolution-15 descendants of a cell `C` at resolution
//! `r` are the stored keys sharing `C`'s mode, base cell and first `r` digits once the
//! resolution field reads 15. They fill one contiguous range: from `C` with resolution 15 and
//! digits `r+1..=15` all 0 (h3o's `center_child`), to `C` with resolution 15 (its unused
//! digits are already `0b111`). Any valid resolution-15 key inside that range shares those
//! high bits, so it *is* a descendant; a pentagon's deleted K sub-sequence only leaves holes.
//! The unit tests check this against h3o's `parent`, `center_child` and `children`.
//!
//! **Query: grid_disk + exact post-filter.** The query picks a resolution from the radius (the
//! finest whose average edge is at least `radius / RADIUS_PER_EDGE`), takes the centre's
//! cell there and its `grid_disk(k)` (as `grid_disk_distances`, which also tells each cell's
//! ring), with `k` large enough that every cell holding an entry within the radius is in the
//! disk (see below). Each disk cell is queued in the shared
//! best-first traversal ([`crate::search`]) with a lower bound from its ring alone, and gets
//! its real bounds (which need its centre, the costly part of H3 here) only when popped, which
//! cells of the outer rings rarely are in a nearest-k query. Opening a cell range-scans
//! it and either queues its children (when it holds more than [`SPLIT_THRESHOLD`] entries)
//! or measures its entries exactly (haversine, through `Frontier::push_point`, bit-identical
//! to the brute force): that is the post-filter. For radii above [`LARGE_RADIUS_M`] the disk
//! gives way to all 122 base cells (centres computed once per process), since a disk at
//! resolution 0 or 1 would cover a large part of the globe in distorted cells anyway.
//!
//! **Bounds.** A cell's bounds are its centre's distance minus and plus its footprint radius.
//! H3 cells do not nest: a child hexagon pokes out of its parent, so the entries under a
//! cell's key range are not all inside its hexagon but inside its *footprint*, the union of
//! its descendants. In the plane, descendants of a hexagon of circumradius `e` stay within
//! `√3·e·Σ 7^(-j/2) = √3/(√7−1)·e ≈ 1.052·e` of its centre; on the sphere the tests measure at
//! most 1.07 of the cell's own circumradius, and the index uses [`FOOTPRINT`] = 1.25. For the
//! circumradius itself the index does not measure each cell's boundary (1.5 µs, five times
//! the cost of its centre): H3 lays a planar hexagon grid on each icosahedron face and maps
//! it to the sphere gnomonically, a projection that never shortens distances, so the planar
//! circumradius `RES0_U_GNOMONIC / (√3·√7^r)` bounds every cell's spherical circumradius at
//! resolution `r` (tight at face centres, 1.57 times too large next to the pentagons). The
//! tests check that bound against measured boundaries of cells all over the globe.
//!
//! **Choosing `k`.** An entry `p` within the radius is under the disk-resolution cell `A`
//! whose footprint holds it, so `A`'s centre is within `radius + footprint` of the query
//! centre, itself at a measured distance from the centre of its own cell `Q`. In a
//! hexagonal lattice of circumradius `e`, cells `g` steps apart have centres at least
//! `1.5·e·g` apart; `k` is that distance divided by [`RING_STEP`] (1.25, not 1.5, for
//! distortion and pentagons) times the smallest centre-to-vertex distance of `Q`, measured
//! from `Q`'s boundary. The same ring step gives the ring bounds above. The tests check the
//! ring step (measured: at least 1.39 at resolution 2 and 1.44 from resolution 3 on, against
//! the 1.25 assumed), and that the disk holds every entry's cell around pentagons, the poles
//! and the antimeridian, where H3 has no special cases.
//!
//! Why this shape: `grid_disk` is the idiomatic H3 neighbourhood and works the same
//! everywhere; keying by fine cells keeps updates O(log n) and lets a cell at any resolution
//! be opened with one range scan. Queries are dominated by tree descents (one per opened
//! cell) and by h3o's centre computations (one per queued cell, seven per split).
//!
//! ```
//! use geo_index::{H3Index, LatLng, SpatialIndex};
//! let index = H3Index::build(vec![
//!     (1, LatLng::new(40.6892, -74.0445)?), // Statue of Liberty
//!     (2, LatLng::new(40.7484, -73.9857)?), // Empire State Building
//! ]);
//! let near: Vec<u32> = index
//!     .within(LatLng::new(40.7060, -74.0086)?, 6_000.0)?
//!     .map(|n| n.id)
//!     .collect();
//! assert_eq!(near, [1, 2]);
//! # Ok::<(), geo_index::Error>(())
//! ```

use crate::cell_table::{BoxRelation, CellKey, CellTable, relate};
use crate::latlng::{EARTH_RADIUS_M, Origin};
use crate::search::{BestFirst, Bounds, Expand, Frontier};
use crate::{BoundingBox, EntryId, HeapSize, LatLng, Neighbour, Query, SpatialIndex};
use h3o::{CellIndex, Resolution};
use std::sync::OnceLock;

/// The resolution entries are stored at (about 0.6 m hexagon edges).
const FINE: Resolution = Resolution::Fifteen;

/// A cell holding more entries than this is opened into its children rather than measured
/// point by point (unless it is at [`FINE`] resolution). Higher than the S2 index's: a split
/// costs seven h3o centre computations, while measuring an entry stored inline is cheap.
const SPLIT_THRESHOLD: usize = 64;

/// Footprint radius of a cell (how far from its centre its descendants reach) over its
/// circumradius: about 1.05 in the plane, at most 1.07 measured on the sphere (see the
/// tests), padded generously.
const FOOTPRINT: f64 = 1.25;

/// Absolute padding of a footprint radius, in metres.
const FOOTPRINT_PAD_M: f64 = 0.01;

/// H3's gnomonic scale: the circumradius of a resolution-0 hexagon in its face plane is
/// `RES0_U_GNOMONIC / √3` (unit sphere), and each resolution divides it by `√7`.
const RES0_U_GNOMONIC: f64 = 0.381_966_011_250_105;
const SQRT_3: f64 = 1.732_050_807_568_877_2;
const SQRT_7: f64 = 2.645_751_311_064_590_7;

/// The disk resolution is the finest whose average edge is at least `radius / RADIUS_PER_EDGE`.
const RADIUS_PER_EDGE: f64 = 1.25;

/// Guaranteed centre distance per grid step, in units of the smallest centre-to-vertex
/// distance of the query's cell (1.5 in an undistorted hexagonal lattice).
const RING_STEP: f64 = 1.25;

/// Above this radius (1.25 average resolution-2 edges) the query starts from the 122 base
/// cells instead of a disk at resolution 1 or 0, where distortion is largest.
const LARGE_RADIUS_M: f64 = 228_000.0;

/// A flag on queued cells whose bounds come from their ring in the query disk: the top bit,
/// reserved (always 0) in valid H3 indexes.
const UNMEASURED: u64 = 1 << 63;

/// Bit offset and mask of the resolution field of an H3 index.
const RES_OFFSET: u32 = 52;
const RES_MASK: u64 = 0b1111 << RES_OFFSET;

/// Footprint radius in metres of any cell at each resolution: every entry stored under a
/// cell is within this distance of the cell's centre.
const FOOTPRINT_M: [f64; 16] = footprints();

const fn footprints() -> [f64; 16] {
    let mut out = [0.0; 16];
    let mut circumradius = RES0_U_GNOMONIC / SQRT_3 * (1.0 + 1e-9) * EARTH_RADIUS_M;
    let mut res = 0;
    while res < 16 {
        out[res] = FOOTPRINT * circumradius + FOOTPRINT_PAD_M;
        circumradius /= SQRT_7;
        res += 1;
    }
    out
}

/// An index of resolution-15 H3 cells in a B-tree.
///
/// ```
/// use geo_index::{H3Index, LatLng, SpatialIndex};
/// let mut index = H3Index::default();
/// index.insert(1, LatLng::new(-22.9519, -43.2105)?); // Christ the Redeemer
/// index.insert(2, LatLng::new(-22.9711, -43.1822)?); // Copacabana
/// let nearest = index.nearest(LatLng::new(-22.96, -43.19)?, 1, 10_000.0)?;
/// assert_eq!(nearest[0].id, 2);
/// assert_eq!(index.remove(2), Some(LatLng::new(-22.9711, -43.1822)?));
/// assert_eq!(index.nearest(LatLng::new(-22.96, -43.19)?, 1, 10_000.0)?[0].id, 1);
/// # Ok::<(), geo_index::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct H3Index {
    table: CellTable<H3Res15>,
}

/// Keys a position by its resolution-15 H3 cell: a coarser cell is one key range.
#[derive(Clone, Debug)]
struct H3Res15;

impl CellKey for H3Res15 {
    fn key(position: LatLng) -> u64 {
        key_of(position)
    }
}

/// A position as an h3o coordinate (latitude first, like ours).
#[inline]
fn to_h3(position: LatLng) -> h3o::LatLng {
    // A `LatLng` is finite, the only thing h3o checks; the default is never used.
    h3o::LatLng::new(position.lat, position.lng).unwrap_or_default()
}

/// An h3o coordinate as a [`LatLng`], clamped into range against rounding.
#[inline]
fn from_h3(ll: h3o::LatLng) -> LatLng {
    LatLng {
        lat: ll.lat().clamp(-90.0, 90.0) + 0.0,
        lng: ll.lng().clamp(-180.0, 180.0) + 0.0,
    }
}

/// The key an entry at `position` is stored under.
#[inline]
fn key_of(position: LatLng) -> u64 {
    u64::from(to_h3(position).to_cell(FINE))
}

/// The resolution field of a raw cell index.
#[inline]
fn resolution_of(cell: u64) -> usize {
    // Four bits.
    ((cell & RES_MASK) >> RES_OFFSET) as usize
}

/// The bit offset of the digit of resolution `res` (1..=15).
#[inline]
fn digit_offset(res: usize) -> usize {
    3 * (15 - res)
}

/// The first and last resolution-15 keys under `cell`.
#[inline]
fn key_range(cell: u64) -> (u64, u64) {
    let last = (cell & !RES_MASK) | (15 << RES_OFFSET);
    let first = last & !((1u64 << digit_offset(resolution_of(cell))) - 1);
    (first, last)
}

/// The raw index of child `digit` (0..=6) of `cell`, which must be coarser than 15. Not a
/// valid index for a pentagon's deleted K child, under which no valid key can be stored.
#[inline]
fn child_of(cell: u64, digit: u64) -> u64 {
    let res = resolution_of(cell) + 1;
    let offset = digit_offset(res);
    let bits = (cell & !RES_MASK) | ((res as u64) << RES_OFFSET);
    (bits & !(0b111 << offset)) | (digit << offset)
}

/// The centre of a cell.
#[inline]
fn centre_of(cell: CellIndex) -> LatLng {
    from_h3(h3o::LatLng::from(cell))
}

/// Bounds of the entries under a cell whose centre is `centre`, at resolution `res`.
#[inline]
fn bounds(origin: &Origin, centre: LatLng, res: usize) -> Bounds {
    let d = origin.distance_m(centre);
    let footprint_m = FOOTPRINT_M[res];
    Bounds {
        min_m: d - footprint_m,
        max_m: d + footprint_m,
    }
}

/// A cell's measured circumradius and smallest centre-to-vertex distance, in metres.
/// (The query uses the latter; the tests check the footprint model with the former.)
fn measure(cell: CellIndex, centre: LatLng) -> (f64, f64) {
    let origin = Origin::new(centre);
    cell.boundary()
        .iter()
        .map(|vertex| origin.distance_m(from_h3(*vertex)))
        .fold((0.0f64, f64::INFINITY), |(max, min), d| {
            (max.max(d), min.min(d))
        })
}

/// The 122 base cells with their centres, computed once.
fn base_cells() -> &'static [(u64, LatLng)] {
    static BASE: OnceLock<Vec<(u64, LatLng)>> = OnceLock::new();
    BASE.get_or_init(|| {
        CellIndex::base_cells()
            .map(|cell| (u64::from(cell), centre_of(cell)))
            .collect()
    })
}

/// The resolution of the query disk for `radius_m`: the finest whose average hexagon edge
/// is at least `radius_m / RADIUS_PER_EDGE`.
fn disk_resolution(radius_m: f64) -> Resolution {
    Resolution::range(Resolution::Zero, FINE)
        .rev()
        .find(|res| res.edge_length_m() * RADIUS_PER_EDGE >= radius_m)
        .unwrap_or(Resolution::Zero)
}

/// The query disk: cells around the centre holding every cell with an entry within the
/// radius, with their grid distance (ring) from the centre's cell.
struct Disk {
    /// Sorted by cell, without repeats.
    cells: Vec<(CellIndex, u32)>,
    /// Resolution of the cells.
    res: usize,
    /// Lower bound of the centre-to-centre distance per ring, in metres.
    ring_step_m: f64,
    /// Distance from the query centre to the centre of its own cell, in metres.
    offset_m: f64,
}

impl Disk {
    /// The disk for a query, or `None` when the radius calls for the base cells instead.
    fn around(centre: LatLng, radius_m: f64) -> Option<Disk> {
        if radius_m > LARGE_RADIUS_M {
            return None;
        }
        let resolution = disk_resolution(radius_m);
        let res = usize::from(u8::from(resolution));
        let cell = to_h3(centre).to_cell(resolution);
        let cell_centre = centre_of(cell);
        let (_, min_vertex_m) = measure(cell, cell_centre);
        let ring_step_m = RING_STEP * min_vertex_m;
        let offset_m = Origin::new(centre).distance_m(cell_centre);
        // Every entry within the radius is under a cell whose centre is within this distance
        // of the centre of the query's own cell.
        let reach_m = radius_m + FOOTPRINT_M[res] + offset_m;
        let steps = (reach_m / ring_step_m).ceil();
        // About 3 by construction, 4 near pentagons; the cap only guards a degenerate cell.
        if !steps.is_finite() || steps > 16.0 {
            return None;
        }
        // In [0, 16]: the cast is exact.
        let k = steps.max(1.0) as u32;
        let mut cells: Vec<(CellIndex, u32)> = cell.grid_disk_distances(k);
        // By cell, then ring: the first of repeats has the smallest ring.
        cells.sort_unstable();
        cells.dedup_by_key(|&mut (cell, _)| cell);
        Some(Disk {
            cells,
            res,
            ring_step_m,
            offset_m,
        })
    }

    /// A lower bound of the distance from the query centre to any entry under a cell `ring`
    /// steps away, known without computing the cell's centre.
    #[inline]
    fn ring_bound_m(&self, ring: u32) -> f64 {
        self.ring_step_m * f64::from(ring) - self.offset_m - FOOTPRINT_M[self.res]
    }
}

impl H3Index {
    /// The entries stored under `cell` (a raw index at any resolution), in key order.
    ///
    /// A range with an open end costs one descent of the tree instead of two.
    #[inline]
    fn range(&self, cell: u64) -> impl Iterator<Item = (EntryId, LatLng)> + Clone + '_ {
        let (first, last) = key_range(cell);
        self.table
            .cells
            .range((first, EntryId::MIN)..)
            .take_while(move |&(&(key, _), _)| key <= last)
            .map(|(&(_, entry), &position)| (entry, position))
    }

    fn seed(&self, frontier: &mut Frontier<'_, u64>) {
        if self.table.cells.is_empty() {
            return;
        }
        let origin = *frontier.origin();
        match Disk::around(origin.point, frontier.query().radius_m) {
            // Disk cells are queued with a bound from their ring alone; their centre is
            // computed only if they are popped, which cells on the outer ring rarely are.
            Some(disk) => {
                for &(cell, ring) in &disk.cells {
                    let bounds = Bounds {
                        min_m: disk.ring_bound_m(ring),
                        max_m: f64::INFINITY,
                    };
                    frontier.push_cell(u64::from(cell) | UNMEASURED, bounds);
                }
            }
            None => {
                for &(cell, centre) in base_cells() {
                    frontier.push_cell(cell, bounds(&origin, centre, 0));
                }
            }
        }
    }

    /// Collects into `out` the entries under `cell`, centred at `centre`, inside `bbox`.
    fn collect_bbox(&self, cell: u64, centre: LatLng, bbox: &BoundingBox, out: &mut Vec<EntryId>) {
        let range = self.range(cell);
        if range.clone().next().is_none() {
            return;
        }
        let res = resolution_of(cell);
        match relate(&BoundingBox::around(centre, FOOTPRINT_M[res]), bbox) {
            BoxRelation::Disjoint => {}
            BoxRelation::Inside => out.extend(range.map(|(entry, _)| entry)),
            BoxRelation::Overlaps => {
                if res < 15 && range.clone().nth(SPLIT_THRESHOLD).is_some() {
                    for digit in 0..7 {
                        let child = child_of(cell, digit);
                        if let Ok(index) = CellIndex::try_from(child) {
                            self.collect_bbox(child, centre_of(index), bbox, out);
                        }
                    }
                } else {
                    out.extend(
                        range.filter_map(|(entry, position)| {
                            bbox.contains(position).then_some(entry)
                        }),
                    );
                }
            }
        }
    }
}

impl Expand for H3Index {
    type Cell = u64;

    fn expand(&self, cell: u64, frontier: &mut Frontier<'_, u64>) {
        if cell & UNMEASURED != 0 {
            // A disk cell popped on its ring bound: queue it again with its real bounds.
            let cell = cell & !UNMEASURED;
            let bounds = match CellIndex::try_from(cell) {
                Ok(index) => bounds(frontier.origin(), centre_of(index), resolution_of(cell)),
                // Disk cells come from h3o and are valid; were one not, it would still be
                // opened, just without a useful bound.
                Err(_) => Bounds {
                    min_m: 0.0,
                    max_m: f64::INFINITY,
                },
            };
            frontier.push_cell(cell, bounds);
            return;
        }
        let res = resolution_of(cell);
        let range = self.range(cell);
        if res < 15 && range.clone().nth(SPLIT_THRESHOLD).is_some() {
            let origin = *frontier.origin();
            // Children are queued unseen: most are never popped, and an empty one costs one
            // lookup when it is. An invalid child (a pentagon's deleted K child) holds nothing.
            for digit in 0..7 {
                let child = child_of(cell, digit);
                if let Ok(index) = CellIndex::try_from(child) {
                    frontier.push_cell(child, bounds(&origin, centre_of(index), res + 1));
                }
            }
        } else {
            for (entry, position) in range {
                frontier.push_point(entry, position);
            }
        }
    }
}

impl SpatialIndex for H3Index {
    /// Computes every resolution-15 cell, sorts, and bulk-loads the B-tree.
    ///
    /// ```
    /// # use geo_index::{H3Index, LatLng, SpatialIndex};
    /// let p = LatLng::new(10.0, 20.0)?;
    /// let index = H3Index::build(vec![(1, p), (2, p), (1, LatLng::new(0.0, 0.0)?)]);
    /// assert_eq!(index.len(), 2);
    /// assert_eq!(index.get(1), Some(LatLng::new(0.0, 0.0)?));
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn build(entries: Vec<(EntryId, LatLng)>) -> Self {
        Self {
            table: CellTable::build(entries),
        }
    }

    /// ```
    /// # use geo_index::{H3Index, LatLng, SpatialIndex};
    /// assert_eq!(H3Index::build(vec![(4, LatLng::new(1.0, 1.0)?)]).len(), 1);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn id_bound(&self) -> usize {
        self.table.id_bound()
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    /// ```
    /// # use geo_index::{H3Index, LatLng, SpatialIndex};
    /// let index = H3Index::build(vec![(4, LatLng::new(1.0, 1.0)?)]);
    /// assert_eq!(index.get(4), Some(LatLng::new(1.0, 1.0)?));
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn get(&self, id: EntryId) -> Option<LatLng> {
        self.table.get(id)
    }

    /// ```
    /// # use geo_index::{H3Index, LatLng, SpatialIndex};
    /// let mut index = H3Index::default();
    /// assert_eq!(index.insert(4, LatLng::new(1.0, 1.0)?), None);
    /// assert_eq!(index.insert(4, LatLng::new(2.0, 2.0)?), Some(LatLng::new(1.0, 1.0)?));
    /// assert_eq!(index.len(), 1);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn insert(&mut self, id: EntryId, position: LatLng) -> Option<LatLng> {
        self.table.insert(id, position)
    }

    /// ```
    /// # use geo_index::{H3Index, LatLng, SpatialIndex};
    /// let mut index = H3Index::build(vec![(4, LatLng::new(1.0, 1.0)?)]);
    /// assert_eq!(index.remove(4), Some(LatLng::new(1.0, 1.0)?));
    /// assert!(index.is_empty());
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn remove(&mut self, id: EntryId) -> Option<LatLng> {
        self.table.remove(id)
    }

    /// ```
    /// # use geo_index::{H3Index, LatLng, Query, SpatialIndex};
    /// let index = H3Index::build(vec![(1, LatLng::new(89.999, 0.0)?), (2, LatLng::new(89.998, 180.0)?)]);
    /// let ids: Vec<u32> = index
    ///     .search(Query::within(LatLng::new(90.0, 0.0)?, 1_000.0)?)
    ///     .map(|n| n.id)
    ///     .collect();
    /// assert_eq!(ids, [1, 2]);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn search<'a>(&'a self, query: Query<'a>) -> impl Iterator<Item = Neighbour> + 'a {
        BestFirst::new(self, query, |frontier| self.seed(frontier))
    }

    /// Descends from the 122 base cells, skipping cells whose footprint's bounding box misses
    /// `bbox`, taking whole cells whose footprint's box lies inside it, and testing points
    /// only in the cells straddling its edges.
    ///
    /// ```
    /// # use geo_index::{BoundingBox, H3Index, LatLng, SpatialIndex};
    /// let index = H3Index::build(vec![(1, LatLng::new(0.0, 179.5)?), (2, LatLng::new(0.0, 0.0)?)]);
    /// assert_eq!(index.in_bbox(&BoundingBox::new(-1.0, 179.0, 1.0, -179.0)?), [1]);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn in_bbox(&self, bbox: &BoundingBox) -> Vec<EntryId> {
        let mut out = Vec::new();
        if self.table.cells.is_empty() {
            return out;
        }
        for &(cell, centre) in base_cells() {
            self.collect_bbox(cell, centre, bbox, &mut out);
        }
        out
    }
}

impl HeapSize for H3Index {
    /// The id table plus an estimate of the B-tree's nodes, modelled on the standard
    /// library's node layout (about 50 bytes per entry; exact figures are not available).
    ///
    /// ```
    /// # use geo_index::{H3Index, HeapSize, LatLng, SpatialIndex};
    /// let index = H3Index::build(vec![(0, LatLng::new(1.0, 1.0)?)]);
    /// assert!(index.heap_bytes() >= 16);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BruteForce;

    fn ll(lat: f64, lng: f64) -> LatLng {
        LatLng::new(lat, lng).expect("valid test coordinate")
    }

    /// A point at `distance_m` from `centre` along `bearing_deg`.
    fn destination(centre: LatLng, distance_m: f64, bearing_deg: f64) -> LatLng {
        let delta = distance_m / EARTH_RADIUS_M;
        let bearing = bearing_deg.to_radians();
        let lat1 = centre.lat().to_radians();
        let lat2 = (lat1.sin() * delta.cos() + lat1.cos() * delta.sin() * bearing.cos())
            .clamp(-1.0, 1.0)
            .asin();
        let lng2 = centre.lng().to_radians()
            + (bearing.sin() * delta.sin() * lat1.cos())
                .atan2(delta.cos() - lat1.sin() * lat2.sin());
        let lng2 = (lng2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
        ll(lat2.to_degrees().clamp(-90.0, 90.0), lng2)
    }

    /// Key ranges are exactly the resolution-15 descendants, checked against h3o.
    #[test]
    fn key_ranges_hold_exactly_the_descendants() {
        let fine = key_of(ll(48.8566, 2.3522));
        let fine = CellIndex::try_from(fine).expect("valid cell");
        for res in 0..=15u8 {
            let res = Resolution::try_from(res).expect("valid resolution");
            let parent = fine.parent(res).expect("coarser");
            let (first, last) = key_range(u64::from(parent));
            assert!(first <= u64::from(fine) && u64::from(fine) <= last);
            assert_eq!(first, u64::from(parent.center_child(FINE).expect("finer")));
            if let Some(child_res) = res
                .succ()
                .filter(|r| u8::from(*r) <= 12 && u8::from(res) >= 9)
            {
                let children: Vec<u64> = parent.children(child_res).map(u64::from).collect();
                for child in &children {
                    let (a, b) = key_range(*child);
                    assert!(first <= a && b <= last);
                }
            }
            if res != FINE {
                let ours: Vec<u64> = (0..7).map(|d| child_of(u64::from(parent), d)).collect();
                let theirs: Vec<u64> = parent
                    .children(res.succ().expect("finer"))
                    .map(u64::from)
                    .collect();
                assert_eq!(ours, theirs);
            }
        }
        // Pentagons: the deleted child is the only one h3o does not list.
        for pentagon in Resolution::Three.pentagons() {
            let ours: Vec<u64> = (0..7)
                .map(|d| child_of(u64::from(pentagon), d))
                .filter(|c| CellIndex::try_from(*c).is_ok())
                .collect();
            let theirs: Vec<u64> = pentagon.children(Resolution::Four).map(u64::from).collect();
            assert_eq!(ours, theirs);
        }
    }

    /// Points that stress H3: poles, the antimeridian, pentagon centres and their
    /// surroundings at several resolutions, and ordinary places.
    fn tricky_points() -> Vec<LatLng> {
        let mut points = vec![
            ll(0.0, 0.0),
            ll(90.0, 0.0),
            ll(-90.0, 0.0),
            ll(89.9999, 179.9999),
            ll(-89.99, -180.0),
            ll(0.0, 180.0),
            ll(12.3, -179.9999),
            ll(-45.0, 179.99),
            ll(48.8566, 2.3522),
            ll(-33.9, 18.4),
        ];
        for res in [
            Resolution::Zero,
            Resolution::Two,
            Resolution::Five,
            Resolution::Nine,
        ] {
            for pentagon in res.pentagons() {
                let centre = from_h3(h3o::LatLng::from(pentagon));
                points.push(centre);
                for vertex in pentagon.boundary().iter() {
                    points.push(from_h3(*vertex));
                }
            }
        }
        points
    }

    /// The planar circumradius bounds the measured circumradius of cells all over the globe,
    /// at every resolution: pentagons, their neighbours, cells across icosahedron edges.
    #[test]
    fn planar_circumradius_bounds_every_cell() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut points = tricky_points();
        for _ in 0..1_500 {
            let lat = (2.0 * uniform() - 1.0).asin().to_degrees();
            points.push(ll(lat, uniform() * 360.0 - 180.0));
        }
        let mut worst = [0.0f64; 16];
        for point in points {
            for res in 0..=15u8 {
                let res = Resolution::try_from(res).expect("valid resolution");
                let cell = to_h3(point).to_cell(res);
                let (circumradius, _) = measure(cell, centre_of(cell));
                let r = usize::from(u8::from(res));
                let planar = (FOOTPRINT_M[r] - FOOTPRINT_PAD_M) / FOOTPRINT;
                worst[r] = worst[r].max(circumradius / planar);
                assert!(
                    circumradius <= planar,
                    "{point:?} {res:?}: {circumradius} > {planar}"
                );
            }
        }
        println!("worst measured / planar circumradius by resolution: {worst:?}");
    }

    /// Descendants of a cell stay within its footprint radius, at every resolution, for
    /// pentagons, cells next to pentagons, and cells across icosahedron edges.
    #[test]
    fn footprint_holds_for_descendants() {
        let mut worst = [0.0f64; 16];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut random_digit = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % 7
        };
        for point in tricky_points() {
            let fine = CellIndex::try_from(key_of(point)).expect("valid cell");
            for res in 0..=14u8 {
                let res = Resolution::try_from(res).expect("valid resolution");
                let cell = fine.parent(res).expect("coarser");
                let centre = centre_of(cell);
                let (circumradius, _) = measure(cell, centre);
                let origin = Origin::new(centre);
                let r = usize::from(u8::from(res));
                let mut sequences: Vec<Vec<u64>> = Vec::new();
                for a in 0..7 {
                    for b in 0..7 {
                        sequences.push((0..15).map(|i| if i % 2 == 0 { a } else { b }).collect());
                    }
                }
                for _ in 0..60 {
                    sequences.push((0..15).map(|_| random_digit()).collect());
                }
                for digits in sequences {
                    let mut raw = u64::from(cell);
                    for &d in &digits[..15 - r] {
                        raw = child_of(raw, d);
                    }
                    let Ok(descendant) = CellIndex::try_from(raw) else {
                        continue;
                    };
                    for vertex in descendant.boundary().iter() {
                        let d = origin.distance_m(from_h3(*vertex));
                        worst[r] = worst[r].max(d / circumradius);
                        assert!(
                            d <= FOOTPRINT_M[r],
                            "{point:?} {res:?}: {d} > {}",
                            FOOTPRINT_M[r]
                        );
                    }
                }
            }
        }
        println!("worst descendant distance / own circumradius by resolution: {worst:?}");
    }

    /// Cells `g` rings apart have centres at least `g` ring steps apart (the claim behind
    /// both `k` and the ring bounds of unmeasured disk cells), with the margin printed, and
    /// the disk holds every cell whose centre is within reach.
    #[test]
    fn ring_steps_hold() {
        let mut worst = f64::INFINITY;
        for centre in tricky_points() {
            for radius in [1.0, 80.0, 900.0, 12_000.0, 70_000.0, LARGE_RADIUS_M] {
                let disk = Disk::around(centre, radius).expect("below the threshold");
                let own = to_h3(centre).to_cell(disk_resolution(radius));
                let own_centre = Origin::new(centre_of(own));
                // Every cell whose centre is within reach is in the disk.
                let reach_m = radius + FOOTPRINT_M[disk.res] + disk.offset_m;
                let k = disk.cells.iter().map(|&(_, ring)| ring).max().unwrap_or(0);
                let wider: Vec<CellIndex> = own.grid_disk(k + 2);
                for cell in wider {
                    if own_centre.distance_m(centre_of(cell)) <= reach_m {
                        assert!(
                            disk.cells.iter().any(|&(c, _)| c == cell),
                            "{centre:?} r={radius}: {cell} within reach, not in the disk"
                        );
                    }
                }
                for &(cell, ring) in &disk.cells {
                    let d = own_centre.distance_m(centre_of(cell));
                    assert!(
                        d >= disk.ring_step_m * f64::from(ring),
                        "{centre:?} r={radius}: ring {ring} at {d} m"
                    );
                    if ring > 0 {
                        worst = worst.min(d / (disk.ring_step_m * f64::from(ring)));
                    }
                }
            }
        }
        println!("smallest centre distance / (ring × ring step): {worst}");
    }

    /// The disk holds the cell of every entry within the radius: near the poles, on the
    /// antimeridian, around pentagons, for radii from 0 to the base-cell threshold.
    #[test]
    fn disk_covers_the_circle() {
        let mut worst_steps = 0;
        for centre in tricky_points() {
            let mut radius = 0.1;
            while radius <= LARGE_RADIUS_M {
                let res = disk_resolution(radius);
                let cells: Vec<CellIndex> = Disk::around(centre, radius)
                    .expect("below the threshold")
                    .cells
                    .iter()
                    .map(|&(cell, _)| cell)
                    .collect();
                let origin = to_h3(centre).to_cell(res);
                for step in 0..48 {
                    for fraction in [1.0, 0.999, 0.6] {
                        let p = destination(centre, radius * fraction, f64::from(step) * 7.5);
                        if centre.distance_m(p) > radius {
                            continue;
                        }
                        let owner = CellIndex::try_from(key_of(p))
                            .expect("valid cell")
                            .parent(res)
                            .expect("coarser");
                        assert!(
                            cells.binary_search(&owner).is_ok(),
                            "{centre:?} r={radius} misses {p:?} ({owner} not in disk)"
                        );
                        if let Ok(g) = origin.grid_distance(owner) {
                            worst_steps = worst_steps.max(g);
                        }
                    }
                }
                radius *= 2.3;
            }
        }
        println!("largest grid distance of an owner cell: {worst_steps}");
    }

    fn assert_pages_like_brute_force(index: &H3Index, reference: &BruteForce, query: Query<'_>) {
        let expected: Vec<Neighbour> = reference.search(query).collect();
        let all: Vec<Neighbour> = index.search(query).collect();
        assert_eq!(all, expected, "{query:?}");
        let mut paged: Vec<Neighbour> = Vec::new();
        loop {
            let q = paged.last().map_or(query, |n| query.after(n.keyset()));
            let page: Vec<Neighbour> = index.search(q).take(25).collect();
            if page.is_empty() {
                break;
            }
            paged.extend(page);
        }
        assert_eq!(paged, expected, "paged {query:?}");
    }

    /// Radii around and above the base-cell threshold, and more than half the Earth, from
    /// the poles, the antimeridian and pentagons.
    #[test]
    fn large_radii_match_brute_force() {
        let points: Vec<(EntryId, LatLng)> = (0..600u32)
            .map(|i| {
                let lat = f64::from(i * 37 % 181) - 90.0;
                let lng = f64::from(i * 101 % 361) - 180.0;
                (i, ll(lat, lng))
            })
            .chain(
                tricky_points()
                    .into_iter()
                    .zip(600u32..)
                    .map(|(p, i)| (i, p)),
            )
            .collect();
        let index = H3Index::build(points.clone());
        let reference = BruteForce::build(points);
        for centre in tricky_points().into_iter().step_by(5) {
            for radius in [1e5, 2.2e5, 2.3e5, 1e6, 5e6, 1.5e7, 2.0e7, 2.1e7, 1e9] {
                let query = Query::within(centre, radius).expect("valid radius");
                assert_pages_like_brute_force(&index, &reference, query);
            }
        }
    }

    /// A dense cluster (cells split down to resolution 15, duplicates sharing a key) pages
    /// exactly like the brute force, after updates too.
    #[test]
    fn dense_cluster_pages_like_brute_force() {
        let mut points: Vec<(EntryId, LatLng)> = (0..3_000u32)
            .map(|i| {
                let f = f64::from(i);
                let lat = 64.1466 + (f * 0.618).fract() * 1e-3;
                let lng = -21.9426 + (f * 0.414).fract() * 1e-3;
                (i, ll(lat, lng))
            })
            .collect();
        points.extend((3_000..3_100u32).map(|i| (i, ll(64.147, -21.9423))));
        let mut index = H3Index::build(points.clone());
        let mut reference = BruteForce::build(points);
        for i in (0..3_100u32).step_by(7) {
            let p = ll(64.1466 + f64::from(i % 97) * 1e-5, -21.9426);
            assert_eq!(index.insert(i, p), reference.insert(i, p));
            assert_eq!(index.remove(i + 3), reference.remove(i + 3));
        }
        for (centre, radius) in [
            (ll(64.147, -21.9423), 0.0),
            (ll(64.147, -21.9423), 5.0),
            (ll(64.1466, -21.9426), 60.0),
            (ll(64.1471, -21.9421), 2_000.0),
            (ll(64.0, -22.0), 150_000.0),
        ] {
            let query = Query::within(centre, radius).expect("valid radius");
            assert_pages_like_brute_force(&index, &reference, query);
        }
    }
}

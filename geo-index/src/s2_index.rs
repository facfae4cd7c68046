//! [`S2Index`]: entries keyed by their S2 leaf cell in a B-tree, searched best first from a
//! `RegionCoverer` covering of the query cap.
//!
//! # Design
//!
//! Every entry is stored as `(leaf cell id, entry id) → position` in a `BTreeMap`, plus the
//! dense id → position table ([`Slots`]). S2 cell ids follow a Hilbert curve on each cube
//! face, and the descendants of any cell occupy one contiguous id range
//! (`range_min()..=range_max()`), so "every entry inside cell C" is a single B-tree range
//! scan. Insert, remove and move are one or two B-tree operations: O(log n).
//!
//! The position is kept in the tree as well as in the id table on purpose: queries are bound
//! by cache misses, and reading positions through the id table cost one miss per candidate
//! (ids are unrelated to location), a quarter of the query time in measurements on a million
//! clustered points. In the tree, the entries of a cell sit next to each other.
//!
//! A query covers the spherical cap (centre, radius) with `RegionCoverer::fast_covering`
//! (three or four cells about as wide as the cap; the comment on `covering` says why) and
//! seeds the shared best-first traversal ([`crate::search`]) with them, each keyed by a lower
//! bound of its distance from the centre. Opening a cell range-scans its leaf range: a cell
//! holding more than [`SPLIT_THRESHOLD`] entries (and not a leaf) is replaced by its four
//! children, otherwise its entries are measured exactly (haversine, through
//! `Frontier::push_point`, so distances are bit-identical to the brute force). Children are
//! queued without looking into the tree: most are never popped, and an empty one costs one
//! lookup when it is. Answers come out nearest first and lazily; dense regions are refined
//! only as far as the query reaches.
//!
//! Why this shape: S2 cells are compact, nearly equal-area quadrilaterals without polar or
//! antimeridian singularities, so the cells around any centre are tight, and the B-tree keeps
//! updates cheap without any rebalancing logic of our own. The cost of a query is dominated
//! by tree descents (one per opened cell, each a chain of dependent cache misses).
//!
//! # Correctness margins
//!
//! - The covering is computed for a cap whose angle is enlarged by a relative `1e-9` and an
//!   absolute [`COVER_MARGIN_RAD`] (about 0.6 m), far above the rounding of the s2
//!   arithmetic and of haversine, so a point at exactly the radius is always inside it. A
//!   radius reaching the antipode covers the whole sphere (the six face cells).
//! - A cell's bounds come from its centre and its circumradius, the largest angle from the
//!   centre to one of its four vertices (an S2 cell is a convex spherical quadrilateral
//!   smaller than a hemisphere, so the cap through its farthest vertex contains it), padded
//!   relatively and absolutely; the search engine subtracts another metre on top. Angles to
//!   the query centre use `atan2(|q × c|, q · c)`, accurate up to the antipode.
//!
//! ```
//! use geo_index::{LatLng, S2Index, SpatialIndex};
//! let index = S2Index::build(vec![
//!     (1, LatLng::new(-33.8568, 151.2153)?), // Sydney Opera House
//!     (2, LatLng::new(-33.8523, 151.2108)?), // Harbour Bridge
//! ]);
//! let near: Vec<u32> = index
//!     .within(LatLng::new(-33.8570, 151.2150)?, 1_000.0)?
//!     .map(|n| n.id)
//!     .collect();
//! assert_eq!(near, [1, 2]);
//! # Ok::<(), geo_index::Error>(())
//! ```

use crate::cell_table::{BoxRelation, CellKey, CellTable, relate};
use crate::latlng::{EARTH_RADIUS_M, Origin};
use crate::search::{BestFirst, Bounds, Expand, Frontier};
use crate::{BoundingBox, EntryId, HeapSize, LatLng, Neighbour, Query, SpatialIndex};
use s2::cap::Cap;
use s2::cell::Cell;
use s2::cellid::CellID;
use s2::point::Point;
use s2::r3::vector::Vector;
use s2::region::RegionCoverer;
use s2::s1::{Angle, Rad};
use std::f64::consts::PI;

/// A cell holding more entries than this is opened into its children rather than measured
/// point by point (unless it is a leaf, which cannot be split).
const SPLIT_THRESHOLD: usize = 32;

/// Most cells the query covering may use (the fast covering needs at most six).
const COVER_MAX_CELLS: usize = 8;

/// Absolute enlargement of the covered cap, in radians (about 0.64 m on Earth).
const COVER_MARGIN_RAD: f64 = 1e-7;

/// Relative and absolute padding of a cell's circumradius, in radians.
const RADIUS_PAD_REL: f64 = 1e-9;
const RADIUS_PAD_RAD: f64 = 1e-12;

/// An index of S2 leaf cell ids in a B-tree.
///
/// ```
/// use geo_index::{LatLng, S2Index, SpatialIndex};
/// let mut index = S2Index::default();
/// index.insert(7, LatLng::new(64.1466, -21.9426)?); // Reykjavik
/// index.insert(8, LatLng::new(60.1699, 24.9384)?); // Helsinki
/// let nearest = index.nearest(LatLng::new(64.0, -22.0)?, 1, 100_000.0)?;
/// assert_eq!(nearest[0].id, 7);
/// assert_eq!(index.move_to(7, LatLng::new(0.0, 0.0)?), Some(LatLng::new(64.1466, -21.9426)?));
/// assert!(index.nearest(LatLng::new(64.0, -22.0)?, 1, 100_000.0)?.is_empty());
/// # Ok::<(), geo_index::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct S2Index {
    table: CellTable<S2Leaf>,
}

/// Keys a position by its S2 leaf cell id: a coarser cell is one key range (Hilbert order).
#[derive(Clone, Debug)]
struct S2Leaf;

impl CellKey for S2Leaf {
    fn key(position: LatLng) -> u64 {
        leaf_of(position)
    }
}

/// The S2 leaf cell containing `position`.
#[inline]
fn leaf_of(position: LatLng) -> u64 {
    let ll = s2::latlng::LatLng::from_degrees(position.lat, position.lng);
    CellID::from(&ll).0
}

/// The unit vector of a query centre, from the trigonometry its [`Origin`] already holds.
#[inline]
fn centre_vector(origin: &Origin) -> Vector {
    let (sin_lng, cos_lng) = origin.lng_rad.sin_cos();
    Vector {
        x: origin.cos_lat * cos_lng,
        y: origin.cos_lat * sin_lng,
        z: origin.lat_rad.sin(),
    }
}

/// The angle subtended by a chord of squared length `chord2` on the unit sphere.
#[inline]
fn chord2_to_angle(chord2: f64) -> f64 {
    2.0 * (0.5 * chord2.sqrt()).min(1.0).asin()
}

/// A cell's centre (unit vector) and a conservative circumradius in radians: every point of
/// the cell is within that angle of the centre.
fn cell_cap(id: CellID) -> (Vector, f64) {
    let cell = Cell::from(id);
    let centre = cell.center().0;
    let chord2 = cell
        .vertices()
        .iter()
        .map(|v| (v.0 - centre).norm2())
        .fold(0.0, f64::max);
    let radius = chord2_to_angle(chord2) * (1.0 + RADIUS_PAD_REL) + RADIUS_PAD_RAD;
    (centre, radius)
}

/// Distance bounds from the query centre `q` to anything inside cell `id`.
#[inline]
fn cell_bounds(id: CellID, q: &Vector) -> Bounds {
    let (centre, radius) = cell_cap(id);
    // atan2 of cross and dot stays accurate up to the antipode, where a chord loses digits.
    let d = q.angle(&centre).rad();
    Bounds {
        min_m: (d - radius) * EARTH_RADIUS_M,
        max_m: (d + radius) * EARTH_RADIUS_M,
    }
}

/// A unit vector as a [`LatLng`], clamped into range against rounding.
fn vector_to_latlng(v: &Vector) -> LatLng {
    let lat = v.z.atan2((v.x * v.x + v.y * v.y).sqrt()).to_degrees();
    let lng = v.y.atan2(v.x).to_degrees();
    LatLng {
        lat: lat.clamp(-90.0, 90.0) + 0.0,
        lng: lng.clamp(-180.0, 180.0) + 0.0,
    }
}

impl S2Index {
    /// The entries stored under cell `id` or any of its descendants, in key order.
    ///
    /// A range with an open end costs one descent of the tree instead of two (the way to
    /// the last leaf stays cached), which matters: queries are bound by cache misses.
    #[inline]
    fn range(&self, id: CellID) -> impl Iterator<Item = (EntryId, LatLng)> + Clone + '_ {
        let last = id.range_max().0;
        self.table
            .cells
            .range((id.range_min().0, EntryId::MIN)..)
            .take_while(move |&(&(cell, _), _)| cell <= last)
            .map(|(&(_, entry), &position)| (entry, position))
    }

    /// The covering of the query cap, as sorted cells none of which contains another.
    ///
    /// `RegionCoverer::fast_covering`: the cap's cell-union bound, the three or four cells
    /// around the cell vertex nearest the centre at the deepest level whose cells are at least
    /// as wide as the cap (six faces for caps wider than a face). A tight `covering` costs
    /// about 16 µs per query, more than the rest of a typical query, and only saves a few
    /// expansions: the best-first traversal refines loose cells on demand anyway.
    fn covering(q: Vector, radius_m: f64) -> Vec<CellID> {
        let angle = radius_m / EARTH_RADIUS_M * (1.0 + 1e-9) + COVER_MARGIN_RAD;
        if angle >= PI {
            return (0..6).map(CellID::from_face).collect();
        }
        let cap = Cap::from_center_angle(&Point(q), &Angle::from(Rad(angle)));
        let coverer = RegionCoverer {
            min_level: 0,
            max_level: 30,
            level_mod: 1,
            max_cells: COVER_MAX_CELLS,
        };
        let mut cells = coverer.fast_covering(&cap).0;
        // The covering is normalised, so no cell nests in another; make sure anyway, since
        // a cell queued twice would report its entries twice.
        cells.sort_unstable();
        let mut kept = 0;
        for i in 0..cells.len() {
            let id = cells[i];
            if kept > 0 && cells[kept - 1].contains(&id) {
                continue;
            }
            while kept > 0 && id.contains(&cells[kept - 1]) {
                kept -= 1;
            }
            cells[kept] = id;
            kept += 1;
        }
        cells.truncate(kept);
        cells
    }

    fn seed(&self, frontier: &mut Frontier<'_, u64>) {
        if self.table.cells.is_empty() {
            return;
        }
        let q = centre_vector(frontier.origin());
        for id in Self::covering(q, frontier.query().radius_m) {
            frontier.push_cell(id.0, cell_bounds(id, &q));
        }
    }

    /// Collects into `out` the entries of cell `id` inside `bbox`.
    fn collect_bbox(&self, id: CellID, bbox: &BoundingBox, out: &mut Vec<EntryId>) {
        let range = self.range(id);
        if range.clone().next().is_none() {
            return;
        }
        let (centre, radius) = cell_cap(id);
        let cell_box = BoundingBox::around(vector_to_latlng(&centre), radius * EARTH_RADIUS_M);
        match relate(&cell_box, bbox) {
            BoxRelation::Disjoint => {}
            BoxRelation::Inside => out.extend(range.map(|(entry, _)| entry)),
            BoxRelation::Overlaps => {
                if !id.is_leaf() && range.clone().nth(SPLIT_THRESHOLD).is_some() {
                    for child in id.children() {
                        self.collect_bbox(child, bbox, out);
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

impl Expand for S2Index {
    type Cell = u64;

    fn expand(&self, cell: u64, frontier: &mut Frontier<'_, u64>) {
        let id = CellID(cell);
        let range = self.range(id);
        if !id.is_leaf() && range.clone().nth(SPLIT_THRESHOLD).is_some() {
            let q = centre_vector(frontier.origin());
            // Children are queued unseen: an empty one costs a lookup only if it is ever
            // popped, and most are not.
            for child in id.children() {
                frontier.push_cell(child.0, cell_bounds(child, &q));
            }
        } else {
            for (entry, position) in range {
                frontier.push_point(entry, position);
            }
        }
    }
}

impl SpatialIndex for S2Index {
    /// Computes every leaf cell, sorts, and bulk-loads the B-tree.
    ///
    /// ```
    /// # use geo_index::{LatLng, S2Index, SpatialIndex};
    /// let p = LatLng::new(10.0, 20.0)?;
    /// let index = S2Index::build(vec![(1, p), (2, p), (1, LatLng::new(0.0, 0.0)?)]);
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
    /// # use geo_index::{LatLng, S2Index, SpatialIndex};
    /// assert_eq!(S2Index::build(vec![(4, LatLng::new(1.0, 1.0)?)]).len(), 1);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn id_bound(&self) -> usize {
        self.table.id_bound()
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    /// ```
    /// # use geo_index::{LatLng, S2Index, SpatialIndex};
    /// let index = S2Index::build(vec![(4, LatLng::new(1.0, 1.0)?)]);
    /// assert_eq!(index.get(4), Some(LatLng::new(1.0, 1.0)?));
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn get(&self, id: EntryId) -> Option<LatLng> {
        self.table.get(id)
    }

    /// ```
    /// # use geo_index::{LatLng, S2Index, SpatialIndex};
    /// let mut index = S2Index::default();
    /// assert_eq!(index.insert(4, LatLng::new(1.0, 1.0)?), None);
    /// assert_eq!(index.insert(4, LatLng::new(2.0, 2.0)?), Some(LatLng::new(1.0, 1.0)?));
    /// assert_eq!(index.len(), 1);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn insert(&mut self, id: EntryId, position: LatLng) -> Option<LatLng> {
        self.table.insert(id, position)
    }

    /// ```
    /// # use geo_index::{LatLng, S2Index, SpatialIndex};
    /// let mut index = S2Index::build(vec![(4, LatLng::new(1.0, 1.0)?)]);
    /// assert_eq!(index.remove(4), Some(LatLng::new(1.0, 1.0)?));
    /// assert!(index.is_empty());
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn remove(&mut self, id: EntryId) -> Option<LatLng> {
        self.table.remove(id)
    }

    /// ```
    /// # use geo_index::{LatLng, Query, S2Index, SpatialIndex};
    /// let index = S2Index::build(vec![(1, LatLng::new(0.0, -179.999)?), (2, LatLng::new(0.0, 179.998)?)]);
    /// let ids: Vec<u32> = index
    ///     .search(Query::within(LatLng::new(0.0, 180.0)?, 1_000.0)?)
    ///     .map(|n| n.id)
    ///     .collect();
    /// assert_eq!(ids, [1, 2]);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn search<'a>(&'a self, query: Query<'a>) -> impl Iterator<Item = Neighbour> + 'a {
        BestFirst::new(self, query, |frontier| self.seed(frontier))
    }

    /// Descends from the six face cells, skipping cells whose bounding box misses `bbox`,
    /// taking whole cells whose bounding box lies inside it, and testing points only in the
    /// cells straddling its edges.
    ///
    /// ```
    /// # use geo_index::{BoundingBox, LatLng, S2Index, SpatialIndex};
    /// let index = S2Index::build(vec![(1, LatLng::new(0.0, 179.5)?), (2, LatLng::new(0.0, 0.0)?)]);
    /// assert_eq!(index.in_bbox(&BoundingBox::new(-1.0, 179.0, 1.0, -179.0)?), [1]);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    fn in_bbox(&self, bbox: &BoundingBox) -> Vec<EntryId> {
        let mut out = Vec::new();
        for face in 0..6 {
            self.collect_bbox(CellID::from_face(face), bbox, &mut out);
        }
        out
    }
}

impl HeapSize for S2Index {
    /// The id table plus an estimate of the B-tree's nodes, modelled on the standard
    /// library's node layout (about 50 bytes per entry; exact figures are not available).
    ///
    /// ```
    /// # use geo_index::{HeapSize, LatLng, S2Index, SpatialIndex};
    /// let index = S2Index::build(vec![(0, LatLng::new(1.0, 1.0)?)]);
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

    fn centres() -> Vec<LatLng> {
        vec![
            ll(0.0, 0.0),
            ll(90.0, 0.0),
            ll(-90.0, 45.0),
            ll(89.9999, 179.9999),
            ll(-89.99, -180.0),
            ll(0.0, 180.0),
            ll(12.3, -179.9999),
            ll(-45.0, 179.99),
            ll(35.26, 45.0), // near a cube vertex
            ll(48.8566, 2.3522),
        ]
    }

    /// Every point of the circle, including its boundary, lies in a leaf cell that some
    /// covering cell contains: near the poles, on the antimeridian, near cube corners, and
    /// for radii up to more than half the Earth.
    #[test]
    fn covering_contains_the_circle() {
        for centre in centres() {
            let q = centre_vector(&Origin::new(centre));
            for radius in [
                0.0, 1.0, 30.0, 1_000.0, 25_000.0, 700_000.0, 5e6, 1.2e7, 2.0e7, 2.1e7,
            ] {
                let covering = S2Index::covering(q, radius);
                assert!(!covering.is_empty());
                for step in 0..72 {
                    for fraction in [1.0, 0.999_999, 0.5, 0.01] {
                        let p = destination(centre, radius * fraction, f64::from(step) * 5.0);
                        if centre.distance_m(p) > radius {
                            continue;
                        }
                        let leaf = CellID(leaf_of(p));
                        assert!(
                            covering.iter().any(|c| c.contains(&leaf)),
                            "{centre:?} r={radius} misses {p:?}"
                        );
                    }
                }
            }
        }
    }

    /// Large radii (more than half the Earth) and the whole-sphere covering find everything.
    #[test]
    fn large_radii_match_brute_force() {
        let points: Vec<(EntryId, LatLng)> = (0..500u32)
            .map(|i| {
                let lat = f64::from(i * 37 % 181) - 90.0;
                let lng = f64::from(i * 101 % 361) - 180.0;
                (i, ll(lat, lng))
            })
            .collect();
        let index = S2Index::build(points.clone());
        let reference = BruteForce::build(points);
        for centre in centres() {
            for radius in [5e6, 1.5e7, 2.0e7, 2.1e7, 1e9] {
                let query = Query::within(centre, radius).expect("valid radius");
                let got: Vec<(EntryId, f64)> =
                    index.search(query).map(|n| (n.id, n.distance_m)).collect();
                let expected: Vec<(EntryId, f64)> = reference
                    .search(query)
                    .map(|n| (n.id, n.distance_m))
                    .collect();
                assert_eq!(got, expected, "{centre:?} r={radius}");
            }
        }
    }

    /// A dense cluster (cells split many levels deep, duplicate coordinates filling a leaf)
    /// pages exactly like the brute force, after updates too.
    #[test]
    fn dense_cluster_pages_like_brute_force() {
        let mut points: Vec<(EntryId, LatLng)> = (0..3_000u32)
            .map(|i| {
                let f = f64::from(i);
                (
                    i,
                    ll(
                        48.8566 + (f * 0.618).fract() * 1e-3,
                        2.3522 + (f * 0.414).fract() * 1e-3,
                    ),
                )
            })
            .collect();
        points.extend((3_000..3_100u32).map(|i| (i, ll(48.857, 2.3527))));
        let mut index = S2Index::build(points.clone());
        let mut reference = BruteForce::build(points);
        for i in (0..3_100u32).step_by(7) {
            let p = ll(48.8566 + f64::from(i % 97) * 1e-5, 2.3522);
            assert_eq!(index.insert(i, p), reference.insert(i, p));
            assert_eq!(index.remove(i + 3), reference.remove(i + 3));
        }
        for (centre, radius) in [
            (ll(48.857, 2.3527), 0.0),
            (ll(48.857, 2.3527), 5.0),
            (ll(48.8566, 2.3522), 60.0),
            (ll(48.8571, 2.3529), 2_000.0),
            (ll(48.0, 2.0), 150_000.0),
        ] {
            let query = Query::within(centre, radius).expect("valid radius");
            let expected: Vec<Neighbour> = reference.search(query).collect();
            let mut paged: Vec<Neighbour> = Vec::new();
            loop {
                let q = paged.last().map_or(query, |n| query.after(n.keyset()));
                let page: Vec<Neighbour> = index.search(q).take(25).collect();
                if page.is_empty() {
                    break;
                }
                paged.extend(page);
            }
            assert_eq!(paged, expected, "{centre:?} r={radius}");
        }
    }

    /// Cell bounds hold for points sampled inside cells at every level, including cells
    /// touching the poles and the antimeridian.
    #[test]
    fn cell_bounds_hold() {
        let samples: Vec<LatLng> = (0..400)
            .map(|i| {
                let i = f64::from(i);
                ll((i * 7.31) % 180.0 - 90.0, (i * 13.7) % 360.0 - 180.0)
            })
            .chain(centres())
            .collect();
        for &p in &samples {
            let leaf = CellID(leaf_of(p));
            for &centre in centres().iter().chain(&samples[..20]) {
                let origin = Origin::new(centre);
                let q = centre_vector(&origin);
                let d = origin.distance_m(p);
                for level in 0..=30 {
                    let b = cell_bounds(leaf.parent(level), &q);
                    assert!(
                        b.min_m <= d + 1e-3 && d <= b.max_m + 1e-3,
                        "{p:?} {level} {b:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn relate_handles_the_antimeridian() {
        let query = BoundingBox::new(-10.0, 170.0, 10.0, -170.0).expect("valid box");
        let inside = BoundingBox::new(-1.0, 175.0, 1.0, -175.0).expect("valid box");
        let east = BoundingBox::new(-1.0, -179.0, 1.0, -178.0).expect("valid box");
        let away = BoundingBox::new(-1.0, 0.0, 1.0, 1.0).expect("valid box");
        let edge = BoundingBox::new(-1.0, -180.0, 1.0, -179.0).expect("valid box");
        let straddle = BoundingBox::new(5.0, 160.0, 15.0, 175.0).expect("valid box");
        assert_eq!(relate(&inside, &query), BoxRelation::Inside);
        assert_eq!(relate(&east, &query), BoxRelation::Inside);
        assert_eq!(relate(&edge, &query), BoxRelation::Inside);
        assert_eq!(relate(&away, &query), BoxRelation::Disjoint);
        assert_eq!(relate(&straddle, &query), BoxRelation::Overlaps);
        let west_edge = BoundingBox::new(-1.0, 100.0, 1.0, 180.0).expect("valid box");
        let east_side = BoundingBox::new(-1.0, -180.0, 1.0, -100.0).expect("valid box");
        assert_eq!(relate(&west_edge, &east_side), BoxRelation::Overlaps);
    }
}

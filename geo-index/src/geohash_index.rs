//! The geohash index: entries keyed by a 64-bit interleaved geohash in a B-tree.
//!
//! # Design
//!
//! A position is quantised to 32 bits of longitude and 32 bits of latitude and the bits are
//! interleaved, longitude first, exactly as a 12.8-character geohash (the first `5n` bits of
//! the key are the `n`-character geohash; this is checked against the `geohash` crate). Every
//! geohash cell of any precision is then a contiguous key range, so the index is just a sorted
//! set of `(key, id)` pairs with range scans, plus the dense id to position table: insert,
//! remove and move are O(log n).
//!
//! A query covers the circle's bounding box with at most [`MAX_SEED_CELLS`] cells of the
//! finest level that allows it (so the precision follows the radius), then runs the shared
//! best-first search. Opening a cell scans its key range: a cell holding at most
//! [`LEAF_SIZE`] entries yields its points, a fuller one splits into its four quarter cells,
//! each queued with its distance bounds. This stays correct where "centre cell plus eight
//! neighbours" breaks: the covering comes from the exact bounding box of the spherical cap,
//! which widens to every longitude when the cap holds a pole, wraps across ±180°, and is the
//! whole world when the radius exceeds half the Earth; the distance bounds, not the
//! neighbourhood, decide what is searched.

use crate::search::{BOUND_SLACK_M, BestFirst, Expand, Frontier, Rect};
use crate::slots::Slots;
use crate::{BoundingBox, EntryId, Error, HeapSize, LatLng, Neighbour, Query, SpatialIndex};
use std::collections::BTreeSet;
use std::ops::RangeInclusive;

/// Seed cells per query: enough that the covering hugs the circle, few enough that seeding is
/// cheap.
const MAX_SEED_CELLS: u64 = 16;

/// A cell with at most this many entries is opened into points rather than split.
const LEAF_SIZE: usize = 16;

/// Deepest level: 32 bits per axis.
const MAX_LEVEL: u8 = 32;

/// The geohash index. See the [module documentation](self) for the design.
///
/// ```
/// use geo_index::{GeohashIndex, LatLng, SpatialIndex};
/// let mut index = GeohashIndex::default();
/// index.insert(1, LatLng::new(-16.5, 179.99)?);
/// index.insert(2, LatLng::new(-16.5, -179.99)?);
/// // The two are 2.1 km apart across the antimeridian.
/// let found = index.nearest(LatLng::new(-16.5, 179.995)?, 10, 3_000.0)?;
/// assert_eq!(found.len(), 2);
/// # Ok::<(), geo_index::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct GeohashIndex {
    keys: BTreeSet<(u64, EntryId)>,
    slots: Slots,
}

/// The `len`-character geohash of `position` (1 to 12 characters), computed by the `geohash`
/// crate.
///
/// # Errors
/// Returns `None` for a length outside 1..=12.
///
/// ```
/// use geo_index::{geohash, LatLng};
/// assert_eq!(geohash(LatLng::new(57.64911, 10.40744)?, 11).as_deref(), Some("u4pruydqqvj"));
/// assert_eq!(geohash(LatLng::new(0.0, 0.0)?, 13), None);
/// # Ok::<(), geo_index::Error>(())
/// ```
pub fn geohash(position: LatLng, len: usize) -> Option<String> {
    ::geohash::encode(
        ::geohash::Coord {
            x: position.lng(),
            y: position.lat(),
        },
        len,
    )
    .ok()
}

/// The 64-bit interleaved geohash key of `position`: its first `5n` bits are the `n`-character
/// geohash.
///
/// ```
/// use geo_index::{geohash_key, LatLng};
/// let key = geohash_key(LatLng::new(42.605, -5.603)?);
/// // "ezs42" in base 32 is 13, 31, 24, 4, 2.
/// assert_eq!(key >> 39, (13 << 20) | (31 << 15) | (24 << 10) | (4 << 5) | 2);
/// # Ok::<(), geo_index::Error>(())
/// ```
pub fn geohash_key(position: LatLng) -> u64 {
    interleave(quantise_lng(position.lng()), quantise_lat(position.lat()))
}

/// Latitude to 32 bits: the top 32 bits of the significand of `lat / 180 + 1.5`, a number in
/// [1, 2). The same arithmetic as the `geohash` crate, except that 90° maps to the last cell
/// instead of wrapping to the first.
#[inline]
fn quantise_lat(lat: f64) -> u32 {
    if lat >= 90.0 {
        return u32::MAX;
    }
    // Bits 51..20 of the significand; the cast keeps exactly those 32 bits.
    ((lat * 0.005_555_555_555_555_556 + 1.5).to_bits() >> 20) as u32
}

/// Longitude to 32 bits, as [`quantise_lat`] with 360°.
#[inline]
fn quantise_lng(lng: f64) -> u32 {
    if lng >= 180.0 {
        return u32::MAX;
    }
    ((lng * 0.002_777_777_777_777_778 + 1.5).to_bits() >> 20) as u32
}

/// Spreads the 32 bits of `x` to the even bit positions of a u64.
#[inline]
fn spread(x: u32) -> u64 {
    let mut x = u64::from(x);
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Longitude bits at odd positions (the most significant bit is longitude), latitude at even.
#[inline]
fn interleave(lng: u32, lat: u32) -> u64 {
    (spread(lng) << 1) | spread(lat)
}

/// A geohash cell: `level` bits of each axis, i.e. a `2 * level`-bit key prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Cell {
    level: u8,
    lng: u32,
    lat: u32,
}

impl Cell {
    /// The keys of every entry in the cell.
    fn keys(self) -> RangeInclusive<(u64, EntryId)> {
        if self.level == 0 {
            return (0, 0)..=(u64::MAX, EntryId::MAX);
        }
        let shift = 64 - 2 * u32::from(self.level);
        let low = interleave(self.lng, self.lat) << shift;
        let high = low | ((1u64 << shift) - 1);
        (low, 0)..=(high, EntryId::MAX)
    }

    fn rect(self) -> Rect {
        let cells = f64::from(self.level).exp2();
        let width = 360.0 / cells;
        let height = 180.0 / cells;
        let west = -180.0 + f64::from(self.lng) * width;
        let south = -90.0 + f64::from(self.lat) * height;
        Rect {
            south,
            west,
            north: south + height,
            east: west + width,
        }
    }

    fn quarters(self) -> [Cell; 4] {
        let level = self.level + 1;
        let (lng, lat) = (self.lng << 1, self.lat << 1);
        [
            Cell { level, lng, lat },
            Cell {
                level,
                lng: lng | 1,
                lat,
            },
            Cell {
                level,
                lng,
                lat: lat | 1,
            },
            Cell {
                level,
                lng: lng | 1,
                lat: lat | 1,
            },
        ]
    }
}

/// The cells of one level covering a box, as index ranges per axis.
struct Covering {
    level: u8,
    lat: RangeInclusive<u32>,
    lng: Vec<RangeInclusive<u32>>,
}

impl Covering {
    /// The finest covering of `bbox` with at most `max_cells` cells (level 0, the whole world,
    /// always fits).
    fn of(bbox: &BoundingBox, max_cells: u64) -> Covering {
        let lat = quantise_lat(bbox.south())..=quantise_lat(bbox.north());
        let mut lng = Vec::with_capacity(4);
        for (west, east) in bbox.lng_intervals().into_iter().flatten() {
            lng.push(quantise_lng(west)..=quantise_lng(east));
            // -180 and 180 are one meridian: points stored at either end belong to a box
            // that touches it.
            if east == 180.0 {
                lng.push(0..=quantise_lng(-180.0));
            }
            if west == -180.0 {
                lng.push(u32::MAX..=u32::MAX);
            }
        }
        let mut best = Covering {
            level: 0,
            lat: 0..=0,
            lng: vec![0..=0],
        };
        for level in 1..=MAX_LEVEL {
            let candidate = Covering::at_level(level, &lat, &lng);
            if candidate.len() > max_cells {
                break;
            }
            best = candidate;
        }
        best
    }

    fn at_level(level: u8, lat: &RangeInclusive<u32>, lng: &[RangeInclusive<u32>]) -> Covering {
        let shift = 32 - u32::from(level);
        let lat = (lat.start() >> shift)..=(lat.end() >> shift);
        let mut lng: Vec<RangeInclusive<u32>> = lng
            .iter()
            .map(|r| (r.start() >> shift)..=(r.end() >> shift))
            .collect();
        // Merge overlapping column ranges so no cell is listed twice.
        lng.sort_by_key(|r| *r.start());
        let mut merged: Vec<RangeInclusive<u32>> = Vec::with_capacity(lng.len());
        for range in lng {
            match merged.last_mut() {
                Some(last) if *range.start() <= last.end().saturating_add(1) => {
                    if range.end() > last.end() {
                        *last = *last.start()..=*range.end();
                    }
                }
                _ => merged.push(range),
            }
        }
        Covering {
            level,
            lat,
            lng: merged,
        }
    }

    fn len(&self) -> u64 {
        let rows = u64::from(self.lat.end() - self.lat.start()) + 1;
        let columns: u64 = self
            .lng
            .iter()
            .map(|r| u64::from(r.end() - r.start()) + 1)
            .sum();
        rows * columns
    }

    fn cells(&self) -> impl Iterator<Item = Cell> + '_ {
        self.lng.iter().flat_map(move |columns| {
            columns.clone().flat_map(move |lng| {
                self.lat.clone().map(move |lat| Cell {
                    level: self.level,
                    lng,
                    lat,
                })
            })
        })
    }
}

impl Expand for GeohashIndex {
    type Cell = Cell;

    fn expand(&self, cell: Cell, frontier: &mut Frontier<'_, Cell>) {
        let mut first = [0 as EntryId; LEAF_SIZE + 1];
        let mut found = 0;
        for &(_, id) in self.keys.range(cell.keys()).take(LEAF_SIZE + 1) {
            first[found] = id;
            found += 1;
        }
        if found <= LEAF_SIZE {
            for &id in &first[..found] {
                self.push_point(id, frontier);
            }
        } else if cell.level == MAX_LEVEL {
            // Entries closer than 5 mm share a key: nothing left to split.
            for &(_, id) in self.keys.range(cell.keys()) {
                self.push_point(id, frontier);
            }
        } else {
            for quarter in cell.quarters() {
                frontier.push_rect(quarter, &quarter.rect());
            }
        }
    }
}

impl GeohashIndex {
    #[inline]
    fn push_point(&self, id: EntryId, frontier: &mut Frontier<'_, Cell>) {
        if let Some(position) = self.slots.get(id) {
            frontier.push_point(id, position);
        }
    }

    fn count_in(&self, cell: Cell, centre: LatLng, radius_m: f64) -> usize {
        let origin = crate::latlng::Origin::new(centre);
        let mut stack = vec![cell];
        let mut count = 0;
        while let Some(cell) = stack.pop() {
            let bounds = cell.rect().bounds(&origin);
            if bounds.min_m - BOUND_SLACK_M > radius_m {
                continue;
            }
            if bounds.max_m + BOUND_SLACK_M < radius_m {
                count += self.keys.range(cell.keys()).count();
                continue;
            }
            let mut entries = self.keys.range(cell.keys());
            if cell.level == MAX_LEVEL || entries.clone().nth(LEAF_SIZE).is_none() {
                count += entries
                    .by_ref()
                    .filter_map(|&(_, id)| self.slots.get(id))
                    .filter(|&p| origin.distance_m(p) <= radius_m)
                    .count();
            } else {
                stack.extend(cell.quarters());
            }
        }
        count
    }
}

impl SpatialIndex for GeohashIndex {
    fn build(entries: Vec<(EntryId, LatLng)>) -> Self {
        let slots = Slots::from_entries(&entries);
        let mut keys: Vec<(u64, EntryId)> = slots
            .iter()
            .map(|(id, position)| (geohash_key(position), id))
            .collect();
        keys.sort_unstable();
        Self {
            keys: keys.into_iter().collect(),
            slots,
        }
    }

    fn id_bound(&self) -> usize {
        self.slots.id_bound()
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn get(&self, id: EntryId) -> Option<LatLng> {
        self.slots.get(id)
    }

    fn insert(&mut self, id: EntryId, position: LatLng) -> Option<LatLng> {
        let previous = self.slots.set(id, position);
        if let Some(old) = previous {
            self.keys.remove(&(geohash_key(old), id));
        }
        self.keys.insert((geohash_key(position), id));
        previous
    }

    fn remove(&mut self, id: EntryId) -> Option<LatLng> {
        let position = self.slots.take(id)?;
        self.keys.remove(&(geohash_key(position), id));
        Some(position)
    }

    fn search<'a>(&'a self, query: Query<'a>) -> impl Iterator<Item = Neighbour> + 'a {
        BestFirst::new(self, query, |frontier| {
            let bbox = BoundingBox::around(query.centre(), query.radius_m());
            for cell in Covering::of(&bbox, MAX_SEED_CELLS).cells() {
                frontier.push_rect(cell, &cell.rect());
            }
        })
    }

    fn count_within(&self, centre: LatLng, radius_m: f64) -> Result<usize, Error> {
        let query = Query::within(centre, radius_m)?;
        let bbox = BoundingBox::around(query.centre(), query.radius_m());
        Ok(Covering::of(&bbox, MAX_SEED_CELLS)
            .cells()
            .map(|cell| self.count_in(cell, centre, radius_m))
            .sum())
    }

    fn in_bbox(&self, bbox: &BoundingBox) -> Vec<EntryId> {
        Covering::of(bbox, 64)
            .cells()
            .flat_map(|cell| self.keys.range(cell.keys()))
            .filter(|&&(_, id)| self.slots.get(id).is_some_and(|p| bbox.contains(p)))
            .map(|&(_, id)| id)
            .collect()
    }
}

impl HeapSize for GeohashIndex {
    /// The slots table exactly, plus the B-tree estimated from its node layout: 11 entries of
    /// 16 bytes and a 16-byte header per leaf, assuming nodes two-thirds full on average
    /// (exact node counts are not observable); benchmarks measure the allocator instead.
    fn heap_bytes(&self) -> usize {
        let per_leaf = 11 * std::mem::size_of::<(u64, EntryId)>() + 16;
        let leaves = self.keys.len().div_ceil(7);
        self.slots.heap_bytes() + leaves * per_leaf + leaves / 6 * (12 * 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ll(lat: f64, lng: f64) -> LatLng {
        LatLng::new(lat, lng).unwrap()
    }

    #[test]
    fn key_prefix_is_the_crate_geohash() {
        const BASE32: &[u8] = b"0123456789bcdefghjkmnpqrstuvwxyz";
        let mut state = 0x1234_5678_9abc_def0_u64;
        for _ in 0..10_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let lat = (state >> 11) as f64 / (1u64 << 53) as f64 * 180.0 - 90.0;
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let lng = (state >> 11) as f64 / (1u64 << 53) as f64 * 360.0 - 180.0;
            let p = ll(lat, lng);
            let key = geohash_key(p);
            let expected = geohash(p, 12).unwrap();
            let ours: String = (0..12)
                .map(|i| BASE32[((key >> (59 - 5 * i)) & 31) as usize] as char)
                .collect();
            assert_eq!(ours, expected, "{p:?}");
        }
    }

    #[test]
    fn poles_and_antimeridian_quantise_to_the_edges() {
        assert_eq!(quantise_lat(90.0), u32::MAX);
        assert_eq!(quantise_lat(-90.0), 0);
        assert_eq!(quantise_lng(180.0), u32::MAX);
        assert_eq!(quantise_lng(-180.0), 0);
        assert_eq!(quantise_lat(0.0), 1 << 31);
    }

    #[test]
    fn cell_rect_contains_its_points() {
        let p = ll(48.8566, 2.3522);
        let key = geohash_key(p);
        for level in 0..=MAX_LEVEL {
            let shift = 32 - u32::from(level);
            let cell = Cell {
                level,
                lng: (u64::from(quantise_lng(p.lng())) >> shift) as u32,
                lat: (u64::from(quantise_lat(p.lat())) >> shift) as u32,
            };
            assert!(cell.keys().contains(&(key, 7)), "level {level}");
            let rect = cell.rect();
            assert!(
                rect.south <= p.lat() && p.lat() <= rect.north,
                "level {level}"
            );
            assert!(
                rect.west <= p.lng() && p.lng() <= rect.east,
                "level {level}"
            );
        }
    }

    #[test]
    fn covering_follows_the_radius() {
        let paris = ll(48.8566, 2.3522);
        let small = Covering::of(&BoundingBox::around(paris, 100.0), MAX_SEED_CELLS);
        let large = Covering::of(&BoundingBox::around(paris, 100_000.0), MAX_SEED_CELLS);
        assert!(small.level > large.level);
        assert!(small.len() <= MAX_SEED_CELLS && large.len() <= MAX_SEED_CELLS);
        // A cap over the pole covers every longitude.
        let pole = Covering::of(&BoundingBox::around(ll(89.9, 0.0), 50_000.0), 16);
        let columns: u64 = pole
            .lng
            .iter()
            .map(|r| u64::from(r.end() - r.start()) + 1)
            .sum();
        assert_eq!(columns, 1 << pole.level);
    }

    #[test]
    fn cells_that_cannot_hold_an_answer_are_never_opened() {
        // 10,000 points on a line, all within the radius; taking 3 must measure only the
        // points of a few cells, which the filter (called once per measured point inside the
        // radius) counts.
        let entries: Vec<(EntryId, LatLng)> = (0..10_000u32)
            .map(|i| (i, ll(0.0, f64::from(i) * 0.0001)))
            .collect();
        let index = GeohashIndex::build(entries);
        let measured = std::cell::Cell::new(0);
        let count = |_: EntryId| {
            measured.set(measured.get() + 1);
            true
        };
        let query = Query::within(ll(0.0, 0.0), 200_000.0)
            .unwrap()
            .filter(&count);
        let found: Vec<EntryId> = index.search(query).take(3).map(|n| n.id).collect();
        assert_eq!(found, [0, 1, 2]);
        assert!(
            measured.get() <= 4 * LEAF_SIZE,
            "measured {}",
            measured.get()
        );
    }
}

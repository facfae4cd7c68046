//! The storage S2 and H3 share: entries under a fine cell key in a B-tree, so that any coarser
//! cell is a key range, plus the dense id to position table.

use crate::slots::Slots;
use crate::{BoundingBox, EntryId, LatLng};
use std::collections::BTreeMap;
use std::marker::PhantomData;

/// How a cell system keys a position: its finest cell, as an integer whose order puts every
/// coarser cell's descendants in one contiguous range.
pub(crate) trait CellKey {
    fn key(position: LatLng) -> u64;
}

/// `(cell key, id) → position`, and id → position. The position is repeated in the B-tree so
/// that scanning a cell reads contiguous memory instead of missing the cache once per entry
/// in the id table.
#[derive(Clone, Debug)]
pub(crate) struct CellTable<K> {
    pub(crate) cells: BTreeMap<(u64, EntryId), LatLng>,
    slots: Slots,
    key: PhantomData<K>,
}

impl<K> Default for CellTable<K> {
    fn default() -> Self {
        Self {
            cells: BTreeMap::new(),
            slots: Slots::default(),
            key: PhantomData,
        }
    }
}

impl<K: CellKey> CellTable<K> {
    /// Keys every entry, sorts, and bulk-loads the B-tree; a repeated id keeps its last
    /// position.
    pub(crate) fn build(entries: Vec<(EntryId, LatLng)>) -> Self {
        let slots = Slots::from_entries(&entries);
        drop(entries);
        let mut keys: Vec<((u64, EntryId), LatLng)> =
            slots.iter().map(|(id, p)| ((K::key(p), id), p)).collect();
        keys.sort_unstable_by_key(|&(key, _)| key);
        Self {
            cells: BTreeMap::from_iter(keys),
            slots,
            key: PhantomData,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn get(&self, id: EntryId) -> Option<LatLng> {
        self.slots.get(id)
    }

    pub(crate) fn insert(&mut self, id: EntryId, position: LatLng) -> Option<LatLng> {
        let previous = self.slots.set(id, position);
        if let Some(previous) = previous {
            self.cells.remove(&(K::key(previous), id));
        }
        self.cells.insert((K::key(position), id), position);
        previous
    }

    pub(crate) fn remove(&mut self, id: EntryId) -> Option<LatLng> {
        let previous = self.slots.take(id)?;
        self.cells.remove(&(K::key(previous), id));
        Some(previous)
    }

    /// The slots exactly, the B-tree estimated from std's node layout.
    /// One past the largest id the id table holds without growing.
    pub(crate) fn id_bound(&self) -> usize {
        self.slots.id_bound()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.heap_bytes() + btree_map_heap_bytes::<(u64, EntryId), LatLng>(self.cells.len())
    }
}

/// Estimated heap bytes of a `BTreeMap<K, V>` holding `len` entries.
///
/// The standard library does not report its allocations, so this models its node layout:
/// nodes hold up to 11 entries (B = 6); a leaf is a parent pointer, the key array, the value
/// array and two `u16`s; an internal node adds 12 child pointers. Occupancy is assumed to be
/// 3/4 (bulk-loaded trees are fuller, trees grown by random inserts run about 2/3), with each
/// internal node parenting about 9 nodes. The estimate is within about 20% either way.
fn btree_map_heap_bytes<K, V>(len: usize) -> usize {
    const CAPACITY: usize = 11;
    if len == 0 {
        return 0;
    }
    let align = std::mem::align_of::<K>()
        .max(std::mem::align_of::<V>())
        .max(8);
    let entries = CAPACITY * (std::mem::size_of::<K>() + std::mem::size_of::<V>());
    let leaf = (8 + entries + 2 + 2).next_multiple_of(align);
    let internal = leaf + (CAPACITY + 1) * 8;
    if len <= CAPACITY {
        return leaf;
    }
    // Entries per leaf at 3/4 occupancy, children per internal node likewise.
    let leaves = (len * 4).div_ceil(CAPACITY * 3);
    let internals = if leaves > 1 { leaves.div_ceil(9) } else { 0 };
    leaves * leaf + internals * internal
}

/// How a cell's bounding box relates to a query box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BoxRelation {
    /// No point can be in both.
    Disjoint,
    /// Every point of the cell box is in the query box.
    Inside,
    /// Neither of the above is certain.
    Overlaps,
}

/// Relates `cell` (a conservative box around a cell) to `query`, both possibly crossing the
/// antimeridian; longitudes -180 and 180 are the same meridian.
pub(crate) fn relate(cell: &BoundingBox, query: &BoundingBox) -> BoxRelation {
    if cell.north() < query.south() || cell.south() > query.north() {
        return BoxRelation::Disjoint;
    }
    let cell_spans = cell.lng_intervals();
    let query_spans = query.lng_intervals();
    let overlaps = cell_spans.iter().flatten().any(|&(w1, e1)| {
        query_spans.iter().flatten().any(|&(w2, e2)| {
            (w1 <= e2 && w2 <= e1) || (e1 == 180.0 && w2 == -180.0) || (w1 == -180.0 && e2 == 180.0)
        })
    });
    if !overlaps {
        return BoxRelation::Disjoint;
    }
    let lat_inside = cell.south() >= query.south() && cell.north() <= query.north();
    let lng_inside = cell_spans.iter().flatten().all(|&(w1, e1)| {
        query_spans
            .iter()
            .flatten()
            .any(|&(w2, e2)| w1 >= w2 && e1 <= e2)
    });
    if lat_inside && lng_inside {
        BoxRelation::Inside
    } else {
        BoxRelation::Overlaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_estimate_grows_with_entries() {
        assert_eq!(btree_map_heap_bytes::<(u64, u32), LatLng>(0), 0);
        let small = btree_map_heap_bytes::<(u64, u32), LatLng>(10);
        let large = btree_map_heap_bytes::<(u64, u32), LatLng>(1_000_000);
        // One leaf of 11 keys of 16 bytes and 11 values of 16 bytes.
        assert_eq!(small, 368);
        // About 50 bytes per entry.
        assert!((40_000_000..60_000_000).contains(&large), "{large}");
    }
}

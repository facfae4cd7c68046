//! The storage S2 and H3 share: entries under a fine cell key in a B-tree, so that any coarser
//! cell is a key range, plus the dense id to position table.

use crate::slots::Slots;
use crate::{EntryId, LatLng};
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
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.heap_bytes()
            + crate::s2_index::btree_map_heap_bytes::<(u64, EntryId), LatLng>(self.cells.len())
    }
}

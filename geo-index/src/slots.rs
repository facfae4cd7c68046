//! The dense table from entry id to position that every index kind keeps.
//!
//! Ids are small integers chosen by the caller (the service allocates them densely), so the
//! table is a plain vector: lookups by id are O(1), and it is the single place that knows where
//! an entry is, which lets the spatial structures store bare ids.

use crate::{EntryId, LatLng};

/// A vacant slot: NaN cannot be a valid latitude.
const VACANT: LatLng = LatLng {
    lat: f64::NAN,
    lng: f64::NAN,
};

/// Positions by id. Memory is 16 bytes per id up to the largest id, so keep ids dense.
#[derive(Clone, Debug, Default)]
pub(crate) struct Slots {
    positions: Vec<LatLng>,
    len: usize,
}

impl Slots {
    /// Builds the table from entries; a repeated id keeps its last position.
    pub(crate) fn from_entries(entries: &[(EntryId, LatLng)]) -> Self {
        let mut slots = Slots::default();
        if let Some(max_id) = entries.iter().map(|(id, _)| *id).max() {
            crate::assert_dense(max_id, 0, entries.len());
            slots.positions = vec![VACANT; max_id as usize + 1];
        }
        for &(id, position) in entries {
            slots.set(id, position);
        }
        slots
    }

    #[inline]
    pub(crate) fn get(&self, id: EntryId) -> Option<LatLng> {
        self.positions
            .get(id as usize)
            .copied()
            .filter(|p| !p.lat.is_nan())
    }

    /// Sets the position of `id`, returning the previous one.
    pub(crate) fn set(&mut self, id: EntryId, position: LatLng) -> Option<LatLng> {
        let index = id as usize;
        if index >= self.positions.len() {
            crate::assert_dense(id, self.positions.len(), self.len);
            self.positions.resize(index + 1, VACANT);
        }
        let previous = std::mem::replace(&mut self.positions[index], position);
        if previous.lat.is_nan() {
            self.len += 1;
            None
        } else {
            Some(previous)
        }
    }

    /// Empties the slot of `id`, returning its position.
    pub(crate) fn take(&mut self, id: EntryId) -> Option<LatLng> {
        let slot = self.positions.get_mut(id as usize)?;
        if slot.lat.is_nan() {
            return None;
        }
        self.len -= 1;
        Some(std::mem::replace(slot, VACANT))
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Occupied slots in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (EntryId, LatLng)> + '_ {
        self.positions
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.lat.is_nan())
            // Ids were u32 when stored, so the index fits.
            .map(|(i, p)| (i as EntryId, *p))
    }

    /// One past the largest id the table can hold without growing.
    pub(crate) fn id_bound(&self) -> usize {
        self.positions.len()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.positions.capacity() * std::mem::size_of::<LatLng>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_take() {
        let p = LatLng::new(1.0, 2.0).unwrap();
        let q = LatLng::new(3.0, 4.0).unwrap();
        let mut slots = Slots::default();
        assert_eq!(slots.set(5, p), None);
        assert_eq!(slots.set(5, q), Some(p));
        assert_eq!(slots.len(), 1);
        assert_eq!(slots.get(5), Some(q));
        assert_eq!(slots.get(4), None);
        assert_eq!(slots.get(1_000), None);
        assert_eq!(slots.take(5), Some(q));
        assert_eq!(slots.take(5), None);
        assert_eq!(slots.len(), 0);
    }
}

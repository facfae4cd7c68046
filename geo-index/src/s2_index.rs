//! TEMPORARY scaffold: delegates to the brute-force scan until the real index lands.

use crate::{BoundingBox, BruteForce, EntryId, LatLng, Neighbour, Query, SpatialIndex};

/// Scaffold.
#[derive(Clone, Debug, Default)]
pub struct S2Index {
    inner: BruteForce,
}

impl SpatialIndex for S2Index {
    fn build(entries: Vec<(EntryId, LatLng)>) -> Self {
        Self {
            inner: BruteForce::build(entries),
        }
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn get(&self, id: EntryId) -> Option<LatLng> {
        self.inner.get(id)
    }
    fn insert(&mut self, id: EntryId, position: LatLng) -> Option<LatLng> {
        self.inner.insert(id, position)
    }
    fn remove(&mut self, id: EntryId) -> Option<LatLng> {
        self.inner.remove(id)
    }
    fn search<'a>(&'a self, query: Query<'a>) -> impl Iterator<Item = Neighbour> + 'a {
        self.inner.search(query)
    }
    fn in_bbox(&self, bbox: &BoundingBox) -> Vec<EntryId> {
        self.inner.in_bbox(bbox)
    }
    fn heap_bytes(&self) -> usize {
        self.inner.heap_bytes()
    }
}

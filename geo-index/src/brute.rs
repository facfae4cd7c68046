//! The reference: a scan of every entry. Slow and obviously right, it is what the other index
//! kinds are tested and benchmarked against.

use crate::slots::Slots;
use crate::{BoundingBox, EntryId, HeapSize, LatLng, Neighbour, Query, SpatialIndex, Tag};

/// An "index" that scans every entry for each query, then sorts.
///
/// ```
/// use geo_index::{BruteForce, LatLng, Query, SpatialIndex};
/// let mut index = BruteForce::default();
/// index.insert(1, LatLng::new(48.8566, 2.3522)?);
/// index.insert(2, LatLng::new(51.5074, -0.1278)?);
/// let found: Vec<u32> = index
///     .search(Query::within(LatLng::new(48.85, 2.35)?, 400_000.0)?)
///     .map(|n| n.id)
///     .collect();
/// assert_eq!(found, [1, 2]);
/// # Ok::<(), geo_index::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct BruteForce {
    slots: Slots,
    /// Tag numbers by id, for the ids given one ([`Tag::UNTAGGED`] beyond).
    tags: Vec<u8>,
}

impl BruteForce {
    /// Inserts or moves entry `id`, carrying `tag` (the reference for the quadtree's tags).
    ///
    /// ```
    /// use geo_index::{BruteForce, LatLng, SpatialIndex, Tag};
    /// let mut index = BruteForce::default();
    /// index.insert_tagged(1, LatLng::new(0.0, 0.0)?, Tag::new(9)?);
    /// assert_eq!(index.tag(1), Tag::new(9)?);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn insert_tagged(&mut self, id: EntryId, position: LatLng, tag: Tag) -> Option<LatLng> {
        let index = id as usize;
        if index >= self.tags.len() {
            self.tags.resize(index + 1, Tag::UNTAGGED.get());
        }
        self.tags[index] = tag.get();
        self.slots.set(id, position)
    }
}

impl SpatialIndex for BruteForce {
    fn build(entries: Vec<(EntryId, LatLng)>) -> Self {
        Self {
            slots: Slots::from_entries(&entries),
            tags: Vec::new(),
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
        self.slots.set(id, position)
    }

    fn remove(&mut self, id: EntryId) -> Option<LatLng> {
        if let Some(tag) = self.tags.get_mut(id as usize) {
            *tag = Tag::UNTAGGED.get();
        }
        self.slots.take(id)
    }

    fn tag(&self, id: EntryId) -> Tag {
        self.tags
            .get(id as usize)
            .and_then(|&n| Tag::new(n).ok())
            .unwrap_or(Tag::UNTAGGED)
    }

    fn search<'a>(&'a self, query: Query<'a>) -> impl Iterator<Item = Neighbour> + 'a {
        let origin = crate::latlng::Origin::new(query.centre);
        let mut found: Vec<Neighbour> = self
            .slots
            .iter()
            .filter_map(|(id, position)| {
                let distance_m = origin.distance_m(position);
                (query.admits(distance_m, id)
                    && query.wants_tag(self.tag(id))
                    && query.accepts(id, position))
                .then_some(Neighbour {
                    id,
                    position,
                    distance_m,
                })
            })
            .collect();
        found.sort_unstable_by(|a, b| {
            a.distance_m
                .total_cmp(&b.distance_m)
                .then_with(|| a.id.cmp(&b.id))
        });
        found.into_iter()
    }

    fn in_bbox(&self, bbox: &BoundingBox) -> Vec<EntryId> {
        self.slots
            .iter()
            .filter(|(_, p)| bbox.contains(*p))
            .map(|(id, _)| id)
            .collect()
    }
}

impl HeapSize for BruteForce {
    fn heap_bytes(&self) -> usize {
        self.slots.heap_bytes()
    }
}

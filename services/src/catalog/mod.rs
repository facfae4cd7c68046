//! The in-memory catalog: every business, the geo index over them, and the search that pages
//! through it.
//!
//! The geo index works with dense integer entry ids; the catalog maps business ids onto them
//! (reusing freed ones) and keeps the records, compactly (see [`records`]). Every change
//! carries a revision, and a change older than what the catalog already holds for that id is
//! ignored, so the local write path and the database change feed can both apply the same
//! change in any order.

mod records;

use crate::business::{Business, BusinessId, BusinessRef, Category};
use geo_index::{
    EntryId, HeapSize, Keyset, LatLng, Query, Ranked, Region, SpatialIndex, Tag, TieOrder, Tile,
};
use records::{NewRecord, Records};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// The index kind the service searches with (the fastest in BENCHMARKS.md).
pub type PlacesIndex = geo_index::QuadTree;

/// How many deletions are remembered so that a stale re-insert arriving late is ignored.
const TOMBSTONES: usize = 100_000;

/// A search, already validated: businesses within `radius_m` of `centre` (and inside `region`
/// when there is one), nearest to `centre` first.
///
/// ```
/// use nearby_services::catalog::SearchRequest;
/// use nearby_services::business::position;
/// let request = SearchRequest::new(position(48.85, 2.35)?, 1_000.0, 20);
/// assert_eq!(request.limit, 20);
/// # Ok::<(), nearby_services::business::FieldError>(())
/// ```
#[derive(Clone, Debug)]
pub struct SearchRequest {
    /// Centre of the circle.
    pub centre: LatLng,
    /// Radius in metres; `f64::MAX` for no radius.
    pub radius_m: f64,
    /// Only businesses inside this box or these polygons.
    pub region: Option<Arc<Region>>,
    /// Page size.
    pub limit: usize,
    /// Resume strictly after this `(distance, id)`.
    pub after: Option<(f64, BusinessId)>,
    /// Only businesses of this category.
    pub category: Option<Category>,
}

impl SearchRequest {
    /// A first-page request without a category filter.
    ///
    /// ```
    /// # use nearby_services::catalog::SearchRequest;
    /// # use nearby_services::business::position;
    /// assert!(SearchRequest::new(position(0.0, 0.0)?, 5.0, 1).after.is_none());
    /// # Ok::<(), nearby_services::business::FieldError>(())
    /// ```
    pub fn new(centre: LatLng, radius_m: f64, limit: usize) -> Self {
        Self {
            centre,
            radius_m,
            region: None,
            limit,
            after: None,
            category: None,
        }
    }

    /// The nearest businesses anywhere, no radius.
    ///
    /// ```
    /// # use nearby_services::catalog::SearchRequest;
    /// # use nearby_services::business::position;
    /// assert_eq!(SearchRequest::nearest(position(0.0, 0.0)?, 5).radius_m, f64::MAX);
    /// # Ok::<(), nearby_services::business::FieldError>(())
    /// ```
    pub fn nearest(centre: LatLng, limit: usize) -> Self {
        Self::new(centre, f64::MAX, limit)
    }

    /// The businesses inside `region`, nearest to its bounding box's centre first.
    ///
    /// ```
    /// # use nearby_services::catalog::SearchRequest;
    /// use geo_index::{BoundingBox, Region};
    /// let request = SearchRequest::inside(Region::bbox(BoundingBox::WORLD), 10);
    /// assert_eq!(request.centre.lat(), 0.0);
    /// ```
    pub fn inside(region: Region, limit: usize) -> Self {
        let centre = region.centre();
        Self {
            region: Some(Arc::new(region)),
            ..Self::new(centre, f64::MAX, limit)
        }
    }
}

/// One search result, borrowed from the catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit<'a> {
    /// The business.
    pub business: BusinessRef<'a>,
    /// Great-circle distance from the centre, metres.
    pub distance_m: f64,
}

impl Ranked for Hit<'_> {
    fn distance_m(&self) -> f64 {
        self.distance_m
    }
}

/// A page of results and where the next one starts.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchPage<'a> {
    /// Nearest first, ties by id.
    pub hits: Vec<Hit<'a>>,
    /// The `(distance, id)` to resume after, when more results exist.
    pub next: Option<(f64, BusinessId)>,
}

/// The businesses of one map tile (see [`Catalog::clusters`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterHit {
    /// The Web Mercator tile.
    pub tile: Tile,
    /// How many businesses it holds.
    pub count: u64,
    /// Their mean position on the sphere.
    pub position: LatLng,
    /// The business, when it is the only one.
    pub business: Option<Business>,
}

/// What applying a change did.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// The business was new.
    Created,
    /// The business existed; this was its previous state.
    Replaced(Business),
    /// The catalog already held a newer revision; nothing changed.
    Stale,
}

/// Every business, indexed. Not synchronised: the service wraps it in a lock.
///
/// ```
/// use nearby_services::business::{Business, BusinessId, Name, position};
/// use nearby_services::catalog::{Catalog, SearchRequest};
/// let mut catalog = Catalog::default();
/// catalog.upsert(Business {
///     id: BusinessId::new("louvre")?,
///     name: Name::new("Louvre")?,
///     position: position(48.8606, 2.3376)?,
///     category: None,
/// }, 1);
/// let page = catalog.search(&SearchRequest::new(position(48.8566, 2.3522)?, 2_000.0, 10));
/// assert_eq!(page.hits.len(), 1);
/// # Ok::<(), nearby_services::business::FieldError>(())
/// ```
#[derive(Default)]
pub struct Catalog {
    index: PlacesIndex,
    records: Records,
    tombstones: HashMap<BusinessId, i64>,
    tombstone_order: VecDeque<BusinessId>,
    /// The index tag of each category seen: the first 63 get one each (a search for them
    /// prunes every subtree without it, and counts whole subtrees holding only it); later
    /// ones share [`Tag::UNTAGGED`] with businesses without a category, and are told apart
    /// by a per-business check.
    tags: HashMap<Category, Tag, foldhash::fast::RandomState>,
}

/// Builds a catalog from a stream of businesses (a place file, a database snapshot) without
/// holding them all as values first: each is stored compactly as it arrives, and the index is
/// built in bulk at the end.
///
/// ```
/// use nearby_services::business::{BusinessRef, position};
/// use nearby_services::catalog::CatalogBuilder;
/// let mut builder = CatalogBuilder::with_capacity(1, 16);
/// builder.push(BusinessRef { id: "a", name: "A", position: position(1.0, 2.0)?, category: Some("cafe") }, 3);
/// let catalog = builder.finish();
/// assert_eq!(catalog.len(), 1);
/// # Ok::<(), nearby_services::business::FieldError>(())
/// ```
pub struct CatalogBuilder {
    catalog: Catalog,
    points: Vec<(EntryId, LatLng, Tag)>,
    /// The hash of each pushed id, by entry: the id table is built at the end, beside the
    /// index (see [`CatalogBuilder::finish`]).
    id_hashes: Vec<u64>,
}

impl CatalogBuilder {
    /// A builder with room for `count` businesses with `text_bytes` of ids and names in all
    /// (estimates; both grow as needed).
    ///
    /// ```
    /// # use nearby_services::catalog::CatalogBuilder;
    /// assert!(CatalogBuilder::with_capacity(0, 0).finish().is_empty());
    /// ```
    pub fn with_capacity(count: usize, text_bytes: usize) -> Self {
        let mut catalog = Catalog::default();
        catalog.records.reserve(count, text_bytes);
        Self {
            catalog,
            points: Vec::with_capacity(count),
            id_hashes: Vec::with_capacity(count),
        }
    }

    /// Adds a business whose parts were checked (as [`crate::business`] checks them). A
    /// repeated id keeps its last record.
    ///
    /// ```
    /// # use nearby_services::business::{BusinessRef, position};
    /// # use nearby_services::catalog::CatalogBuilder;
    /// let mut builder = CatalogBuilder::with_capacity(2, 0);
    /// let here = position(0.0, 0.0)?;
    /// builder.push(BusinessRef { id: "a", name: "First", position: here, category: None }, 1);
    /// builder.push(BusinessRef { id: "a", name: "Second", position: here, category: None }, 2);
    /// assert_eq!(builder.finish().len(), 1);
    /// # Ok::<(), nearby_services::business::FieldError>(())
    /// ```
    pub fn push(&mut self, business: BusinessRef<'_>, revision: i64) {
        let tag = match business.category {
            None => Tag::UNTAGGED,
            Some(category) => match self.catalog.tags.get(category) {
                Some(&tag) => tag,
                None => self
                    .catalog
                    .tag_for(Some(&Category::from_checked(category))),
            },
        };
        let (entry, id_hash) = self.catalog.records.push_unindexed(NewRecord {
            id: business.id,
            name: business.name,
            category: business.category,
            revision,
        });
        self.points.push((entry, business.position, tag));
        self.id_hashes.push(id_hash);
    }

    /// The catalog. The index (bulk-built, top-down) and the id table are built at the same
    /// time on two threads; then the records of ids pushed more than once, all but the last,
    /// are taken out of both.
    pub fn finish(self) -> Catalog {
        let Self {
            mut catalog,
            points,
            id_hashes,
        } = self;
        let started = std::time::Instant::now();
        catalog.records.shrink_to_fit();
        let (index, superseded) = std::thread::scope(|scope| {
            let index = scope.spawn(move || PlacesIndex::build_tagged(points));
            let superseded = catalog.records.index_ids(&id_hashes);
            drop(id_hashes);
            let index = index
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (index, superseded)
        });
        catalog.index = index;
        for entry in superseded {
            catalog.index.remove(entry);
        }
        tracing::debug!(
            businesses = catalog.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "catalog index built"
        );
        catalog
    }
}

/// How a category narrows a search or a count.
enum Selection {
    /// Every business.
    All,
    /// No business has it.
    Nothing,
    /// Exactly the businesses carrying this tag.
    Tag(Tag),
    /// Among those carrying [`Tag::UNTAGGED`], the ones with this category.
    Shared(Tag),
}

impl Catalog {
    /// The tag for businesses of `category`, assigning one to a category seen first.
    fn tag_for(&mut self, category: Option<&Category>) -> Tag {
        let Some(category) = category else {
            return Tag::UNTAGGED;
        };
        if let Some(&tag) = self.tags.get(category) {
            return tag;
        }
        let next = u8::try_from(self.tags.values().filter(|t| **t != Tag::UNTAGGED).count())
            .unwrap_or(u8::MAX);
        let tag = Tag::new(next)
            .ok()
            .filter(|t| *t != Tag::UNTAGGED)
            .unwrap_or(Tag::UNTAGGED);
        self.tags.insert(category.clone(), tag);
        tag
    }

    fn selection(&self, category: Option<&Category>) -> Selection {
        match category {
            None => Selection::All,
            Some(category) => match self.tags.get(category) {
                None => Selection::Nothing,
                Some(&Tag::UNTAGGED) => Selection::Shared(Tag::UNTAGGED),
                Some(&tag) => Selection::Tag(tag),
            },
        }
    }

    /// Builds a catalog in one go (bulk index build), every business at one revision. A
    /// repeated id keeps its last record.
    ///
    /// ```
    /// # use nearby_services::catalog::Catalog;
    /// assert_eq!(Catalog::build(Vec::new(), 0).len(), 0);
    /// ```
    pub fn build(businesses: Vec<Business>, revision: i64) -> Self {
        Self::build_revisions(businesses.into_iter().map(|b| (b, revision)))
    }

    /// Builds a catalog in one go (bulk index build) from businesses with their own
    /// revisions, as read from the database. A repeated id keeps its last record.
    ///
    /// ```
    /// # use nearby_services::business::{Business, BusinessId, Name, position};
    /// # use nearby_services::catalog::Catalog;
    /// let b = Business { id: BusinessId::new("a")?, name: Name::new("A")?, position: position(0.0, 0.0)?, category: None };
    /// let catalog = Catalog::build_revisions([(b.clone(), 7)]);
    /// assert_eq!(catalog.revision(&b.id), Some(7));
    /// # Ok::<(), nearby_services::business::FieldError>(())
    /// ```
    pub fn build_revisions(businesses: impl IntoIterator<Item = (Business, i64)>) -> Self {
        let businesses = businesses.into_iter();
        let mut builder = CatalogBuilder::with_capacity(businesses.size_hint().0, 0);
        for (business, revision) in businesses {
            builder.push(BusinessRef::from(&business), revision);
        }
        builder.finish()
    }

    /// Number of businesses.
    ///
    /// ```
    /// # use nearby_services::catalog::Catalog;
    /// assert!(Catalog::default().is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there is no business.
    ///
    /// ```
    /// # use nearby_services::catalog::Catalog;
    /// assert_eq!(Catalog::default().len(), 0);
    /// ```
    pub fn is_empty(&self) -> bool {
        self.records.len() == 0
    }

    /// Heap bytes held by the records and the index (what `/metrics` reports per business).
    ///
    /// ```
    /// # use nearby_services::catalog::Catalog;
    /// assert!(Catalog::default().heap_bytes() < 4096);
    /// ```
    pub fn heap_bytes(&self) -> usize {
        self.records.heap_bytes() + self.index.heap_bytes()
    }

    /// The business with this id.
    ///
    /// ```
    /// # use nearby_services::catalog::Catalog;
    /// # use nearby_services::business::BusinessId;
    /// assert!(Catalog::default().get(&BusinessId::new("x")?).is_none());
    /// # Ok::<(), nearby_services::business::FieldError>(())
    /// ```
    pub fn get(&self, id: &BusinessId) -> Option<Business> {
        let entry = self.records.entry_of(id.as_str())?;
        self.view(entry).map(|b| b.to_business())
    }

    /// The revision the catalog holds for `id` (a deletion's, if it was deleted recently).
    ///
    /// ```
    /// # use nearby_services::catalog::Catalog;
    /// # use nearby_services::business::BusinessId;
    /// assert_eq!(Catalog::default().revision(&BusinessId::new("x")?), None);
    /// # Ok::<(), nearby_services::business::FieldError>(())
    /// ```
    pub fn revision(&self, id: &BusinessId) -> Option<i64> {
        match self.records.entry_of(id.as_str()) {
            Some(entry) => self.records.revision(entry),
            None => self.tombstones.get(id).copied(),
        }
    }

    /// Inserts or replaces a business at `revision`, unless a newer revision is already held.
    ///
    /// ```
    /// # use nearby_services::business::{Business, BusinessId, Name, position};
    /// # use nearby_services::catalog::{Applied, Catalog};
    /// let mut catalog = Catalog::default();
    /// let b = Business { id: BusinessId::new("a")?, name: Name::new("A")?, position: position(0.0, 0.0)?, category: None };
    /// assert_eq!(catalog.upsert(b.clone(), 2), Applied::Created);
    /// assert_eq!(catalog.upsert(b, 1), Applied::Stale);
    /// # Ok::<(), nearby_services::business::FieldError>(())
    /// ```
    pub fn upsert(&mut self, business: Business, revision: i64) -> Applied {
        // A record at the same revision is this very change applied twice (the local write,
        // then the change feed): harmless. A deletion at the same revision is not: the delete
        // carries the revision of the row it deleted.
        let held = self
            .records
            .entry_of(business.id.as_str())
            .and_then(|e| self.records.revision(e));
        if held.is_some_and(|held| held > revision)
            || self
                .tombstones
                .get(&business.id)
                .is_some_and(|&deleted| deleted >= revision)
        {
            return Applied::Stale;
        }
        self.tombstones.remove(&business.id);
        let previous = self.get(&business.id);
        let tag = self.tag_for(business.category.as_ref());
        let (entry, _) = self.records.put(NewRecord::from((&business, revision)));
        self.index.insert_tagged(entry, business.position, tag);
        match previous {
            Some(previous) => Applied::Replaced(previous),
            None => Applied::Created,
        }
    }

    /// Deletes a business at `revision`; returns it, or `None` if absent or the delete is
    /// older than the record.
    ///
    /// ```
    /// # use nearby_services::business::{Business, BusinessId, Name, position};
    /// # use nearby_services::catalog::Catalog;
    /// let mut catalog = Catalog::default();
    /// let id = BusinessId::new("a")?;
    /// catalog.upsert(Business { id: id.clone(), name: Name::new("A")?, position: position(0.0, 0.0)?, category: None }, 1);
    /// assert!(catalog.remove(&id, 2).is_some());
    /// assert!(catalog.get(&id).is_none());
    /// # Ok::<(), nearby_services::business::FieldError>(())
    /// ```
    pub fn remove(&mut self, id: &BusinessId, revision: i64) -> Option<Business> {
        if self.revision(id).is_some_and(|held| held > revision) {
            return None;
        }
        self.remember_deletion(id.clone(), revision);
        let previous = self.get(id)?;
        let entry = self.records.remove(id.as_str())?;
        self.index.remove(entry);
        Some(previous)
    }

    /// One page of the businesses within the radius, nearest first, ties by id.
    ///
    /// The index orders ties by entry id, the API by business id: [`TieOrder::ties_by`]
    /// reorders each run of equal distance. Resuming starts at the cursor's distance (the
    /// whole run there is read again) and skips the ids already served at exactly that
    /// distance.
    ///
    /// ```
    /// # use nearby_services::catalog::{Catalog, SearchRequest};
    /// # use nearby_services::business::position;
    /// let catalog = Catalog::default();
    /// let page = catalog.search(&SearchRequest::new(position(0.0, 0.0)?, 10.0, 5));
    /// assert!(page.hits.is_empty() && page.next.is_none());
    /// # Ok::<(), nearby_services::business::FieldError>(())
    /// ```
    pub fn search(&self, request: &SearchRequest) -> SearchPage<'_> {
        let empty = SearchPage {
            hits: Vec::new(),
            next: None,
        };
        let wanted = request.category.as_ref();
        let in_category = |entry: EntryId| {
            wanted.is_none_or(|wanted| self.records.category(entry) == Some(wanted.as_str()))
        };
        let Ok(mut query) = Query::within(request.centre, request.radius_m) else {
            return empty;
        };
        match self.selection(wanted) {
            Selection::All => {}
            Selection::Nothing => return empty,
            // The tag alone decides: the index skips every subtree without it.
            Selection::Tag(tag) => query = query.tagged(tag),
            Selection::Shared(tag) => query = query.tagged(tag).filter(&in_category),
        }
        if let Some((distance_m, _)) = &request.after {
            // Everything at `distance_m` or further: the ties are sorted out below.
            query = query.after(Keyset {
                distance_m: distance_m.next_down(),
                id: EntryId::MAX,
            });
        }
        if let Some(region) = &request.region {
            query = query.inside(region);
        }

        let limit = request.limit.max(1);
        let after = request.after.as_ref();
        let mut hits: Vec<Hit> = self
            .index
            .search(query)
            .filter_map(|neighbour| {
                let business = self.records.view(neighbour.id, neighbour.position)?;
                Some(Hit {
                    business,
                    distance_m: neighbour.distance_m,
                })
            })
            .ties_by(|a, b| a.business.id.cmp(b.business.id))
            .skip_while(|hit| {
                after.is_some_and(|(distance_m, id)| {
                    hit.distance_m == *distance_m && hit.business.id <= id.as_str()
                })
            })
            .take(limit + 1)
            .collect();
        let next = if hits.len() > limit {
            hits.truncate(limit);
            hits.last()
                .map(|hit| (hit.distance_m, BusinessId::trusted(hit.business.id)))
        } else {
            None
        };
        SearchPage { hits, next }
    }

    /// The businesses inside `region` (of `category`, if given), grouped by the Web Mercator
    /// tile at `zoom` that holds each, sorted by tile `(x, y)`. Counts are exact; subtrees
    /// inside one tile (holding only the category, when one is given and has its own tag)
    /// are counted without being visited.
    ///
    /// # Errors
    /// A zoom beyond [`geo_index::MAX_TILE_ZOOM`].
    ///
    /// ```
    /// # use nearby_services::business::{Business, BusinessId, Name, position};
    /// # use nearby_services::catalog::Catalog;
    /// use geo_index::{BoundingBox, Region};
    /// let b = |id: &str, lat, lng| Business { id: BusinessId::new(id).unwrap(), name: Name::new(id).unwrap(), position: position(lat, lng).unwrap(), category: None };
    /// let catalog = Catalog::build(vec![b("a", 48.85, 2.35), b("b", 48.86, 2.34), b("c", -33.9, 18.4)], 1);
    /// let clusters = catalog.clusters(&Region::bbox(BoundingBox::WORLD), 2, None)?;
    /// assert_eq!(clusters.iter().map(|c| c.count).sum::<u64>(), 3);
    /// assert_eq!(clusters.iter().filter_map(|c| c.business.as_ref()).count(), 1);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn clusters(
        &self,
        region: &Region,
        zoom: u8,
        category: Option<&Category>,
    ) -> Result<Vec<ClusterHit>, geo_index::Error> {
        let in_category = |entry: EntryId| {
            category.is_none_or(|wanted| self.records.category(entry) == Some(wanted.as_str()))
        };
        let (filter, tag): (Option<&dyn Fn(EntryId) -> bool>, Option<Tag>) =
            match self.selection(category) {
                Selection::All => (None, None),
                Selection::Nothing => {
                    // Still validates the zoom, as any other answer would.
                    geo_index::TileGrid::new(zoom)?;
                    return Ok(Vec::new());
                }
                Selection::Tag(tag) => (None, Some(tag)),
                Selection::Shared(tag) => (Some(&in_category), Some(tag)),
            };
        let clusters = self.index.clusters(region, zoom, filter, tag)?;
        Ok(clusters
            .into_iter()
            .map(|cluster| ClusterHit {
                tile: cluster.tile,
                count: cluster.count,
                position: cluster.centroid(),
                business: cluster
                    .single
                    .and_then(|entry| self.view(entry))
                    .map(|b| b.to_business()),
            })
            .collect())
    }

    /// Every business, in no particular order.
    ///
    /// ```
    /// # use nearby_services::catalog::Catalog;
    /// assert_eq!(Catalog::default().iter().count(), 0);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = Business> + '_ {
        self.records
            .entries()
            .filter_map(|entry| self.view(entry))
            .map(|b| b.to_business())
    }

    /// Every business id with the revision held for it, in no particular order.
    ///
    /// ```
    /// # use nearby_services::catalog::Catalog;
    /// assert_eq!(Catalog::default().revisions().count(), 0);
    /// ```
    pub fn revisions(&self) -> impl Iterator<Item = (BusinessId, i64)> + '_ {
        self.records.entries().filter_map(|entry| {
            let id = self.records.id(entry)?;
            Some((BusinessId::trusted(id), self.records.revision(entry)?))
        })
    }

    /// Entry `entry`'s business, its position from the index.
    fn view(&self, entry: EntryId) -> Option<BusinessRef<'_>> {
        self.records.view(entry, self.index.get(entry)?)
    }

    fn remember_deletion(&mut self, id: BusinessId, revision: i64) {
        if self.tombstones.insert(id.clone(), revision).is_none() {
            self.tombstone_order.push_back(id);
            if self.tombstone_order.len() > TOMBSTONES
                && let Some(oldest) = self.tombstone_order.pop_front()
            {
                self.tombstones.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::business::{Name, position};

    fn business(id: &str, lat: f64, lng: f64, category: Option<&str>) -> Business {
        Business {
            id: BusinessId::new(id).unwrap(),
            name: Name::new(id).unwrap(),
            position: position(lat, lng).unwrap(),
            category: category.map(|c| Category::new(c).unwrap()),
        }
    }

    fn all_pages(catalog: &Catalog, mut request: SearchRequest) -> Vec<(f64, String)> {
        let mut out = Vec::new();
        loop {
            let page = catalog.search(&request);
            out.extend(
                page.hits
                    .iter()
                    .map(|h| (h.distance_m, h.business.id.to_string())),
            );
            match page.next {
                Some(next) => request.after = Some(next),
                None => return out,
            }
        }
    }

    #[test]
    fn paging_breaks_ties_by_business_id_across_pages() {
        // Ten businesses at one spot (all tied), ids inserted in reverse order so entry ids
        // and business ids disagree, plus a few further away.
        let mut all = Vec::new();
        for i in (0..10).rev() {
            all.push(business(&format!("same-{i}"), 10.0, 10.0, None));
        }
        for i in 0..5 {
            all.push(business(
                &format!("far-{i}"),
                10.0 + f64::from(i) * 0.001,
                10.001,
                None,
            ));
        }
        let catalog = Catalog::build(all, 1);
        let centre = position(10.0, 10.0).unwrap();
        for limit in 1..=16 {
            let got = all_pages(&catalog, SearchRequest::new(centre, 5_000.0, limit));
            assert_eq!(got.len(), 15, "limit {limit}");
            let mut sorted = got.clone();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            assert_eq!(got, sorted, "limit {limit}");
        }
    }

    #[test]
    fn category_filter_and_revisions() {
        let mut catalog = Catalog::default();
        catalog.upsert(business("a", 0.0, 0.0, Some("cafe")), 1);
        catalog.upsert(business("b", 0.0, 0.001, Some("bar")), 2);
        let mut request = SearchRequest::new(position(0.0, 0.0).unwrap(), 1_000.0, 10);
        request.category = Some(Category::new("bar").unwrap());
        let page = catalog.search(&request);
        assert_eq!(page.hits.len(), 1);
        assert_eq!(page.hits[0].business.id, "b");

        // A late, older change is ignored; a delete leaves a tombstone.
        assert_eq!(
            catalog.upsert(business("b", 1.0, 1.0, None), 1),
            Applied::Stale
        );
        assert!(catalog.remove(&BusinessId::new("b").unwrap(), 3).is_some());
        assert_eq!(
            catalog.upsert(business("b", 1.0, 1.0, None), 2),
            Applied::Stale
        );
        assert_eq!(
            catalog.upsert(business("b", 1.0, 1.0, None), 4),
            Applied::Created
        );
        assert_eq!(catalog.len(), 2);
    }

    /// 70 categories: the first 63 get their own index tag, the rest share one with the
    /// uncategorised; every category's search and clusters equal a scan, before and after
    /// businesses change category (in both directions across the shared tag) or are deleted.
    #[test]
    fn categories_beyond_the_tags_and_category_changes() {
        let name = |i: usize| format!("c{}", i % 70);
        let mut businesses: Vec<Business> = (0..3_000)
            .map(|i| {
                let category = (i % 71 != 70).then(|| name(i));
                business(
                    &format!("b{i}"),
                    (i % 60) as f64 * 0.01,
                    (i / 60) as f64 * 0.01,
                    category.as_deref(),
                )
            })
            .collect();
        let mut catalog = Catalog::build(businesses.clone(), 1);
        let check = |catalog: &Catalog, businesses: &[Business]| {
            let centre = position(0.3, 0.25).unwrap();
            for c in (0..70).map(name).chain(["absent".to_owned()]) {
                let category = Category::new(&c).unwrap();
                let mut request = SearchRequest::new(centre, 50_000.0, 100);
                request.category = Some(category.clone());
                let got = all_pages(catalog, request);
                let mut want: Vec<(f64, String)> = businesses
                    .iter()
                    .filter(|b| b.category.as_ref() == Some(&category))
                    .map(|b| (centre.distance_m(b.position), b.id.to_string()))
                    .filter(|(d, _)| *d <= 50_000.0)
                    .collect();
                want.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
                assert_eq!(got, want, "{c}");
                let world = geo_index::Region::bbox(geo_index::BoundingBox::WORLD);
                let clusters = catalog.clusters(&world, 9, Some(&category)).unwrap();
                let total: u64 = clusters.iter().map(|c| c.count).sum();
                let expected = businesses
                    .iter()
                    .filter(|b| b.category.as_ref() == Some(&category))
                    .count();
                assert_eq!(total, expected as u64, "{c}");
            }
        };
        check(&catalog, &businesses);
        // Move businesses between an own-tag category, a shared one and none.
        for (i, to) in [
            (0, Some("c69")),
            (69, Some("c0")),
            (70, None),
            (140, Some("c5")),
        ] {
            let mut changed = businesses[i].clone();
            changed.category = to.map(|c| Category::new(c).unwrap());
            catalog.upsert(changed.clone(), 2);
            businesses[i] = changed;
        }
        let gone = businesses.remove(5);
        catalog.remove(&gone.id, 3);
        check(&catalog, &businesses);
    }

    #[test]
    fn a_repeated_id_in_a_bulk_build_keeps_its_last_record_in_the_index_too() {
        let catalog = Catalog::build(
            vec![
                business("a", 10.0, 10.0, Some("cafe")),
                business("b", 10.0, 10.001, None),
                business("a", -20.0, 30.0, Some("bar")),
            ],
            1,
        );
        assert_eq!(catalog.len(), 2);
        let near = |lat, lng| {
            let page = catalog.search(&SearchRequest::new(
                position(lat, lng).unwrap(),
                1_000.0,
                10,
            ));
            page.hits
                .iter()
                .map(|h| {
                    (
                        h.business.id.to_owned(),
                        h.business.category.map(str::to_owned),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(near(10.0, 10.0), vec![("b".to_owned(), None)]);
        assert_eq!(
            near(-20.0, 30.0),
            vec![("a".to_owned(), Some("bar".to_owned()))]
        );
        let everything = catalog.search(&SearchRequest::nearest(position(0.0, 0.0).unwrap(), 10));
        assert_eq!(everything.hits.len(), 2);
    }

    #[test]
    fn moved_business_is_found_at_its_new_place() {
        let mut catalog = Catalog::default();
        catalog.upsert(business("a", 0.0, 0.0, None), 1);
        catalog.upsert(business("a", 45.0, 45.0, None), 2);
        let near_old = catalog.search(&SearchRequest::new(position(0.0, 0.0).unwrap(), 100.0, 5));
        let near_new = catalog.search(&SearchRequest::new(position(45.0, 45.0).unwrap(), 100.0, 5));
        assert!(near_old.hits.is_empty());
        assert_eq!(near_new.hits.len(), 1);
    }
}

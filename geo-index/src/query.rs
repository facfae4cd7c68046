//! What a radius query asks for, and what it answers.

use crate::{EntryId, Error, LatLng, Region, Tag};
use std::fmt;

/// A radius query: every entry within `radius_m` of `centre`, nearest first, ties broken by
/// id; optionally only those after a [`Keyset`] and those a filter accepts.
///
/// ```
/// use geo_index::{Keyset, LatLng, Query};
/// let centre = LatLng::new(52.52, 13.405)?;
/// let by_cafe = |id: u32| id % 2 == 0;
/// let query = Query::within(centre, 5_000.0)?
///     .after(Keyset { distance_m: 120.5, id: 7 })
///     .filter(&by_cafe);
/// assert_eq!(query.radius_m(), 5_000.0);
/// assert!(Query::within(centre, -1.0).is_err());
/// # Ok::<(), geo_index::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct Query<'a> {
    pub(crate) centre: LatLng,
    pub(crate) radius_m: f64,
    pub(crate) after: Option<Keyset>,
    pub(crate) filter: Option<&'a dyn Fn(EntryId) -> bool>,
    pub(crate) region: Option<&'a Region>,
    pub(crate) tag: Option<Tag>,
}

impl<'a> Query<'a> {
    /// Entries within `radius_m` metres of `centre`, nearest first.
    ///
    /// # Errors
    /// [`Error::InvalidRadius`] when the radius is NaN, infinite or negative. A radius larger
    /// than half the Earth's circumference is fine and matches everything.
    ///
    /// ```
    /// # use geo_index::{LatLng, Query};
    /// assert!(Query::within(LatLng::new(0.0, 0.0)?, f64::INFINITY).is_err());
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn within(centre: LatLng, radius_m: f64) -> Result<Self, Error> {
        if !(radius_m.is_finite() && radius_m >= 0.0) {
            return Err(Error::InvalidRadius(radius_m));
        }
        Ok(Self {
            centre,
            radius_m,
            after: None,
            filter: None,
            region: None,
            tag: None,
        })
    }

    /// Every entry, nearest to `centre` first: no radius, so paging through it reaches every
    /// entry eventually. [`Query::radius_m`] is `f64::MAX`.
    ///
    /// ```
    /// # use geo_index::{BruteForce, LatLng, Query, SpatialIndex};
    /// let index = BruteForce::build(vec![(1, LatLng::new(-89.0, 179.0)?), (2, LatLng::new(10.0, 10.0)?)]);
    /// let ids: Vec<u32> = index.search(Query::everywhere(LatLng::new(0.0, 0.0)?)).map(|n| n.id).collect();
    /// assert_eq!(ids, [2, 1]);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn everywhere(centre: LatLng) -> Self {
        Self {
            centre,
            radius_m: f64::MAX,
            after: None,
            filter: None,
            region: None,
            tag: None,
        }
    }

    /// Keep only entries inside `region` (edges included). Index cells outside it are never
    /// opened (quadtree and geohash; S2 and H3 test each entry).
    ///
    /// ```
    /// # use geo_index::{BoundingBox, BruteForce, LatLng, Query, Region, SpatialIndex};
    /// let index = BruteForce::build(vec![(1, LatLng::new(1.0, 1.0)?), (2, LatLng::new(5.0, 5.0)?)]);
    /// let box_ = Region::bbox(BoundingBox::new(4.0, 4.0, 6.0, 6.0)?);
    /// let ids: Vec<u32> = index
    ///     .search(Query::everywhere(box_.centre()).inside(&box_))
    ///     .map(|n| n.id)
    ///     .collect();
    /// assert_eq!(ids, [2]);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    #[must_use]
    pub fn inside(mut self, region: &'a Region) -> Self {
        self.region = Some(region);
        self
    }

    /// Keep only entries carrying `tag` ([`Tag::UNTAGGED`] for entries inserted without one).
    /// The quadtree skips every subtree holding no such entry, so a rare tag costs what its
    /// answer costs.
    ///
    /// ```
    /// # use geo_index::{LatLng, QuadTree, Query, SpatialIndex, Tag};
    /// let mut index = QuadTree::default();
    /// index.insert_tagged(1, LatLng::new(0.0, 0.0)?, Tag::new(3)?);
    /// index.insert(2, LatLng::new(0.0, 0.0)?);
    /// let q = Query::everywhere(LatLng::new(0.0, 0.0)?).tagged(Tag::new(3)?);
    /// assert_eq!(index.search(q).map(|n| n.id).collect::<Vec<_>>(), [1]);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    #[must_use]
    pub fn tagged(mut self, tag: Tag) -> Self {
        self.tag = Some(tag);
        self
    }

    /// The tag the query is restricted to, if any.
    ///
    /// ```
    /// # use geo_index::{LatLng, Query};
    /// assert!(Query::everywhere(LatLng::new(0.0, 0.0)?).tag().is_none());
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn tag(&self) -> Option<Tag> {
        self.tag
    }

    /// The region the query is restricted to, if any.
    ///
    /// ```
    /// # use geo_index::{LatLng, Query};
    /// assert!(Query::everywhere(LatLng::new(0.0, 0.0)?).region().is_none());
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn region(&self) -> Option<&'a Region> {
        self.region
    }

    /// Resume strictly after `keyset`: only entries whose `(distance_m, id)` is greater.
    ///
    /// ```
    /// # use geo_index::{Keyset, LatLng, Query};
    /// let q = Query::within(LatLng::new(0.0, 0.0)?, 10.0)?.after(Keyset { distance_m: 1.0, id: 3 });
    /// assert_eq!(q.keyset(), Some(Keyset { distance_m: 1.0, id: 3 }));
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    #[must_use]
    pub fn after(mut self, keyset: Keyset) -> Self {
        self.after = Some(keyset);
        self
    }

    /// Keep only entries for which `accept(id)` is true. The filter runs during the traversal,
    /// on entries inside the circle, so rejected entries are never queued or sorted.
    ///
    /// ```
    /// # use geo_index::{LatLng, Query};
    /// let even = |id: u32| id % 2 == 0;
    /// let q = Query::within(LatLng::new(0.0, 0.0)?, 10.0)?.filter(&even);
    /// # let _ = q;
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    #[must_use]
    pub fn filter(mut self, accept: &'a dyn Fn(EntryId) -> bool) -> Self {
        self.filter = Some(accept);
        self
    }

    /// The query's centre.
    ///
    /// ```
    /// # use geo_index::{LatLng, Query};
    /// let c = LatLng::new(1.0, 2.0)?;
    /// assert_eq!(Query::within(c, 3.0)?.centre(), c);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn centre(&self) -> LatLng {
        self.centre
    }

    /// The query's radius in metres.
    ///
    /// ```
    /// # use geo_index::{LatLng, Query};
    /// assert_eq!(Query::within(LatLng::new(1.0, 2.0)?, 3.0)?.radius_m(), 3.0);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn radius_m(&self) -> f64 {
        self.radius_m
    }

    /// The keyset the query resumes after, if any.
    ///
    /// ```
    /// # use geo_index::{LatLng, Query};
    /// assert_eq!(Query::within(LatLng::new(1.0, 2.0)?, 3.0)?.keyset(), None);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn keyset(&self) -> Option<Keyset> {
        self.after
    }

    /// Whether an entry at `distance_m` with `id` is an answer (filter aside).
    #[inline]
    pub(crate) fn admits(&self, distance_m: f64, id: EntryId) -> bool {
        distance_m <= self.radius_m
            && self
                .after
                .is_none_or(|k| (distance_m, id) > (k.distance_m, k.id))
    }

    /// Whether an entry carrying `tag` passes the tag restriction (checked before queuing).
    #[inline]
    pub(crate) fn wants_tag(&self, tag: Tag) -> bool {
        self.tag.is_none_or(|wanted| wanted == tag)
    }

    /// Whether an entry passes the region and the filter.
    #[inline]
    pub(crate) fn accepts(&self, id: EntryId, position: LatLng) -> bool {
        self.region.is_none_or(|region| region.contains(position))
            && self.filter.is_none_or(|accept| accept(id))
    }
}

impl fmt::Debug for Query<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Query")
            .field("centre", &self.centre)
            .field("radius_m", &self.radius_m)
            .field("after", &self.after)
            .field("filter", &self.filter.is_some())
            .field("region", &self.region)
            .field("tag", &self.tag)
            .finish()
    }
}

/// A position in the nearest-first order: resume a query after it to get the next page.
///
/// Distances are exact `f64` values, so a keyset taken from a [`Neighbour`] resumes exactly
/// where that neighbour was, ties broken by id.
///
/// ```
/// use geo_index::Keyset;
/// let a = Keyset { distance_m: 10.0, id: 5 };
/// let b = Keyset { distance_m: 10.0, id: 6 };
/// assert!(a < b);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Keyset {
    /// Distance from the query centre in metres.
    pub distance_m: f64,
    /// Id that breaks ties between equal distances.
    pub id: EntryId,
}

/// One answer of a radius query.
///
/// ```
/// use geo_index::{LatLng, Neighbour};
/// let n = Neighbour { id: 4, position: LatLng::new(1.0, 1.0)?, distance_m: 12.5 };
/// assert_eq!(n.keyset().id, 4);
/// # Ok::<(), geo_index::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbour {
    /// The entry's id.
    pub id: EntryId,
    /// Where the entry is.
    pub position: LatLng,
    /// Great-circle distance from the query centre in metres.
    pub distance_m: f64,
}

impl Neighbour {
    /// The keyset that resumes a query right after this neighbour.
    ///
    /// ```
    /// # use geo_index::{LatLng, Neighbour};
    /// let n = Neighbour { id: 4, position: LatLng::new(1.0, 1.0)?, distance_m: 12.5 };
    /// assert_eq!(n.keyset().distance_m, 12.5);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn keyset(&self) -> Keyset {
        Keyset {
            distance_m: self.distance_m,
            id: self.id,
        }
    }
}

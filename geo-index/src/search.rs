//! The best-first traversal every index kind shares.
//!
//! A query keeps one priority queue holding two kinds of items: *cells* (a region of the index,
//! keyed by a lower bound of the distance from the centre to anything inside it) and *points*
//! (keyed by their exact distance, then id). Popping the smallest item either yields a point,
//! which is then provably the next answer, or expands a cell into sub-cells or points. Answers
//! therefore come out nearest first and lazily: taking the first k costs about what finding
//! them costs, never a sort of every match (Hjaltason and Samet's incremental nearest
//! neighbour).
//!
//! Each index kind supplies only [`Expand`]: how to turn one of its cells into children.

use crate::latlng::{EARTH_RADIUS_M, Origin, cos_lower, sin_lower};
use crate::region::Relation;
use crate::{EntryId, LatLng, Neighbour, Query, Tag};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Slack subtracted from every cell's lower bound (and added to its upper bound) so that
/// rounding can never prune or postpone a point wrongly. Haversine loses up to
/// `sqrt(f64::EPSILON)` of a radian near antipodes (about 0.1 m on Earth); 1 m is far above
/// that and costs nothing measurable.
pub(crate) const BOUND_SLACK_M: f64 = 1.0;

/// How far a cell is from the query centre: every point inside it is at least `min_m` and at
/// most `max_m` metres away (`max_m` may be `f64::INFINITY` when unknown).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub(crate) min_m: f64,
    pub(crate) max_m: f64,
}

/// A cell kind that can be opened into smaller cells or points.
pub(crate) trait Expand {
    /// The index's handle for a region.
    type Cell: Copy;

    /// Push the contents of `cell` into `frontier`: sub-cells with their bounds, or points.
    fn expand(&self, cell: Self::Cell, frontier: &mut Frontier<'_, Self::Cell>);
}

enum Payload<C> {
    Cell(C),
    /// A point keyed by a cheap lower bound of its distance; measured exactly when popped.
    Candidate(LatLng),
    /// A point keyed by its exact distance: popping it yields an answer.
    Point(LatLng),
}

struct Item<C> {
    /// Lower bound for cells, exact distance for points.
    key_m: f64,
    id: EntryId,
    payload: Payload<C>,
}

impl<C> Item<C> {
    /// Among equal keys: cells, then candidates, then measured points, so a point is only
    /// yielded once nothing queued can still hold an equal distance with a smaller id.
    fn rank(&self) -> u8 {
        match self.payload {
            Payload::Cell(_) => 0,
            Payload::Candidate(_) => 1,
            Payload::Point(_) => 2,
        }
    }
}

impl<C> PartialEq for Item<C> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<C> Eq for Item<C> {}
impl<C> PartialOrd for Item<C> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<C> Ord for Item<C> {
    /// Reversed, so that `BinaryHeap` pops the smallest: by key, then rank (a cell or a
    /// candidate whose bound equals a point's distance may hold a tie with a smaller id), then
    /// id.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .key_m
            .total_cmp(&self.key_m)
            .then_with(|| other.rank().cmp(&self.rank()))
            .then_with(|| other.id.cmp(&self.id))
    }
}

/// The queue of one running query, plus the query's admission rules.
pub(crate) struct Frontier<'q, C> {
    heap: BinaryHeap<Item<C>>,
    origin: Origin,
    query: Query<'q>,
}

impl<'q, C> Frontier<'q, C> {
    pub(crate) fn new(query: Query<'q>) -> Self {
        Self {
            heap: BinaryHeap::new(),
            origin: Origin::new(query.centre),
            query,
        }
    }

    pub(crate) fn origin(&self) -> &Origin {
        &self.origin
    }

    pub(crate) fn query(&self) -> &Query<'q> {
        &self.query
    }

    /// Queue a cell unless it cannot hold an answer: wholly beyond the radius, or wholly
    /// before the keyset being resumed from.
    #[inline]
    pub(crate) fn push_cell(&mut self, cell: C, bounds: Bounds) {
        let min_m = (bounds.min_m - BOUND_SLACK_M).max(0.0);
        if min_m > self.query.radius_m {
            return;
        }
        if let Some(after) = self.query.after
            && bounds.max_m + BOUND_SLACK_M < after.distance_m
        {
            return;
        }
        self.heap.push(Item {
            key_m: min_m,
            id: 0,
            payload: Payload::Cell(cell),
        });
    }

    /// Whether a cell with rectangle `rect` can hold no answer because it lies outside the
    /// query's region.
    #[inline]
    pub(crate) fn outside_region(&self, rect: &Rect) -> bool {
        self.query
            .region
            .is_some_and(|region| region.relate(rect) == Relation::Disjoint)
    }

    /// Queue a lat/lng rectangle cell; its upper bound (which costs trigonometry) is computed
    /// only when resuming from a keyset, the one case that uses it.
    #[cfg(feature = "geohash")]
    #[inline]
    pub(crate) fn push_rect(&mut self, cell: C, rect: &Rect) {
        if self.outside_region(rect) {
            return;
        }
        let min_m = rect.lower_bound_m(&self.origin);
        let max_m = if self.query.after.is_some() {
            rect.upper_bound_m(&self.origin)
        } else {
            f64::INFINITY
        };
        self.push_cell(cell, Bounds { min_m, max_m });
    }

    /// Queue a point, unless it is certainly beyond the radius. It is keyed by a cheap lower
    /// bound of its distance (no trigonometry) and measured exactly only if it reaches the
    /// front of the queue: most points of an opened cell never do.
    #[cfg(any(feature = "geohash", feature = "s2", feature = "h3"))]
    #[inline]
    pub(crate) fn push_point(&mut self, id: EntryId, position: LatLng) {
        self.push_tagged_point(id, position, Tag::UNTAGGED);
    }

    /// Queue a point carrying `tag` (see [`Frontier::push_point`]); one with another tag than
    /// the query wants is dropped here.
    #[inline]
    pub(crate) fn push_tagged_point(&mut self, id: EntryId, position: LatLng, tag: Tag) {
        if !self.query.wants_tag(tag) {
            return;
        }
        let key_m = self.origin.distance_lower_bound_m(position);
        if key_m > self.query.radius_m {
            return;
        }
        self.heap.push(Item {
            key_m,
            id,
            payload: Payload::Candidate(position),
        });
    }

    /// Measure a candidate exactly; an answer comes back, to be yielded or queued.
    #[inline]
    fn measure(&self, id: EntryId, position: LatLng) -> Option<Item<C>> {
        let distance_m = self.origin.distance_m(position);
        (self.query.admits(distance_m, id) && self.query.accepts(id, position)).then_some(Item {
            key_m: distance_m,
            id,
            payload: Payload::Point(position),
        })
    }
}

/// The lazy nearest-first iterator over any [`Expand`] source.
pub(crate) struct BestFirst<'a, S: Expand> {
    source: &'a S,
    frontier: Frontier<'a, S::Cell>,
}

impl<'a, S: Expand> BestFirst<'a, S> {
    /// Starts a traversal; `seed` queues the first cells.
    pub(crate) fn new(
        source: &'a S,
        query: Query<'a>,
        seed: impl FnOnce(&mut Frontier<'a, S::Cell>),
    ) -> Self {
        let mut frontier = Frontier::new(query);
        seed(&mut frontier);
        Self { source, frontier }
    }
}

impl<S: Expand> Iterator for BestFirst<'_, S> {
    type Item = Neighbour;

    fn next(&mut self) -> Option<Neighbour> {
        while let Some(item) = self.frontier.heap.pop() {
            match item.payload {
                Payload::Point(position) => {
                    return Some(Neighbour {
                        id: item.id,
                        position,
                        distance_m: item.key_m,
                    });
                }
                Payload::Candidate(position) => {
                    let Some(point) = self.frontier.measure(item.id, position) else {
                        continue;
                    };
                    // Yield at once when nothing queued comes first (the common case for
                    // the nearest points); otherwise wait in the queue.
                    if self.frontier.heap.peek().is_none_or(|next| point >= *next) {
                        return Some(Neighbour {
                            id: point.id,
                            position,
                            distance_m: point.key_m,
                        });
                    }
                    self.frontier.heap.push(point);
                }
                Payload::Cell(cell) => self.source.expand(cell, &mut self.frontier),
            }
        }
        None
    }
}

/// A latitude/longitude rectangle that does not cross the antimeridian, in degrees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rect {
    pub(crate) south: f64,
    pub(crate) west: f64,
    pub(crate) north: f64,
    pub(crate) east: f64,
}

impl Rect {
    pub(crate) const WORLD: Rect = Rect {
        south: -90.0,
        west: -180.0,
        north: 90.0,
        east: 180.0,
    };

    /// Distance bounds from `origin` to any point of the rectangle.
    ///
    /// Lower bound: for a point `(t, s)` inside, `hav(d) = hav(φ - t) + cos φ cos t hav(λ - s)`;
    /// each term is at least its value at the smallest latitude gap, the smallest longitude
    /// gap and the smallest `cos t` over the rectangle. The sines and that cosine are replaced
    /// by polynomial lower bounds and `asin y` by `y` (all below the true values), so a bound
    /// costs a dozen multiplications and one square root, no trigonometry.
    ///
    /// Upper bound: the distance to the rectangle's centre plus half its height plus half its
    /// width measured along the widest parallel (a parallel is never shorter than the great
    /// circle joining its points).
    #[inline]
    pub(crate) fn bounds(&self, origin: &Origin) -> Bounds {
        Bounds {
            min_m: self.lower_bound_m(origin),
            max_m: self.upper_bound_m(origin),
        }
    }

    /// The lower bound of [`Rect::bounds`] alone.
    #[inline]
    pub(crate) fn lower_bound_m(&self, origin: &Origin) -> f64 {
        let lat = origin.point.lat;
        let lng = origin.point.lng;
        let dlat = if lat < self.south {
            self.south - lat
        } else if lat > self.north {
            lat - self.north
        } else {
            0.0
        };
        let dlng = if lng >= self.west && lng <= self.east {
            0.0
        } else {
            let to_west = (self.west - lng).rem_euclid(360.0);
            let to_east = (lng - self.east).rem_euclid(360.0);
            to_west.min(to_east).min(180.0)
        };
        if dlat == 0.0 && dlng == 0.0 {
            return 0.0;
        }
        let s_lat = sin_lower(dlat.to_radians() * 0.5);
        let s_lng = sin_lower(dlng.to_radians() * 0.5);
        let cos_min = cos_lower(self.south.abs().max(self.north.abs()).to_radians());
        let h = s_lat * s_lat + origin.cos_lat.max(0.0) * cos_min * s_lng * s_lng;
        2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0)
    }

    /// The upper bound of [`Rect::bounds`] alone.
    #[inline]
    pub(crate) fn upper_bound_m(&self, origin: &Origin) -> f64 {
        let mid_lat = (self.south + self.north) * 0.5;
        let mid_lng = (self.west + self.east) * 0.5;
        let cos_max = if self.south <= 0.0 && self.north >= 0.0 {
            1.0
        } else {
            self.south.abs().min(self.north.abs()).to_radians().cos()
        };
        let half_extent_rad = ((self.north - self.south) * 0.5
            + (self.east - self.west) * 0.5 * cos_max)
            .to_radians();
        let mid = LatLng {
            lat: mid_lat,
            lng: mid_lng,
        };
        origin.distance_m(mid) + half_extent_rad * EARTH_RADIUS_M
    }

    /// The four quarters, in the order south-west, south-east, north-west, north-east.
    pub(crate) fn quarters(&self) -> [Rect; 4] {
        let mid_lat = (self.south + self.north) * 0.5;
        let mid_lng = (self.west + self.east) * 0.5;
        [
            Rect {
                south: self.south,
                west: self.west,
                north: mid_lat,
                east: mid_lng,
            },
            Rect {
                south: self.south,
                west: mid_lng,
                north: mid_lat,
                east: self.east,
            },
            Rect {
                south: mid_lat,
                west: self.west,
                north: self.north,
                east: mid_lng,
            },
            Rect {
                south: mid_lat,
                west: mid_lng,
                north: self.north,
                east: self.east,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rectangle bounds must hold for every point inside it, including rectangles at the
    /// poles and origins across the antimeridian.
    #[test]
    fn rect_bounds_hold_on_sampled_points() {
        let rects = [
            Rect::WORLD,
            Rect {
                south: 80.0,
                west: 170.0,
                north: 90.0,
                east: 180.0,
            },
            Rect {
                south: -10.0,
                west: -180.0,
                north: 10.0,
                east: -170.0,
            },
            Rect {
                south: 45.0,
                west: 2.0,
                north: 45.001,
                east: 2.001,
            },
        ];
        let origins = [
            (0.0, 0.0),
            (89.99, -179.99),
            (-89.99, 0.0),
            (5.0, 179.9),
            (45.0005, 2.0005),
            (45.2, 2.3),
            (-45.0, -178.0),
        ];
        for rect in rects {
            for (lat, lng) in origins {
                let origin = Origin::new(LatLng::new(lat, lng).unwrap());
                let bounds = rect.bounds(&origin);
                for i in 0..=20 {
                    for j in 0..=20 {
                        let t = rect.south + (rect.north - rect.south) * f64::from(i) / 20.0;
                        let s = rect.west + (rect.east - rect.west) * f64::from(j) / 20.0;
                        let d = origin.distance_m(LatLng::new(t, s).unwrap());
                        assert!(
                            d + 1e-6 >= bounds.min_m,
                            "{rect:?} {lat},{lng} {d} < {bounds:?}"
                        );
                        assert!(
                            d <= bounds.max_m + 1e-6,
                            "{rect:?} {lat},{lng} {d} > {bounds:?}"
                        );
                    }
                }
            }
        }
    }
}

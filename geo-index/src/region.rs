//! Regions a search can be restricted to: a latitude/longitude box, or polygons.
//!
//! Polygons follow RFC 7946 (GeoJSON): positions are `[longitude, latitude]` in degrees, edges
//! are straight lines in that plane (not great circles), the first ring is the outer boundary
//! and later rings are holes, either orientation is accepted, and a polygon crossing the
//! antimeridian is given as several polygons split at ±180°. A point on an edge is inside.
//! Longitudes -180 and 180 are one meridian, so a point stored at -180 is inside a polygon
//! whose edge runs along 180.

use crate::search::Rect;
use crate::{BoundingBox, Error, LatLng};

/// The largest number of positions [`Polygon::new`] accepts over all rings, and
/// [`Region::polygons`] over all polygons.
pub const MAX_VERTICES: usize = 10_000;

/// One polygon: an outer ring and optional holes, validated.
///
/// ```
/// use geo_index::{LatLng, Polygon};
/// // A square around the Place de la Concorde, counter-clockwise, closed.
/// let square = Polygon::new(vec![vec![
///     [2.31, 48.86], [2.33, 48.86], [2.33, 48.87], [2.31, 48.87], [2.31, 48.86],
/// ]])?;
/// assert!(square.contains(LatLng::new(48.8656, 2.3212)?));
/// assert!(square.contains(LatLng::new(48.86, 2.32)?)); // on an edge
/// assert!(!square.contains(LatLng::new(48.8584, 2.2945)?));
/// # Ok::<(), geo_index::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Polygon {
    /// Closed rings of `[lng, lat]`; the first is the outer boundary.
    rings: Vec<Vec<[f64; 2]>>,
    /// The planar bounding box of the outer ring: `[west, south, east, north]`.
    extent: [f64; 4],
}

impl Polygon {
    /// Validates rings of `[longitude, latitude]` positions.
    ///
    /// # Errors
    /// [`Error::InvalidPolygon`] when there is no ring, a ring has fewer than 4 positions or is
    /// not closed (last position equal to the first), a position is out of range or not
    /// finite, or there are more than [`MAX_VERTICES`] positions.
    ///
    /// ```
    /// use geo_index::Polygon;
    /// assert!(Polygon::new(vec![vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]]).is_err());
    /// assert!(Polygon::new(vec![vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]]).is_err());
    /// assert!(Polygon::new(vec![vec![[0.0, 0.0], [1.0, 0.0], [0.0, 91.0], [0.0, 0.0]]]).is_err());
    /// ```
    pub fn new(rings: Vec<Vec<[f64; 2]>>) -> Result<Self, Error> {
        if rings.is_empty() {
            return Err(Error::InvalidPolygon("a polygon needs at least one ring"));
        }
        if rings.iter().map(Vec::len).sum::<usize>() > MAX_VERTICES {
            return Err(Error::InvalidPolygon("more than 10000 positions"));
        }
        for ring in &rings {
            if ring.len() < 4 {
                return Err(Error::InvalidPolygon(
                    "a ring needs at least 4 positions (the last repeating the first)",
                ));
            }
            if ring.first() != ring.last() {
                return Err(Error::InvalidPolygon(
                    "a ring must be closed: its last position equal to its first",
                ));
            }
            for &[lng, lat] in ring {
                if !(-180.0..=180.0).contains(&lng) || !(-90.0..=90.0).contains(&lat) {
                    return Err(Error::InvalidPolygon(
                        "a position must be [longitude in -180..180, latitude in -90..90]",
                    ));
                }
            }
        }
        let mut extent = [f64::INFINITY, f64::INFINITY, -f64::INFINITY, -f64::INFINITY];
        for &[lng, lat] in &rings[0] {
            extent[0] = extent[0].min(lng);
            extent[1] = extent[1].min(lat);
            extent[2] = extent[2].max(lng);
            extent[3] = extent[3].max(lat);
        }
        Ok(Self { rings, extent })
    }

    /// The rings, the outer one first, each closed.
    ///
    /// ```
    /// # use geo_index::Polygon;
    /// let p = Polygon::new(vec![vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])?;
    /// assert_eq!(p.rings().len(), 1);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn rings(&self) -> &[Vec<[f64; 2]>] {
        &self.rings
    }

    /// Number of positions over all rings.
    ///
    /// ```
    /// # use geo_index::Polygon;
    /// let p = Polygon::new(vec![vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])?;
    /// assert_eq!(p.vertex_count(), 4);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn vertex_count(&self) -> usize {
        self.rings.iter().map(Vec::len).sum()
    }

    /// Whether `point` is inside the polygon or on one of its edges (holes excluded, their
    /// edges included).
    ///
    /// ```
    /// # use geo_index::{LatLng, Polygon};
    /// let with_hole = Polygon::new(vec![
    ///     vec![[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0], [0.0, 0.0]],
    ///     vec![[4.0, 4.0], [6.0, 4.0], [6.0, 6.0], [4.0, 6.0], [4.0, 4.0]],
    /// ])?;
    /// assert!(with_hole.contains(LatLng::new(2.0, 2.0)?));
    /// assert!(!with_hole.contains(LatLng::new(5.0, 5.0)?));
    /// assert!(with_hole.contains(LatLng::new(4.0, 5.0)?)); // on the hole's edge
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn contains(&self, point: LatLng) -> bool {
        let (x, y) = (point.lng(), point.lat());
        if self.contains_xy(x, y) {
            return true;
        }
        // -180 and 180 are one meridian.
        if x == 180.0 {
            self.contains_xy(-180.0, y)
        } else if x == -180.0 {
            self.contains_xy(180.0, y)
        } else {
            false
        }
    }

    fn contains_xy(&self, x: f64, y: f64) -> bool {
        let [west, south, east, north] = self.extent;
        if x < west || x > east || y < south || y > north {
            return false;
        }
        let mut inside_outer = false;
        for (i, ring) in self.rings.iter().enumerate() {
            match ring_position(ring, x, y) {
                Position::OnEdge => return true,
                Position::Inside if i == 0 => inside_outer = true,
                Position::Inside => return false,
                Position::Outside if i == 0 => return false,
                Position::Outside => {}
            }
        }
        inside_outer
    }

    /// How the closed rectangle relates to the polygon.
    fn relate(&self, rect: &Rect) -> Relation {
        let [west, south, east, north] = self.extent;
        if rect.east < west || rect.west > east || rect.north < south || rect.south > north {
            return Relation::Disjoint;
        }
        // No edge touches the rectangle: it lies wholly inside or wholly outside, and any one
        // of its points tells which.
        let crossed = self.rings.iter().any(|ring| {
            ring.windows(2)
                .any(|edge| segment_touches_rect(edge[0], edge[1], rect))
        });
        if crossed {
            return Relation::Partial;
        }
        if self.contains_xy(
            (rect.west + rect.east) * 0.5,
            (rect.south + rect.north) * 0.5,
        ) {
            Relation::Inside
        } else {
            Relation::Disjoint
        }
    }
}

enum Position {
    Inside,
    OnEdge,
    Outside,
}

/// Crossing-number test with an exact on-edge check.
fn ring_position(ring: &[[f64; 2]], x: f64, y: f64) -> Position {
    let mut inside = false;
    for edge in ring.windows(2) {
        let [ax, ay] = edge[0];
        let [bx, by] = edge[1];
        // On the segment: collinear and within its extent.
        if x >= ax.min(bx) && x <= ax.max(bx) && y >= ay.min(by) && y <= ay.max(by) {
            let cross = (bx - ax) * (y - ay) - (by - ay) * (x - ax);
            if cross == 0.0 {
                return Position::OnEdge;
            }
        }
        if (ay > y) != (by > y) {
            let at_x = ax + (y - ay) * (bx - ax) / (by - ay);
            if x < at_x {
                inside = !inside;
            }
        }
    }
    if inside {
        Position::Inside
    } else {
        Position::Outside
    }
}

/// Whether segment `a`–`b` has a point in the closed rectangle (conservative: a true answer
/// only costs a finer look, a false one must be right).
fn segment_touches_rect(a: [f64; 2], b: [f64; 2], rect: &Rect) -> bool {
    let [ax, ay] = a;
    let [bx, by] = b;
    if ax.max(bx) < rect.west
        || ax.min(bx) > rect.east
        || ay.max(by) < rect.south
        || ay.min(by) > rect.north
    {
        return false;
    }
    // An endpoint inside: touching.
    let inside =
        |x: f64, y: f64| x >= rect.west && x <= rect.east && y >= rect.south && y <= rect.north;
    if inside(ax, ay) || inside(bx, by) {
        return true;
    }
    // Otherwise the segment touches the rectangle only if the rectangle's corners are not all
    // strictly on one side of its line. Rounding may call a near miss a touch, never the
    // reverse by more than an ulp; a margin keeps it conservative.
    let side = |x: f64, y: f64| (bx - ax) * (y - ay) - (by - ay) * (x - ax);
    let scale = (bx - ax).abs().max((by - ay).abs()) * 1e-9;
    let corners = [
        side(rect.west, rect.south),
        side(rect.east, rect.south),
        side(rect.west, rect.north),
        side(rect.east, rect.north),
    ];
    !(corners.iter().all(|&s| s > scale) || corners.iter().all(|&s| s < -scale))
}

/// How a rectangle of the index relates to a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Relation {
    /// No point of the rectangle is in the region.
    Disjoint,
    /// Every point of the rectangle is in the region.
    Inside,
    /// Unknown: test its points one by one.
    Partial,
}

#[derive(Clone, Debug, PartialEq)]
enum Shape {
    Box(BoundingBox),
    Polygons(Vec<Polygon>),
}

/// Where a search may find answers: a box or a set of polygons, with the bounding box and
/// centre results are sorted around.
///
/// ```
/// use geo_index::{BoundingBox, LatLng, Region};
/// let fiji = Region::bbox(BoundingBox::new(-21.0, 177.0, -12.0, -178.0)?);
/// assert!(fiji.contains(LatLng::new(-17.0, 179.9)?));
/// assert_eq!(fiji.centre().lng(), 179.5);
/// # Ok::<(), geo_index::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    shape: Shape,
    bbox: BoundingBox,
}

impl Region {
    /// Everything in `bbox`, edges included.
    ///
    /// ```
    /// # use geo_index::{BoundingBox, Region};
    /// assert_eq!(Region::bbox(BoundingBox::WORLD).bounding_box(), BoundingBox::WORLD);
    /// ```
    pub fn bbox(bbox: BoundingBox) -> Self {
        Self {
            shape: Shape::Box(bbox),
            bbox,
        }
    }

    /// Everything inside any of `polygons` (a GeoJSON Polygon is one, a MultiPolygon several).
    ///
    /// # Errors
    /// [`Error::InvalidPolygon`] when there is no polygon or more than [`MAX_VERTICES`]
    /// positions in all.
    ///
    /// ```
    /// # use geo_index::{LatLng, Polygon, Region};
    /// // Taveuni (Fiji), split at the antimeridian into two polygons.
    /// let east = Polygon::new(vec![vec![[179.8, -17.0], [180.0, -17.0], [180.0, -16.6], [179.8, -16.6], [179.8, -17.0]]])?;
    /// let west = Polygon::new(vec![vec![[-180.0, -17.0], [-179.8, -17.0], [-179.8, -16.6], [-180.0, -16.6], [-180.0, -17.0]]])?;
    /// let taveuni = Region::polygons(vec![east, west])?;
    /// assert!(taveuni.contains(LatLng::new(-16.8, -179.9)?));
    /// assert!(taveuni.bounding_box().crosses_antimeridian());
    /// assert!((taveuni.centre().lng().abs() - 180.0).abs() < 1e-9);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn polygons(polygons: Vec<Polygon>) -> Result<Self, Error> {
        if polygons.is_empty() {
            return Err(Error::InvalidPolygon("at least one polygon is needed"));
        }
        if polygons.iter().map(Polygon::vertex_count).sum::<usize>() > MAX_VERTICES {
            return Err(Error::InvalidPolygon("more than 10000 positions"));
        }
        let bbox = polygons_bbox(&polygons)?;
        Ok(Self {
            shape: Shape::Polygons(polygons),
            bbox,
        })
    }

    /// Whether `point` is in the region (edges included).
    ///
    /// ```
    /// # use geo_index::{BoundingBox, LatLng, Region};
    /// let r = Region::bbox(BoundingBox::new(0.0, 0.0, 1.0, 1.0)?);
    /// assert!(r.contains(LatLng::new(1.0, 1.0)?));
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn contains(&self, point: LatLng) -> bool {
        if !self.bbox.contains(point) {
            return false;
        }
        match &self.shape {
            Shape::Box(_) => true,
            Shape::Polygons(polygons) => polygons.iter().any(|p| p.contains(point)),
        }
    }

    /// The smallest box holding the region (for polygons, the one whose longitude span is the
    /// shortest, so polygons split at the antimeridian get a box crossing it).
    ///
    /// ```
    /// # use geo_index::{BoundingBox, Region};
    /// let b = BoundingBox::new(1.0, 2.0, 3.0, 4.0)?;
    /// assert_eq!(Region::bbox(b).bounding_box(), b);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn bounding_box(&self) -> BoundingBox {
        self.bbox
    }

    /// The centre of [`Region::bounding_box`]: midway between its south and north edges and
    /// midway along its longitude span (across the antimeridian when the box crosses it).
    ///
    /// ```
    /// # use geo_index::{BoundingBox, Region};
    /// let r = Region::bbox(BoundingBox::new(-10.0, 170.0, 20.0, -160.0)?);
    /// assert_eq!((r.centre().lat(), r.centre().lng()), (5.0, -175.0));
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn centre(&self) -> LatLng {
        let b = self.bbox;
        let lat = (b.south() + b.north()) * 0.5;
        let width = if b.crosses_antimeridian() {
            b.east() + 360.0 - b.west()
        } else {
            b.east() - b.west()
        };
        let mut lng = b.west() + width * 0.5;
        if lng > 180.0 {
            lng -= 360.0;
        }
        LatLng { lat, lng }
    }

    /// How the closed rectangle `rect` relates to the region. Conservative: `Inside` and
    /// `Disjoint` are certain, `Partial` may be either.
    pub(crate) fn relate(&self, rect: &Rect) -> Relation {
        let relation = relate_box(&self.bbox, rect);
        match (&self.shape, relation) {
            (_, Relation::Disjoint) | (Shape::Box(_), _) => relation,
            (Shape::Polygons(polygons), _) => {
                let mut any_partial = false;
                for polygon in polygons {
                    match polygon.relate(rect) {
                        Relation::Inside => return Relation::Inside,
                        Relation::Partial => any_partial = true,
                        Relation::Disjoint => {}
                    }
                }
                // A rectangle on one side of the antimeridian may hold points stored with the
                // other side's longitude (-180 for 180): only a point test decides.
                let on_seam = rect.west == -180.0 || rect.east == 180.0;
                if any_partial || on_seam && self.bbox.crosses_or_touches_seam() {
                    Relation::Partial
                } else {
                    Relation::Disjoint
                }
            }
        }
    }
}

/// How the closed rectangle relates to a box, -180 and 180 being one meridian: an interval
/// reaching one also takes the cells that only touch the other.
pub(crate) fn relate_box(bbox: &BoundingBox, rect: &Rect) -> Relation {
    if rect.north < bbox.south() || rect.south > bbox.north() {
        return Relation::Disjoint;
    }
    let mut intervals = [(0.0, 0.0); 4];
    let mut len = 0;
    for (west, east) in bbox.lng_intervals().into_iter().flatten() {
        intervals[len] = (west, east);
        len += 1;
        if east == 180.0 {
            intervals[len] = (-180.0, -180.0);
            len += 1;
        } else if west == -180.0 {
            intervals[len] = (180.0, 180.0);
            len += 1;
        }
    }
    let intervals = &intervals[..len];
    if !intervals
        .iter()
        .any(|&(west, east)| rect.west <= east && rect.east >= west)
    {
        return Relation::Disjoint;
    }
    if rect.south >= bbox.south()
        && rect.north <= bbox.north()
        && intervals
            .iter()
            .any(|&(west, east)| rect.west >= west && rect.east <= east)
    {
        Relation::Inside
    } else {
        Relation::Partial
    }
}

/// The bounding box of polygons: latitudes from their extremes; longitudes the shortest
/// circular interval covering every polygon's own span (RFC 7946: no polygon crosses ±180°),
/// so a set split at the antimeridian gets a box crossing it, not one spanning the globe.
fn polygons_bbox(polygons: &[Polygon]) -> Result<BoundingBox, Error> {
    let mut south = f64::INFINITY;
    let mut north = -f64::INFINITY;
    let mut spans: Vec<(f64, f64)> = Vec::with_capacity(polygons.len());
    for polygon in polygons {
        let [west, s, east, n] = polygon.extent;
        south = south.min(s);
        north = north.max(n);
        spans.push((west, east));
    }
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(spans.len());
    for (west, east) in spans {
        match merged.last_mut() {
            Some(last) if west <= last.1 => last.1 = last.1.max(east),
            _ => merged.push((west, east)),
        }
    }
    let (Some(&first), Some(&last)) = (merged.first(), merged.last()) else {
        return Err(Error::InvalidPolygon("at least one polygon is needed"));
    };
    // The widest uncovered gap, as (width, from, to): between merged spans, and around the back
    // of the globe unless the spans meet there (180 is -180).
    let mut widest: Option<(f64, f64, f64)> = None;
    for pair in merged.windows(2) {
        let gap = (pair[1].0 - pair[0].1, pair[0].1, pair[1].0);
        if widest.is_none_or(|w| gap.0 > w.0) {
            widest = Some(gap);
        }
    }
    if !(last.1 == 180.0 && first.0 == -180.0) {
        let gap = (first.0 + 360.0 - last.1, last.1, first.0);
        if widest.is_none_or(|w| gap.0 > w.0) {
            widest = Some(gap);
        }
    }
    match widest {
        // The box runs from the gap's end eastwards round to its start.
        Some((_, from, to)) => BoundingBox::new(south, to, north, from),
        None => BoundingBox::new(south, -180.0, north, 180.0),
    }
}

impl BoundingBox {
    /// True when the box crosses the antimeridian or has an edge on it.
    pub(crate) fn crosses_or_touches_seam(&self) -> bool {
        self.crosses_antimeridian() || self.west() == -180.0 || self.east() == 180.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ll(lat: f64, lng: f64) -> LatLng {
        LatLng::new(lat, lng).unwrap()
    }

    fn square(w: f64, s: f64, e: f64, n: f64) -> Polygon {
        Polygon::new(vec![vec![[w, s], [e, s], [e, n], [w, n], [w, s]]]).unwrap()
    }

    #[test]
    fn either_orientation_and_edges() {
        let ccw = square(0.0, 0.0, 2.0, 2.0);
        let cw = Polygon::new(vec![vec![
            [0.0, 0.0],
            [0.0, 2.0],
            [2.0, 2.0],
            [2.0, 0.0],
            [0.0, 0.0],
        ]])
        .unwrap();
        for p in [&ccw, &cw] {
            assert!(p.contains(ll(1.0, 1.0)));
            assert!(p.contains(ll(0.0, 0.0)));
            assert!(p.contains(ll(2.0, 1.0)));
            assert!(p.contains(ll(1.0, 2.0)));
            assert!(!p.contains(ll(2.0000001, 1.0)));
            assert!(!p.contains(ll(-1.0, -1.0)));
        }
    }

    #[test]
    fn a_triangle_and_its_diagonal() {
        let t = Polygon::new(vec![vec![[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [0.0, 0.0]]]).unwrap();
        assert!(t.contains(ll(2.0, 2.0))); // on the hypotenuse
        assert!(t.contains(ll(1.0, 1.0)));
        assert!(!t.contains(ll(2.5, 2.5)));
    }

    #[test]
    fn polygons_bbox_split_at_the_antimeridian() {
        let east = square(170.0, -10.0, 180.0, 10.0);
        let west = square(-180.0, -10.0, -170.0, 10.0);
        let r = Region::polygons(vec![east, west]).unwrap();
        let b = r.bounding_box();
        assert_eq!((b.west(), b.east()), (170.0, -170.0));
        assert!((r.centre().lng().abs() - 180.0).abs() < 1e-9);
        assert!(r.contains(ll(0.0, 180.0)));
        assert!(r.contains(ll(0.0, -180.0)));
        assert!(r.contains(ll(5.0, -175.0)));
        assert!(!r.contains(ll(5.0, 0.0)));
    }

    #[test]
    fn polygons_bbox_plain_and_world() {
        let r = Region::polygons(vec![square(2.0, 48.0, 3.0, 49.0)]).unwrap();
        let b = r.bounding_box();
        assert_eq!(
            (b.west(), b.south(), b.east(), b.north()),
            (2.0, 48.0, 3.0, 49.0)
        );
        let world = Region::polygons(vec![square(-180.0, -90.0, 180.0, 90.0)]).unwrap();
        let b = world.bounding_box();
        assert_eq!((b.west(), b.east()), (-180.0, 180.0));
        assert!(world.contains(ll(90.0, 0.0)));
        assert!(world.contains(ll(-90.0, 180.0)));
        // Two far apart polygons on one side: the gap through the antimeridian is the widest.
        let r = Region::polygons(vec![
            square(-10.0, 0.0, -5.0, 1.0),
            square(5.0, 0.0, 10.0, 1.0),
        ])
        .unwrap();
        let b = r.bounding_box();
        assert_eq!((b.west(), b.east()), (-10.0, 10.0));
    }

    #[test]
    fn polar_cap_polygon() {
        let cap = square(-180.0, 80.0, 180.0, 90.0);
        assert!(cap.contains(ll(90.0, 123.0)));
        assert!(cap.contains(ll(85.0, -180.0)));
        assert!(!cap.contains(ll(79.0, 0.0)));
    }

    #[test]
    fn relation_is_conservative() {
        let p = Polygon::new(vec![
            vec![
                [0.0, 0.0],
                [10.0, 0.0],
                [10.0, 10.0],
                [0.0, 10.0],
                [0.0, 0.0],
            ],
            vec![[4.0, 4.0], [6.0, 4.0], [6.0, 6.0], [4.0, 6.0], [4.0, 4.0]],
        ])
        .unwrap();
        let r = Region::polygons(vec![p]).unwrap();
        let rect = |w, s, e, n| Rect {
            south: s,
            west: w,
            north: n,
            east: e,
        };
        assert_eq!(r.relate(&rect(1.0, 1.0, 2.0, 2.0)), Relation::Inside);
        assert_eq!(r.relate(&rect(4.5, 4.5, 5.5, 5.5)), Relation::Disjoint);
        assert_eq!(r.relate(&rect(20.0, 20.0, 30.0, 30.0)), Relation::Disjoint);
        assert_eq!(r.relate(&rect(9.0, 9.0, 11.0, 11.0)), Relation::Partial);
        assert_eq!(r.relate(&rect(3.0, 3.0, 5.0, 5.0)), Relation::Partial);
        // Sampled: an Inside rectangle has only inside points, a Disjoint one none.
        for i in 0..40 {
            for j in 0..40 {
                let (w, s) = (f64::from(i) * 0.3 - 1.0, f64::from(j) * 0.3 - 1.0);
                let cell = rect(w, s, w + 0.3, s + 0.3);
                let relation = r.relate(&cell);
                for a in 0..=4 {
                    for b in 0..=4 {
                        let p = ll(s + 0.075 * f64::from(b), w + 0.075 * f64::from(a));
                        match relation {
                            Relation::Inside => assert!(r.contains(p), "{cell:?} {p:?}"),
                            Relation::Disjoint => assert!(!r.contains(p), "{cell:?} {p:?}"),
                            Relation::Partial => {}
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn invalid_polygons() {
        assert!(Polygon::new(vec![]).is_err());
        assert!(Polygon::new(vec![vec![[0.0, 0.0]; 3]]).is_err());
        assert!(Polygon::new(vec![vec![[f64::NAN, 0.0]; 4]]).is_err());
        assert!(Polygon::new(vec![vec![[0.0, 0.0]; MAX_VERTICES + 1]]).is_err());
        assert!(Region::polygons(vec![]).is_err());
    }
}

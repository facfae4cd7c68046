//! Web Mercator map tiles (EPSG:3857, the XYZ scheme of OpenStreetMap and Leaflet) and the
//! clusters a map draws when zoomed out.
//!
//! A tile is `(z, x, y)`: `2^z` columns from -180° eastwards and `2^z` rows from
//! 85.0511° southwards. Latitudes beyond ±85.0511° fall in the first or last row.
//!
//! Which tile holds a point is decided by comparing it with the tile edges, never by rounding
//! a projected coordinate alone, so the rule is monotone: a point on an edge belongs to the
//! tile east or south of it (as the usual `floor` of the slippy-map formula has it). Column
//! edges are exact binary fractions of 360°, the values the quadtree splits at, and the
//! quadtree too puts a point on a midline east. So a quadtree cell known to lie in one tile
//! holds only points that the point-by-point rule also puts there, and clusters counted from
//! whole subtrees equal clusters counted point by point.

use crate::{EntryId, Error, LatLng};

/// The deepest tile zoom supported (tiles about 2.4 m wide at the equator).
pub const MAX_TILE_ZOOM: u8 = 24;

/// The latitude of the top edge of row 0, `atan(sinh(π))` in degrees.
pub const MERCATOR_MAX_LATITUDE: f64 = 85.051_128_779_806_59;

/// One map tile.
///
/// ```
/// use geo_index::{LatLng, Tile};
/// // Paris at zoom 10.
/// let tile = Tile::containing(LatLng::new(48.8566, 2.3522)?, 10)?;
/// assert_eq!((tile.z, tile.x, tile.y), (10, 518, 352));
/// // Beyond the projection's edge: the first row.
/// assert_eq!(Tile::containing(LatLng::new(89.0, 0.0)?, 3)?.y, 0);
/// # Ok::<(), geo_index::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tile {
    /// Zoom level.
    pub z: u8,
    /// Column, 0 at -180°.
    pub x: u32,
    /// Row, 0 at the top (north).
    pub y: u32,
}

impl Tile {
    /// The tile at `zoom` holding `point`.
    ///
    /// # Errors
    /// [`Error::InvalidZoom`] beyond [`MAX_TILE_ZOOM`].
    ///
    /// ```
    /// # use geo_index::{LatLng, Tile};
    /// assert_eq!(Tile::containing(LatLng::new(0.0, 0.0)?, 1)?, Tile { z: 1, x: 1, y: 1 });
    /// assert!(Tile::containing(LatLng::new(0.0, 0.0)?, 25).is_err());
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn containing(point: LatLng, zoom: u8) -> Result<Tile, Error> {
        let grid = TileGrid::new(zoom)?;
        Ok(grid.tile(point))
    }
}

/// The tiles of one zoom level.
#[derive(Clone, Copy, Debug)]
pub struct TileGrid {
    zoom: u8,
    /// Tiles per row and per column, `2^zoom`.
    n: u32,
    /// Column width in degrees.
    step: f64,
}

impl TileGrid {
    /// The grid at `zoom`.
    ///
    /// # Errors
    /// [`Error::InvalidZoom`] beyond [`MAX_TILE_ZOOM`].
    ///
    /// ```
    /// # use geo_index::TileGrid;
    /// assert_eq!(TileGrid::new(4)?.tiles_per_side(), 16);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn new(zoom: u8) -> Result<Self, Error> {
        if zoom > MAX_TILE_ZOOM {
            return Err(Error::InvalidZoom(zoom));
        }
        let n = 1u32 << zoom;
        Ok(Self {
            zoom,
            n,
            step: 360.0 / f64::from(n),
        })
    }

    /// `2^zoom`.
    ///
    /// ```
    /// # use geo_index::TileGrid;
    /// assert_eq!(TileGrid::new(0)?.tiles_per_side(), 1);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn tiles_per_side(&self) -> u32 {
        self.n
    }

    /// The tile holding `point`.
    ///
    /// ```
    /// # use geo_index::{LatLng, TileGrid};
    /// let tile = TileGrid::new(2)?.tile(LatLng::new(-90.0, 180.0)?);
    /// assert_eq!((tile.x, tile.y), (3, 3));
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn tile(&self, point: LatLng) -> Tile {
        Tile {
            z: self.zoom,
            x: self.column(point.lng()),
            y: self.row(point.lat()),
        }
    }

    /// How many tiles a box spans (columns times rows), crossing the antimeridian if it does.
    ///
    /// ```
    /// # use geo_index::{BoundingBox, TileGrid};
    /// assert_eq!(TileGrid::new(2)?.tiles_in(&BoundingBox::WORLD), 16);
    /// assert_eq!(TileGrid::new(2)?.tiles_in(&BoundingBox::new(1.0, 170.0, 2.0, -170.0)?), 2);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn tiles_in(&self, bbox: &crate::BoundingBox) -> u64 {
        let west = self.column(bbox.west());
        let east = self.column(bbox.east());
        let columns = if bbox.crosses_antimeridian() {
            u64::from(self.n - west) + u64::from(east) + 1
        } else {
            u64::from(east - west) + 1
        };
        let rows = u64::from(self.row(bbox.south()) - self.row(bbox.north())) + 1;
        columns * rows
    }

    /// The western edge of column `k`; exact, and equal to the quadtree's cell edges.
    #[inline]
    fn column_edge(&self, k: u32) -> f64 {
        -180.0 + f64::from(k) * self.step
    }

    /// The northern edge of row `k` (`k = n` is the southern edge of the last row).
    #[inline]
    fn row_edge(&self, k: u32) -> f64 {
        let t = 1.0 - 2.0 * f64::from(k) / f64::from(self.n);
        (std::f64::consts::PI * t).sinh().atan().to_degrees()
    }

    /// The column: the last whose western edge is at or west of `lng` (180 in the last).
    #[inline]
    pub(crate) fn column(&self, lng: f64) -> u32 {
        let last = self.n - 1;
        // A guess from the projection, corrected against the exact edges.
        let mut k = (((lng + 180.0) / self.step).floor().max(0.0) as u32).min(last);
        while k > 0 && self.column_edge(k) > lng {
            k -= 1;
        }
        while k < last && self.column_edge(k + 1) <= lng {
            k += 1;
        }
        k
    }

    /// The row whose northern edge is at or above `lat` and southern edge below it (a point on
    /// an edge goes south); latitudes beyond the projection fall in the first or last row.
    #[inline]
    pub(crate) fn row(&self, lat: f64) -> u32 {
        let last = self.n - 1;
        let clamped = lat.clamp(-MERCATOR_MAX_LATITUDE, MERCATOR_MAX_LATITUDE);
        let phi = clamped.to_radians();
        let projected = (1.0 - (phi.tan() + 1.0 / phi.cos()).ln() / std::f64::consts::PI) * 0.5;
        let mut k = ((projected * f64::from(self.n)).floor().max(0.0) as u32).min(last);
        // Row k spans (row_edge(k + 1), row_edge(k)]: move north while lat is above the
        // northern edge, south while it is at or below the southern one.
        while k > 0 && lat > self.row_edge(k) {
            k -= 1;
        }
        while k < last && lat <= self.row_edge(k + 1) {
            k += 1;
        }
        k
    }

    /// The one tile holding every point of a quadtree cell at `depth` whose rectangle spans
    /// `south..north` × `west..` (its points lie west of its eastern edge unless that is
    /// 180°), or `None` when the cell may straddle tiles.
    #[inline]
    pub(crate) fn cell_tile(&self, depth: u32, south: f64, west: f64, north: f64) -> Option<Tile> {
        // Columns are the quadtree's own cells at depth `zoom`: a deeper cell is inside one.
        if depth < u32::from(self.zoom) {
            return None;
        }
        let y = self.row(south);
        (self.row(north) == y).then(|| Tile {
            z: self.zoom,
            x: self.column(west),
            y,
        })
    }
}

/// Fixed-point scale of the unit vectors summed per cluster: 2³⁰ keeps the sum of 2³² of them
/// inside an `i64`, and makes adding and removing points exact (no drift under updates).
const UNIT_SCALE: f64 = (1u64 << 30) as f64;

/// A point's unit vector on the sphere in fixed point, what clusters and quadtree nodes sum.
#[inline]
pub(crate) fn unit_vector(p: LatLng) -> [i64; 3] {
    let (lat, lng) = (p.lat().to_radians(), p.lng().to_radians());
    let (sin_lat, cos_lat) = lat.sin_cos();
    let (sin_lng, cos_lng) = lng.sin_cos();
    [
        (cos_lat * cos_lng * UNIT_SCALE).round() as i64,
        (cos_lat * sin_lng * UNIT_SCALE).round() as i64,
        (sin_lat * UNIT_SCALE).round() as i64,
    ]
}

/// The places of one tile, counted, with their mean position.
///
/// ```
/// use geo_index::{BoundingBox, BruteForce, LatLng, Region, SpatialIndex};
/// let index = BruteForce::build(vec![
///     (1, LatLng::new(10.0, 179.0)?),
///     (2, LatLng::new(10.0, -179.0)?),
///     (3, LatLng::new(-40.0, 20.0)?),
/// ]);
/// let clusters = index.clusters(&Region::bbox(BoundingBox::WORLD), 0, None, None)?;
/// assert_eq!(clusters.len(), 1);
/// assert_eq!(clusters[0].count, 3);
/// let single = index.clusters(&Region::bbox(BoundingBox::new(-50.0, 0.0, 0.0, 50.0)?), 3, None, None)?;
/// assert_eq!(single[0].single, Some(3));
/// # Ok::<(), geo_index::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    /// The tile.
    pub tile: Tile,
    /// How many places it holds.
    pub count: u64,
    /// The place, when `count == 1`.
    pub single: Option<EntryId>,
    /// Where the place is when `count == 1`, otherwise unused.
    position: Option<LatLng>,
    /// Sum of the places' unit vectors, fixed point.
    sum: [i64; 3],
}

impl Cluster {
    pub(crate) fn new(tile: Tile) -> Self {
        Self {
            tile,
            count: 0,
            single: None,
            position: None,
            sum: [0; 3],
        }
    }

    /// Adds one place.
    #[inline]
    pub(crate) fn add_point(&mut self, id: EntryId, position: LatLng) {
        let v = unit_vector(position);
        self.add_sum(1, v);
        self.single = Some(id);
        self.position = Some(position);
    }

    /// Adds `count` places whose unit vectors sum to `sum`.
    #[inline]
    pub(crate) fn add_sum(&mut self, count: u64, sum: [i64; 3]) {
        self.count += count;
        for (total, v) in self.sum.iter_mut().zip(sum) {
            *total += v;
        }
    }

    /// The mean position of its places on the sphere (the direction of their unit vectors'
    /// sum), so a cluster straddling ±180° lies at ±180°, not at 0°; the place itself when
    /// there is one.
    ///
    /// ```
    /// # use geo_index::{BoundingBox, BruteForce, LatLng, Region, SpatialIndex};
    /// let index = BruteForce::build(vec![(1, LatLng::new(0.0, 179.0)?), (2, LatLng::new(0.0, -179.0)?)]);
    /// let c = &index.clusters(&Region::bbox(BoundingBox::WORLD), 0, None, None)?[0];
    /// assert!((c.centroid().lng().abs() - 180.0).abs() < 1e-6);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn centroid(&self) -> LatLng {
        if self.count == 1
            && let Some(position) = self.position
        {
            return position;
        }
        let [x, y, z] = self.sum.map(|v| v as f64);
        let horizontal = x.hypot(y);
        if horizontal == 0.0 && z == 0.0 {
            // Places cancelling out exactly (antipodes): no direction is better than another.
            return LatLng { lat: 0.0, lng: 0.0 };
        }
        LatLng {
            lat: z.atan2(horizontal).to_degrees().clamp(-90.0, 90.0),
            lng: y.atan2(x).to_degrees().clamp(-180.0, 180.0),
        }
    }

    /// Whether only places were added one by one (with `single` set) — for the invariant
    /// that a one-place cluster names its place.
    pub(crate) fn is_consistent(&self) -> bool {
        self.count != 1 || self.single.is_some()
    }
}

/// Clusters by tile, sorted by `(x, y)`.
pub(crate) struct ClusterSet {
    grid: TileGrid,
    clusters: std::collections::HashMap<(u32, u32), Cluster>,
}

impl ClusterSet {
    pub(crate) fn new(grid: TileGrid) -> Self {
        Self {
            grid,
            clusters: std::collections::HashMap::new(),
        }
    }

    pub(crate) fn grid(&self) -> &TileGrid {
        &self.grid
    }

    #[inline]
    pub(crate) fn add_point(&mut self, id: EntryId, position: LatLng) {
        let tile = self.grid.tile(position);
        self.clusters
            .entry((tile.x, tile.y))
            .or_insert_with(|| Cluster::new(tile))
            .add_point(id, position);
    }

    #[inline]
    pub(crate) fn add_sum(&mut self, tile: Tile, count: u64, sum: [i64; 3]) {
        self.clusters
            .entry((tile.x, tile.y))
            .or_insert_with(|| Cluster::new(tile))
            .add_sum(count, sum);
    }

    pub(crate) fn finish(self) -> Vec<Cluster> {
        let mut clusters: Vec<Cluster> = self.clusters.into_values().collect();
        clusters.sort_by_key(|c| (c.tile.x, c.tile.y));
        debug_assert!(clusters.iter().all(Cluster::is_consistent));
        for cluster in &mut clusters {
            if cluster.count != 1 {
                cluster.single = None;
                cluster.position = None;
            }
        }
        clusters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ll(lat: f64, lng: f64) -> LatLng {
        LatLng::new(lat, lng).unwrap()
    }

    /// The tile numbers agree with the usual slippy-map formula away from edges.
    #[test]
    fn matches_the_slippy_map_formula() {
        for zoom in [0u8, 1, 5, 12, 18, 22] {
            let grid = TileGrid::new(zoom).unwrap();
            let n = f64::from(grid.n);
            for i in 0..200 {
                let lat = -84.0 + 168.0 * f64::from(i) / 199.0 + 0.000_123;
                let lng = -179.0 + 358.0 * f64::from(i * 7 % 200) / 199.0 + 0.000_321;
                let phi = lat.to_radians();
                let x = ((lng + 180.0) / 360.0 * n).floor() as u32;
                let y = ((1.0 - (phi.tan() + 1.0 / phi.cos()).ln() / std::f64::consts::PI) / 2.0
                    * n)
                    .floor() as u32;
                let tile = grid.tile(ll(lat, lng));
                assert_eq!((tile.x, tile.y), (x, y), "zoom {zoom} {lat},{lng}");
            }
        }
    }

    #[test]
    fn edges_and_poles() {
        let grid = TileGrid::new(1).unwrap();
        assert_eq!(grid.tile(ll(0.0, 0.0)), Tile { z: 1, x: 1, y: 1 });
        assert_eq!(grid.tile(ll(0.0, -0.000_001)), Tile { z: 1, x: 0, y: 1 });
        assert_eq!(grid.tile(ll(0.000_001, 0.0)), Tile { z: 1, x: 1, y: 0 });
        assert_eq!(grid.tile(ll(90.0, -180.0)), Tile { z: 1, x: 0, y: 0 });
        assert_eq!(grid.tile(ll(-90.0, 180.0)), Tile { z: 1, x: 1, y: 1 });
        let deep = TileGrid::new(MAX_TILE_ZOOM).unwrap();
        assert_eq!(deep.tile(ll(85.06, 0.0)).y, 0);
        assert_eq!(deep.tile(ll(-85.06, 0.0)).y, deep.n - 1);
        assert_eq!(deep.tile(ll(0.0, 180.0)).x, deep.n - 1);
    }

    #[test]
    fn rows_are_monotone() {
        let grid = TileGrid::new(22).unwrap();
        let mut previous = 0;
        for i in 0..=100_000 {
            let lat = 86.0 - 172.0 * f64::from(i) / 100_000.0;
            let row = grid.row(lat);
            assert!(row >= previous, "{lat}");
            previous = row;
        }
    }

    #[test]
    fn zoom_is_checked() {
        assert_eq!(TileGrid::new(25).err(), Some(Error::InvalidZoom(25)));
    }
}

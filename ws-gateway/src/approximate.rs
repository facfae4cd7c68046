//! Approximate locations: what a friend who may see a user only approximately is shown.
//!
//! The user's position is replaced by the centre of the H3 resolution-7 cell (about 5 km²,
//! edge about 1.4 km) that holds it, with the cell's circumradius as the accuracy. The same
//! cell always gives the same coordinates, so averaging many updates does not converge on the
//! true position. A viewer's shown cell changes only once the user is at least
//! [`SWITCH_DEPTH_M`] inside the new cell, so walking along an edge sends nothing and the
//! moment of a switch does not pin the user to the edge.

use geo_index::LatLng;
use h3o::{CellIndex, Resolution};

/// The resolution of approximate locations.
pub const RESOLUTION: Resolution = Resolution::Seven;

/// How far inside a new cell a user must be before a viewer's shown cell changes, metres.
pub const SWITCH_DEPTH_M: f64 = 300.0;

/// The cell that holds `position`.
///
/// ```
/// use geo_index::LatLng;
/// let paris = LatLng::new(48.8566, 2.3522)?;
/// let cell = nearby_ws_gateway::approximate::cell_of(paris);
/// assert_eq!(cell.resolution(), h3o::Resolution::Seven);
/// # Ok::<(), geo_index::Error>(())
/// ```
pub fn cell_of(position: LatLng) -> CellIndex {
    to_h3(position).to_cell(RESOLUTION)
}

/// The centre of `cell`: where an approximate viewer sees the user.
///
/// ```
/// use geo_index::LatLng;
/// use nearby_ws_gateway::approximate::{cell_of, centre};
/// let here = LatLng::new(48.8566, 2.3522)?;
/// let there = LatLng::new(48.8567, 2.3523)?; // 14 m away, same cell
/// assert_eq!(centre(cell_of(here)), centre(cell_of(there)));
/// assert!(centre(cell_of(here)).distance_m(here) < 2_000.0);
/// # Ok::<(), geo_index::Error>(())
/// ```
pub fn centre(cell: CellIndex) -> LatLng {
    from_h3(h3o::LatLng::from(cell))
}

/// The largest distance from the centre of `cell` to its boundary, metres: the accuracy an
/// approximate location carries.
///
/// ```
/// use geo_index::LatLng;
/// use nearby_ws_gateway::approximate::{cell_of, circumradius_m};
/// let r = circumradius_m(cell_of(LatLng::new(48.8566, 2.3522)?));
/// assert!((1_000.0..2_000.0).contains(&r), "{r}");
/// # Ok::<(), geo_index::Error>(())
/// ```
pub fn circumradius_m(cell: CellIndex) -> f64 {
    let centre = centre(cell);
    cell.boundary()
        .iter()
        .map(|vertex| centre.distance_m(from_h3(*vertex)))
        .fold(0.0, f64::max)
}

/// How far `position` is inside `cell` (its distance to the nearest edge), metres; 0 when it
/// is outside. Edges are measured in a local flat projection: exact to well under a metre at
/// this cell size, away from the poles.
pub fn depth_m(cell: CellIndex, position: LatLng) -> f64 {
    if cell_of(position) != cell {
        return 0.0;
    }
    let metres_per_degree = geo_index::EARTH_RADIUS_M.to_radians();
    let cos_lat = position.lat().to_radians().cos().max(1e-6);
    let project = |vertex: h3o::LatLng| {
        let mut dlng = vertex.lng() - position.lng();
        if dlng > 180.0 {
            dlng -= 360.0;
        } else if dlng < -180.0 {
            dlng += 360.0;
        }
        (
            dlng * cos_lat * metres_per_degree,
            (vertex.lat() - position.lat()) * metres_per_degree,
        )
    };
    let vertices: Vec<(f64, f64)> = cell.boundary().iter().map(|v| project(*v)).collect();
    let edges = vertices.iter().zip(vertices.iter().cycle().skip(1));
    edges
        .map(|(&a, &b)| distance_to_segment(a, b))
        .fold(f64::INFINITY, f64::min)
}

/// Distance from the origin to the segment `a`–`b` in the plane.
fn distance_to_segment(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length2 = dx * dx + dy * dy;
    let t = if length2 > 0.0 {
        (-(a.0 * dx + a.1 * dy) / length2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (x, y) = (a.0 + t * dx, a.1 + t * dy);
    (x * x + y * y).sqrt()
}

/// The cell a viewer is shown next, given the one shown so far (if any) and the user's new
/// position: the position's own cell the first time, or once the user is at least
/// [`SWITCH_DEPTH_M`] inside it; otherwise the one shown so far.
///
/// ```
/// use geo_index::LatLng;
/// use nearby_ws_gateway::approximate::{cell_of, next_cell};
/// let here = LatLng::new(48.8566, 2.3522)?;
/// assert_eq!(next_cell(None, here), cell_of(here));
/// assert_eq!(next_cell(Some(cell_of(here)), here), cell_of(here));
/// # Ok::<(), geo_index::Error>(())
/// ```
pub fn next_cell(shown: Option<CellIndex>, position: LatLng) -> CellIndex {
    let cell = cell_of(position);
    match shown {
        Some(shown) if shown != cell && depth_m(cell, position) < SWITCH_DEPTH_M => shown,
        _ => cell,
    }
}

fn to_h3(position: LatLng) -> h3o::LatLng {
    // A `LatLng` is finite and in range, all h3o checks; the default is never used.
    h3o::LatLng::new(position.lat(), position.lng()).unwrap_or_default()
}

fn from_h3(ll: h3o::LatLng) -> LatLng {
    // h3o's coordinates are finite; clamping only absorbs rounding at the range's ends, so
    // the fallback is never taken.
    LatLng::new(ll.lat().clamp(-90.0, 90.0), ll.lng().clamp(-180.0, 180.0))
        .or_else(|_| LatLng::new(0.0, 0.0))
        .expect("0, 0 is a valid position")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lat: f64, lng: f64) -> LatLng {
        LatLng::new(lat, lng).unwrap()
    }

    /// Walks from `from` towards `to` in `steps`, returning the positions.
    fn walk(from: LatLng, to: LatLng, steps: u32) -> Vec<LatLng> {
        (0..=steps)
            .map(|i| {
                let t = f64::from(i) / f64::from(steps);
                at(
                    from.lat() + (to.lat() - from.lat()) * t,
                    from.lng() + (to.lng() - from.lng()) * t,
                )
            })
            .collect()
    }

    #[test]
    fn the_depth_is_zero_on_the_edge_and_grows_inwards() {
        let paris = at(48.8566, 2.3522);
        let cell = cell_of(paris);
        let centre = centre(cell);
        let depth = depth_m(cell, centre);
        // The centre of a hexagon is its inradius from every edge: about 0.87 of the edge.
        assert!((1_000.0..1_500.0).contains(&depth), "{depth}");
        // Walking out of the cell the depth falls towards zero before the cell changes.
        let far = at(centre.lat() + 0.05, centre.lng());
        let mut last = depth;
        for position in walk(centre, far, 200) {
            if cell_of(position) != cell {
                assert!(last < 20.0, "left the cell at depth {last}");
                break;
            }
            last = depth_m(cell, position);
        }
        assert_eq!(depth_m(cell, far), 0.0);
    }

    #[test]
    fn walking_along_an_edge_never_switches_and_crossing_switches_only_deep_inside() {
        let start = at(48.8566, 2.3522);
        let mut shown = next_cell(None, start);
        let mut switches = Vec::new();
        // A 20 km walk east: several cells crossed.
        for position in walk(start, at(48.8566, 2.62), 2_000) {
            let next = next_cell(Some(shown), position);
            if next != shown {
                let depth = depth_m(next, position);
                assert!(depth >= SWITCH_DEPTH_M, "switched at depth {depth}");
                switches.push(position);
                shown = next;
            }
        }
        assert!(switches.len() >= 5, "{switches:?}");
        // Zig-zagging across one edge 40 times, never more than about 150 m from it: the
        // viewer keeps seeing the first cell.
        let path = walk(start, at(48.8566, 2.62), 20_000); // 1 m steps
        let crossing = path
            .windows(2)
            .position(|pair| cell_of(pair[0]) != cell_of(pair[1]))
            .expect("the walk crosses an edge");
        let (west, east) = (path[crossing - 150], path[crossing + 150]);
        assert_ne!(cell_of(west), cell_of(east));
        let mut shown = next_cell(None, west);
        for i in 0..40 {
            shown = next_cell(Some(shown), if i % 2 == 0 { east } else { west });
        }
        assert_eq!(shown, cell_of(west));
    }

    #[test]
    fn one_cell_always_gives_the_same_centre_near_the_antimeridian_and_poles() {
        for (lat, lng) in [
            (0.0, 179.999),
            (0.0, -179.999),
            (89.9, 10.0),
            (-89.9, -170.0),
        ] {
            let position = at(lat, lng);
            let cell = cell_of(position);
            assert_eq!(centre(cell), centre(cell_of(position)));
            assert!(centre(cell).distance_m(position) <= circumradius_m(cell) + 1.0);
        }
    }
}

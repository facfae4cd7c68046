//! Map-native search against brute force: searches restricted to a box or to polygons, nearest
//! without a radius, and clusters by Web Mercator tile, on generated points that crowd the
//! poles and the antimeridian and on the 112,320 GeoNames places bundled in `data/`. The
//! quadtree must give exactly the brute-force answers (same entries, order, distances; the
//! same cluster counts and vector sums), including after inserts, removes and moves, which
//! maintain the per-subtree sums clusters are counted from.

use geo_index::{
    BoundingBox, BruteForce, Cluster, EntryId, LatLng, Neighbour, Polygon, QuadTree, Query, Region,
    SpatialIndex, Tag,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config(cases: u32) -> Config {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6d61_7073);
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    }
}

fn ll(lat: f64, lng: f64) -> LatLng {
    LatLng::new(lat, lng).expect("valid")
}

fn coordinate() -> impl Strategy<Value = LatLng> {
    prop_oneof![
        (-90.0..=90.0f64, -180.0..=180.0f64),
        (89.0..=90.0f64, -180.0..=180.0f64),
        (-90.0..=-89.0f64, -180.0..=180.0f64),
        (-90.0..=90.0f64, 179.0..=180.0f64),
        (-90.0..=90.0f64, -180.0..=-179.0f64),
        (48.0..49.0f64, 2.0..3.0f64),
        // On tile and quadtree edges.
        prop_oneof![
            Just((0.0, 0.0)),
            Just((0.0, 180.0)),
            Just((0.0, -180.0)),
            Just((90.0, 0.0)),
            Just((45.0, 90.0)),
            Just((-85.051_128_779_806_59, 22.5))
        ],
    ]
    .prop_map(|(lat, lng)| ll(lat, lng))
}

fn entries(max: usize) -> impl Strategy<Value = Vec<(EntryId, LatLng)>> {
    prop::collection::vec(coordinate(), 0..max).prop_map(|points| (0u32..).zip(points).collect())
}

fn bbox() -> impl Strategy<Value = BoundingBox> {
    (
        -90.0..=90.0f64,
        -90.0..=90.0f64,
        -180.0..=180.0f64,
        -180.0..=180.0f64,
    )
        .prop_map(|(a, b, west, east)| {
            BoundingBox::new(a.min(b), west, a.max(b), east).expect("valid box")
        })
}

/// A box from a corner and a size, so small boxes (a city) are as common as large ones.
fn sized_bbox() -> impl Strategy<Value = BoundingBox> {
    (coordinate(), 0.0..=3.0f64).prop_map(|(corner, e)| {
        let size = 10f64.powf(e - 1.0);
        let north = (corner.lat() + size).min(90.0);
        let mut east = corner.lng() + size * 2.0;
        if east > 180.0 {
            east -= 360.0;
        }
        BoundingBox::new(corner.lat(), corner.lng(), north, east).expect("valid box")
    })
}

/// A star-shaped ring around a centre (simple, either orientation), kept inside the
/// longitude/latitude range.
fn ring_around(lat: f64, lng: f64, radii: &[f64], clockwise: bool) -> Vec<[f64; 2]> {
    let n = radii.len();
    let mut ring: Vec<[f64; 2]> = radii
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let angle = std::f64::consts::TAU * i as f64 / n as f64;
            let angle = if clockwise { -angle } else { angle };
            [
                (lng + r * angle.cos()).clamp(-180.0, 180.0),
                (lat + r * angle.sin() * 0.5).clamp(-90.0, 90.0),
            ]
        })
        .collect();
    ring.push(ring[0]);
    ring
}

fn polygon_region() -> impl Strategy<Value = Region> {
    (
        coordinate(),
        prop::collection::vec(0.2..20.0f64, 3..40),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(c, radii, clockwise, with_hole)| {
            let outer = ring_around(c.lat(), c.lng(), &radii, clockwise);
            let mut rings = vec![outer];
            if with_hole {
                let small: Vec<f64> = radii.iter().map(|r| r * 0.05).collect();
                rings.push(ring_around(c.lat(), c.lng(), &small, !clockwise));
            }
            Region::polygons(vec![Polygon::new(rings).expect("valid polygon")])
                .expect("valid region")
        })
}

fn region() -> impl Strategy<Value = Region> {
    prop_oneof![
        bbox().prop_map(Region::bbox),
        sized_bbox().prop_map(Region::bbox),
        polygon_region(),
    ]
}

fn answers(found: impl Iterator<Item = Neighbour>) -> Vec<(EntryId, f64)> {
    found.map(|n| (n.id, n.distance_m)).collect()
}

/// A cluster as a comparable value: tile, count, the one id, and the centroid.
type Summary = (u8, u32, u32, u64, Option<EntryId>, (f64, f64));

fn summary(clusters: &[Cluster]) -> Vec<Summary> {
    clusters
        .iter()
        .map(|c| {
            let at = c.centroid();
            (
                c.tile.z,
                c.tile.x,
                c.tile.y,
                c.count,
                c.single,
                (at.lat(), at.lng()),
            )
        })
        .collect()
}

fn check_region<I: SpatialIndex>(index: &I, reference: &BruteForce, region: &Region) {
    let even = |id: EntryId| id.is_multiple_of(2);
    let centre = region.centre();
    for query in [
        Query::everywhere(centre).inside(region),
        Query::everywhere(centre).inside(region).filter(&even),
        Query::within(centre, 500_000.0)
            .expect("valid")
            .inside(region),
    ] {
        let expected = answers(reference.search(query));
        assert_eq!(answers(index.search(query)), expected, "{region:?}");
        // Resuming after a few answers (ties included) gives the rest.
        let step = (expected.len() / 4).max(1);
        for cut in expected.iter().step_by(step).take(5) {
            let keyset = geo_index::Keyset {
                distance_m: cut.1,
                id: cut.0,
            };
            assert_eq!(
                answers(index.search(query.after(keyset))),
                answers(reference.search(query.after(keyset))),
                "{region:?} after {keyset:?}"
            );
        }
    }
    for zoom in [0u8, 2, 5, 9, 14, 22] {
        let got = index
            .clusters(region, zoom, None, None)
            .expect("valid zoom");
        let expected = reference
            .clusters(region, zoom, None, None)
            .expect("valid zoom");
        assert_eq!(summary(&got), summary(&expected), "{region:?} zoom {zoom}");
        let total: u64 = got.iter().map(|c| c.count).sum();
        let within = reference
            .search(Query::everywhere(centre).inside(region))
            .count();
        assert_eq!(
            total, within as u64,
            "cluster total equals the search's count"
        );
        let filtered = index
            .clusters(region, zoom, Some(&even), None)
            .expect("valid");
        let expected = reference
            .clusters(region, zoom, Some(&even), None)
            .expect("valid");
        assert_eq!(
            summary(&filtered),
            summary(&expected),
            "{region:?} zoom {zoom}, filtered"
        );
    }
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn quadtree_region_search_and_clusters_match(
        entries in entries(400),
        capacity in prop_oneof![Just(1usize), Just(4), Just(32)],
        regions in prop::collection::vec(region(), 1..4),
    ) {
        let tree = QuadTree::build_with_leaf_capacity(entries.clone(), capacity).expect("ok");
        let reference = BruteForce::build(entries.clone());
        #[cfg(feature = "geohash")]
        let geohash = geo_index::GeohashIndex::build(entries);
        for region in &regions {
            check_region(&tree, &reference, region);
            // Another index kind through the shared traversal (cells pruned by the region).
            #[cfg(feature = "geohash")]
            {
                let query = Query::everywhere(region.centre()).inside(region);
                prop_assert_eq!(answers(geohash.search(query)), answers(reference.search(query)));
            }
        }
    }

    #[test]
    fn subtree_sums_survive_inserts_removes_and_moves(
        initial in entries(200),
        moves in prop::collection::vec((0u32..260, coordinate(), 0u8..3), 0..300),
        region in region(),
    ) {
        let mut tree = QuadTree::build_with_leaf_capacity(initial.clone(), 4).expect("ok");
        let mut reference = BruteForce::build(initial);
        for (id, to, op) in moves {
            match op {
                0 => {
                    tree.remove(id);
                    reference.remove(id);
                }
                1 => {
                    tree.insert(id, to);
                    reference.insert(id, to);
                }
                // A tiny move, usually within the same leaf.
                _ => {
                    if let Some(at) = reference.get(id) {
                        let near = ll(at.lat(), (at.lng() + 1e-7).min(180.0));
                        tree.insert(id, near);
                        reference.insert(id, near);
                    }
                }
            }
        }
        check_region(&tree, &reference, &region);
        check_region(&tree, &reference, &Region::bbox(BoundingBox::WORLD));
    }
}

fn tag() -> impl Strategy<Value = Tag> {
    prop_oneof![
        4 => (0u8..5).prop_map(|n| Tag::new(n).expect("below 64")),
        1 => Just(Tag::UNTAGGED),
        1 => Just(Tag::new(62).expect("below 64")),
    ]
}

/// Searches and clusters for each tag (present, rare, absent) equal the brute force's.
fn check_tags(tree: &QuadTree, reference: &BruteForce, region: &Region) {
    for n in [0u8, 1, 4, 7, 62, 63] {
        let tag = Tag::new(n).expect("below 64");
        let centre = region.centre();
        for query in [
            Query::everywhere(centre).tagged(tag),
            Query::everywhere(centre).tagged(tag).inside(region),
            Query::within(centre, 2_000_000.0)
                .expect("valid")
                .tagged(tag),
        ] {
            assert_eq!(
                answers(tree.search(query)),
                answers(reference.search(query)),
                "{tag:?} {query:?}"
            );
        }
        for zoom in [0u8, 3, 9, 20] {
            assert_eq!(
                summary(&tree.clusters(region, zoom, None, Some(tag)).expect("valid")),
                summary(
                    &reference
                        .clusters(region, zoom, None, Some(tag))
                        .expect("valid")
                ),
                "{tag:?} {region:?} zoom {zoom}"
            );
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn tags_prune_exactly_through_inserts_retags_removes_and_moves(
        initial in prop::collection::vec((coordinate(), tag()), 0..200),
        ops in prop::collection::vec((0u32..260, coordinate(), tag(), 0u8..4), 0..300),
        region in region(),
    ) {
        let initial: Vec<(EntryId, LatLng, Tag)> =
            (0u32..).zip(initial).map(|(id, (p, t))| (id, p, t)).collect();
        let mut tree = QuadTree::build_tagged(initial.clone());
        let mut small = QuadTree::with_leaf_capacity(2).expect("valid");
        let mut reference = BruteForce::default();
        for &(id, p, t) in &initial {
            small.insert_tagged(id, p, t);
            reference.insert_tagged(id, p, t);
        }
        for (id, to, tag, op) in ops {
            match op {
                0 => {
                    tree.remove(id);
                    small.remove(id);
                    reference.remove(id);
                }
                1 => {
                    tree.insert_tagged(id, to, tag);
                    small.insert_tagged(id, to, tag);
                    reference.insert_tagged(id, to, tag);
                }
                // Re-tag in place.
                2 => {
                    if let Some(at) = reference.get(id) {
                        tree.insert_tagged(id, at, tag);
                        small.insert_tagged(id, at, tag);
                        reference.insert_tagged(id, at, tag);
                    }
                }
                // A plain move keeps the tag.
                _ => {
                    tree.insert(id, to);
                    small.insert(id, to);
                    reference.insert(id, to);
                }
            }
        }
        for index in [&tree, &small] {
            check_tags(index, &reference, &region);
            check_tags(index, &reference, &Region::bbox(BoundingBox::WORLD));
        }
    }
}

fn places() -> Vec<(EntryId, LatLng)> {
    let cities = nearby_data::cities().expect("bundled dataset parses");
    (0u32..)
        .zip(cities.iter())
        .map(|(i, c)| (i, ll(c.latitude, c.longitude)))
        .collect()
}

fn square(west: f64, south: f64, east: f64, north: f64) -> Polygon {
    Polygon::new(vec![vec![
        [west, south],
        [east, south],
        [east, north],
        [west, north],
        [west, south],
    ]])
    .expect("valid")
}

/// Boxes and polygons at awkward places: across the antimeridian (Fiji, Chukotka), around both
/// poles, the whole world, dense cities, open ocean.
fn awkward_regions() -> Vec<Region> {
    let boxes = [
        (-21.0, 177.0, -12.0, -178.0),  // Fiji across 180
        (60.0, 170.0, 70.0, -170.0),    // Chukotka across 180
        (80.0, -180.0, 90.0, 180.0),    // the Arctic cap
        (-90.0, -180.0, -60.0, 180.0),  // Antarctica
        (-90.0, -180.0, 90.0, 180.0),   // everything
        (48.80, 2.25, 48.92, 2.42),     // Paris
        (35.5, 139.5, 35.8, 139.9),     // Tokyo
        (-5.0, -150.0, 5.0, -140.0),    // open ocean
        (0.0, 180.0, 10.0, 180.0),      // a line on the antimeridian
        (-85.06, -180.0, 85.06, 180.0), // the Mercator square
    ];
    let mut regions: Vec<Region> = boxes
        .iter()
        .map(|&(s, w, n, e)| Region::bbox(BoundingBox::new(s, w, n, e).expect("valid")))
        .collect();
    regions.extend(
        [
            // Fiji as a MultiPolygon split at ±180.
            Region::polygons(vec![
                square(177.0, -21.0, 180.0, -12.0),
                square(-180.0, -21.0, -178.0, -12.0),
            ]),
            // A polar cap and a ring around the south pole with a hole.
            Region::polygons(vec![square(-180.0, 75.0, 180.0, 90.0)]),
            Region::polygons(vec![
                Polygon::new(vec![
                    vec![
                        [-180.0, -90.0],
                        [180.0, -90.0],
                        [180.0, -50.0],
                        [-180.0, -50.0],
                        [-180.0, -90.0],
                    ],
                    vec![
                        [-10.0, -80.0],
                        [10.0, -80.0],
                        [10.0, -60.0],
                        [-10.0, -60.0],
                        [-10.0, -80.0],
                    ],
                ])
                .expect("valid"),
            ]),
            // A triangle over western Europe, clockwise.
            Region::polygons(vec![
                Polygon::new(vec![vec![
                    [-5.0, 43.0],
                    [2.35, 51.0],
                    [8.0, 44.0],
                    [-5.0, 43.0],
                ]])
                .expect("valid"),
            ]),
        ]
        .into_iter()
        .map(|r| r.expect("valid region")),
    );
    regions
}

#[test]
fn real_places_in_awkward_regions() {
    let places = places();
    let tree = QuadTree::build(places.clone());
    let reference = BruteForce::build(places);
    for region in awkward_regions() {
        check_region(&tree, &reference, &region);
    }
}

#[test]
fn nearest_without_a_radius_pages_through_everything() {
    let places = places();
    let tree = QuadTree::build(places.clone());
    for centre in [
        ll(48.8566, 2.3522),
        ll(-90.0, 0.0),
        ll(0.0, 180.0),
        ll(-16.5, -179.9),
    ] {
        let query = Query::everywhere(centre);
        let first: Vec<Neighbour> = tree.search(query).take(100).collect();
        let reference = BruteForce::build(places.clone());
        let expected: Vec<Neighbour> = reference.search(query).take(100).collect();
        assert_eq!(
            answers(first.iter().copied()),
            answers(expected.iter().copied())
        );
        // Paging from the last answer, 5,000 at a time, reaches every place exactly once.
        let mut seen = 0usize;
        let mut after: Option<geo_index::Keyset> = None;
        loop {
            let q = match after {
                Some(k) => query.after(k),
                None => query,
            };
            let page: Vec<Neighbour> = tree.search(q).take(5_000).collect();
            let Some(last) = page.last() else { break };
            seen += page.len();
            after = Some(last.keyset());
        }
        assert_eq!(seen, places.len(), "{centre:?}");
    }
}

/// A cluster's mean position lies in its tile, or next to it (the mean on the sphere of a
/// tile's points can fall just outside the tile's lat/lng rectangle at its edges); never at 0°
/// for a cluster at ±180°.
#[test]
fn cluster_centroids_lie_in_their_tiles_or_on_the_places() {
    let places = places();
    let tree = QuadTree::build(places);
    for zoom in [0u8, 3, 8] {
        for cluster in tree
            .clusters(&Region::bbox(BoundingBox::WORLD), zoom, None, None)
            .expect("valid")
        {
            let at = cluster.centroid();
            let tile = geo_index::Tile::containing(at, zoom).expect("valid");
            // The mean of points in a tile lies in the tile (tiles are convex on the
            // sphere's lat/lng grid up to rounding at the edges).
            let n = 1u32 << zoom;
            let dx = tile.x.abs_diff(cluster.tile.x);
            assert!(
                dx.min(n - dx) <= 1 && tile.y.abs_diff(cluster.tile.y) <= 1,
                "{cluster:?} at {at:?}"
            );
        }
    }
}

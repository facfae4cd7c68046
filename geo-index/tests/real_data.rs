//! Every index kind against brute force on real data: the 112,320 GeoNames places bundled in
//! `data/`, queried at real places and at the awkward ones (both poles, Fiji and Chukotka
//! across the antimeridian, Svalbard, McMurdo), with radii from 1 m to beyond half the Earth,
//! i.e. far smaller and far larger than any index cell.

//! The kinds behind features (geohash, s2, h3) are checked when they are enabled, as in the
//! workspace's test run.

use geo_index::{
    BruteForce, EntryId, HALF_CIRCUMFERENCE_M, LatLng, Neighbour, QuadTree, Query, SpatialIndex,
};

fn places() -> Vec<(EntryId, LatLng)> {
    nearby_data::cities()
        .expect("bundled dataset parses")
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                EntryId::try_from(i).expect("fits"),
                LatLng::new(c.latitude, c.longitude).expect("valid coordinates"),
            )
        })
        .collect()
}

fn centres(places: &[(EntryId, LatLng)]) -> Vec<LatLng> {
    let awkward = [
        (90.0, 0.0),
        (-90.0, 0.0),
        (89.99, 179.99),
        (-17.7134, 178.065), // Fiji, west of 180
        (-16.4, -179.95),    // Fiji, east of 180
        (64.7337, 177.5089), // Anadyr, Chukotka
        (65.9, -179.99),     // Chukotka across 180
        (78.2232, 15.6267),  // Longyearbyen, Svalbard
        (-77.846, 166.676),  // McMurdo
        (0.0, 180.0),
        (0.0, -180.0),
        (48.8566, 2.3522),    // Paris: dense
        (35.6762, 139.6503),  // Tokyo: dense
        (-33.8688, 151.2093), // Sydney
        (0.0, -160.0),        // open ocean
    ];
    let mut out: Vec<LatLng> = awkward
        .iter()
        .map(|&(lat, lng)| LatLng::new(lat, lng).expect("valid"))
        .collect();
    // And real places, spread through the file.
    out.extend(places.iter().step_by(places.len() / 25).map(|(_, p)| *p));
    out
}

const RADII_M: [f64; 9] = [
    1.0,
    100.0,
    2_000.0,
    25_000.0,
    300_000.0,
    2_500_000.0,
    10_000_000.0,
    19_000_000.0,
    HALF_CIRCUMFERENCE_M * 1.5,
];

fn key(found: &[Neighbour]) -> Vec<(EntryId, u64)> {
    found
        .iter()
        .map(|n| (n.id, n.distance_m.to_bits()))
        .collect()
}

/// The brute-force answers, computed once and shared by the index kinds.
struct Expected {
    centre: LatLng,
    radius_m: f64,
    first: Vec<Neighbour>,
    count: Option<usize>,
}

fn expected() -> &'static [Expected] {
    static EXPECTED: std::sync::OnceLock<Vec<Expected>> = std::sync::OnceLock::new();
    EXPECTED.get_or_init(|| {
        let places = places();
        let reference = BruteForce::build(places.clone());
        let mut out = Vec::new();
        for centre in centres(&places) {
            for radius_m in RADII_M {
                let query = Query::within(centre, radius_m).expect("valid");
                // Whole results where they are small, the first 500 (and the count) otherwise.
                let first: Vec<Neighbour> = reference.search(query).take(500).collect();
                let count = (radius_m <= 300_000.0)
                    .then(|| reference.count_within(centre, radius_m).expect("valid"));
                out.push(Expected {
                    centre,
                    radius_m,
                    first,
                    count,
                });
            }
        }
        out
    })
}

fn check<I: SpatialIndex>(name: &str) {
    let index = I::build(places());
    for e in expected() {
        let query = Query::within(e.centre, e.radius_m).expect("valid");
        let got: Vec<Neighbour> = index.search(query).take(500).collect();
        assert_eq!(
            key(&got),
            key(&e.first),
            "{name} at {:?} r={}",
            e.centre,
            e.radius_m
        );
        if let Some(count) = e.count {
            assert_eq!(
                index.count_within(e.centre, e.radius_m).expect("valid"),
                count,
                "{name} count at {:?} r={}",
                e.centre,
                e.radius_m
            );
        }
        // Resume after the 50th: the next 50 are the reference's 51st to 100th.
        if e.first.len() > 100 {
            let rest: Vec<Neighbour> = index
                .search(query.after(e.first[49].keyset()))
                .take(50)
                .collect();
            assert_eq!(
                key(&rest),
                key(&e.first[50..100]),
                "{name} resume at {:?}",
                e.centre
            );
        }
    }
}
#[cfg(feature = "geohash")]
#[test]
fn geohash_matches_brute_force_on_geonames() {
    check::<geo_index::GeohashIndex>("geohash");
}

#[test]
fn quadtree_matches_brute_force_on_geonames() {
    check::<QuadTree>("quadtree");
}

#[cfg(feature = "s2")]
#[test]
fn s2_matches_brute_force_on_geonames() {
    check::<geo_index::S2Index>("s2");
}

#[cfg(feature = "h3")]
#[test]
fn h3_matches_brute_force_on_geonames() {
    check::<geo_index::H3Index>("h3");
}

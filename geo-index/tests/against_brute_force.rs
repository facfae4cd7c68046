//! Every index kind must answer exactly as a brute-force scan does: the same entries, in the
//! same order (distance, then id), with the same distances, for any points and queries,
//! including the poles, the antimeridian, duplicate coordinates, radii from 1 m to more than
//! half the Earth, keyset paging, filters, and after any sequence of inserts, removes and
//! moves.
//!
//! The runs are seeded (override with `PROPTEST_RNG_SEED`), so a failure reproduces.

//! The kinds behind features (geohash, s2, h3) are checked when they are enabled, as in the
//! workspace's test run.

use geo_index::{
    BoundingBox, BruteForce, EntryId, HALF_CIRCUMFERENCE_M, LatLng, Neighbour, QuadTree, Query,
    SpatialIndex,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config(cases: u32) -> Config {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6e65_6172_6279);
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    }
}

/// Coordinates that stress the edge cases as often as the ordinary ones.
fn coordinate() -> impl Strategy<Value = LatLng> {
    let any_lat = -90.0..=90.0f64;
    let any_lng = -180.0..=180.0f64;
    prop_oneof![
        // Uniform-ish over the globe.
        (any_lat.clone(), any_lng.clone()),
        // Within 0.01° of a pole.
        (89.99..=90.0f64, any_lng.clone()),
        (-90.0..=-89.99f64, any_lng.clone()),
        // Within 0.01° of the antimeridian, both sides.
        (any_lat.clone(), 179.99..=180.0f64),
        (any_lat.clone(), -180.0..=-179.99f64),
        // A dense cluster, where many points share cells and some share coordinates.
        (48.85..48.86f64, 2.35..2.36f64),
        prop_oneof![Just((48.855, 2.355)), Just((0.0, 180.0)), Just((90.0, 0.0))],
    ]
    .prop_map(|(lat, lng)| LatLng::new(lat, lng).expect("strategy stays in range"))
}

/// Radii from 1 m to 20,000 km (log-uniform), plus 0 and more than half the Earth.
fn radius() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => (0.0..=7.3f64).prop_map(|e| 10f64.powf(e)),
        1 => Just(0.0),
        1 => Just(HALF_CIRCUMFERENCE_M * 1.01),
    ]
}

fn entries(max: usize) -> impl Strategy<Value = Vec<(EntryId, LatLng)>> {
    prop::collection::vec(coordinate(), 0..max).prop_map(|points| {
        points
            .into_iter()
            .enumerate()
            .map(|(i, p)| (u32::try_from(i).expect("small"), p))
            .collect()
    })
}

#[derive(Clone, Debug)]
enum Op {
    Insert(EntryId, LatLng),
    Remove(EntryId),
    Move(EntryId, LatLng),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let id = 0..160u32;
    prop::collection::vec(
        prop_oneof![
            3 => (id.clone(), coordinate()).prop_map(|(i, p)| Op::Insert(i, p)),
            2 => id.clone().prop_map(Op::Remove),
            2 => (id, coordinate()).prop_map(|(i, p)| Op::Move(i, p)),
        ],
        0..250,
    )
}

fn ids(found: &[Neighbour]) -> Vec<(EntryId, f64)> {
    found.iter().map(|n| (n.id, n.distance_m)).collect()
}

/// The whole contract, checked for one index against the brute-force reference.
fn check_queries<I: SpatialIndex>(
    index: &I,
    reference: &BruteForce,
    centre: LatLng,
    radius_m: f64,
    page: usize,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(index.len(), reference.len());
    let query = Query::within(centre, radius_m).expect("valid radius");
    let expected: Vec<Neighbour> = reference.search(query).collect();
    let got: Vec<Neighbour> = index.search(query).collect();
    prop_assert_eq!(ids(&got), ids(&expected), "full result");

    // Keyset paging walks the same sequence.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let mut q = query;
        if let Some(k) = after {
            q = q.after(k);
        }
        let chunk: Vec<Neighbour> = index.search(q).take(page).collect();
        if chunk.is_empty() {
            break;
        }
        after = chunk.last().map(Neighbour::keyset);
        paged.extend(chunk);
        prop_assert!(paged.len() <= expected.len(), "paging went past the end");
    }
    prop_assert_eq!(ids(&paged), ids(&expected), "paged result");

    // nearest(k) is the prefix.
    let nearest = index.nearest(centre, page, radius_m).expect("valid radius");
    prop_assert_eq!(ids(&nearest), ids(&expected[..page.min(expected.len())]));

    // A filter applied during the traversal.
    let every_third = |id: EntryId| id.is_multiple_of(3);
    let filtered: Vec<Neighbour> = index.search(query.filter(&every_third)).collect();
    let expected_filtered: Vec<Neighbour> = expected
        .iter()
        .copied()
        .filter(|n| n.id.is_multiple_of(3))
        .collect();
    prop_assert_eq!(ids(&filtered), ids(&expected_filtered), "filtered");

    prop_assert_eq!(
        index.count_within(centre, radius_m).expect("valid radius"),
        expected.len(),
        "count"
    );
    Ok(())
}

fn check_bbox<I: SpatialIndex>(
    index: &I,
    reference: &BruteForce,
    bbox: &BoundingBox,
) -> Result<(), TestCaseError> {
    let mut got = index.in_bbox(bbox);
    let mut expected = reference.in_bbox(bbox);
    got.sort_unstable();
    expected.sort_unstable();
    prop_assert_eq!(got, expected, "bbox {:?}", bbox);
    Ok(())
}

fn bbox() -> impl Strategy<Value = BoundingBox> {
    (coordinate(), coordinate()).prop_map(|(a, b)| {
        let (south, north) = if a.lat() <= b.lat() {
            (a.lat(), b.lat())
        } else {
            (b.lat(), a.lat())
        };
        // a.lng > b.lng makes a box that crosses the antimeridian.
        BoundingBox::new(south, a.lng(), north, b.lng()).expect("ordered")
    })
}

macro_rules! against_brute_force {
    ($kind:ident, $index:ty) => {
        mod $kind {
            use super::*;

            proptest! {
                #![proptest_config(config(96))]

                #[test]
                fn bulk_built_index_matches(
                    entries in entries(300),
                    centre in coordinate(),
                    radius_m in radius(),
                    page in 1..12usize,
                ) {
                    let index = <$index>::build(entries.clone());
                    let reference = BruteForce::build(entries);
                    check_queries(&index, &reference, centre, radius_m, page)?;
                }

                #[test]
                fn index_after_inserts_removes_and_moves_matches(
                    entries in entries(120),
                    ops in ops(),
                    centre in coordinate(),
                    radius_m in radius(),
                    page in 1..12usize,
                ) {
                    let mut index = <$index>::build(entries.clone());
                    let mut reference = BruteForce::build(entries);
                    for op in ops {
                        match op {
                            Op::Insert(id, p) => {
                                prop_assert_eq!(index.insert(id, p), reference.insert(id, p));
                            }
                            Op::Remove(id) => {
                                prop_assert_eq!(index.remove(id), reference.remove(id));
                            }
                            Op::Move(id, p) => {
                                prop_assert_eq!(index.move_to(id, p), reference.move_to(id, p));
                            }
                        }
                    }
                    for (id, p) in reference.in_bbox(&BoundingBox::WORLD).into_iter().map(|id| (id, reference.get(id))) {
                        prop_assert_eq!(index.get(id), p);
                    }
                    check_queries(&index, &reference, centre, radius_m, page)?;
                }

                #[test]
                fn bounding_boxes_match(entries in entries(300), bbox in bbox()) {
                    let index = <$index>::build(entries.clone());
                    let reference = BruteForce::build(entries);
                    check_bbox(&index, &reference, &bbox)?;
                }
            }

            /// Nearest first *lazily*: taking 5 answers out of 40,000 inside the radius
            /// must measure a small neighbourhood, not every match. The filter runs once
            /// per measured point inside the radius, so it counts them.
            #[test]
            fn first_answers_come_without_measuring_every_match() {
                let entries: Vec<(EntryId, LatLng)> = (0..40_000u32)
                    .map(|i| {
                        let lat = 48.0 + f64::from(i / 200) * 0.0005;
                        let lng = 2.0 + f64::from(i % 200) * 0.0005;
                        (i, LatLng::new(lat, lng).expect("valid"))
                    })
                    .collect();
                let index = <$index>::build(entries.clone());
                let reference = BruteForce::build(entries);
                let measured = std::cell::Cell::new(0usize);
                let count = |_: EntryId| {
                    measured.set(measured.get() + 1);
                    true
                };
                let centre = LatLng::new(48.05, 2.05).expect("valid");
                let query = Query::within(centre, 50_000.0).expect("valid");
                let got: Vec<Neighbour> = index.search(query.filter(&count)).take(5).collect();
                let expected: Vec<Neighbour> = reference.search(query).take(5).collect();
                assert_eq!(ids(&got), ids(&expected));
                assert!(measured.get() < 2_000, "measured {} points for 5 answers", measured.get());
            }

            #[test]
            fn empty_index_finds_nothing() {
                let index = <$index>::build(Vec::new());
                let centre = LatLng::new(0.0, 0.0).expect("valid");
                assert_eq!(index.within(centre, HALF_CIRCUMFERENCE_M).expect("valid").count(), 0);
                assert_eq!(index.count_within(centre, 1e7).expect("valid"), 0);
                assert!(index.in_bbox(&BoundingBox::WORLD).is_empty());
                assert!(index.is_empty());
            }

            #[test]
            fn removing_everything_empties_the_index() {
                let points: Vec<(EntryId, LatLng)> = (0..2_000u32)
                    .map(|i| {
                        let lat = f64::from(i % 179) - 89.0;
                        let lng = f64::from(i % 359) - 179.0;
                        (i, LatLng::new(lat, lng).expect("valid"))
                    })
                    .collect();
                let mut index = <$index>::build(points.clone());
                assert_eq!(index.len(), 2_000);
                for (id, p) in &points {
                    assert_eq!(index.remove(*id), Some(*p));
                }
                assert!(index.is_empty());
                let centre = LatLng::new(0.0, 0.0).expect("valid");
                assert_eq!(index.within(centre, 1e8).expect("valid").count(), 0);
            }
        }
    };
}

#[cfg(feature = "geohash")]
against_brute_force!(geohash, geo_index::GeohashIndex);
against_brute_force!(quadtree, QuadTree);
#[cfg(feature = "s2")]
against_brute_force!(s2, geo_index::S2Index);
#[cfg(feature = "h3")]
against_brute_force!(h3, geo_index::H3Index);

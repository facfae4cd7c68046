//! What the benchmarks share: the datasets, the query centres, and the rstar baseline.
#![allow(dead_code)] // each bench binary uses a different part

use geo_index::{EARTH_RADIUS_M, EntryId, LatLng, SpatialIndex};
use rstar::RTree;
use rstar::primitives::GeomWithData;

pub const SEED: u64 = 42;
pub const RADII_M: [f64; 5] = [500.0, 1_000.0, 2_000.0, 5_000.0, 20_000.0];
pub const K: usize = 20;

/// Sizes from `NEARBY_BENCH_SIZES` (comma-separated), default 100K, 1M and 10M.
pub fn sizes() -> Vec<usize> {
    std::env::var("NEARBY_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100_000, 1_000_000, 10_000_000])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Businesses clustered around real GeoNames places in proportion to population.
    Clustered,
    /// Uniform on the sphere, for contrast.
    Uniform,
}

impl Distribution {
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Clustered => "clustered",
            Distribution::Uniform => "uniform",
        }
    }
}

pub fn entries(distribution: Distribution, n: usize) -> Vec<(EntryId, LatLng)> {
    let points: Box<dyn Iterator<Item = (f64, f64)>> = match distribution {
        Distribution::Clustered => {
            let cities = nearby_data::cities().expect("bundled dataset parses");
            let generator = nearby_data::Generator::new(&cities, SEED).expect("generator");
            Box::new(
                generator
                    .points(n)
                    .map(|p| (p.latitude, p.longitude))
                    .collect::<Vec<_>>()
                    .into_iter(),
            )
        }
        Distribution::Uniform => Box::new(nearby_data::uniform_points(n, SEED)),
    };
    points
        .enumerate()
        .map(|(i, (lat, lon))| {
            (
                EntryId::try_from(i).expect("fewer than 2^32 entries"),
                LatLng::new(lat, lon).expect("generated points are valid"),
            )
        })
        .collect()
}

/// Query centres drawn from the data itself (where users are), deterministic.
pub fn centres(entries: &[(EntryId, LatLng)], count: usize) -> Vec<LatLng> {
    let mut state = SEED ^ 0x9e37_79b9_7f4a_7c15;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let i = (state >> 33) as usize % entries.len();
            entries[i].1
        })
        .collect()
}

/// The baseline: rstar over unit-sphere xyz points, searched by chord distance (monotonic in
/// great-circle distance, so its nearest-first order is correct on the sphere).
pub struct RStarBaseline {
    tree: RTree<GeomWithData<[f64; 3], EntryId>>,
}

pub fn unit_vector(p: LatLng) -> [f64; 3] {
    let (lat, lng) = (p.lat().to_radians(), p.lng().to_radians());
    [lat.cos() * lng.cos(), lat.cos() * lng.sin(), lat.sin()]
}

impl RStarBaseline {
    pub fn build(entries: &[(EntryId, LatLng)]) -> Self {
        let items = entries
            .iter()
            .map(|&(id, p)| GeomWithData::new(unit_vector(p), id))
            .collect();
        Self {
            tree: RTree::bulk_load(items),
        }
    }

    /// k nearest within `radius_m`, as (id, great-circle metres).
    pub fn nearest(&self, centre: LatLng, k: usize, radius_m: f64) -> Vec<(EntryId, f64)> {
        let chord = 2.0 * (radius_m / (2.0 * EARTH_RADIUS_M)).sin();
        let max_chord_2 = chord * chord;
        self.tree
            .nearest_neighbor_iter_with_distance_2(unit_vector(centre))
            .take_while(|(_, d2)| *d2 <= max_chord_2)
            .take(k)
            .map(|(item, d2)| (item.data, 2.0 * EARTH_RADIUS_M * (d2.sqrt() * 0.5).asin()))
            .collect()
    }

    pub fn count_within(&self, centre: LatLng, radius_m: f64) -> usize {
        let chord = 2.0 * (radius_m / (2.0 * EARTH_RADIUS_M)).sin();
        self.tree
            .locate_within_distance(unit_vector(centre), chord * chord)
            .count()
    }

    pub fn insert(&mut self, id: EntryId, p: LatLng) {
        self.tree.insert(GeomWithData::new(unit_vector(p), id));
    }

    pub fn remove(&mut self, id: EntryId, p: LatLng) -> bool {
        self.tree
            .remove(&GeomWithData::new(unit_vector(p), id))
            .is_some()
    }
}

/// Checks that an index and the baseline return the same ids for the same queries, so the
/// figures compare equal work. Ties at the last place may differ by id order only when
/// distances are equal to the last bit, which the comparison of sets allows.
pub fn assert_same_answers(
    index: &impl SpatialIndex,
    baseline: &RStarBaseline,
    centres: &[LatLng],
    radius_m: f64,
) {
    for &centre in centres.iter().take(200) {
        let ours: Vec<EntryId> = index
            .nearest(centre, K, radius_m)
            .expect("valid radius")
            .iter()
            .map(|n| n.id)
            .collect();
        let theirs: Vec<EntryId> = baseline
            .nearest(centre, K, radius_m)
            .iter()
            .map(|(id, _)| *id)
            .collect();
        let mut a = ours.clone();
        let mut b = theirs.clone();
        a.sort_unstable();
        b.sort_unstable();
        // Chord and haversine can order points within ~1e-9 m differently; only the last
        // answer may then differ.
        let common = a.iter().filter(|id| b.binary_search(id).is_ok()).count();
        assert!(
            ours.len() == theirs.len() && common + 1 >= ours.len(),
            "answers differ at {centre:?} r={radius_m}: {ours:?} vs {theirs:?}"
        );
    }
}

/// Whether index kind `name` is benchmarked: all unless `NEARBY_BENCH_KINDS` (comma-separated,
/// e.g. `geohash,rstar`) says otherwise.
pub fn kind_enabled(name: &str) -> bool {
    std::env::var("NEARBY_BENCH_KINDS")
        .map(|kinds| kinds.split(',').any(|k| k.trim() == name))
        .unwrap_or(true)
}

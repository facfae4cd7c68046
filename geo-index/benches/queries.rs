//! Criterion benchmarks: k = 20 nearest within 0.5 to 20 km, and counts within 5 km, for every
//! index kind next to the rstar baseline (and brute force at the smallest size), on clustered
//! businesses at each size in `NEARBY_BENCH_SIZES` and on uniform points at 1M.
//!
//! `cargo bench -p geo-index --bench queries` (see BENCHMARKS.md for the figures).

mod common;

use common::{Distribution, K, RADII_M, RStarBaseline};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use geo_index::{
    BruteForce, EntryId, GeohashIndex, H3Index, LatLng, QuadTree, S2Index, SpatialIndex,
};
use std::hint::black_box;
use std::time::Duration;

const CENTRES: usize = 1024;

fn bench_kind<I: SpatialIndex>(
    c: &mut Criterion,
    label: &str,
    kind: &str,
    entries: &[(EntryId, LatLng)],
    centres: &[LatLng],
    baseline: &RStarBaseline,
) {
    let index = I::build(entries.to_vec());
    for radius_m in RADII_M {
        common::assert_same_answers(&index, baseline, centres, radius_m);
        let mut group = c.benchmark_group(format!("k20_within/{label}/{radius_m}m"));
        let mut i = 0;
        group.bench_function(BenchmarkId::from_parameter(kind), |b| {
            b.iter(|| {
                i = (i + 1) % centres.len();
                black_box(
                    index
                        .nearest(centres[i], K, radius_m)
                        .map_or(0, |v| v.len()),
                )
            });
        });
        group.finish();
    }
    let mut group = c.benchmark_group(format!("count_within/{label}/5000m"));
    let mut i = 0;
    group.bench_function(BenchmarkId::from_parameter(kind), |b| {
        b.iter(|| {
            i = (i + 1) % centres.len();
            black_box(index.count_within(centres[i], 5_000.0))
        });
    });
    group.finish();
}

fn bench_baseline(c: &mut Criterion, label: &str, centres: &[LatLng], baseline: &RStarBaseline) {
    for radius_m in RADII_M {
        let mut group = c.benchmark_group(format!("k20_within/{label}/{radius_m}m"));
        let mut i = 0;
        group.bench_function(BenchmarkId::from_parameter("rstar"), |b| {
            b.iter(|| {
                i = (i + 1) % centres.len();
                black_box(baseline.nearest(centres[i], K, radius_m).len())
            });
        });
        group.finish();
    }
    let mut group = c.benchmark_group(format!("count_within/{label}/5000m"));
    let mut i = 0;
    group.bench_function(BenchmarkId::from_parameter("rstar"), |b| {
        b.iter(|| {
            i = (i + 1) % centres.len();
            black_box(baseline.count_within(centres[i], 5_000.0))
        });
    });
    group.finish();
}

fn run(c: &mut Criterion, distribution: Distribution, n: usize) {
    let entries = common::entries(distribution, n);
    let centres = common::centres(&entries, CENTRES);
    let label = format!("{}/{n}", distribution.name());
    let baseline = RStarBaseline::build(&entries);
    if common::kind_enabled("rstar") {
        bench_baseline(c, &label, &centres, &baseline);
    }
    if common::kind_enabled("geohash") {
        bench_kind::<GeohashIndex>(c, &label, "geohash", &entries, &centres, &baseline);
    }
    if common::kind_enabled("quadtree") {
        bench_kind::<QuadTree>(c, &label, "quadtree", &entries, &centres, &baseline);
    }
    if common::kind_enabled("s2") {
        bench_kind::<S2Index>(c, &label, "s2", &entries, &centres, &baseline);
    }
    if common::kind_enabled("h3") {
        bench_kind::<H3Index>(c, &label, "h3", &entries, &centres, &baseline);
    }
    if n <= 100_000 && common::kind_enabled("brute_force") {
        bench_kind::<BruteForce>(c, &label, "brute_force", &entries, &centres, &baseline);
    }
}

fn queries(c: &mut Criterion) {
    for n in common::sizes() {
        run(c, Distribution::Clustered, n);
    }
    if std::env::var("NEARBY_BENCH_UNIFORM").as_deref() != Ok("0") {
        run(c, Distribution::Uniform, 1_000_000);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = queries
}
criterion_main!(benches);

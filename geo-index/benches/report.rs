//! One-shot figures criterion does not give: bulk build time, bytes per point (measured by a
//! counting allocator), insert/remove/move cost, and per-query latency percentiles, for each
//! index kind next to rstar. Prints markdown tables for BENCHMARKS.md.
//!
//! `cargo bench -p geo-index --bench report` (sizes from `NEARBY_BENCH_SIZES`).

mod common;

use common::{Distribution, K, RADII_M, RStarBaseline};
use geo_index::{EntryId, GeohashIndex, H3Index, LatLng, QuadTree, S2Index, SpatialIndex};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, counting live bytes.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers every call to `System`, only adding bookkeeping.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const QUERIES: usize = 20_000;
const UPDATES: usize = 100_000;

struct Row {
    kind: &'static str,
    build_s: f64,
    bytes_per_point: f64,
    update_us: [f64; 3],
    /// Per radius: (queries/s, p50 µs, p99 µs).
    queries: Vec<(f64, f64, f64)>,
    count_5km_us: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn latency(run: impl FnMut(usize)) -> (f64, f64, f64) {
    latency_n(QUERIES, run)
}

fn latency_n(queries: usize, mut run: impl FnMut(usize)) -> (f64, f64, f64) {
    let mut samples = Vec::with_capacity(queries);
    let start = Instant::now();
    for i in 0..queries {
        let t = Instant::now();
        run(i);
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let total = start.elapsed().as_secs_f64();
    samples.sort_by(f64::total_cmp);
    (
        queries as f64 / total,
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
    )
}

/// Random existing ids and fresh positions for the update benchmark.
fn updates(entries: &[(EntryId, LatLng)]) -> Vec<(EntryId, LatLng, LatLng)> {
    let centres = common::centres(entries, UPDATES * 2);
    let mut state = 7u64;
    (0..UPDATES)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let (id, at) = entries[(state >> 33) as usize % entries.len()];
            (id, at, centres[UPDATES + i])
        })
        .collect()
}

fn measure<I: SpatialIndex>(
    kind: &'static str,
    entries: &[(EntryId, LatLng)],
    centres: &[LatLng],
) -> Row {
    // Live bytes before the input copy exists, against live bytes once `build` consumed it.
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let input = entries.to_vec();
    let start = Instant::now();
    let mut index = I::build(input);
    let build_s = start.elapsed().as_secs_f64();
    let bytes_per_point =
        LIVE_BYTES.load(Ordering::Relaxed).saturating_sub(before) as f64 / entries.len() as f64;

    let queries = RADII_M
        .iter()
        .map(|&r| {
            latency(|i| {
                black_box(
                    index
                        .nearest(centres[i % centres.len()], K, r)
                        .map_or(0, |v| v.len()),
                );
            })
        })
        .collect();
    let (_, count_5km_us, _) = latency(|i| {
        black_box(index.count_within(centres[i % centres.len()], 5_000.0).ok());
    });

    // Remove, insert back, then move: the three write paths.
    let ups = updates(entries);
    let start = Instant::now();
    let mut removed = Vec::with_capacity(ups.len());
    for &(id, _, _) in &ups {
        if let Some(at) = index.remove(id) {
            removed.push((id, at));
        }
    }
    let remove_us = start.elapsed().as_secs_f64() * 1e6 / ups.len() as f64;
    let start = Instant::now();
    for &(id, at) in &removed {
        index.insert(id, at);
    }
    let insert_us = start.elapsed().as_secs_f64() * 1e6 / removed.len().max(1) as f64;
    let start = Instant::now();
    for &(id, _, to) in &ups {
        index.move_to(id, to);
    }
    let move_us = start.elapsed().as_secs_f64() * 1e6 / ups.len() as f64;

    Row {
        kind,
        build_s,
        bytes_per_point,
        update_us: [insert_us, remove_us, move_us],
        queries,
        count_5km_us,
    }
}

fn measure_rstar(entries: &[(EntryId, LatLng)], centres: &[LatLng]) -> Row {
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut tree = RStarBaseline::build(entries);
    let build_s = start.elapsed().as_secs_f64();
    let bytes = LIVE_BYTES.load(Ordering::Relaxed).saturating_sub(before);
    let queries = RADII_M
        .iter()
        .map(|&r| {
            latency(|i| {
                black_box(tree.nearest(centres[i % centres.len()], K, r).len());
            })
        })
        .collect();
    let (_, count_5km_us, _) = latency(|i| {
        black_box(tree.count_within(centres[i % centres.len()], 5_000.0));
    });
    let ups = updates(entries);
    let start = Instant::now();
    let mut removed = Vec::with_capacity(ups.len());
    for &(id, at, _) in &ups {
        if tree.remove(id, at) {
            removed.push((id, at));
        }
    }
    let remove_us = start.elapsed().as_secs_f64() * 1e6 / ups.len() as f64;
    let start = Instant::now();
    for &(id, at) in &removed {
        tree.insert(id, at);
    }
    let insert_us = start.elapsed().as_secs_f64() * 1e6 / removed.len().max(1) as f64;
    Row {
        kind: "rstar (baseline)",
        build_s,
        bytes_per_point: bytes as f64 / entries.len() as f64,
        update_us: [insert_us, remove_us, insert_us + remove_us],
        queries,
        count_5km_us,
    }
}

/// Brute force: queries only (it has no structure to build or update), fewer of them.
fn measure_brute(entries: &[(EntryId, LatLng)], centres: &[LatLng]) -> Row {
    let index = geo_index::BruteForce::build(entries.to_vec());
    let queries = RADII_M
        .iter()
        .map(|&r| {
            latency_n(200, |i| {
                black_box(
                    index
                        .nearest(centres[i % centres.len()], K, r)
                        .map_or(0, |v| v.len()),
                );
            })
        })
        .collect();
    let (_, count_5km_us, _) = latency_n(200, |i| {
        black_box(index.count_within(centres[i % centres.len()], 5_000.0).ok());
    });
    Row {
        kind: "brute force",
        build_s: f64::NAN,
        bytes_per_point: f64::NAN,
        update_us: [f64::NAN; 3],
        queries,
        count_5km_us,
    }
}

fn report(distribution: Distribution, n: usize) {
    let entries = common::entries(distribution, n);
    let centres = common::centres(&entries, 4096);
    let mut rows = Vec::new();
    if common::kind_enabled("rstar") {
        rows.push(measure_rstar(&entries, &centres));
    }
    if common::kind_enabled("geohash") {
        rows.push(measure::<GeohashIndex>("geohash", &entries, &centres));
    }
    if common::kind_enabled("quadtree") {
        rows.push(measure::<QuadTree>("quadtree", &entries, &centres));
    }
    if common::kind_enabled("s2") {
        rows.push(measure::<S2Index>("s2", &entries, &centres));
    }
    if common::kind_enabled("h3") {
        rows.push(measure::<H3Index>("h3", &entries, &centres));
    }
    if n <= 1_000_000 && common::kind_enabled("brute_force") {
        rows.push(measure_brute(&entries, &centres));
    }
    println!("\n### {} points, {}\n", n, distribution.name());
    println!(
        "| index | build (s) | bytes/point | insert µs | remove µs | move µs | count 5 km µs (p50) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.2} | {:.1} | {:.2} | {:.2} | {:.2} | {:.1} |",
            r.kind,
            r.build_s,
            r.bytes_per_point,
            r.update_us[0],
            r.update_us[1],
            r.update_us[2],
            r.count_5km_us
        );
    }
    println!("\nk = {K} nearest within radius: queries/s (p50 µs / p99 µs)\n");
    let header: Vec<String> = RADII_M
        .iter()
        .map(|r| format!("{} km", r / 1000.0))
        .collect();
    println!("| index | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(RADII_M.len()));
    for r in &rows {
        let cells: Vec<String> = r
            .queries
            .iter()
            .map(|(qps, p50, p99)| format!("{qps:.0} ({p50:.1} / {p99:.1})"))
            .collect();
        println!("| {} | {} |", r.kind, cells.join(" | "));
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    for n in common::sizes() {
        report(Distribution::Clustered, n);
    }
    if std::env::var("NEARBY_BENCH_UNIFORM").as_deref() != Ok("0") {
        report(Distribution::Uniform, 1_000_000);
    }
}

//! `search-bench`: the same top-20-within-radius search against Nearby's REST API, Redis
//! `GEOSEARCH` and PostGIS, at the same client concurrency over loopback.
//!
//! ```text
//! search-bench export [--places FILE] --out FILE
//! search-bench load-redis --places FILE --redis redis://127.0.0.1:PORT [--key places]
//! search-bench run --places FILE [--nearby URL] [--redis URL] [--postgres URL] [...]
//! ```
//!
//! `run` first checks that the targets hold the dataset and return the same result sets on
//! a sample of queries (differences are classified as explained by each system's sphere
//! and coordinate precision, or not: see the `verify` module), then times each target
//! at each radius and prints a markdown report. `scripts/bench-search` sets up throwaway
//! servers and runs all of it with one command.

// One module per concern:
// - `places`: the dataset (loaded once, exported as the CSV every target loads) and the
//   seeded query centres.
// - `targets`: Nearby over HTTP, Redis `GEOSEARCH`, PostGIS over sqlx; one connection type
//   per target and the query each is asked.
// - `http`: the minimal keep-alive HTTP/1.1 client.
// - `verify`: result-set comparison with each system's geometric tolerance.
// - `load`: closed-loop workers, one connection and one request in flight each, latencies
//   in the shared HdrHistogram (`nearby_bench::latency`).
// - `report`: markdown tables.
mod http;
mod load;
mod places;
mod report;
mod targets;
mod verify;

use clap::{Args, Parser, Subcommand};
use geo_index::LatLng;
use load::{Pool, Stop};
use report::{CheckRow, Row, radius_label};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use targets::{PostgisOrder, Target};
use verify::{Comparison, REDIS_MAX_LATITUDE, Tolerance};

#[derive(Parser)]
#[command(
    name = "search-bench",
    about = "Nearby vs Redis GEOSEARCH vs PostGIS: the same nearby search, timed"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the places (a place file, or the bundled GeoNames places) as the CSV every
    /// target loads: id,name,latitude,longitude,category.
    Export {
        /// Place file (CSV or GeoJSON); default: the bundled GeoNames places.
        #[arg(long)]
        places: Option<PathBuf>,
        /// Output CSV file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Load a place file into a Redis sorted set with pipelined GEOADD.
    LoadRedis {
        /// Place file (CSV or GeoJSON).
        #[arg(long)]
        places: PathBuf,
        /// Redis URL, e.g. redis://127.0.0.1:6379.
        #[arg(long)]
        redis: String,
        /// Sorted-set key (replaced).
        #[arg(long, default_value = "places")]
        key: String,
        /// Places per GEOADD command.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
    /// Check result sets, then time every target given at every radius.
    Run(Box<RunArgs>),
}

#[derive(Args)]
struct RunArgs {
    /// The place file every target was loaded from (query centres are drawn from it and
    /// result sets are checked against its coordinates).
    #[arg(long)]
    places: PathBuf,
    /// Nearby base URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    nearby: Option<String>,
    /// Redis URL, e.g. redis://127.0.0.1:6379.
    #[arg(long)]
    redis: Option<String>,
    /// Redis sorted-set key holding the places.
    #[arg(long, default_value = "places")]
    key: String,
    /// PostgreSQL URL of a database with a `places(id text, location geography(Point,4326))`
    /// table and a GiST index on `location`.
    #[arg(long)]
    postgres: Option<String>,
    /// PostGIS query form.
    #[arg(long, value_enum, default_value_t = PostgisOrder::Knn)]
    postgis_order: PostgisOrder,
    /// Connections per target, each with one request in flight.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Seconds per target per radius (ignored with --requests).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Requests per target per radius instead of a duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Untimed warm-up seconds before each timed run.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Radii in metres, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [5000.0, 20000.0])]
    radii: Vec<f64>,
    /// Query centres drawn from the dataset.
    #[arg(long, default_value_t = 10_000)]
    queries: usize,
    /// Seed for drawing the query centres.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Queries per radius whose result sets are compared before timing (sent one at a
    /// time, so a thousand take a second or two).
    #[arg(long, default_value_t = 1000)]
    verify: usize,
    /// Largest tolerated share of sampled queries with an unexplained difference.
    #[arg(long, default_value_t = 0.01)]
    max_unexplained: f64,
    /// Load-client runtime threads; default: the number of CPUs.
    #[arg(long)]
    threads: Option<usize>,
    /// How the report names the dataset; default: the --places path.
    #[arg(long)]
    dataset_name: Option<String>,
    /// Also write the markdown report to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Export { places, out } => export(places, &out),
        Command::LoadRedis {
            places,
            redis,
            key,
            batch,
        } => runtime(1).and_then(|rt| rt.block_on(load_redis(&places, &redis, &key, batch))),
        Command::Run(args) => {
            let threads = args.threads.unwrap_or_else(cpus);
            runtime(threads).and_then(|rt| rt.block_on(run(*args, threads)))
        }
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("search-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn export(path: Option<PathBuf>, out: &std::path::Path) -> Result<ExitCode, String> {
    let places = places::load(path.as_deref())?;
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    places::write_csv(&places, &mut std::io::BufWriter::new(file))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("wrote {} places to {}", places.len(), out.display());
    Ok(ExitCode::SUCCESS)
}

async fn load_redis(
    path: &std::path::Path,
    url: &str,
    key: &str,
    batch: usize,
) -> Result<ExitCode, String> {
    let places = places::load(Some(path))?;
    let client = redis::Client::open(url).map_err(|e| format!("--redis {url:?}: {e}"))?;
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("cannot connect to Redis: {e}"))?;
    let (storable, refused): (Vec<_>, Vec<_>) = places
        .iter()
        .partition(|p| p.position.lat().abs() <= REDIS_MAX_LATITUDE);
    redis::cmd("DEL")
        .arg(key)
        .query_async::<()>(&mut connection)
        .await
        .map_err(|e| format!("DEL: {e}"))?;
    // Pipelines of 16 commands of `batch` members: round trips stay few while no single
    // request grows past a few megabytes.
    for group in storable.chunks(batch.max(1) * 16) {
        let mut pipeline = redis::pipe();
        for chunk in group.chunks(batch.max(1)) {
            let command = pipeline.cmd("GEOADD").arg(key);
            for place in chunk {
                command
                    .arg(place.position.lng())
                    .arg(place.position.lat())
                    .arg(place.id.as_str());
            }
            command.ignore();
        }
        pipeline
            .query_async::<()>(&mut connection)
            .await
            .map_err(|e| format!("GEOADD: {e}"))?;
    }
    let stored: u64 = redis::cmd("ZCARD")
        .arg(key)
        .query_async(&mut connection)
        .await
        .map_err(|e| format!("ZCARD: {e}"))?;
    eprintln!(
        "Redis key {key:?}: {stored} places ({} beyond ±{REDIS_MAX_LATITUDE}° latitude refused by GEOADD)",
        refused.len()
    );
    if stored != storable.len() as u64 {
        return Err(format!(
            "Redis holds {stored} places, {} were sent",
            storable.len()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// The tolerance of a target against Nearby.
fn tolerance(target: &Target) -> Tolerance {
    match target {
        Target::Nearby { .. } => Tolerance::NONE,
        Target::Redis { .. } => Tolerance::redis(),
        Target::Postgis { .. } => Tolerance::postgis(),
    }
}

async fn run(args: RunArgs, threads: usize) -> Result<ExitCode, String> {
    if args.concurrency == 0 || args.queries == 0 {
        return Err("--concurrency and --queries must be positive".into());
    }
    if args.radii.is_empty()
        || args
            .radii
            .iter()
            .any(|r| !(r.is_finite() && *r > 0.0 && *r <= 50_000.0))
    {
        return Err("--radii must be metres in (0, 50000], Nearby's limit".into());
    }
    if !(args.duration > 0.0 && args.duration.is_finite() && args.warmup >= 0.0) {
        return Err("--duration must be positive and --warmup not negative".into());
    }
    let mut targets: Vec<Arc<Target>> = Vec::new();
    if let Some(url) = &args.nearby {
        targets.push(Arc::new(Target::nearby(url)?));
    }
    if let Some(url) = &args.redis {
        targets.push(Arc::new(Target::redis(url, &args.key)?));
    }
    if let Some(url) = &args.postgres {
        targets.push(Arc::new(Target::postgis(url, args.postgis_order)?));
    }
    if targets.is_empty() {
        return Err("give at least one of --nearby, --redis, --postgres".into());
    }

    let dataset = places::load(Some(&args.places))?;
    let positions: HashMap<String, LatLng> = dataset
        .iter()
        .map(|p| (p.id.as_str().to_owned(), p.position))
        .collect();
    let redis_storable = dataset
        .iter()
        .filter(|p| p.position.lat().abs() <= REDIS_MAX_LATITUDE)
        .count() as u64;
    let centres = Arc::new(places::query_centres(&dataset, args.queries, args.seed));
    eprintln!(
        "{} places from {}; {} query centres (seed {})",
        dataset.len(),
        args.places.display(),
        centres.len(),
        args.seed
    );

    // 1. Each target holds the whole dataset.
    let mut versions = Vec::new();
    let mut plan = None;
    for target in &targets {
        let description = target.describe(centres[0], args.radii[0]).await?;
        let expected = match **target {
            Target::Redis { .. } => redis_storable,
            _ => dataset.len() as u64,
        };
        if description.places != expected {
            return Err(format!(
                "{} holds {} places, expected {expected}: was it loaded from {}?",
                target.name(),
                description.places,
                args.places.display()
            ));
        }
        eprintln!(
            "{}: {}, {} places",
            target.name(),
            description.version,
            description.places
        );
        if let Some(p) = description.plan {
            eprintln!(
                "PostGIS plan ({:?} form, {} m):\n{p}",
                args.postgis_order, args.radii[0]
            );
            plan = Some(p);
        }
        versions.push(description.version);
    }

    // 2. The same result sets, before anything is timed.
    let mut checks = Vec::new();
    let sample = args.verify.min(centres.len());
    for &radius_m in &args.radii {
        let mut connections = Vec::new();
        for target in &targets {
            connections.push(target.connect().await?);
        }
        let reference = &targets[0];
        let mut comparisons: Vec<Comparison> = targets[1..]
            .iter()
            .map(|t| {
                let redis = matches!(**t, Target::Redis { .. })
                    || matches!(**reference, Target::Redis { .. });
                Comparison::new(tolerance(t).plus(tolerance(reference)), redis)
            })
            .collect();
        let mut answers = vec![Vec::new(); targets.len()];
        let mut scratch = String::new();
        for &centre in &centres[..sample] {
            for ((target, connection), hits) in
                targets.iter().zip(&mut connections).zip(&mut answers)
            {
                connection
                    .search(target, centre, radius_m, hits, &mut scratch)
                    .await
                    .map_err(|e| format!("{}: {e}", target.name()))?;
            }
            for (comparison, other) in comparisons.iter_mut().zip(&answers[1..]) {
                comparison.add(centre, radius_m, &answers[0], other, &positions);
            }
        }
        for (target, comparison) in targets[1..].iter().zip(comparisons) {
            eprintln!(
                "check {}: {} vs {}: {} identical, {} explained, {} unexplained of {}",
                radius_label(radius_m),
                target.name(),
                reference.name(),
                comparison.identical,
                comparison.explained,
                comparison.unexplained,
                comparison.queries
            );
            for example in &comparison.explained_examples {
                eprintln!("  explained: {example}");
            }
            for example in &comparison.examples {
                eprintln!("  unexplained: {example}");
            }
            checks.push(CheckRow {
                radius_m,
                pair: format!("{} vs {}", target.name(), reference.name()),
                comparison,
            });
        }
    }

    // 3. Timed runs.
    let stop = match args.requests {
        Some(n) => Stop::Requests(n),
        None => Stop::After(Duration::from_secs_f64(args.duration)),
    };
    let mut pools = Vec::new();
    for target in &targets {
        pools.push(Pool::open(target, args.concurrency).await?);
    }
    let load_before = nearby_bench::procfs::load_average();
    let mut rows = Vec::new();
    for &radius_m in &args.radii {
        for (target, pool) in targets.iter().zip(&mut pools) {
            if args.warmup > 0.0 {
                pool.run(
                    target,
                    &centres,
                    radius_m,
                    Stop::After(Duration::from_secs_f64(args.warmup)),
                )
                .await?;
            }
            let result = pool.run(target, &centres, radius_m, stop).await?;
            eprintln!(
                "{} {}: {:.0} req/s, p50 {:?}, p99 {:?}, {} requests, {} errors",
                radius_label(radius_m),
                target.name(),
                result.throughput(),
                result.latency.quantile(0.5).unwrap_or_default(),
                result.latency.quantile(0.99).unwrap_or_default(),
                result.requests,
                result.errors
            );
            if let Some(error) = &result.first_error {
                eprintln!("  first error: {error}");
            }
            rows.push(Row {
                radius_m,
                target: target.name(),
                result,
            });
        }
    }
    drop(pools);
    let load_after = nearby_bench::procfs::load_average();

    // 4. The report.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Nearby search: {}\n",
        targets
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(" vs ")
    );
    let _ = writeln!(
        out,
        "Top {} within the radius, nearest first. Dataset: {}, {} places; {} query centres \
         drawn from it (seed {}). {} connections per target, one request in flight each; {} \
         per target per radius after {} s of warm-up; load client on {} runtime threads, on \
         the same {}-CPU machine as the servers, over 127.0.0.1.\n",
        targets::LIMIT,
        args.dataset_name
            .clone()
            .unwrap_or_else(|| args.places.display().to_string()),
        dataset.len(),
        centres.len(),
        args.seed,
        args.concurrency,
        match stop {
            Stop::After(d) => format!("{} s", d.as_secs_f64()),
            Stop::Requests(n) => format!("{n} requests"),
        },
        args.warmup,
        threads,
        cpus()
    );
    let _ = writeln!(out, "Servers: {}.\n", versions.join("; "));
    if let (Some(before), Some(after)) = (&load_before, &load_after) {
        // Other work on the machine competes with client and servers alike: say how much.
        let _ = writeln!(
            out,
            "Machine load average (1, 5, 15 min) before the timed runs: {before}; after: {after}.\n"
        );
    }
    if let Some(plan) = &plan {
        let scan = plan
            .lines()
            .find(|l| l.contains("Scan"))
            .map(|l| {
                let l = l.trim().trim_start_matches("->").trim();
                // Drop the sample query's "(actual rows=… loops=…)".
                l.split(" (actual").next().unwrap_or(l)
            })
            .unwrap_or("?");
        let _ = writeln!(
            out,
            "PostGIS query form: `{}` (plan: {scan}).\n",
            match args.postgis_order {
                PostgisOrder::Knn => "ORDER BY location <-> centre",
                PostgisOrder::Distance => "ORDER BY ST_Distance(location, centre, false)",
            }
        );
    }
    out.push_str(&report::results_table(&rows));
    if let Some(ratios) = report::ratio_table(&rows, "Nearby REST", &args.radii) {
        out.push('\n');
        out.push_str(&ratios);
    }
    if !checks.is_empty() {
        let _ = writeln!(
            out,
            "\nResult sets of the first {sample} queries per radius, compared as sets of ids \
             (differences are explained when every differing place lies on the radius or ties \
             with the 20th place within the two systems' distance tolerance):\n"
        );
        out.push_str(&report::check_table(&checks));
        let _ = writeln!(
            out,
            "\nmax distance gap: largest |reported − Nearby's distance| for a place in both \
             answers; distance ratio: mean reported ÷ Nearby's distance (places beyond 100 m). \
             Nearby's sphere is {} m; PostGIS with `use_spheroid = false` uses {:.4} m \
             (WGS84 (2a + b) / 3); Redis uses {} m and 52-bit geohash positions, so it finds \
             {:.1} m less far at 20 km.",
            verify::NEARBY_RADIUS_M,
            verify::POSTGIS_RADIUS_M,
            verify::REDIS_RADIUS_M,
            20_000.0 * (1.0 - verify::NEARBY_RADIUS_M / verify::REDIS_RADIUS_M),
        );
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
    if let Some(path) = &args.markdown {
        std::fs::write(path, &out).map_err(|e| format!("{}: {e}", path.display()))?;
    }

    let mut failed = false;
    for check in &checks {
        let c = &check.comparison;
        let rate = c.unexplained as f64 / c.queries.max(1) as f64;
        if rate > args.max_unexplained {
            eprintln!(
                "search-bench: {} at {}: {:.1} % of queries differ unexplained (limit {:.1} %)",
                check.pair,
                radius_label(check.radius_m),
                rate * 100.0,
                args.max_unexplained * 100.0
            );
            failed = true;
        }
    }
    for row in &rows {
        if row.result.errors > 0 {
            eprintln!(
                "search-bench: {} at {}: {} failed requests, the figures are suspect",
                row.target,
                radius_label(row.radius_m),
                row.result.errors
            );
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

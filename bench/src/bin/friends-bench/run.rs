//! `friends-bench run`: connect every user, settle, drive the timed phase, drain, report.

use crate::circles::Clock;
use crate::report::report;
use crate::session::user_task;
use crate::shared::{Counters, Phase, Recent, Shared, Tally};
use crate::sharing::set_precisions;
use crate::{RunArgs, check_sizes};
use nearby_bench::{latency, procfs};
use nearby_services::auth::Secret;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Runs the benchmark and prints its report; an error when the run could not be made or a
/// push broke what its sender shares.
pub(crate) async fn run(args: RunArgs) -> Result<(), String> {
    check_args(&args)?;
    let shared = Arc::new(prepare(args).await?);
    let args = &shared.args;
    if args.approximate_share > 0.0 {
        set_precisions(&shared).await?;
    }
    let rss_before = args.server_pid.and_then(procfs::rss_kb);
    let (phase_tx, phase_rx) = watch::channel(Phase::Connecting);
    // The timed phase's start (µs since the clock's start), sent with `Running`.
    let (start_tx, start_rx) = watch::channel(0u64);
    let mut tasks = tokio::task::JoinSet::new();
    for user in 1..=args.users {
        let shared = Arc::clone(&shared);
        let phase = phase_rx.clone();
        let start = start_rx.clone();
        tasks.spawn(async move { user_task(shared, user, phase, start).await });
    }
    let (connect_s, held_at_start) = connected(&shared).await;
    tokio::time::sleep(Duration::from_secs_f64(args.settle.max(0.0))).await;
    let rss_held = args.server_pid.and_then(procfs::rss_kb);
    let (run_s, server_cpu_s) = timed_phase(&shared, &phase_tx, &start_tx).await;
    let _ = phase_tx.send(Phase::Draining);
    drain(&shared).await;
    let rss_end = args.server_pid.and_then(procfs::rss_kb);
    let held_at_end = shared.counters.held.load(Ordering::Relaxed)
        - shared.counters.dropped.load(Ordering::Relaxed);
    shared.stopping.store(true, Ordering::Release);
    let _ = phase_tx.send(Phase::Stop);
    // Closing is best effort and bounded per connection; bound the whole of it too.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();

    let violations = shared.counters.violations.load(Ordering::Relaxed);
    report(
        &shared,
        &Figures {
            connect_s,
            run_s,
            held_at_start,
            held_at_end,
            rss: [rss_before, rss_held, rss_end],
            server_cpu_s,
        },
    );
    if violations > 0 {
        return Err(format!(
            "{violations} push(es) or snapshot entries broke what the sender shares: {:?}",
            shared.violation_kinds.snapshot()
        ));
    }
    Ok(())
}

/// The checks clap cannot make.
fn check_args(args: &RunArgs) -> Result<(), String> {
    check_sizes(args.users, args.circle)?;
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err("--rate must be a positive number of updates per second".to_owned());
    }
    if !(args.duration.is_finite() && args.duration > 0.0) {
        return Err("--duration must be a positive number of seconds".to_owned());
    }
    if args.source_ips.is_empty() {
        return Err("--source-ips needs at least one address".to_owned());
    }
    if !(0.0..=1.0).contains(&args.approximate_share) {
        return Err("--approximate-share must be a fraction between 0 and 1".to_owned());
    }
    Ok(())
}

/// Resolves the server and sets up what the connection tasks share.
async fn prepare(args: RunArgs) -> Result<Shared, String> {
    let secret = Secret::new(args.secret.as_bytes().to_vec()).map_err(|err| err.to_string())?;
    let mut url = args.url.trim_end_matches('/').to_owned();
    if !url.ends_with("/v1/ws") {
        url.push_str("/v1/ws");
    }
    let request = url
        .as_str()
        .into_client_request()
        .map_err(|err| format!("bad --url {url}: {err}"))?;
    let host = request
        .uri()
        .host()
        .ok_or_else(|| format!("--url {url} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = request.uri().port_u16().unwrap_or(80);
    let target = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|err| format!("cannot resolve {host}: {err}"))?
        .find(|addr| addr.is_ipv4() == args.source_ips[0].is_ipv4())
        .ok_or_else(|| format!("{host} has no address of the source addresses' family"))?;
    let per_user = args.rate / args.users as f64;
    if !args.idle && per_user > 1.0 {
        eprintln!(
            "friends-bench: {per_user:.2} updates/s per user: past the server's default \
             --location-rate of 1/s, expect rate_limited errors unless it was raised"
        );
    }

    Ok(Shared {
        clock: Clock::new(),
        counters: Counters::default(),
        latency: latency::Shared::default(),
        latency_by_minute: (0..(args.duration / 60.0).ceil() as usize + 1)
            .map(|_| latency::Shared::default())
            .collect(),
        errors: Tally::default(),
        closes: Tally::default(),
        failures: Tally::default(),
        sent_at: (0..args.users).map(|_| AtomicU64::new(0)).collect(),
        recent: (0..args.users)
            .map(|_| Mutex::new(Recent::default()))
            .collect(),
        approximate_latency: latency::Shared::default(),
        violation_kinds: Tally::default(),
        held_in_circle: (0..args.users.div_ceil(args.circle))
            .map(|_| AtomicU64::new(0))
            .collect(),
        run_start_unix_ms: AtomicU64::new(u64::MAX),
        secret,
        target,
        request,
        connect_gate: Semaphore::new(args.connect_concurrency.max(1)),
        next_source: AtomicUsize::new(0),
        stopping: AtomicBool::new(false),
        args,
    })
}

/// Waits until every connection task has connected or failed, with progress lines; the
/// seconds it took and the connections held.
async fn connected(shared: &Shared) -> (f64, u64) {
    let args = &shared.args;
    eprintln!(
        "friends-bench: connecting {} users to {} ({} at a time, from {} source address(es))",
        args.users,
        shared.request.uri(),
        args.connect_concurrency,
        args.source_ips.len()
    );
    let connect_started = Instant::now();
    // Progress while connecting; the tasks count themselves.
    let mut last_report = Instant::now();
    while shared.counters.settled.load(Ordering::Relaxed) < args.users {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "friends-bench: {} held, {} failed of {} after {:.0} s",
                shared.counters.held.load(Ordering::Relaxed),
                shared.counters.failed.load(Ordering::Relaxed),
                args.users,
                connect_started.elapsed().as_secs_f64()
            );
        }
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    let held_at_start = shared.counters.held.load(Ordering::Relaxed);
    eprintln!(
        "friends-bench: {held_at_start} connections held after {connect_s:.1} s; settling {:.0} s",
        args.settle
    );
    (connect_s, held_at_start)
}

/// The timed phase: starts the updates, waits `--duration`; the seconds it lasted and the
/// server's CPU seconds meanwhile.
async fn timed_phase(
    shared: &Shared,
    phase_tx: &watch::Sender<Phase>,
    start_tx: &watch::Sender<u64>,
) -> (f64, Option<f64>) {
    let args = &shared.args;
    let cpu_start = args.server_pid.and_then(procfs::cpu_s);
    let run_start_us = shared.clock.micros();
    shared
        .run_start_unix_ms
        .store(shared.clock.unix_ms_at(run_start_us), Ordering::Release);
    let _ = start_tx.send(run_start_us);
    let _ = phase_tx.send(Phase::Running);
    eprintln!(
        "friends-bench: {} for {:.0} s",
        if args.idle {
            "holding".to_owned()
        } else {
            format!("{:.0} updates/s", args.rate)
        },
        args.duration
    );
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let run_s = (shared.clock.micros() - run_start_us) as f64 / 1e6;
    let server_cpu_s = args
        .server_pid
        .and_then(procfs::cpu_s)
        .zip(cpu_start)
        .map(|(end, start)| end - start);
    (run_s, server_cpu_s)
}

/// Reads what is still in flight after the timed phase.
async fn drain(shared: &Shared) {
    let args = &shared.args;
    // Read what is still in flight; stop early once everything expected has arrived (after a
    // moment: updates being sent as the phase changed are not counted as expected yet).
    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain.max(0.0));
    tokio::time::sleep(
        Duration::from_millis(200).min(drain_until.saturating_duration_since(Instant::now())),
    )
    .await;
    while Instant::now() < drain_until
        && shared.counters.deliveries.load(Ordering::Relaxed)
            < shared.counters.expected.load(Ordering::Relaxed)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) struct Figures {
    pub(crate) connect_s: f64,
    pub(crate) run_s: f64,
    pub(crate) held_at_start: u64,
    pub(crate) held_at_end: u64,
    pub(crate) rss: [Option<u64>; 3],
    /// Server CPU seconds used during the timed phase.
    pub(crate) server_cpu_s: Option<f64>,
}

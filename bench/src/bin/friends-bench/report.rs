//! The report of a run: text lines, then one JSON line (scripts/bench-friends parses both).

use crate::circles::approximate_sharer;
use crate::run::Figures;
use crate::shared::Shared;
use nearby_bench::latency::{self, Histogram};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Prints the report of a run.
pub(crate) fn report(shared: &Shared, figures: &Figures) {
    let summary = summarise(shared, figures);
    print_text(shared, figures, &summary);
    println!("{}", json(shared, figures, &summary));
}

/// The figures both forms of the report show.
struct Summary {
    sent: u64,
    expected: u64,
    delivered: u64,
    ratio: Option<f64>,
    approximate_users: u64,
    approximate_sent: u64,
    approximate_pairs: u64,
    approximate_pushes: u64,
    violations: u64,
    approximate_ratio: Option<f64>,
    pushes: u64,
    violation_kinds: BTreeMap<String, u64>,
    approximate_latency: Histogram,
    latency: Histogram,
    p99_by_minute: Vec<u64>,
    rss_before: Option<u64>,
    rss_held: Option<u64>,
    rss_end: Option<u64>,
    /// Server memory per held connection, bytes, at `held` and at the end.
    per_conn_held: Option<f64>,
    per_conn_end: Option<f64>,
    errors: BTreeMap<String, u64>,
    closes: BTreeMap<String, u64>,
    failures: BTreeMap<String, u64>,
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

fn summarise(shared: &Shared, figures: &Figures) -> Summary {
    let args = &shared.args;
    let c = &shared.counters;
    let (sent, expected, delivered) = (
        load(&c.updates_sent),
        load(&c.expected),
        load(&c.deliveries),
    );
    let ratio = if expected == 0 {
        None
    } else {
        Some(delivered as f64 / expected as f64)
    };
    // Approximate sharing: pushes only on a change of cell, reported apart.
    let approximate_users = (1..=args.users)
        .filter(|&user| approximate_sharer(user, args.approximate_share))
        .count() as u64;
    let (approximate_sent, approximate_pairs, approximate_pushes, violations) = (
        load(&c.approximate_updates_sent),
        load(&c.approximate_pair_updates),
        load(&c.approximate_deliveries),
        load(&c.violations),
    );
    let approximate_ratio =
        (approximate_pairs > 0).then(|| approximate_pushes as f64 / approximate_pairs as f64);
    let pushes = delivered + approximate_pushes;
    let violation_kinds = shared.violation_kinds.snapshot();
    let approximate_latency = shared.approximate_latency.snapshot();
    let latency = shared.latency.snapshot();
    // Minutes with samples (the last one may be partial or empty).
    let p99_by_minute: Vec<u64> = shared
        .latency_by_minute
        .iter()
        .map(latency::Shared::snapshot)
        .filter(|h| h.count() > 0)
        .map(|h| h.quantile_us(0.99))
        .collect();
    let [rss_before, rss_held, rss_end] = figures.rss;
    let per_conn = |after: Option<u64>| -> Option<f64> {
        let (before, after) = (rss_before?, after?);
        (figures.held_at_start > 0)
            .then(|| (after as f64 - before as f64) * 1024.0 / figures.held_at_start as f64)
    };
    let errors = shared.errors.snapshot();
    let closes = shared.closes.snapshot();
    let failures = shared.failures.snapshot();

    Summary {
        sent,
        expected,
        delivered,
        ratio,
        approximate_users,
        approximate_sent,
        approximate_pairs,
        approximate_pushes,
        violations,
        approximate_ratio,
        pushes,
        violation_kinds,
        approximate_latency,
        latency,
        p99_by_minute,
        rss_before,
        rss_held,
        rss_end,
        errors,
        closes,
        failures,
        per_conn_held: per_conn(rss_held),
        per_conn_end: per_conn(rss_end),
    }
}

/// The human-readable lines.
fn print_text(shared: &Shared, figures: &Figures, s: &Summary) {
    let args = &shared.args;
    let c = &shared.counters;
    let per_s = |n: u64| n as f64 / figures.run_s.max(1e-9);
    let &Summary {
        sent,
        expected,
        delivered,
        ratio,
        approximate_users,
        approximate_sent,
        approximate_pairs,
        approximate_pushes,
        violations,
        approximate_ratio,
        pushes,
        ref violation_kinds,
        ref approximate_latency,
        ref latency,
        ref p99_by_minute,
        rss_before,
        rss_held,
        rss_end,
        per_conn_held,
        per_conn_end,
        ref errors,
        ref closes,
        ref failures,
    } = s;
    let (p50, p90, p99, p999, max, mean) = (
        latency.quantile_us(0.50),
        latency.quantile_us(0.90),
        latency.quantile_us(0.99),
        latency.quantile_us(0.999),
        latency.max_us(),
        latency.mean_us(),
    );
    let (ap50, ap99, amax) = (
        approximate_latency.quantile_us(0.50),
        approximate_latency.quantile_us(0.99),
        approximate_latency.max_us(),
    );
    println!(
        "nearby friends bench: {} users, circles of {}, {}",
        args.users,
        args.circle,
        if args.idle {
            format!("idle for {:.0} s", args.duration)
        } else {
            format!("{:.0} updates/s for {:.0} s", args.rate, args.duration)
        }
    );
    println!(
        "  connections  attempted {}  held {} (at the end {})  failed {}  in {:.1} s{}",
        load(&c.attempted),
        figures.held_at_start,
        figures.held_at_end,
        load(&c.failed),
        figures.connect_s,
        if failures.is_empty() {
            String::new()
        } else {
            format!("  failures {failures:?}")
        }
    );
    println!(
        "  snapshots    {} (friends listed {}: exact {}, approximate {})",
        load(&c.snapshots),
        load(&c.snapshot_friends),
        load(&c.snapshot_exact),
        load(&c.snapshot_approximate)
    );
    if !args.idle {
        println!(
            "  updates      sent {sent} ({:.0}/s)  send errors {}{}",
            per_s(sent),
            load(&c.send_errors),
            if approximate_users > 0 {
                format!("  (by approximate sharers {approximate_sent})")
            } else {
                String::new()
            }
        );
        println!(
            "  deliveries   {delivered} of {expected} expected ({})  {:.0}/s  \
             (+{} for first locations, {} from strangers, {} gone while held, {} at close)",
            ratio.map_or("n/a".to_owned(), |r| format!("{:.4}", r)),
            per_s(delivered),
            load(&c.early_deliveries),
            load(&c.strangers),
            load(&c.gone),
            load(&c.gone_at_close)
        );
        println!(
            "  latency      p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  \
             mean {:.2} ms  ({} timed in ms only)",
            ms(p50),
            ms(p90),
            ms(p99),
            ms(p999),
            ms(max),
            ms(mean),
            load(&c.coarse)
        );
        if p99_by_minute.len() > 1 {
            let series: Vec<String> = p99_by_minute
                .iter()
                .map(|p| format!("{:.2}", ms(*p)))
                .collect();
            println!("  p99/minute   {} ms", series.join(" "));
        }
    }
    if approximate_users > 0 {
        println!(
            "  approximate  {approximate_users} of {} users share approximately ({}): \
             {approximate_pushes} pushes for {approximate_pairs} approximate-pair updates ({})  \
             latency p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            args.users,
            args.approximate_share,
            approximate_ratio.map_or("n/a".to_owned(), |r| format!("{r:.4}")),
            ms(ap50),
            ms(ap99),
            ms(amax),
        );
        if !args.idle {
            println!(
                "  pushes       {pushes} ({:.0}/s): exact {delivered}, approximate {approximate_pushes}; \
                 the delivery ratio above counts exact pairs only",
                per_s(pushes)
            );
        }
    }
    println!(
        "  precision    violations {violations}{}",
        if violation_kinds.is_empty() {
            String::new()
        } else {
            format!(" {violation_kinds:?}")
        }
    );
    println!("  errors       {errors:?}  closes {closes:?}");
    if let Some(cpu) = figures.server_cpu_s {
        println!(
            "  server CPU   {cpu:.1} s in {:.1} s ({:.2} cores busy): {:.0} pushes per server CPU second{}",
            figures.run_s,
            cpu / figures.run_s.max(1e-9),
            if cpu > 0.0 { pushes as f64 / cpu } else { 0.0 },
            if approximate_users > 0 {
                " (exact + approximate)"
            } else {
                ""
            }
        );
    }
    if let Some(pid) = args.server_pid {
        let show = |kb: Option<u64>| {
            kb.map_or("?".to_owned(), |kb| {
                format!("{:.1} MiB", kb as f64 / 1024.0)
            })
        };
        println!(
            "  server RSS   (pid {pid}) before {}  held {}  end {}  per connection: held {}  end {}",
            show(rss_before),
            show(rss_held),
            show(rss_end),
            per_conn_held.map_or("?".to_owned(), |b| format!("{:.1} KiB", b / 1024.0)),
            per_conn_end.map_or("?".to_owned(), |b| format!("{:.1} KiB", b / 1024.0)),
        );
    }
}

/// The machine-readable line.
fn json(shared: &Shared, figures: &Figures, s: &Summary) -> serde_json::Value {
    let args = &shared.args;
    let c = &shared.counters;
    let per_s = |n: u64| n as f64 / figures.run_s.max(1e-9);
    let &Summary {
        sent,
        expected,
        delivered,
        ratio,
        approximate_users,
        approximate_sent,
        approximate_pairs,
        approximate_pushes,
        violations,
        approximate_ratio,
        pushes,
        ref violation_kinds,
        ref approximate_latency,
        ref latency,
        ref p99_by_minute,
        rss_before,
        rss_held,
        rss_end,
        per_conn_held,
        per_conn_end,
        ref errors,
        ref closes,
        ref failures,
    } = s;
    serde_json::json!({
        "users": args.users,
        "circle": args.circle,
        "idle": args.idle,
        "rate": args.rate,
        "duration_s": figures.run_s,
        "source_ips": args.source_ips.len(),
        "connections": {
            "attempted": load(&c.attempted),
            "held": figures.held_at_start,
            "held_at_end": figures.held_at_end,
            "failed": load(&c.failed),
            "failures": failures,
            "connect_s": figures.connect_s,
        },
        "snapshots": load(&c.snapshots),
        "updates_sent": sent,
        "updates_per_s": per_s(sent),
        "send_errors": load(&c.send_errors),
        "deliveries": delivered,
        "expected_deliveries": expected,
        "delivery_ratio": ratio,
        "deliveries_per_s": per_s(delivered),
        "early_deliveries": load(&c.early_deliveries),
        "stranger_deliveries": load(&c.strangers),
        "friend_gone": load(&c.gone),
        "friend_gone_at_close": load(&c.gone_at_close),
        "latency_us": {
            "p50": latency.quantile_us(0.50), "p90": latency.quantile_us(0.90),
            "p99": latency.quantile_us(0.99), "p999": latency.quantile_us(0.999),
            "max": latency.max_us(), "mean": latency.mean_us(),
            "count": latency.count(), "ms_resolution": load(&c.coarse),
            "p99_by_minute": p99_by_minute,
        },
        "errors": errors,
        "closes": closes,
        "server_rss_kb": {
            "before": rss_before, "held": rss_held, "end": rss_end,
        },
        "server_rss_bytes_per_connection": {
            "held": per_conn_held, "end": per_conn_end,
        },
        "server_cpu_s": figures.server_cpu_s,
        "server_cores_busy": figures.server_cpu_s.map(|cpu| cpu / figures.run_s.max(1e-9)),
        "deliveries_per_server_cpu_s": figures.server_cpu_s
            .filter(|cpu| *cpu > 0.0)
            .map(|cpu| delivered as f64 / cpu),
        "approximate_share": args.approximate_share,
        "approximate_users": approximate_users,
        "approximate_updates_sent": approximate_sent,
        "exact_pushes": delivered,
        "approximate_pushes": approximate_pushes,
        "approximate_pair_updates": approximate_pairs,
        "approximate_push_ratio": approximate_ratio,
        "approximate_latency_us": {
            "p50": approximate_latency.quantile_us(0.50), "p99": approximate_latency.quantile_us(0.99),
            "max": approximate_latency.max_us(), "count": approximate_latency.count(),
        },
        "pushes": pushes,
        "pushes_per_s": per_s(pushes),
        "pushes_per_server_cpu_s": figures.server_cpu_s
            .filter(|cpu| *cpu > 0.0)
            .map(|cpu| pushes as f64 / cpu),
        "snapshot_entries": {
            "exact": load(&c.snapshot_exact), "approximate": load(&c.snapshot_approximate),
        },
        "precision_violations": violations,
        "precision_violation_kinds": violation_kinds,
    })
}

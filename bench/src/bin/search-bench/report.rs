//! The markdown report: throughput and latency per target and radius, the Nearby ratios,
//! and the result-set comparison.

use super::load::RunResult;
use super::verify::Comparison;
use std::fmt::Write as _;
use std::time::Duration;

/// One timed run, labelled.
pub struct Row {
    /// Search radius, metres.
    pub radius_m: f64,
    /// Target name.
    pub target: &'static str,
    /// The measurement.
    pub result: RunResult,
}

/// One comparison, labelled.
pub struct CheckRow {
    /// Search radius, metres.
    pub radius_m: f64,
    /// `"<target> vs <reference>"`.
    pub pair: String,
    /// The counts.
    pub comparison: Comparison,
}

/// `5000` → `5 km`, `2500` → `2.5 km`, `800` → `800 m`.
pub fn radius_label(radius_m: f64) -> String {
    if radius_m >= 1000.0 {
        format!("{} km", radius_m / 1000.0)
    } else {
        format!("{radius_m} m")
    }
}

/// Thousands separators: `17734.2` → `17,734`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn millis(latency: Option<Duration>) -> String {
    match latency {
        None => "–".into(),
        Some(d) => {
            let ms = d.as_secs_f64() * 1e3;
            if ms < 10.0 {
                format!("{ms:.2}")
            } else {
                format!("{ms:.1}")
            }
        }
    }
}

/// The throughput/latency table, one row per radius and target.
pub fn results_table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str("| radius | target | req/s | p50 ms | p99 ms | requests | errors |\n");
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
    for row in rows {
        let r = &row.result;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            radius_label(row.radius_m),
            row.target,
            thousands(r.throughput()),
            millis(r.latency.quantile(0.50)),
            millis(r.latency.quantile(0.99)),
            thousands(r.requests as f64),
            r.errors,
        );
    }
    out
}

/// Nearby's throughput divided by each other target's, and the same for p50 latency
/// (other ÷ Nearby, so above 1 means Nearby is faster on both), per radius.
pub fn ratio_table(rows: &[Row], nearby: &str, radii: &[f64]) -> Option<String> {
    // Every other target once, in the order first run.
    let mut others: Vec<&'static str> = Vec::new();
    for row in rows {
        if row.target != nearby && !others.contains(&row.target) {
            others.push(row.target);
        }
    }
    if others.is_empty() || !rows.iter().any(|r| r.target == nearby) {
        return None;
    }
    let mut out = String::from("| radius |");
    for other in &others {
        let short = other.split_whitespace().next().unwrap_or(other);
        let _ = write!(out, " Nearby/{short} req/s | {short}/Nearby p50 |");
    }
    out.push_str("\n| --- |");
    for _ in &others {
        out.push_str(" ---: | ---: |");
    }
    out.push('\n');
    for &radius in radii {
        let find = |name: &str| {
            rows.iter()
                .find(|r| r.radius_m == radius && r.target == name)
                .map(|r| &r.result)
        };
        let Some(base) = find(nearby) else {
            continue;
        };
        let _ = write!(out, "| {} |", radius_label(radius));
        for other in &others {
            match find(other) {
                Some(o) => {
                    let p50 = match (o.latency.quantile(0.5), base.latency.quantile(0.5)) {
                        (Some(a), Some(b)) if !b.is_zero() => {
                            format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64())
                        }
                        _ => "–".into(),
                    };
                    let _ = write!(
                        out,
                        " {:.2}× | {p50} |",
                        base.throughput() / o.throughput().max(1e-9)
                    );
                }
                None => out.push_str(" – | – |"),
            }
        }
        out.push('\n');
    }
    Some(out)
}

/// The result-set comparison table.
pub fn check_table(rows: &[CheckRow]) -> String {
    let mut out = String::new();
    out.push_str(
        "| radius | compared | queries | identical sets | differ, explained | differ, unexplained | mean results | max distance gap m | distance ratio |\n",
    );
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for row in rows {
        let c = &row.comparison;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.1} | {:.4} | {} |",
            radius_label(row.radius_m),
            row.pair,
            c.queries,
            c.identical,
            c.explained,
            c.unexplained,
            c.results as f64 / c.queries.max(1) as f64,
            c.max_distance_gap_m,
            if c.mean_distance_ratio.is_nan() {
                "–".to_owned()
            } else {
                format!("{:.6}", c.mean_distance_ratio)
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(17_734.4), "17,734");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(radius_label(5000.0), "5 km");
        assert_eq!(radius_label(2500.0), "2.5 km");
        assert_eq!(radius_label(800.0), "800 m");
        assert_eq!(millis(Some(Duration::from_micros(1234))), "1.23");
        assert_eq!(millis(Some(Duration::from_micros(12_340))), "12.3");
    }
}

//! Prometheus metrics: request counts and latency histograms by route, method and status, and
//! the catalog's size, rendered in the text exposition format at `/metrics`.
//!
//! A handful of counters behind one short-lived mutex each: a request updates them once, and
//! no lock is ever held across an `.await`.
//!
//! Every label value comes from a fixed set, so `/metrics` does not grow with what strangers
//! send: the method is one of [`METHODS`] or `other`, the route a route template (or `other`,
//! as the API's middleware labels unmatched paths), the status one the server chose.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Histogram bucket upper bounds, seconds: 50 µs to 10 s.
const BUCKETS_S: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

#[derive(Clone, Default)]
struct Histogram {
    buckets: [u64; BUCKETS_S.len()],
    count: u64,
    sum_s: f64,
}

/// The HTTP methods labelled by name; any other method, standard (TRACE, CONNECT) or
/// invented (any token is a valid method), is labelled [`OTHER`].
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// The label value for a method outside [`METHODS`], and for a path that matched no route.
pub const OTHER: &str = "other";

/// Counts by route template (never a raw path, which would explode the label set), then by
/// method (from [`METHODS`]) and status. Nested so that a request looks its route up by
/// `&str`: only a route's first request allocates its key.
type Requests = BTreeMap<String, BTreeMap<(&'static str, u16), u64>>;
/// Latency histograms by route template, then method.
type Latencies = BTreeMap<String, BTreeMap<&'static str, Histogram>>;

/// The method's label: itself if it is one of [`METHODS`], else [`OTHER`]. Methods are
/// case-sensitive, so `get` is `other`.
///
/// ```
/// use nearby_services::metrics::method_label;
/// assert_eq!(method_label("DELETE"), "DELETE");
/// assert_eq!(method_label("FOO123"), "other");
/// assert_eq!(method_label("get"), "other");
/// ```
pub fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|&&known| known == method)
        .copied()
        .unwrap_or(OTHER)
}

/// The metrics registry.
///
/// ```
/// use nearby_services::metrics::Metrics;
/// let metrics = Metrics::default();
/// metrics.observe_request("/v1/search/nearby", "GET", 200, 0.0003);
/// let text = metrics.render(10);
/// assert!(text.contains(r#"http_requests_total{route="/v1/search/nearby",method="GET",status="200"} 1"#));
/// assert!(text.contains("nearby_businesses 10"));
/// ```
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<Requests>,
    latency: Mutex<Latencies>,
    change_feed_events: Mutex<u64>,
}

impl Metrics {
    /// Records one finished request. `route` must come from a fixed set (a route template,
    /// or [`OTHER`]); `method` may be anything, it is labelled by [`method_label`].
    ///
    /// ```
    /// # use nearby_services::metrics::Metrics;
    /// let metrics = Metrics::default();
    /// metrics.observe_request("/healthz", "GET", 200, 0.00001);
    /// metrics.observe_request("/healthz", "BREW", 405, 0.00001);
    /// metrics.observe_request("/healthz", "WHEN", 405, 0.00001);
    /// let text = metrics.render(0);
    /// assert!(text.contains(r#"http_requests_total{route="/healthz",method="other",status="405"} 2"#));
    /// assert!(!text.contains("BREW"));
    /// ```
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        {
            let mut requests = self
                .requests
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let by_route = match requests.get_mut(route) {
                Some(by_route) => by_route,
                None => requests.entry(route.to_owned()).or_default(),
            };
            *by_route.entry((method, status)).or_default() += 1;
        }
        let mut latency = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let by_route = match latency.get_mut(route) {
            Some(by_route) => by_route,
            None => latency.entry(route.to_owned()).or_default(),
        };
        let histogram = by_route.entry(method).or_default();
        histogram.count += 1;
        histogram.sum_s += seconds;
        if let Some(i) = BUCKETS_S.iter().position(|&bound| seconds <= bound) {
            histogram.buckets[i] += 1;
        }
    }

    /// Counts one change applied from the database change feed.
    ///
    /// ```
    /// # use nearby_services::metrics::Metrics;
    /// let m = Metrics::default();
    /// m.observe_change_feed_event();
    /// assert!(m.render(0).contains("nearby_change_feed_events_total 1"));
    /// ```
    pub fn observe_change_feed_event(&self) {
        *self
            .change_feed_events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
    }

    /// The exposition text.
    ///
    /// ```
    /// # use nearby_services::metrics::Metrics;
    /// assert!(Metrics::default().render(3).starts_with("# HELP"));
    /// ```
    pub fn render(&self, businesses: usize) -> String {
        let mut out = String::with_capacity(4096);
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let latency = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let events = *self
            .change_feed_events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);

        out.push_str("# HELP http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE http_requests_total counter\n");
        let requests = requests
            .iter()
            .flat_map(|(route, counts)| counts.iter().map(move |(key, count)| (route, key, count)));
        for (route, (method, status), count) in requests {
            let _ = writeln!(
                out,
                "http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str("# HELP http_request_duration_seconds Time to answer HTTP requests.\n");
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        let latency = latency.iter().flat_map(|(route, by_method)| {
            by_method.iter().map(move |(method, h)| (route, method, h))
        });
        for (route, method, h) in latency {
            let labels = format!("route=\"{route}\",method=\"{method}\"");
            let mut cumulative = 0;
            for (bound, count) in BUCKETS_S.iter().zip(h.buckets) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum_s
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out.push_str("# HELP nearby_businesses Businesses in the in-memory index.\n");
        out.push_str("# TYPE nearby_businesses gauge\n");
        let _ = writeln!(out, "nearby_businesses {businesses}");
        out.push_str(
            "# HELP nearby_change_feed_events_total Changes applied from the database change feed.\n",
        );
        out.push_str("# TYPE nearby_change_feed_events_total counter\n");
        let _ = writeln!(out, "nearby_change_feed_events_total {events}");
        out
    }
}

/// The catalog's memory and load time, appended to the exposition text: heap bytes of the
/// records and the index, the same per business, and seconds from start to ready (absent
/// while loading).
///
/// ```
/// let mut text = String::new();
/// nearby_services::metrics::render_catalog(&mut text, 4, 400, Some(1.5));
/// assert!(text.contains("nearby_catalog_bytes_per_business 100"));
/// assert!(text.contains("nearby_catalog_load_seconds 1.5"));
/// ```
pub fn render_catalog(out: &mut String, businesses: usize, heap_bytes: usize, load_s: Option<f64>) {
    out.push_str(
        "# HELP nearby_catalog_heap_bytes Heap bytes of the catalog (records and geo index).\n",
    );
    out.push_str("# TYPE nearby_catalog_heap_bytes gauge\n");
    let _ = writeln!(out, "nearby_catalog_heap_bytes {heap_bytes}");
    out.push_str(
        "# HELP nearby_catalog_bytes_per_business Catalog heap bytes over the businesses it holds.\n",
    );
    out.push_str("# TYPE nearby_catalog_bytes_per_business gauge\n");
    let per_business = if businesses == 0 {
        0.0
    } else {
        heap_bytes as f64 / businesses as f64
    };
    let _ = writeln!(out, "nearby_catalog_bytes_per_business {per_business}");
    if let Some(load_s) = load_s {
        out.push_str(
            "# HELP nearby_catalog_load_seconds Seconds from start until the catalog was loaded and the service ready.\n",
        );
        out.push_str("# TYPE nearby_catalog_load_seconds gauge\n");
        let _ = writeln!(out, "nearby_catalog_load_seconds {load_s}");
    }
}

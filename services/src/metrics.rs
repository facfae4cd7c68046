//! Prometheus metrics (`prometheus-client`): request counts and latency histograms by route,
//! method and status, the change feed, and the catalog's size, memory and load time, encoded
//! in the OpenMetrics text format at `/metrics` (the gateway's registry is encoded after it).
//!
//! Every label value comes from a fixed set, so `/metrics` does not grow with what strangers
//! send: the method is one of [`METHODS`] or `other`, the route one of [`ROUTES`] or `other`
//! (unmatched paths, and a route missing from the table, which a test forbids), the status
//! one the server chose. Labels are `&'static str`, so recording a request allocates nothing.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

/// Histogram bucket upper bounds, seconds: 50 µs to 10 s.
const BUCKETS_S: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// The HTTP methods labelled by name; any other method, standard (TRACE, CONNECT) or
/// invented (any token is a valid method), is labelled [`OTHER`].
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// Every route template of the service and the gateway, as axum's `MatchedPath` gives it.
/// A route missing here would be labelled [`OTHER`]; a unit test checks that every path of
/// the OpenAPI document is here.
pub const ROUTES: [&str; 23] = [
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/web/config.json",
    "/web/{*path}",
    "/v1/search/nearby",
    "/v1/search/nearest",
    "/v1/search/within",
    "/v1/search/clusters",
    "/v1/businesses",
    "/v1/businesses/{id}",
    "/v1/dev/token",
    "/v1/ws",
    "/v1/gateway",
    "/v1/me/friends",
    "/v1/me/friends/{user_id}",
    "/v1/me/friends/{user_id}/sharing",
    "/v1/me/friend-requests",
    "/v1/me/friend-requests/{user_id}",
    "/v1/me/sharing",
    OTHER,
];

/// The label value for a method outside [`METHODS`], and for a path that matched no route.
pub const OTHER: &str = "other";

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

/// The route's label: the template from [`ROUTES`], else [`OTHER`].
///
/// ```
/// use nearby_services::metrics::route_label;
/// assert_eq!(route_label("/v1/businesses/{id}"), "/v1/businesses/{id}");
/// assert_eq!(route_label("/v1/businesses/abc"), "other");
/// ```
pub fn route_label(route: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|&&known| known == route)
        .copied()
        .unwrap_or(OTHER)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    route: &'static str,
    method: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS_S)
}

/// The statuses whose counters are kept at hand (the rest are looked up in their family).
const COMMON_STATUSES: [u16; 15] = [
    200, 201, 204, 307, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 503,
];

/// Index of a label value in its fixed set (`set` ends with [`OTHER`] or is followed by it).
fn index_of(set: &[&'static str], value: &'static str) -> usize {
    set.iter()
        .position(|&known| std::ptr::eq(known, value) || known == value)
        .unwrap_or(set.len())
}

/// Handles to the series a request updates, created in their family on first use and then
/// reached by index: the family's lookup (a lock and a hash of the labels) is paid once per
/// series, not per request. Creating on first use keeps `/metrics` to the series seen.
struct Handles {
    /// By (route, method).
    latency: Box<[OnceLock<Histogram>]>,
    /// By (route, method, common status).
    requests: Box<[OnceLock<Counter>]>,
}

const METHOD_SLOTS: usize = METHODS.len() + 1;

impl Default for Handles {
    fn default() -> Self {
        let pairs = ROUTES.len() * METHOD_SLOTS;
        Self {
            latency: (0..pairs).map(|_| OnceLock::new()).collect(),
            requests: (0..pairs * COMMON_STATUSES.len())
                .map(|_| OnceLock::new())
                .collect(),
        }
    }
}

/// What `/metrics` says of the catalog, read at scrape time.
#[derive(Clone, Copy, Debug, Default)]
pub struct CatalogFigures {
    /// Businesses in the in-memory index.
    pub businesses: usize,
    /// Heap bytes of the records and the index.
    pub heap_bytes: usize,
    /// Seconds from start until ready (`None` while loading).
    pub load_seconds: Option<f64>,
}

/// The service's registry.
///
/// ```
/// use nearby_services::metrics::{CatalogFigures, Metrics};
/// let metrics = Metrics::default();
/// metrics.observe_request("/v1/search/nearby", "GET", 200, 0.0003);
/// let figures = CatalogFigures { businesses: 10, heap_bytes: 1_000, load_seconds: Some(0.5) };
/// let text = metrics.render(figures);
/// assert!(text.contains(r#"http_requests_total{route="/v1/search/nearby",method="GET",status="200"} 1"#));
/// assert!(text.contains("nearby_businesses 10"));
/// assert!(text.contains("nearby_catalog_bytes_per_business 100.0"));
/// ```
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    change_feed_events: Counter,
    businesses: Gauge,
    heap_bytes: Gauge,
    bytes_per_business: Gauge<f64, AtomicU64>,
    load_seconds: Gauge<f64, AtomicU64>,
    handles: Handles,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let latency = Family::<LatencyLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests",
            latency.clone(),
        );
        let change_feed_events = Counter::default();
        registry.register(
            "nearby_change_feed_events",
            "Changes applied from the database change feed",
            change_feed_events.clone(),
        );
        let businesses = Gauge::default();
        registry.register(
            "nearby_businesses",
            "Businesses in the in-memory index",
            businesses.clone(),
        );
        let heap_bytes = Gauge::default();
        registry.register(
            "nearby_catalog_heap_bytes",
            "Heap bytes of the catalog (records and geo index)",
            heap_bytes.clone(),
        );
        let bytes_per_business = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "nearby_catalog_bytes_per_business",
            "Catalog heap bytes over the businesses it holds",
            bytes_per_business.clone(),
        );
        let load_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "nearby_catalog_load_seconds",
            "Seconds from start until the catalog was loaded and the service ready (0 while loading)",
            load_seconds.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            change_feed_events,
            businesses,
            heap_bytes,
            bytes_per_business,
            load_seconds,
            handles: Handles::default(),
        }
    }
}

impl Metrics {
    /// Records one finished request. `route` is labelled by [`route_label`], `method` by
    /// [`method_label`].
    ///
    /// ```
    /// # use nearby_services::metrics::Metrics;
    /// let metrics = Metrics::default();
    /// metrics.observe_request("/healthz", "GET", 200, 0.00001);
    /// metrics.observe_request("/healthz", "BREW", 405, 0.00001);
    /// metrics.observe_request("/healthz", "WHEN", 405, 0.00001);
    /// let text = metrics.render(Default::default());
    /// assert!(text.contains(r#"http_requests_total{route="/healthz",method="other",status="405"} 2"#));
    /// assert!(!text.contains("BREW"));
    /// ```
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let route = route_label(route);
        let method = method_label(method);
        // `route_label` and `method_label` return elements of ROUTES and METHODS or OTHER,
        // so both indexes are in range (OTHER is ROUTES's last and METHODS's one past); the
        // lookups below fall back to the families all the same.
        let pair = index_of(&ROUTES, route) * METHOD_SLOTS + index_of(&METHODS, method);
        let labels = || RequestLabels {
            route,
            method,
            status,
        };
        let counter = COMMON_STATUSES
            .iter()
            .position(|&common| common == status)
            .and_then(|common| {
                self.handles
                    .requests
                    .get(pair * COMMON_STATUSES.len() + common)
            });
        match counter {
            Some(slot) => slot
                .get_or_init(|| self.requests.get_or_create_owned(&labels()))
                .inc(),
            None => self.requests.get_or_create(&labels()).inc(),
        };
        let latency = LatencyLabels { route, method };
        match self.handles.latency.get(pair) {
            Some(slot) => slot
                .get_or_init(|| self.latency.get_or_create_owned(&latency))
                .observe(seconds),
            None => self.latency.get_or_create(&latency).observe(seconds),
        }
    }

    /// Counts one change applied from the database change feed.
    ///
    /// ```
    /// # use nearby_services::metrics::Metrics;
    /// let m = Metrics::default();
    /// m.observe_change_feed_event();
    /// assert!(m.render(Default::default()).contains("nearby_change_feed_events_total 1"));
    /// ```
    pub fn observe_change_feed_event(&self) {
        self.change_feed_events.inc();
    }

    /// The exposition text of this registry with the catalog's figures, without the final
    /// `# EOF` (the gateway's registry follows it; see [`finish`]).
    ///
    /// ```
    /// # use nearby_services::metrics::Metrics;
    /// assert!(Metrics::default().render(Default::default()).starts_with("# HELP"));
    /// ```
    pub fn render(&self, figures: CatalogFigures) -> String {
        let gauge = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        self.businesses.set(gauge(figures.businesses));
        self.heap_bytes.set(gauge(figures.heap_bytes));
        self.bytes_per_business.set(if figures.businesses == 0 {
            0.0
        } else {
            figures.heap_bytes as f64 / figures.businesses as f64
        });
        self.load_seconds.set(figures.load_seconds.unwrap_or(0.0));
        let mut out = String::with_capacity(8192);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        out
    }
}

/// Ends an exposition (`# EOF`, as OpenMetrics requires).
///
/// ```
/// let mut text = String::new();
/// nearby_services::metrics::finish(&mut text);
/// assert_eq!(text, "# EOF\n");
/// ```
pub fn finish(out: &mut String) {
    let _ = prometheus_client::encoding::text::encode_eof(out);
}

/// The content type of `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_comes_from_a_fixed_set() {
        let metrics = Metrics::default();
        metrics.observe_request("/v1/businesses/not-a-template", "FOO", 404, 0.001);
        let text = metrics.render(CatalogFigures::default());
        assert!(text.contains(r#"route="other",method="other",status="404""#));
        assert!(!text.contains("not-a-template"));
        assert!(!text.contains("FOO"));
    }

    #[test]
    fn every_documented_route_has_its_own_label() {
        use utoipa::OpenApi;
        let document = crate::api::ApiDoc::openapi();
        let paths: Vec<&String> = document.paths.paths.keys().collect();
        assert!(paths.len() > 10, "{paths:?}");
        for path in paths {
            assert_eq!(route_label(path), path, "add {path} to ROUTES");
        }
    }

    #[test]
    fn latency_lands_in_its_bucket() {
        let metrics = Metrics::default();
        metrics.observe_request("/healthz", "GET", 200, 0.0003);
        let text = metrics.render(CatalogFigures::default());
        assert!(text.contains(
            r#"http_request_duration_seconds_bucket{le="0.0005",route="/healthz",method="GET"} 1"#
        ));
        assert!(text.contains(
            r#"http_request_duration_seconds_bucket{le="0.00025",route="/healthz",method="GET"} 0"#
        ));
    }
}

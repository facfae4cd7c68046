//! The gateway's Prometheus metrics: plain atomics updated on the hot path, read at scrape
//! time by a `prometheus-client` collector and encoded (OpenMetrics text) after the
//! service's own registry at `/metrics`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Histogram bucket upper bounds for update-to-push latency, seconds.
const LATENCY_BUCKETS_S: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Counters and gauges.
///
/// ```
/// use nearby_ws_gateway::metrics::GatewayMetrics;
/// let metrics = std::sync::Arc::new(GatewayMetrics::default());
/// metrics.pushes.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
/// metrics.observe_push_latency(0.003);
/// let mut text = String::new();
/// metrics.render(&mut text);
/// assert!(text.contains("# TYPE nearby_ws_pushes counter\nnearby_ws_pushes_total 2\n"));
/// assert!(text.contains("nearby_ws_push_latency_seconds_count 1"));
/// ```
#[derive(Default, Debug)]
pub struct GatewayMetrics {
    /// Open WebSocket sessions.
    pub sessions: AtomicI64,
    /// Sessions ever opened.
    pub sessions_opened: AtomicU64,
    /// Upgrades refused for want of a valid token.
    pub unauthorized: AtomicU64,
    /// Location messages accepted.
    pub locations: AtomicU64,
    /// Messages refused with an `error` (malformed, out of range, rate limited).
    pub message_errors: AtomicU64,
    /// Messages pushed to clients (snapshots, locations, gone).
    pub pushes: AtomicU64,
    /// Pending events replaced by a newer one before their session handled them.
    pub coalesced: AtomicU64,
    /// Sessions closed for flooding (1008) or oversize frames (1009).
    pub closed_abuse: AtomicU64,
    /// Sessions closed because the client stopped reading or answering pings.
    pub closed_unresponsive: AtomicU64,
    /// Bus messages received from Redis.
    pub bus_received: AtomicU64,
    /// Bus messages dropped because the node could not keep up (push channel full).
    pub bus_dropped: AtomicU64,
    /// Bus payloads or channels that were not ours (ignored).
    pub bus_invalid: AtomicU64,
    /// Bus publishes or cache operations that failed (Redis down).
    pub bus_errors: AtomicU64,
    /// 1 while the bus is connected (always 1 in process).
    pub bus_up: AtomicI64,
    /// Node-level bus subscriptions (channels).
    pub bus_subscriptions: AtomicI64,
    /// Location history rows written.
    pub history_written: AtomicU64,
    /// Location history rows dropped because the queue was full.
    pub history_dropped: AtomicU64,
    /// Location history rows waiting.
    pub history_queued: AtomicI64,
    /// Sessions closed so their user reconnects to another node (4001 moved, 1012 drain).
    pub sessions_moved: AtomicU64,
    /// Upgrades redirected (307) to the node that owns the user.
    pub redirected: AtomicU64,
    /// Live gateway nodes in this node's view of the membership.
    pub nodes: AtomicI64,
    /// Failed reads of the audience log.
    pub audience_errors: AtomicU64,
    /// 1 while the audience log has not been read within the staleness bound (sessions
    /// withhold every friend's location).
    pub audience_stale: AtomicI64,
    /// Friends' locations withheld because what they grant was being re-read, or the
    /// audience log was stale.
    pub withheld: AtomicU64,
    /// Sessions closed because the user opened a newer one past the per-user limit (4002).
    pub sessions_replaced: AtomicU64,
    /// Upgrades refused (429) for too many connection attempts by one user.
    pub connects_limited: AtomicU64,
    /// Locations refused as implausible movement.
    pub implausible: AtomicU64,
    push_latency: PushLatency,
}

/// Update-to-push latency (a histogram has no `Default`: its buckets are ours).
#[derive(Debug)]
struct PushLatency(Histogram);

impl Default for PushLatency {
    fn default() -> Self {
        Self(Histogram::new(LATENCY_BUCKETS_S))
    }
}

impl GatewayMetrics {
    /// Records the time from a friend's update (its server receive time) to its push.
    pub fn observe_push_latency(&self, seconds: f64) {
        self.push_latency.0.observe(seconds.max(0.0));
    }

    /// Appends the metrics in the OpenMetrics text format (without the final `# EOF`, which
    /// the service writes after every registry).
    pub fn render(self: &Arc<Self>, out: &mut String) {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Arc::clone(self)));
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(out, &registry);
    }
}

impl Collector for GatewayMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters: [(&str, &str, &AtomicU64); 21] = [
            (
                "nearby_audience_log_errors",
                "failed reads of the audience log",
                &self.audience_errors,
            ),
            (
                "nearby_ws_withheld",
                "friend locations withheld while a grant was re-read or the audience log was stale",
                &self.withheld,
            ),
            (
                "nearby_ws_sessions_replaced",
                "sessions closed (4002) because the user opened a newer one past the limit",
                &self.sessions_replaced,
            ),
            (
                "nearby_ws_connects_limited",
                "WebSocket upgrades refused (429) for too many attempts by one user",
                &self.connects_limited,
            ),
            (
                "nearby_ws_implausible",
                "locations refused as implausible movement",
                &self.implausible,
            ),
            (
                "nearby_ws_sessions_moved",
                "sessions closed so the user reconnects to its owner node (4001, 1012)",
                &self.sessions_moved,
            ),
            (
                "nearby_ws_redirected",
                "WebSocket upgrades redirected to the node that owns the user",
                &self.redirected,
            ),
            (
                "nearby_ws_sessions_opened",
                "WebSocket sessions opened",
                &self.sessions_opened,
            ),
            (
                "nearby_ws_unauthorized",
                "WebSocket upgrades refused for a missing or invalid token",
                &self.unauthorized,
            ),
            (
                "nearby_ws_locations",
                "location messages accepted",
                &self.locations,
            ),
            (
                "nearby_ws_message_errors",
                "client messages refused with an error",
                &self.message_errors,
            ),
            (
                "nearby_ws_pushes",
                "messages pushed to clients",
                &self.pushes,
            ),
            (
                "nearby_ws_coalesced",
                "pending friend events replaced by a newer one",
                &self.coalesced,
            ),
            (
                "nearby_ws_closed_abuse",
                "sessions closed for flooding or oversize frames",
                &self.closed_abuse,
            ),
            (
                "nearby_ws_closed_unresponsive",
                "sessions closed because the client stopped reading",
                &self.closed_unresponsive,
            ),
            (
                "nearby_bus_received",
                "bus messages received from Redis",
                &self.bus_received,
            ),
            (
                "nearby_bus_dropped",
                "bus messages dropped because the node could not keep up",
                &self.bus_dropped,
            ),
            (
                "nearby_bus_invalid",
                "bus messages that were not ours",
                &self.bus_invalid,
            ),
            (
                "nearby_bus_errors",
                "failed bus publishes and cache operations",
                &self.bus_errors,
            ),
            (
                "nearby_location_history_written",
                "location history rows written",
                &self.history_written,
            ),
            (
                "nearby_location_history_dropped",
                "location history rows dropped (queue full)",
                &self.history_dropped,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauges: [(&str, &str, &AtomicI64); 6] = [
            (
                "nearby_audience_log_stale",
                "1 while the audience log is unread past the staleness bound (locations withheld)",
                &self.audience_stale,
            ),
            (
                "nearby_gateway_nodes",
                "live gateway nodes in this node's view of the membership",
                &self.nodes,
            ),
            (
                "nearby_ws_sessions",
                "open WebSocket sessions",
                &self.sessions,
            ),
            (
                "nearby_bus_up",
                "1 while the pub/sub bus is connected",
                &self.bus_up,
            ),
            (
                "nearby_bus_subscriptions",
                "channels this node subscribes to",
                &self.bus_subscriptions,
            ),
            (
                "nearby_location_history_queued",
                "location history rows waiting to be written",
                &self.history_queued,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value.load(Ordering::Relaxed));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let latency = &self.push_latency.0;
        latency.encode(encoder.encode_descriptor(
            "nearby_ws_push_latency_seconds",
            "time from a friend's update reaching the gateway to its push",
            None,
            latency.metric_type(),
        )?)?;
        Ok(())
    }
}

//! The metrics of one gateway, kept with `prometheus-client` and served in the Prometheus text format
//! (0.0.4) at `GET /metrics` on the admin listener (see [`crate::admin`]), never on the public port.
//!
//! Every label value is bounded: route templates (axum's matched path, `unmatched` otherwise), configured
//! names (downstreams, parts, policies), fixed vocabularies (methods, outcomes, reasons) and status codes.
//! No raw path, id, identity or user input ever becomes a label. The reference of every family is in
//! `docs/operations.md`.
//!
//! ```text
//! # HELP bff_http_requests_total Client requests by route template, method and status.
//! # TYPE bff_http_requests_total counter
//! bff_http_requests_total{route="/api/products/{id}",method="GET",status="200"} 42
//! ```

pub(crate) mod downstream;
mod labels;
mod process;
mod route;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use labels::{
    DownstreamLabels, DownstreamOutcome, PartLabels, PartOutcome, RequestLabels, TransitionLabels,
    method_label,
};
pub(crate) use route::{RouteMetrics, RouteMetricsCell};

/// A monotonic counter (shared on clone).
pub type Counter = prometheus_client::metrics::counter::Counter;

/// Latency buckets in seconds (Prometheus' defaults, from 5 ms to 10 s).
const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// A family of latency histograms.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A counter family registered by name, with free-form (but bounded) labels.
type NamedFamily = Family<Vec<(String, String)>, Counter>;

/// One label `name="value"` (downstream, route, policy, reason).
pub type One = Vec<(&'static str, String)>;

/// The metrics of one gateway: the typed families the framework records, plus counters registered by name
/// (cache, batching, or a gateway's own).
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Counters registered by name through [`Metrics::counter`].
    by_name: Mutex<HashMap<&'static str, NamedFamily>>,
    /// `bff_http_requests_total{route,method,status}`.
    pub requests: Family<RequestLabels, Counter>,
    /// `bff_http_request_duration_seconds{route}`.
    pub request_duration: HistogramFamily<One>,
    /// `bff_http_requests_in_flight`.
    pub in_flight: Gauge,
    /// `bff_downstream_requests_total{downstream,outcome}` (one per attempt).
    pub downstream_requests: Family<DownstreamLabels, Counter>,
    /// `bff_downstream_request_duration_seconds{downstream}` (attempts that were sent).
    pub downstream_duration: HistogramFamily<One>,
    /// `bff_downstream_retries_total{downstream}`.
    pub retries: Family<One, Counter>,
    /// `bff_downstream_hedges_total{downstream}`.
    pub hedges: Family<One, Counter>,
    /// `bff_circuit_state{downstream}`: 0 closed, 1 open, 2 half-open.
    pub circuit_state: Family<One, Gauge>,
    /// `bff_circuit_transitions_total{downstream,to}`.
    pub circuit_transitions: Family<TransitionLabels, Counter>,
    /// `bff_rate_limited_total{policy}`.
    pub rate_limited: Family<One, Counter>,
    /// `bff_auth_failures_total{reason}`.
    pub auth_failures: Family<One, Counter>,
    /// `bff_shed_total{route}`.
    pub shed: Family<One, Counter>,
    /// `bff_part_outcomes_total{route,part,outcome}`.
    pub parts: Family<PartLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let histograms =
            || HistogramFamily::<One>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let m = Self {
            registry: Mutex::new(Registry::default()),
            by_name: Mutex::default(),
            requests: Family::default(),
            request_duration: histograms(),
            in_flight: Gauge::default(),
            downstream_requests: Family::default(),
            downstream_duration: histograms(),
            retries: Family::default(),
            hedges: Family::default(),
            circuit_state: Family::default(),
            circuit_transitions: Family::default(),
            rate_limited: Family::default(),
            auth_failures: Family::default(),
            shed: Family::default(),
            parts: Family::default(),
        };
        let r = &mut registry;
        r.register(
            "bff_http_requests",
            "Client requests by route template, method and status",
            m.requests.clone(),
        );
        r.register(
            "bff_http_request_duration_seconds",
            "Client request latency by route template, in seconds",
            m.request_duration.clone(),
        );
        r.register(
            "bff_http_requests_in_flight",
            "Client requests being served",
            m.in_flight.clone(),
        );
        r.register(
            "bff_downstream_requests",
            "Downstream call attempts by downstream and outcome",
            m.downstream_requests.clone(),
        );
        r.register(
            "bff_downstream_request_duration_seconds",
            "Latency of downstream call attempts that were sent, in seconds",
            m.downstream_duration.clone(),
        );
        r.register(
            "bff_downstream_retries",
            "Retries of downstream calls",
            m.retries.clone(),
        );
        r.register(
            "bff_downstream_hedges",
            "Hedged (second) attempts of downstream calls",
            m.hedges.clone(),
        );
        r.register(
            "bff_circuit_state",
            "Circuit breaker state per downstream: 0 closed, 1 open, 2 half-open",
            m.circuit_state.clone(),
        );
        r.register(
            "bff_circuit_transitions",
            "Circuit breaker state changes per downstream, by the state entered",
            m.circuit_transitions.clone(),
        );
        r.register(
            "bff_rate_limited",
            "Requests refused by rate limiting, by policy",
            m.rate_limited.clone(),
        );
        r.register(
            "bff_auth_failures",
            "Requests refused for failed authentication, by reason",
            m.auth_failures.clone(),
        );
        r.register(
            "bff_shed",
            "Requests shed (503 overloaded) by route template",
            m.shed.clone(),
        );
        r.register(
            "bff_part_outcomes",
            "Composed parts by route template, part and outcome (ok, failed, stale, default)",
            m.parts.clone(),
        );
        r.register_collector(Box::new(process::ProcessCollector));
        *m.registry.lock().unwrap_or_else(|e| e.into_inner()) = registry;
        m
    }
}

impl Metrics {
    /// The counter `name{labels}`, registered on first use (the same name and labels give the same counter).
    /// `name` ends in `_total` and must be a valid Prometheus metric name; label values must be bounded.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
    ) -> Counter {
        let mut by_name = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        let family = by_name.entry(name).or_insert_with(|| {
            let family = Family::default();
            self.registry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .register(
                    name.strip_suffix("_total").unwrap_or(name),
                    help.trim_end_matches('.'),
                    family.clone(),
                );
            family
        });
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        family.get_or_create_owned(&labels)
    }

    /// The Prometheus text exposition (format 0.0.4) of every family.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

/// The label set of one configured name, e.g. `downstream="catalog"`.
pub fn one(key: &'static str, value: impl Into<String>) -> One {
    vec![(key, value.into())]
}

/// `GET /metrics`.
pub(crate) async fn handler(State(metrics): State<Arc<Metrics>>) -> Response {
    let mut response = metrics.render().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counters registered by name are shared by name and labels and rendered with HELP/TYPE once per name.
    #[test]
    fn renders_counters_by_name() {
        let m = Metrics::default();
        let a = m.counter("bff_x_total", "X things.", &[("downstream", "catalog")]);
        let b = m.counter("bff_x_total", "X things.", &[("downstream", "users\"")]);
        m.counter("bff_x_total", "X things.", &[("downstream", "catalog")])
            .inc_by(2);
        a.inc();
        b.inc();
        let text = m.render();
        assert!(
            text.contains("# HELP bff_x_total X things.\n# TYPE bff_x_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("bff_x_total{downstream=\"catalog\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("bff_x_total{downstream=\"users\\\"\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE bff_http_requests_in_flight gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE process_resident_memory_bytes gauge\n"),
            "{text}"
        );
    }
}

//! A minimal metrics registry: monotonic counters (atomics) with labels, rendered in the Prometheus text
//! format at `GET /metrics` (public, like `/healthz`: it holds counts only, no identities and no addresses;
//! labels name configured downstreams). One registry per gateway.
//!
//! ```text
//! # HELP bff_cache_hits_total Downstream GETs answered from a fresh cache entry.
//! # TYPE bff_cache_hits_total counter
//! bff_cache_hits_total{downstream="catalog"} 42
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// A monotonic counter. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One registered counter.
#[derive(Debug)]
struct Series {
    name: &'static str,
    help: &'static str,
    labels: String,
    counter: Counter,
}

/// The counters of one gateway.
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<Vec<Series>>,
}

impl Metrics {
    /// The counter `name{labels}`, registered on first use (the same name and labels give the same counter).
    /// `name` must be a valid Prometheus metric name; label values are escaped.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
    ) -> Counter {
        let labels = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect::<Vec<_>>()
            .join(",");
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = series.iter().find(|s| s.name == name && s.labels == labels) {
            return s.counter.clone();
        }
        let counter = Counter::default();
        series.push(Series {
            name,
            help,
            labels,
            counter: counter.clone(),
        });
        counter
    }

    /// The Prometheus text exposition (format 0.0.4) of every counter, grouped by name.
    pub fn render(&self) -> String {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<&'static str> = series.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        let mut out = String::new();
        for name in names {
            let mut first = true;
            for s in series.iter().filter(|s| s.name == name) {
                if first {
                    out.push_str(&format!(
                        "# HELP {name} {}\n# TYPE {name} counter\n",
                        s.help
                    ));
                    first = false;
                }
                if s.labels.is_empty() {
                    out.push_str(&format!("{name} {}\n", s.counter.get()));
                } else {
                    out.push_str(&format!("{name}{{{}}} {}\n", s.labels, s.counter.get()));
                }
            }
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`.
pub(crate) async fn handler(State(metrics): State<Arc<Metrics>>) -> Response {
    let mut response = metrics.render().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counters are shared by name and labels and rendered grouped, with HELP/TYPE once per name.
    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        let a = m.counter("bff_x_total", "X things.", &[("downstream", "catalog")]);
        let b = m.counter("bff_x_total", "X things.", &[("downstream", "users\"")]);
        m.counter("bff_x_total", "X things.", &[("downstream", "catalog")])
            .add(2);
        a.inc();
        b.inc();
        m.counter("bff_a_total", "A.", &[]).inc();
        assert_eq!(
            m.render(),
            "# HELP bff_a_total A.\n# TYPE bff_a_total counter\nbff_a_total 1\n\
             # HELP bff_x_total X things.\n# TYPE bff_x_total counter\n\
             bff_x_total{downstream=\"catalog\"} 3\nbff_x_total{downstream=\"users\\\"\"} 1\n"
        );
    }
}

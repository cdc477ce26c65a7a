//! The metric handles of one route, resolved on its first request so that later requests count without
//! building and hashing label sets: a `Family` lookup built a `String` key and SipHash-ed it under the family's
//! lock, about 1k instructions per family and request (bench/notes.md).
//!
//! The handles are the very series of the families in [`Metrics`] (a handle is a shared clone), so the
//! exposition is the same whichever way a request was counted.

use std::sync::{Arc, OnceLock, RwLock};

use prometheus_client::metrics::histogram::Histogram;

use super::{Counter, Metrics, PartLabels, PartOutcome, RequestLabels, one};

/// The series of one route template (or `unmatched`): its latency histogram, and its request and part
/// counters by the labels seen so far (a handful per route: methods, statuses, parts × outcomes).
#[derive(Debug)]
pub(crate) struct RouteMetrics {
    route: Box<str>,
    families: Arc<Metrics>,
    duration: Histogram,
    requests: RwLock<Vec<((&'static str, u16), Counter)>>,
    parts: RwLock<Vec<((&'static str, PartOutcome), Counter)>>,
}

impl RouteMetrics {
    /// The handles of `route` in `metrics`' families.
    pub(crate) fn new(metrics: &Arc<Metrics>, route: &str) -> Self {
        Self {
            route: route.into(),
            families: metrics.clone(),
            duration: metrics
                .request_duration
                .get_or_create(&one("route", route))
                .clone(),
            requests: RwLock::default(),
            parts: RwLock::default(),
        }
    }

    /// The route template.
    pub(crate) fn route(&self) -> &str {
        &self.route
    }

    /// Observes one request's latency in `bff_http_request_duration_seconds{route}`.
    pub(crate) fn observe_duration(&self, seconds: f64) {
        self.duration.observe(seconds);
    }

    /// Counts one request in `bff_http_requests_total{route,method,status}`.
    pub(crate) fn count_request(&self, method: &'static str, status: u16) {
        count(&self.requests, (method, status), || {
            let labels = RequestLabels {
                route: self.route.to_string(),
                method,
                status,
            };
            self.families.requests.get_or_create(&labels).clone()
        });
    }

    /// Counts one part's outcome in `bff_part_outcomes_total{route,part,outcome}`.
    pub(crate) fn count_part(&self, part: &'static str, outcome: PartOutcome) {
        count(&self.parts, (part, outcome), || {
            let labels = PartLabels {
                route: self.route.to_string(),
                part,
                outcome,
            };
            self.families.parts.get_or_create(&labels).clone()
        });
    }
}

/// Increments the counter of `key` in `entries`, resolved with `resolve` (the family's series) on its first
/// use; a concurrent first use of the same key resolves the same series, and only one entry is kept.
fn count<K: PartialEq + Copy>(
    entries: &RwLock<Vec<(K, Counter)>>,
    key: K,
    resolve: impl FnOnce() -> Counter,
) {
    let known = entries.read().unwrap_or_else(|e| e.into_inner());
    if let Some((_, counter)) = known.iter().find(|(k, _)| *k == key) {
        counter.inc();
        return;
    }
    drop(known);
    let counter = resolve();
    counter.inc();
    let mut entries = entries.write().unwrap_or_else(|e| e.into_inner());
    if !entries.iter().any(|(k, _)| *k == key) {
        entries.push((key, counter));
    }
}

/// The [`RouteMetrics`] of the one route a service serves, resolved on its first request and shared by the
/// service's clones. A request whose route differs from the remembered one (a service mounted at two paths)
/// gets handles of its own: correct, only not cached.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteMetricsCell(Arc<OnceLock<Arc<RouteMetrics>>>);

impl RouteMetricsCell {
    /// The handles of `route`.
    pub(crate) fn get(&self, metrics: &Arc<Metrics>, route: &str) -> Arc<RouteMetrics> {
        if let Some(known) = self.0.get()
            && known.route() == route
        {
            return known.clone();
        }
        let fresh = Arc::new(RouteMetrics::new(metrics, route));
        let _ = self.0.set(fresh.clone());
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(metrics: &Metrics, prefix: &str) -> Vec<String> {
        metrics
            .render()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn handles_count_into_the_families_series_by_label() {
        let metrics = Arc::new(Metrics::default());
        let route = RouteMetrics::new(&metrics, "/api/home");
        route.count_request("GET", 200);
        route.count_request("GET", 200);
        route.count_request("GET", 502);
        route.count_part("users", PartOutcome::Ok);
        route.count_part("users", PartOutcome::Failed);
        route.count_part("users", PartOutcome::Ok);
        route.observe_duration(0.003);
        // The same series through the family: one more, not a second series.
        metrics
            .requests
            .get_or_create(&RequestLabels {
                route: "/api/home".into(),
                method: "GET",
                status: 200,
            })
            .inc();
        let mut requests = series(&metrics, "bff_http_requests_total{");
        requests.sort();
        assert_eq!(
            requests,
            [
                r#"bff_http_requests_total{route="/api/home",method="GET",status="200"} 3"#,
                r#"bff_http_requests_total{route="/api/home",method="GET",status="502"} 1"#,
            ],
            "{requests:?}"
        );
        let mut parts = series(&metrics, "bff_part_outcomes_total{");
        parts.sort();
        assert_eq!(
            parts,
            [
                r#"bff_part_outcomes_total{route="/api/home",part="users",outcome="failed"} 1"#,
                r#"bff_part_outcomes_total{route="/api/home",part="users",outcome="ok"} 2"#,
            ]
        );
        assert!(
            metrics
                .render()
                .contains(r#"bff_http_request_duration_seconds_count{route="/api/home"} 1"#)
        );
    }

    #[test]
    fn a_cell_remembers_one_route_and_serves_another_uncached() {
        let metrics = Arc::new(Metrics::default());
        let cell = RouteMetricsCell::default();
        let first = cell.get(&metrics, "/a");
        assert!(Arc::ptr_eq(&first, &cell.clone().get(&metrics, "/a")));
        let other = cell.get(&metrics, "/b");
        assert_eq!(other.route(), "/b");
        assert!(!Arc::ptr_eq(&other, &cell.get(&metrics, "/b")));
        other.count_request("GET", 200);
        first.count_request("GET", 200);
        let requests = series(&metrics, "bff_http_requests_total{");
        assert_eq!(requests.len(), 2, "{requests:?}");
    }
}

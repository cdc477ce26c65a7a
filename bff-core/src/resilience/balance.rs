//! Several instances of one downstream: choosing one per attempt (power of two choices on calls in flight, or
//! round-robin), skipping ejected instances (passive health: an instance breaker that opened), and optional
//! active health checks that eject and readmit instances in the background.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::resilience::BalanceMode;
use crate::resilience::breaker::{Breaker, Outcome};

/// One instance: its base URL, its calls in flight and its health.
#[derive(Debug)]
pub struct Instance {
    /// Base URL without trailing slash.
    pub base: String,
    /// The `Host` header of requests to it (host, and port unless the scheme's default), computed once here
    /// rather than formatted by the HTTP client on every call.
    pub host: Option<axum::http::HeaderValue>,
    /// Attempts in flight to this instance (the load p2c compares).
    in_flight: AtomicUsize,
    /// Passive health; `None` when ejection is off or there is only one instance (the downstream's breaker
    /// covers that case).
    pub health: Option<Breaker>,
}

/// The `Host` header value for requests to `base`: as the HTTP client would write it (no user info; the port
/// only when it is not the scheme's default). `None` when `base` is no absolute URL (refused by validation).
fn host_header(base: &str) -> Option<axum::http::HeaderValue> {
    let uri: axum::http::Uri = base.parse().ok()?;
    let host = uri.host()?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let value = match uri.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    axum::http::HeaderValue::from_str(&value).ok()
}

/// The instances of one downstream and how to choose among them.
#[derive(Debug)]
pub struct Instances {
    list: Vec<Instance>,
    mode: BalanceMode,
    /// Round-robin position.
    next: AtomicUsize,
}

/// Counts an attempt in flight to an instance until dropped.
#[derive(Debug)]
pub struct InFlight<'a>(&'a Instance);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Instances {
    /// Instances at `bases`; `health(i)` builds the ejection breaker of instance `i` (or none).
    pub fn new(
        bases: Vec<String>,
        mode: BalanceMode,
        health: impl Fn(usize) -> Option<Breaker>,
    ) -> Self {
        let several = bases.len() > 1;
        let list = bases
            .into_iter()
            .enumerate()
            .map(|(i, base)| Instance {
                host: host_header(&base),
                base: base.trim_end_matches('/').to_owned(),
                in_flight: AtomicUsize::new(0),
                health: if several { health(i) } else { None },
            })
            .collect();
        Self {
            list,
            mode,
            next: AtomicUsize::new(0),
        }
    }

    /// All instances.
    pub fn all(&self) -> &[Instance] {
        &self.list
    }

    /// Instance `i`.
    pub fn get(&self, i: usize) -> &Instance {
        &self.list[i]
    }

    fn ejected(&self, i: usize) -> bool {
        self.list[i].health.as_ref().is_some_and(Breaker::is_open)
    }

    /// Chooses the instance of the next attempt, avoiding `avoid` (the instance that just failed) when
    /// another healthy one exists. When every instance is ejected, ejection is ignored ("panic mode", as in
    /// Envoy): some traffic is better than none, and the downstream's own breaker decides about failing fast.
    pub fn pick(&self, avoid: Option<usize>) -> usize {
        let n = self.list.len();
        if n == 1 {
            return 0;
        }
        let mut candidates: Vec<usize> = (0..n)
            .filter(|&i| Some(i) != avoid && !self.ejected(i))
            .collect();
        if candidates.is_empty() {
            candidates = (0..n).filter(|&i| !self.ejected(i)).collect();
        }
        if candidates.is_empty() {
            candidates = (0..n).collect();
        }
        match self.mode {
            BalanceMode::RoundRobin => {
                candidates[self.next.fetch_add(1, Ordering::Relaxed) % candidates.len()]
            }
            BalanceMode::P2c => {
                if candidates.len() == 1 {
                    return candidates[0];
                }
                let a = fastrand::usize(0..candidates.len());
                let mut b = fastrand::usize(0..candidates.len() - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (candidates[a], candidates[b]);
                let load = |i: usize| self.list[i].in_flight.load(Ordering::Relaxed);
                if load(b) < load(a) { b } else { a }
            }
        }
    }

    /// Counts an attempt to instance `i` as in flight until the guard is dropped.
    pub fn start(&self, i: usize) -> InFlight<'_> {
        let instance = &self.list[i];
        instance.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(instance)
    }

    /// Reports an attempt's outcome, as of `now`, to instance `i`'s passive health.
    pub fn observe(&self, i: usize, outcome: Outcome, now: tokio::time::Instant) {
        if let Some(health) = &self.list[i].health {
            health.observe_at(outcome, now);
        }
    }
}

/// Starts the active health checks of `instances` in the background (needs a Tokio runtime; without one,
/// e.g. in `check` mode, nothing is started). Every `interval` each instance's `path` is fetched: a 2xx
/// readmits an ejected instance, anything else ejects it. The task ends when the downstream is dropped.
pub fn spawn_health_checks(
    name: &str,
    instances: &Arc<Instances>,
    client: crate::downstream::HttpClient,
    path: String,
    interval: Duration,
    timeout: Duration,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak: Weak<Instances> = Arc::downgrade(instances);
    let name = name.to_owned();
    runtime.spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(instances) = weak.upgrade() else {
                return;
            };
            let checks = instances.all().iter().map(|instance| {
                let url = format!("{}{path}", instance.base);
                let client = &client;
                async move {
                    let healthy = matches!(
                        tokio::time::timeout(timeout, crate::downstream::client::get_status(client, &url)).await,
                        Ok(Some(status)) if status.is_success()
                    );
                    (instance, healthy)
                }
            });
            for (i, (instance, healthy)) in futures::future::join_all(checks)
                .await
                .into_iter()
                .enumerate()
            {
                let Some(health) = &instance.health else {
                    continue;
                };
                if healthy {
                    health.reset("health check passed");
                } else {
                    tracing::warn!(downstream = %name, instance = i, "health check failed");
                    health.trip("health check failed");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The precomputed Host header is what an HTTP client writes: default ports and user info left out.
    #[test]
    fn host_header_like_the_client() {
        let h = |b: &str| host_header(b).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            h("http://127.0.0.1:7001").as_deref(),
            Some("127.0.0.1:7001")
        );
        assert_eq!(
            h("http://users.internal").as_deref(),
            Some("users.internal")
        );
        assert_eq!(
            h("http://users.internal:80/").as_deref(),
            Some("users.internal")
        );
        assert_eq!(h("https://idp.example:443").as_deref(), Some("idp.example"));
        assert_eq!(
            h("https://idp.example:8443").as_deref(),
            Some("idp.example:8443")
        );
        assert_eq!(h("http://user:pw@svc:9000").as_deref(), Some("svc:9000"));
        assert_eq!(h("not a url"), None);
    }
    use crate::resilience::breaker::BreakerPolicy;

    fn instances(n: usize, mode: BalanceMode) -> Instances {
        Instances::new(
            (0..n).map(|i| format!("http://h{i}")).collect(),
            mode,
            |i| {
                Some(Breaker::new(
                    format!("instance {i}"),
                    BreakerPolicy {
                        consecutive_failures: 2,
                        failure_rate: 2.0,
                        window: Duration::from_secs(10),
                        min_calls: u32::MAX,
                        open_for: Duration::from_secs(10),
                        half_open_probes: 1,
                    },
                ))
            },
        )
    }

    /// p2c never picks the busier of two instances.
    #[test]
    fn p2c_prefers_fewer_in_flight() {
        let set = instances(2, BalanceMode::P2c);
        let _busy = set.start(0);
        for _ in 0..50 {
            assert_eq!(set.pick(None), 1);
        }
    }

    /// Round-robin visits every instance in turn.
    #[test]
    fn round_robin_rotates() {
        let set = instances(3, BalanceMode::RoundRobin);
        let picks: Vec<usize> = (0..6).map(|_| set.pick(None)).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    /// An ejected instance gets no traffic; when all are ejected, traffic goes on ("panic mode"); a retry
    /// avoids the instance that just failed.
    #[tokio::test(start_paused = true)]
    async fn ejected_instances_are_skipped() {
        let set = instances(2, BalanceMode::RoundRobin);
        set.observe(0, Outcome::Failure, tokio::time::Instant::now());
        set.observe(0, Outcome::Failure, tokio::time::Instant::now());
        for _ in 0..10 {
            assert_eq!(set.pick(None), 1);
        }
        set.observe(1, Outcome::Failure, tokio::time::Instant::now());
        set.observe(1, Outcome::Failure, tokio::time::Instant::now());
        let picks: Vec<usize> = (0..4).map(|_| set.pick(None)).collect();
        assert!(picks.contains(&0) && picks.contains(&1), "{picks:?}");
        let set = instances(2, BalanceMode::P2c);
        for _ in 0..20 {
            assert_eq!(set.pick(Some(0)), 1);
        }
    }
}

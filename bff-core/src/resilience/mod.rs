//! Resilience: what keeps one slow or broken downstream from stalling every screen. Per-downstream policy
//! (bulkhead, retries with a budget, optional hedging, circuit breaker, several instances with balancing,
//! passive ejection and optional active health checks), fallbacks of composed parts, and load shedding at the
//! edge. The downstream client ([`crate::downstream::Downstream`]) applies the policy, so handlers only
//! compose. `docs/resilience.md` tells the life of a failing call and why every default is what it is.
//!
//! # Layout
//! - this file: the configuration (`[downstreams.<name>.resilience]`, `[server.load_shed]`) and its checks;
//! - [`breaker`]: the circuit breaker state machine (also the per-instance ejection);
//! - [`retry`]: which failures are retried, backoff with jitter, the retry budget;
//! - [`balance`]: instances, power-of-two-choices / round-robin, active health checks;
//! - [`fallback`]: `ctx.required_or` / `ctx.optional_or`, static defaults and last good values;
//! - [`shed`]: the edge's global and per-route concurrency limits.

pub mod balance;
pub mod breaker;
pub mod fallback;
pub mod retry;
pub mod shed;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;

pub use fallback::{DEGRADED_HEADER, Fallback, LastGood};

/// Name of the header every downstream call carries: the milliseconds the downstream has left to answer
/// (what remains of the client request's budget, or the call's own timeout if shorter). A downstream should
/// stop working on the call when it is spent; nobody waits for the answer any more.
pub const DEADLINE_HEADER: &str = "x-bff-deadline-ms";

/// Resilience policy of one downstream: `[downstreams.<name>.resilience]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResilienceConfig {
    /// More base URLs of the same service besides `url`; calls are balanced over `url` and these.
    pub instances: Vec<String>,
    /// How an instance is chosen for each attempt.
    pub balance: BalanceMode,
    /// Bulkhead: at most this many calls to this downstream in flight at once; beyond it a call fails fast
    /// (503 `overloaded` when required, partial when optional). `0` = no limit.
    pub max_concurrent: usize,
    /// Retries of idempotent calls (GET) after retryable failures, and hedging.
    pub retry: RetryConfig,
    /// The circuit breaker of the whole downstream.
    pub breaker: BreakerConfig,
    /// Passive health: an instance that keeps failing is ejected for a while (only with several instances).
    pub ejection: EjectionConfig,
    /// Active health checks of every instance (off by default).
    pub health_check: HealthCheckConfig,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        Self {
            instances: Vec::new(),
            balance: BalanceMode::P2c,
            max_concurrent: 1024,
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            ejection: EjectionConfig::default(),
            health_check: HealthCheckConfig::default(),
        }
    }
}

/// How an instance is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BalanceMode {
    /// Power of two choices: two random healthy instances, the one with fewer calls in flight wins.
    #[default]
    P2c,
    /// The healthy instances in turn.
    RoundRobin,
}

/// Retries and hedging: `[downstreams.<name>.resilience.retry]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Extra attempts after a retryable failure (connect error, reset, 502/503/504) of a GET; `0` = none.
    pub max_retries: u32,
    /// Backoff before the first retry, in milliseconds; doubled for each further retry, with jitter.
    pub backoff_base_ms: u64,
    /// Largest backoff, in milliseconds.
    pub backoff_max_ms: u64,
    /// Retry budget: retries (and hedges) may add at most this fraction of the calls of the last 10 s.
    pub budget_ratio: f64,
    /// Retry budget floor: this many retries per second are always allowed (so rare failures of a quiet
    /// downstream are still retried).
    pub budget_min_per_s: u32,
    /// Hedging: when a GET has not answered after this many milliseconds, a second attempt is started (on
    /// another instance when there is one) and the first answer wins; `0` = off.
    pub hedge_after_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 2,
            backoff_base_ms: 25,
            backoff_max_ms: 250,
            budget_ratio: 0.2,
            budget_min_per_s: 10,
            hedge_after_ms: 0,
        }
    }
}

/// The circuit breaker: `[downstreams.<name>.resilience.breaker]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Whether the breaker is used at all.
    pub enabled: bool,
    /// Opens after this many consecutive failures; `0` = only the failure rate counts.
    pub consecutive_failures: u32,
    /// Opens when at least this fraction of the calls in the window failed (and there were `min_calls`).
    pub failure_rate: f64,
    /// Length of the failure-rate window, in seconds.
    pub window_s: u64,
    /// Fewest calls in the window before the failure rate is judged.
    pub min_calls: u32,
    /// How long the breaker stays open (failing fast) before admitting probes, in milliseconds.
    pub open_ms: u64,
    /// Probes admitted at once while half-open; a probe's success closes the breaker, its failure reopens it.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            consecutive_failures: 5,
            failure_rate: 0.5,
            window_s: 10,
            min_calls: 20,
            open_ms: 5_000,
            half_open_probes: 1,
        }
    }
}

/// Passive health of instances: `[downstreams.<name>.resilience.ejection]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EjectionConfig {
    /// An instance is ejected after this many consecutive failures; `0` = never.
    pub consecutive_failures: u32,
    /// How long an ejected instance gets no traffic, in milliseconds; then one call tries it again.
    pub eject_ms: u64,
}

impl Default for EjectionConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            eject_ms: 10_000,
        }
    }
}

/// Active health checks: `[downstreams.<name>.resilience.health_check]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    /// Interval between two checks of every instance, in milliseconds; `0` = off.
    pub interval_ms: u64,
    /// Path checked on each instance; a 2xx answer is healthy.
    pub path: String,
    /// Timeout of one check, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            interval_ms: 0,
            path: "/healthz".into(),
            timeout_ms: 1_000,
        }
    }
}

/// Load shedding at the edge: `[server.load_shed]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadShedConfig {
    /// Requests in flight in the whole gateway; beyond it a fast 503 `overloaded`. `0` = no limit.
    pub max_in_flight: usize,
    /// Requests in flight per route (by route template) unless `routes` names it; `0` = no limit.
    pub route_max_in_flight: usize,
    /// Per-route limits by route template, e.g. `{ "/api/home" = 200 }`.
    pub routes: BTreeMap<String, usize>,
    /// The `Retry-After` of a shed request, in seconds.
    pub retry_after_s: u64,
}

impl Default for LoadShedConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 2_048,
            route_max_in_flight: 0,
            routes: BTreeMap::new(),
            retry_after_s: 1,
        }
    }
}

impl LoadShedConfig {
    /// Checks the values; `prefix` is the dotted key of this table.
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        if self.max_in_flight > MAX_PERMITS || self.route_max_in_flight > MAX_PERMITS {
            return Err(invalid(
                key("max_in_flight"),
                "max_in_flight and route_max_in_flight must be at most 1000000000",
            ));
        }
        if self.retry_after_s == 0 || self.retry_after_s > 3_600 {
            return Err(invalid(key("retry_after_s"), "must be between 1 and 3600"));
        }
        for (route, limit) in &self.routes {
            if !route.starts_with('/') {
                return Err(invalid(key("routes"), "route templates start with `/`"));
            }
            if *limit == 0 || *limit > MAX_PERMITS {
                return Err(invalid(
                    key(&format!("routes.\"{route}\"")),
                    "must be between 1 and 1000000000",
                ));
            }
        }
        Ok(())
    }
}

/// Largest limit of concurrent requests or calls accepted in configuration (a semaphore holds at most
/// `usize::MAX >> 3` permits; a billion is far beyond any real limit).
const MAX_PERMITS: usize = 1_000_000_000;

impl ResilienceConfig {
    /// Checks the values; `prefix` is the dotted key of this table, e.g. `downstreams.users.resilience`.
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        if self.max_concurrent > MAX_PERMITS {
            return Err(invalid(key("max_concurrent"), "must be at most 1000000000"));
        }
        for url in &self.instances {
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => {
                    return Err(invalid(
                        key("instances"),
                        "every instance must be an absolute http(s) URL",
                    ));
                }
            }
        }
        let r = &self.retry;
        if r.max_retries > 10 {
            return Err(invalid(key("retry.max_retries"), "must be at most 10"));
        }
        if r.max_retries > 0 && r.backoff_base_ms == 0 {
            return Err(invalid(key("retry.backoff_base_ms"), "must be positive"));
        }
        if r.backoff_max_ms < r.backoff_base_ms {
            return Err(invalid(
                key("retry.backoff_max_ms"),
                "must be at least retry.backoff_base_ms",
            ));
        }
        if !(0.0..=1.0).contains(&r.budget_ratio) {
            return Err(invalid(
                key("retry.budget_ratio"),
                "must be between 0 and 1",
            ));
        }
        let b = &self.breaker;
        if b.enabled {
            if !(b.failure_rate > 0.0 && b.failure_rate <= 1.0) {
                return Err(invalid(key("breaker.failure_rate"), "must be in (0, 1]"));
            }
            if b.window_s == 0 || b.window_s > 3_600 {
                return Err(invalid(
                    key("breaker.window_s"),
                    "must be between 1 and 3600",
                ));
            }
            if b.min_calls == 0 {
                return Err(invalid(key("breaker.min_calls"), "must be positive"));
            }
            if b.open_ms == 0 {
                return Err(invalid(key("breaker.open_ms"), "must be positive"));
            }
            if b.half_open_probes == 0 {
                return Err(invalid(key("breaker.half_open_probes"), "must be positive"));
            }
        }
        if self.ejection.consecutive_failures > 0 && self.ejection.eject_ms == 0 {
            return Err(invalid(key("ejection.eject_ms"), "must be positive"));
        }
        let h = &self.health_check;
        if h.interval_ms > 0 {
            if !h.path.starts_with('/') {
                return Err(invalid(key("health_check.path"), "must start with `/`"));
            }
            if h.timeout_ms == 0 {
                return Err(invalid(key("health_check.timeout_ms"), "must be positive"));
            }
        }
        Ok(())
    }
}

fn invalid(key: String, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error by design.
mod tests {
    use super::*;
    use crate::BffConfig;
    use crate::config::DownstreamConfig;
    use figment::Jail;

    /// The resilience keys load from a file and from the environment, nested as documented, with the
    /// defaults for every key not given.
    #[test]
    fn keys_load_from_file_and_env() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "gw.toml",
                r#"
[server.load_shed]
max_in_flight = 10
routes = { "/api/home" = 3 }
[downstreams.users.resilience]
instances = ["http://10.0.0.2:7001"]
balance = "round_robin"
[downstreams.users.resilience.breaker]
open_ms = 1000
[[aggregates]]
path = "/api/x/{id}"
[[aggregates.parts]]
name = "recs"
downstream = "users"
path = "/users/{id}"
required = false
stale_max_age_s = 60
fallback = { items = [] }
"#,
            )?;
            jail.set_env(
                "BFF_DOWNSTREAMS__USERS__RESILIENCE__RETRY__MAX_RETRIES",
                "0",
            );
            let mut defaults = BffConfig::default();
            defaults.downstreams.insert(
                "users".into(),
                DownstreamConfig::at("http://127.0.0.1:7001"),
            );
            let c = BffConfig::load(&defaults, Some(std::path::Path::new("gw.toml")))
                .map_err(|e| e.to_string())?;
            assert_eq!(c.server.load_shed.max_in_flight, 10);
            assert_eq!(c.server.load_shed.routes["/api/home"], 3);
            let r = &c.downstreams["users"].resilience;
            assert_eq!(r.instances, vec!["http://10.0.0.2:7001".to_string()]);
            assert_eq!(r.balance, BalanceMode::RoundRobin);
            assert_eq!(r.breaker.open_ms, 1_000);
            assert_eq!(r.breaker.consecutive_failures, 5);
            assert_eq!(r.retry.max_retries, 0);
            assert_eq!(r.retry.backoff_base_ms, 25);
            let part = &c.aggregates[0].parts[0];
            assert_eq!(part.fallback, Some(serde_json::json!({"items": []})));
            assert_eq!(part.stale_max_age_s, 60);
            Ok(())
        });
    }

    /// Bad values are refused with their full key.
    #[test]
    fn invalid_values_are_named() {
        let p = "downstreams.users.resilience";
        let mut c = ResilienceConfig::default();
        assert!(c.validate(p).is_ok());
        c.retry.budget_ratio = 1.5;
        let e = c.validate(p).unwrap_err().to_string();
        assert!(
            e.contains("downstreams.users.resilience.retry.budget_ratio"),
            "{e}"
        );
        let c = ResilienceConfig {
            instances: vec!["ftp://x".into()],
            ..ResilienceConfig::default()
        };
        assert!(c.validate(p).unwrap_err().to_string().contains("instances"));
        let mut c = ResilienceConfig::default();
        c.breaker.half_open_probes = 0;
        assert!(
            c.validate(p)
                .unwrap_err()
                .to_string()
                .contains("half_open_probes")
        );
        c.breaker.enabled = false;
        assert!(c.validate(p).is_ok());
        let mut s = LoadShedConfig::default();
        s.routes.insert("/api/home".into(), 0);
        assert!(
            s.validate("server.load_shed")
                .unwrap_err()
                .to_string()
                .contains("routes")
        );
    }
}

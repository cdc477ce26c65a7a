//! The `[rate_limit]` section: which store, its failure policy, how the client address is found, the
//! failed-authentication budget, and the policies (several may apply to one request).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::gcra::Limit;
use crate::config::error::ConfigError;

/// Rate limiting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Master switch: `false` turns every limit (policies and the failed-authentication budget) off.
    pub enabled: bool,
    /// Where bucket state lives: `memory` (this instance only) or `redis` (shared by every instance).
    pub store: StoreKind,
    /// The Redis store (used when `store = "redis"`).
    pub redis: RedisConfig,
    /// How the client address (for `ip` keys) is determined.
    pub client_ip: ClientIpConfig,
    /// The per-client-IP budget of failed authentication attempts.
    pub auth_failures: AuthFailuresConfig,
    /// The policies; every policy matching a request applies, and the request is admitted only if all admit.
    pub policies: Vec<PolicyConfig>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            store: StoreKind::Memory,
            redis: RedisConfig::default(),
            client_ip: ClientIpConfig::default(),
            auth_failures: AuthFailuresConfig::default(),
            policies: Vec::new(),
        }
    }
}

/// Where bucket state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// In this process: exact for one instance; N instances admit N times the budget.
    #[default]
    Memory,
    /// In Redis: exact across every instance sharing it.
    Redis,
}

/// What a decision does when Redis cannot answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnRedisError {
    /// Decide with this instance's in-memory limiter (same policies, per-instance budget) until Redis is back.
    #[default]
    Local,
    /// Refuse limited requests with 503 `rate_limiter_unavailable` until Redis is back (fail closed).
    Deny,
}

/// The Redis store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `redis+unix:///path/to/redis.sock` (standalone Redis or a
    /// primary; Redis Cluster is not supported, since one decision may touch several keys).
    pub url: String,
    /// Prefix of every key; instances that must share budgets use the same prefix, other gateways another.
    pub key_prefix: String,
    /// Bound on one decision (connect included), in milliseconds; past it the failure policy applies.
    pub timeout_ms: u64,
    /// After a failure, Redis is not tried again for this long (milliseconds): decisions take the failure
    /// policy at once instead of each waiting for the timeout. Then the next request tries Redis again.
    pub retry_interval_ms: u64,
    /// The failure policy: `local` (fall back to the in-memory limiter) or `deny` (503).
    pub on_error: OnRedisError,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "bff:rl:".into(),
            timeout_ms: 100,
            retry_interval_ms: 1_000,
            on_error: OnRedisError::Local,
        }
    }
}

/// The forwarding header trusted proxies set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    #[serde(rename = "forwarded")]
    Forwarded,
    /// `X-Real-IP: client`.
    #[serde(rename = "x-real-ip")]
    XRealIp,
}

/// How the client address is determined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientIpConfig {
    /// Proxies (addresses or CIDR networks) whose forwarding header is believed. Empty (default): the socket
    /// peer is the client and forwarding headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// The one forwarding header those proxies set: `x-forwarded-for`, `forwarded` or `x-real-ip`.
    pub header: ForwardedHeader,
    /// IPv6 clients are keyed by this prefix length (0..=128), since one host usually owns a whole /64.
    pub ipv6_prefix_len: u8,
}

impl Default for ClientIpConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            header: ForwardedHeader::XForwardedFor,
            ipv6_prefix_len: 64,
        }
    }
}

/// The per-client-IP budget of failed authentication attempts (missing, malformed or wrong credentials).
/// Once it is spent, every request from that address is refused with 429 — valid credentials included, so
/// guessing learns nothing — until the budget refills.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthFailuresConfig {
    /// Whether failed attempts are limited.
    pub enabled: bool,
    /// Failed attempts earned back per `period_s`.
    pub rate: u64,
    /// The period of `rate`, in seconds.
    pub period_s: u64,
    /// Failed attempts allowed at once.
    pub burst: u64,
}

impl Default for AuthFailuresConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rate: 30,
            period_s: 60,
            burst: 30,
        }
    }
}

/// What a policy's buckets are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyPart {
    /// The client address (see `client_ip`).
    Ip,
    /// The partner of an API key (policies with it skip requests without one).
    Partner,
    /// The partner's tier: one bucket shared by all partners of a tier.
    Tier,
    /// The authenticated user (JWT `sub`; policies with it skip requests without one).
    User,
    /// The matched route pattern, e.g. `/api/orders/{id}`.
    Route,
}

/// One rate-limit policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Name (`[a-z0-9_-]`, unique): in the `RateLimit` headers and the store keys.
    pub name: String,
    /// Bucket key parts, combined (e.g. `["user", "route"]` = one bucket per user and route); empty = one
    /// bucket shared by every request the policy matches.
    #[serde(default)]
    pub by: Vec<KeyPart>,
    /// Path patterns the policy applies to (`/api/orders/{id}`, `/v1/*/availability`, `/v1/**`); a `{name}`
    /// or `*` segment matches one segment, a final `**` any rest. Empty: every authenticated route.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Requests earned back per `period_s` (the sustained rate).
    pub rate: u64,
    /// The period of `rate`, in seconds.
    #[serde(default = "one")]
    pub period_s: u64,
    /// Requests admitted at once from a full bucket.
    pub burst: u64,
    /// Per partner tier, a different limit (partners of other tiers, and non-partners, get the policy's own).
    #[serde(default)]
    pub tiers: BTreeMap<String, TierLimit>,
}

fn one() -> u64 {
    1
}

impl PolicyConfig {
    /// A policy `name` keyed `by`, admitting `burst` at once and `rate` per `period_s`, on every route.
    pub fn new(name: &str, by: &[KeyPart], rate: u64, period_s: u64, burst: u64) -> Self {
        Self {
            name: name.into(),
            by: by.to_vec(),
            routes: Vec::new(),
            rate,
            period_s,
            burst,
            tiers: BTreeMap::new(),
        }
    }

    /// Restricts the policy to these path patterns.
    pub fn on_routes(mut self, routes: &[&str]) -> Self {
        self.routes = routes.iter().map(|r| (*r).to_owned()).collect();
        self
    }

    /// Gives partners of `tier` their own `rate` per `period_s` and `burst`.
    pub fn tier(mut self, tier: &str, rate: u64, burst: u64) -> Self {
        self.tiers.insert(
            tier.into(),
            TierLimit {
                rate,
                period_s: None,
                burst,
            },
        );
        self
    }
}

/// The limit of one partner tier within a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierLimit {
    /// Requests earned back per `period_s`.
    pub rate: u64,
    /// The period of `rate`, in seconds (default: the policy's).
    #[serde(default)]
    pub period_s: Option<u64>,
    /// Requests admitted at once.
    pub burst: u64,
}

/// Longest period accepted, in seconds (one week).
const MAX_PERIOD_S: u64 = 7 * 24 * 3600;
/// Largest burst accepted.
const MAX_BURST: u64 = 1_000_000;

/// The GCRA limit of `rate` per `period_s` with `burst`, or why it is invalid.
pub(crate) fn limit(rate: u64, period_s: u64, burst: u64) -> Result<Limit, &'static str> {
    if rate == 0 {
        return Err("rate must be positive");
    }
    if !(1..=MAX_PERIOD_S).contains(&period_s) {
        return Err("period_s must be 1..=604800");
    }
    if !(1..=MAX_BURST).contains(&burst) {
        return Err("burst must be 1..=1000000");
    }
    let interval_us = period_s * 1_000_000 / rate;
    if interval_us == 0 {
        return Err("rate is above one request per microsecond");
    }
    Ok(Limit {
        interval_us: interval_us as i64,
        burst: burst as i64,
    })
}

fn invalid(key: String, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl RateLimitConfig {
    /// Checks every key of the section, naming the bad one (`rate_limit.policies[2].burst`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let redis = &self.redis;
        if self.store == StoreKind::Redis {
            let scheme = redis.url.split("://").next().unwrap_or_default();
            if !matches!(scheme, "redis" | "redis+unix" | "unix") || !redis.url.contains("://") {
                return Err(invalid(
                    "rate_limit.redis.url".into(),
                    "must be redis://host:port[/db] or redis+unix:///path",
                ));
            }
            if let Err(e) = ::redis::Client::open(redis.url.as_str()) {
                tracing::debug!(error = %e, "redis url rejected");
                return Err(invalid(
                    "rate_limit.redis.url".into(),
                    "is not a valid Redis URL",
                ));
            }
        }
        if redis.key_prefix.is_empty() {
            return Err(invalid(
                "rate_limit.redis.key_prefix".into(),
                "must not be empty",
            ));
        }
        if !(1..=10_000).contains(&redis.timeout_ms) {
            return Err(invalid(
                "rate_limit.redis.timeout_ms".into(),
                "must be 1..=10000",
            ));
        }
        if !(1..=600_000).contains(&redis.retry_interval_ms) {
            return Err(invalid(
                "rate_limit.redis.retry_interval_ms".into(),
                "must be 1..=600000",
            ));
        }
        for (i, p) in self.client_ip.trusted_proxies.iter().enumerate() {
            if super::client_ip::parse_net(p).is_none() {
                return Err(invalid(
                    format!("rate_limit.client_ip.trusted_proxies[{i}]"),
                    "must be an IP address or CIDR network",
                ));
            }
        }
        if self.client_ip.ipv6_prefix_len > 128 {
            return Err(invalid(
                "rate_limit.client_ip.ipv6_prefix_len".into(),
                "must be 0..=128",
            ));
        }
        let af = &self.auth_failures;
        if af.enabled {
            limit(af.rate, af.period_s, af.burst)
                .map_err(|r| invalid("rate_limit.auth_failures".into(), r))?;
        }
        for (i, p) in self.policies.iter().enumerate() {
            let key = |k: &str| format!("rate_limit.policies[{i}].{k}");
            let valid_name = (1..=64).contains(&p.name.len())
                && p.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !valid_name {
                return Err(invalid(key("name"), "must be 1..=64 of [a-z0-9_-]"));
            }
            if self.policies[..i].iter().any(|q| q.name == p.name) {
                return Err(invalid(key("name"), "must be unique"));
            }
            limit(p.rate, p.period_s, p.burst)
                .map_err(|r| invalid(format!("rate_limit.policies[{i}]"), r))?;
            for (tier, t) in &p.tiers {
                limit(t.rate, t.period_s.unwrap_or(p.period_s), t.burst)
                    .map_err(|r| invalid(key(&format!("tiers.{tier}")), r))?;
            }
            for (j, route) in p.routes.iter().enumerate() {
                if !route.starts_with('/') {
                    return Err(invalid(key(&format!("routes[{j}]")), "must start with `/`"));
                }
                if route.split('/').rev().skip(1).any(|s| s == "**") {
                    return Err(invalid(
                        key(&format!("routes[{j}]")),
                        "`**` may only be the last segment",
                    ));
                }
            }
            let mut by = p.by.clone();
            by.sort();
            by.dedup();
            if by.len() != p.by.len() {
                return Err(invalid(key("by"), "lists a part twice"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PolicyConfig {
        PolicyConfig {
            name: "p".into(),
            by: vec![KeyPart::User],
            routes: vec![],
            rate: 10,
            period_s: 1,
            burst: 5,
            tiers: BTreeMap::new(),
        }
    }

    /// Each bad value is refused with its dotted key.
    #[test]
    fn invalid_values_are_named() {
        let named = |c: RateLimitConfig, key: &str| {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{e} should name {key}");
        };
        let mut c = RateLimitConfig::default();
        assert!(c.validate().is_ok());
        c.policies = vec![policy()];
        assert!(c.validate().is_ok());
        let mut bad = c.clone();
        bad.policies[0].burst = 0;
        named(bad, "rate_limit.policies[0]");
        let mut bad = c.clone();
        bad.policies[0].name = "Bad Name".into();
        named(bad, "rate_limit.policies[0].name");
        let mut bad = c.clone();
        bad.policies.push(policy());
        named(bad, "rate_limit.policies[1].name");
        let mut bad = c.clone();
        bad.policies[0].routes = vec!["/a/**/b".into()];
        named(bad, "rate_limit.policies[0].routes[0]");
        let mut bad = c.clone();
        bad.policies[0].tiers.insert(
            "gold".into(),
            TierLimit {
                rate: 0,
                period_s: None,
                burst: 1,
            },
        );
        named(bad, "rate_limit.policies[0].tiers.gold");
        let mut bad = c.clone();
        bad.client_ip.trusted_proxies = vec!["10.0.0.0/33".into()];
        named(bad, "rate_limit.client_ip.trusted_proxies[0]");
        let mut bad = c.clone();
        bad.store = StoreKind::Redis;
        bad.redis.url = "http://x".into();
        named(bad, "rate_limit.redis.url");
        let mut ok = c;
        ok.store = StoreKind::Redis;
        ok.redis.url = "redis+unix:///tmp/r.sock".into();
        assert!(ok.validate().is_ok());
    }

    /// The example of docs/configuration.md parses and validates.
    #[test]
    fn documented_example_parses() {
        use figment::providers::{Format, Serialized, Toml};
        let toml = r#"
store = "redis"
[redis]
url = "redis://redis:6379"
on_error = "local"
[client_ip]
trusted_proxies = ["10.0.0.0/8"]
[[policies]]
name = "partner"
by = ["partner"]
rate = 60
period_s = 60
burst = 10
tiers.gold = { rate = 3000, burst = 200 }
[[policies]]
name = "search"
by = ["user", "route"]
routes = ["/api/products"]
rate = 5
burst = 10
"#;
        let c: RateLimitConfig =
            figment::Figment::from(Serialized::defaults(RateLimitConfig::default()))
                .merge(Toml::string(toml))
                .extract()
                .expect("parses");
        c.validate().expect("valid");
        assert_eq!(c.policies[0].tiers["gold"].burst, 200);
        assert_eq!(c.policies[1].by, [KeyPart::User, KeyPart::Route]);
        assert_eq!(c.redis.on_error, OnRedisError::Local);
    }

    /// The GCRA interval is period / rate in microseconds.
    #[test]
    fn limit_math() {
        assert_eq!(
            limit(100, 60, 20),
            Ok(Limit {
                interval_us: 600_000,
                burst: 20
            })
        );
        assert!(limit(10_000_000, 1, 1).is_err());
    }
}

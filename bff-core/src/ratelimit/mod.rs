//! Rate limiting that holds across instances: policies from config (several may match one request, keyed by
//! client IP, partner, tier, user and/or route, each with a rate and a burst, with per-tier limits), decided
//! by one algorithm (GCRA, [`gcra`]) in one of two stores with identical semantics — in memory (one
//! instance) or in Redis (every instance, one atomic script call per decision, Redis's clock) — plus a
//! per-IP budget of failed authentication attempts.
//!
//! The edge calls [`RateLimiter::admit`] once per non-public request, after authentication (policies key
//! on the verified identity):
//! - authentication **failed**: the client IP's failed-attempt bucket is charged; when it is empty the
//!   answer is 429 instead of 401;
//! - authentication **succeeded**: every matching policy's bucket is charged, all or nothing, and the IP's
//!   failed-attempt bucket is only *peeked* (an IP that spent it is refused even with a valid credential, so
//!   guessing cannot tell hits from misses). One store call covers all of it.
//!
//! Limited responses carry `RateLimit-Policy` and `RateLimit` (IETF httpapi-ratelimit-headers draft, one
//! item per policy); refusals are 429 `rate_limited` problems with `Retry-After`.

pub mod config;

mod client_ip;
pub mod gcra;
mod memory;
mod redis;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use self::client_ip::ClientIpResolver;
use self::gcra::{Check, Cost, Decision, Limit};
use self::memory::MemoryStore;
use self::redis::RedisStore;
use crate::auth::Identity;
use crate::error::BffError;

pub use self::config::{
    AuthFailuresConfig, ClientIpConfig, ForwardedHeader, KeyPart, OnRedisError, PolicyConfig,
    RateLimitConfig, RedisConfig, StoreKind, TierLimit,
};

/// Response header listing the policies applied to the request (`"name";q=<quota>;w=<window s>`).
pub const RATELIMIT_POLICY_HEADER: &str = "ratelimit-policy";
/// Response header with each policy's state (`"name";r=<remaining>;t=<seconds until full>`).
pub const RATELIMIT_HEADER: &str = "ratelimit";

/// The limiter of one gateway, shared by all requests.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// Compiled policies, in config order.
    policies: Vec<Policy>,
    /// The failed-authentication budget per client IP, when limited.
    auth_failures: Option<Limit>,
    /// Finds the client address.
    client_ip: ClientIpResolver,
    /// Prefix of every store key.
    prefix: String,
    /// Where buckets live.
    store: Store,
}

#[derive(Debug)]
enum Store {
    Memory(MemoryStore),
    Redis {
        redis: Box<RedisStore>,
        on_error: OnRedisError,
        /// The local limiter used while Redis is unreachable (`on_error = "local"`).
        fallback: MemoryStore,
    },
}

#[derive(Debug)]
struct Policy {
    name: String,
    by: Vec<KeyPart>,
    routes: Vec<Vec<Segment>>,
    limit: Limit,
    tiers: HashMap<String, Limit>,
}

#[derive(Debug, PartialEq)]
enum Segment {
    Literal(String),
    Any,
    Rest,
}

fn compile_pattern(pattern: &str) -> Vec<Segment> {
    pattern
        .trim_start_matches('/')
        .split('/')
        .map(|s| match s {
            "**" => Segment::Rest,
            "*" => Segment::Any,
            s if s.starts_with('{') && s.ends_with('}') => Segment::Any,
            s => Segment::Literal(s.to_owned()),
        })
        .collect()
}

fn pattern_matches(pattern: &[Segment], path: &str) -> bool {
    let mut segments = path.trim_start_matches('/').split('/');
    for seg in pattern {
        match seg {
            Segment::Rest => return true,
            Segment::Any => {
                if segments.next().is_none() {
                    return false;
                }
            }
            Segment::Literal(lit) => {
                if segments.next() != Some(lit.as_str()) {
                    return false;
                }
            }
        }
    }
    segments.next().is_none()
}

/// The `policy` label of refusals by the failed-authentication budget.
const AUTH_FAILURES: &str = "auth_failures";

/// The outcome for one request: a refusal, if any, and the headers to add to the response.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// 429 or 503 when the request is refused.
    pub(crate) denied: Option<BffError>,
    /// `RateLimit-Policy` / `RateLimit`, when policies applied.
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// The policy that refused (a configured name, `auth_failures`, or `store_unavailable`), for metrics.
    pub(crate) refused_by: Option<String>,
}

/// What the limiter reads of a request (borrowed, so the request itself need not be held across the store
/// call).
#[derive(Debug)]
pub(crate) struct RequestFacts<'a> {
    /// The socket peer (unspecified when unknown, e.g. in in-process tests).
    peer: IpAddr,
    /// The request headers (forwarding headers are read only from trusted proxies).
    headers: &'a HeaderMap,
    /// The request path.
    path: &'a str,
    /// The matched route pattern, `-` when none matched.
    route: &'a str,
}

impl<'a> RequestFacts<'a> {
    /// The facts of `request`.
    pub(crate) fn of(request: &'a Request) -> Self {
        Self {
            peer: request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            headers: request.headers(),
            path: request.uri().path(),
            route: request
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str)
                .unwrap_or("-"),
        }
    }
}

/// A rate-limited request's bucket and how to report it.
struct Applied<'a> {
    name: &'a str,
    limit: Limit,
}

impl RateLimiter {
    /// The limiter of validated `config`, or `None` when nothing is limited (disabled, or no policy and no
    /// failed-authentication budget). `authenticates`: whether the gateway checks credentials at all.
    pub(crate) fn new(config: &RateLimitConfig, authenticates: bool) -> Option<Self> {
        let auth_failures = (authenticates && config.auth_failures.enabled)
            .then(|| {
                let af = &config.auth_failures;
                config::limit(af.rate, af.period_s, af.burst).ok()
            })
            .flatten();
        if !config.enabled || (config.policies.is_empty() && auth_failures.is_none()) {
            return None;
        }
        let policies = config
            .policies
            .iter()
            .filter_map(|p| {
                Some(Policy {
                    name: p.name.clone(),
                    by: p.by.clone(),
                    routes: p.routes.iter().map(|r| compile_pattern(r)).collect(),
                    limit: config::limit(p.rate, p.period_s, p.burst).ok()?,
                    tiers: p
                        .tiers
                        .iter()
                        .filter_map(|(tier, t)| {
                            let limit =
                                config::limit(t.rate, t.period_s.unwrap_or(p.period_s), t.burst);
                            Some((tier.clone(), limit.ok()?))
                        })
                        .collect(),
                })
            })
            .collect();
        let store = match config.store {
            StoreKind::Memory => Store::Memory(MemoryStore::new()),
            StoreKind::Redis => match RedisStore::new(&config.redis) {
                Ok(redis) => Store::Redis {
                    redis: Box::new(redis),
                    on_error: config.redis.on_error,
                    fallback: MemoryStore::new(),
                },
                Err(e) => {
                    // Validation parses the URL first, so this is unreachable in practice.
                    tracing::error!(error = %e, "invalid rate_limit.redis.url; using the in-memory store");
                    Store::Memory(MemoryStore::new())
                }
            },
        };
        Some(Self {
            policies,
            auth_failures,
            client_ip: ClientIpResolver::new(&config.client_ip),
            prefix: config.redis.key_prefix.clone(),
            store,
        })
    }

    /// Decides on the request described by `facts`, whose authentication gave `identity` (module docs).
    pub(crate) async fn admit(
        &self,
        facts: &RequestFacts<'_>,
        identity: Result<Option<&Identity>, &BffError>,
    ) -> Verdict {
        let ip = self
            .client_ip
            .bucket(self.client_ip.resolve(facts.peer, facts.headers));
        let mut checks = Vec::new();
        let mut applied = Vec::new();
        let identity = match identity {
            Err(_) => {
                let Some(limit) = self.auth_failures else {
                    return Verdict::default();
                };
                checks.push(self.auth_failure_check(&ip, limit, Cost::Consume));
                let Some(decision) = self.decide(&checks).await else {
                    return unavailable();
                };
                if !decision.allowed {
                    tracing::info!(client_ip = %ip, "failed-authentication budget spent");
                    return Verdict {
                        denied: Some(rate_limited(&decision)),
                        headers: Vec::new(),
                        refused_by: Some(AUTH_FAILURES.into()),
                    };
                }
                return Verdict::default();
            }
            Ok(identity) => identity,
        };
        let (path, route) = (facts.path, facts.route);
        for policy in &self.policies {
            if !policy.routes.is_empty() && !policy.routes.iter().any(|p| pattern_matches(p, path))
            {
                continue;
            }
            let Some(key) = self.policy_key(policy, &ip, identity, route) else {
                continue;
            };
            let limit = identity
                .and_then(|i| i.partner.as_ref())
                .and_then(|p| policy.tiers.get(&p.tier))
                .copied()
                .unwrap_or(policy.limit);
            checks.push(Check {
                key,
                limit,
                cost: Cost::Consume,
            });
            applied.push(Applied {
                name: &policy.name,
                limit,
            });
        }
        if let Some(limit) = self.auth_failures {
            checks.push(self.auth_failure_check(&ip, limit, Cost::Peek));
        }
        if checks.is_empty() {
            return Verdict::default();
        }
        let Some(decision) = self.decide(&checks).await else {
            return unavailable();
        };
        let headers = rate_limit_headers(&applied, &decision);
        if decision.allowed {
            return Verdict {
                denied: None,
                headers,
                refused_by: None,
            };
        }
        tracing::info!(
            client_ip = %ip,
            retry_after_ms = decision.retry_after_us / 1_000,
            "rate limited"
        );
        // The first applied policy whose bucket is empty refused; otherwise the peeked failed-auth budget.
        let refused_by = applied
            .iter()
            .zip(&decision.buckets)
            .find(|(_, bucket)| bucket.remaining == 0)
            .map_or(AUTH_FAILURES, |(a, _)| a.name);
        Verdict {
            denied: Some(rate_limited(&decision)),
            headers,
            refused_by: Some(refused_by.to_owned()),
        }
    }

    /// One store decision; `None` when Redis failed and the policy is to fail closed.
    async fn decide(&self, checks: &[Check]) -> Option<Decision> {
        match &self.store {
            Store::Memory(memory) => Some(memory.decide(checks)),
            Store::Redis {
                redis,
                on_error,
                fallback,
            } => match Box::pin(redis.decide(checks)).await {
                Ok(decision) => Some(decision),
                Err(e) => {
                    tracing::debug!(error = %e, "rate-limit store failed");
                    match on_error {
                        OnRedisError::Local => Some(fallback.decide(checks)),
                        OnRedisError::Deny => None,
                    }
                }
            },
        }
    }

    fn auth_failure_check(&self, ip: &str, limit: Limit, cost: Cost) -> Check {
        Check {
            key: format!("{}af:{}", self.prefix, digest(&[("ip", ip)])),
            limit,
            cost,
        }
    }

    /// The store key of `policy` for this request, or `None` when a key part is unavailable (a `user` policy
    /// and a partner, a `partner` policy and a user, ...).
    fn policy_key(
        &self,
        policy: &Policy,
        ip: &str,
        identity: Option<&Identity>,
        route: &str,
    ) -> Option<String> {
        let mut parts: Vec<(&str, &str)> = Vec::with_capacity(policy.by.len());
        for part in &policy.by {
            let value = match part {
                KeyPart::Ip => ip,
                KeyPart::Partner => identity?.partner.as_ref()?.id.as_str(),
                KeyPart::Tier => identity?.partner.as_ref()?.tier.as_str(),
                KeyPart::User => {
                    let identity = identity?;
                    if identity.partner.is_some() {
                        return None;
                    }
                    identity.subject.as_str()
                }
                KeyPart::Route => route,
            };
            let tag = match part {
                KeyPart::Ip => "ip",
                KeyPart::Partner => "partner",
                KeyPart::Tier => "tier",
                KeyPart::User => "user",
                KeyPart::Route => "route",
            };
            parts.push((tag, value));
        }
        Some(format!(
            "{}p:{}:{}",
            self.prefix,
            policy.name,
            digest(&parts)
        ))
    }
}

/// 128 bits of SHA-256 over the length-prefixed parts, in hex: fixed-size keys, no client data in Redis,
/// no ambiguity between parts.
fn digest(parts: &[(&str, &str)]) -> String {
    let mut hasher = Sha256::new();
    for (tag, value) in parts {
        hasher.update(tag.as_bytes());
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value.as_bytes());
    }
    let hash = hasher.finalize();
    let mut out = String::with_capacity(32);
    for b in &hash[..16] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn ceil_s(us: i64) -> u64 {
    u64::try_from((us.max(0) + 999_999) / 1_000_000).unwrap_or(0)
}

fn rate_limited(decision: &Decision) -> BffError {
    BffError::RateLimited {
        retry_after_s: ceil_s(decision.retry_after_us).max(1),
    }
}

fn unavailable() -> Verdict {
    Verdict {
        denied: Some(BffError::RateLimiterUnavailable),
        refused_by: Some("store_unavailable".into()),
        headers: Vec::new(),
    }
}

/// `RateLimit-Policy: "name";q=<burst>;w=<seconds to refill a burst>` and
/// `RateLimit: "name";r=<remaining>;t=<seconds until full>`, one item per applied policy.
fn rate_limit_headers(
    applied: &[Applied<'_>],
    decision: &Decision,
) -> Vec<(HeaderName, HeaderValue)> {
    if applied.is_empty() {
        return Vec::new();
    }
    let mut policy = String::new();
    let mut state = String::new();
    for (i, (a, bucket)) in applied.iter().zip(&decision.buckets).enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let window = ceil_s(a.limit.burst * a.limit.interval_us).max(1);
        let _ = write!(policy, "{sep}\"{}\";q={};w={window}", a.name, a.limit.burst);
        let _ = write!(
            state,
            "{sep}\"{}\";r={};t={}",
            a.name,
            bucket.remaining,
            ceil_s(bucket.reset_us)
        );
    }
    let mut headers = Vec::with_capacity(2);
    if let (Ok(p), Ok(s)) = (
        HeaderValue::from_str(&policy),
        HeaderValue::from_str(&state),
    ) {
        headers.push((HeaderName::from_static(RATELIMIT_POLICY_HEADER), p));
        headers.push((HeaderName::from_static(RATELIMIT_HEADER), s));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{name}` and `*` match one segment, a final `**` any rest, literals themselves.
    #[test]
    fn route_patterns() {
        let p = compile_pattern("/v1/orders/{id}");
        assert!(pattern_matches(&p, "/v1/orders/701"));
        assert!(!pattern_matches(&p, "/v1/orders"));
        assert!(!pattern_matches(&p, "/v1/orders/701/x"));
        let p = compile_pattern("/v1/**");
        assert!(pattern_matches(&p, "/v1"));
        assert!(pattern_matches(&p, "/v1/products/1/availability"));
        assert!(!pattern_matches(&p, "/v2/x"));
        let p = compile_pattern("/v1/products/*/availability");
        assert!(pattern_matches(&p, "/v1/products/9/availability"));
        assert!(!pattern_matches(&p, "/v1/products/9"));
    }

    /// Keys of different parts never collide, even when values are crafted to.
    #[test]
    fn digests_are_unambiguous() {
        assert_ne!(
            digest(&[("user", "a|b"), ("route", "c")]),
            digest(&[("user", "a"), ("route", "b|c")])
        );
        assert_ne!(digest(&[("user", "7")]), digest(&[("partner", "7")]));
    }

    /// The headers follow the draft's structured-field syntax, one item per policy.
    #[test]
    fn headers_format() {
        let applied = [
            Applied {
                name: "user",
                limit: Limit {
                    interval_us: 600_000,
                    burst: 20,
                },
            },
            Applied {
                name: "ip",
                limit: Limit {
                    interval_us: 1_000,
                    burst: 5,
                },
            },
        ];
        let decision = Decision {
            allowed: true,
            retry_after_us: 0,
            buckets: vec![
                gcra::BucketState {
                    remaining: 19,
                    reset_us: 600_000,
                },
                gcra::BucketState {
                    remaining: 4,
                    reset_us: 1_000,
                },
            ],
        };
        let h = rate_limit_headers(&applied, &decision);
        assert_eq!(h[0].1, "\"user\";q=20;w=12, \"ip\";q=5;w=1");
        assert_eq!(h[1].1, "\"user\";r=19;t=1, \"ip\";r=4;t=1");
    }
}

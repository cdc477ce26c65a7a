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
mod headers;
mod memory;
mod redis;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use self::client_ip::ClientIpResolver;
use self::gcra::{Check, Cost, Decision, Limit};
use self::headers::{Applied, Rated, ceil_s, rate_limit_headers};
use self::memory::MemoryStore;
use self::redis::RedisStore;
use crate::auth::Identity;
use crate::error::BffError;

pub use self::config::{
    AuthFailuresConfig, ClientIpConfig, ForwardedHeader, KeyPart, OnRedisError, PolicyConfig,
    RateLimitConfig, RedisConfig, StoreKind, TierLimit,
};

pub use self::headers::{RATELIMIT_HEADER, RATELIMIT_POLICY_HEADER};

/// The limiter of one gateway, shared by all requests.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// Compiled policies, in config order.
    policies: Vec<Policy>,
    /// The failed-authentication budget per client IP, when limited.
    auth_failures: Option<Limit>,
    /// Finds the client address.
    client_ip: ClientIpResolver,
    /// Prefix of the failed-authentication buckets' keys (`<key_prefix>af:`).
    auth_failures_head: String,
    /// Whether bucket keys are digests (a Redis store: no client data leaves the process) or the
    /// length-prefixed parts themselves (in memory: nothing to hide, no hash to pay).
    hashed_keys: bool,
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
    /// Prefix of its buckets' keys (`<key_prefix>p:<name>:`).
    key_head: String,
    by: Vec<KeyPart>,
    routes: Vec<Vec<Segment>>,
    limit: Rated,
    tiers: HashMap<String, Rated>,
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
                    key_head: format!("{}p:{}:", config.redis.key_prefix, p.name),
                    by: p.by.clone(),
                    routes: p.routes.iter().map(|r| compile_pattern(r)).collect(),
                    limit: Rated::new(&p.name, config::limit(p.rate, p.period_s, p.burst).ok()?),
                    tiers: p
                        .tiers
                        .iter()
                        .filter_map(|(tier, t)| {
                            let limit =
                                config::limit(t.rate, t.period_s.unwrap_or(p.period_s), t.burst);
                            Some((tier.clone(), Rated::new(&p.name, limit.ok()?)))
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
            auth_failures_head: format!("{}af:", config.redis.key_prefix),
            hashed_keys: matches!(store, Store::Redis { .. }),
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
            let rated = identity
                .and_then(|i| i.partner.as_ref())
                .and_then(|p| policy.tiers.get(&p.tier))
                .unwrap_or(&policy.limit);
            checks.push(Check {
                key,
                limit: rated.limit,
                cost: Cost::Consume,
            });
            applied.push(Applied {
                name: &policy.name,
                rated,
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
        let mut key = BucketKey::new(&self.auth_failures_head, self.hashed_keys);
        key.part("ip", ip);
        Check {
            key: key.finish(),
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
        let mut key = BucketKey::new(&policy.key_head, self.hashed_keys);
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
            key.part(tag, value);
        }
        Some(key.finish())
    }
}

/// A bucket's key: its head (`<key_prefix>p:<policy>:` or `<key_prefix>af:`), then the parts (tag, length,
/// value: no ambiguity between parts) — hashed for a Redis store (128 bits of SHA-256 in hex: fixed-size keys,
/// no client data in Redis), as they are in memory (no hash per request; the values are bounded: verified
/// identities, configured route templates, addresses). Written without `format!`.
enum BucketKey<'a> {
    Hashed { head: &'a str, hasher: Sha256 },
    Raw(String),
}

impl<'a> BucketKey<'a> {
    fn new(head: &'a str, hashed: bool) -> Self {
        if hashed {
            Self::Hashed {
                head,
                hasher: Sha256::new(),
            }
        } else {
            let mut key = String::with_capacity(head.len() + 48);
            key.push_str(head);
            Self::Raw(key)
        }
    }

    /// Adds the part `tag` with its `value`.
    fn part(&mut self, tag: &str, value: &str) {
        match self {
            Self::Hashed { hasher, .. } => {
                hasher.update(tag.as_bytes());
                hasher.update((value.len() as u64).to_be_bytes());
                hasher.update(value.as_bytes());
            }
            // `user3:abc`: the tag (letters), the value's length in decimal, `:`, the value.
            Self::Raw(key) => {
                key.push_str(tag);
                push_decimal(key, value.len() as u64);
                key.push(':');
                key.push_str(value);
            }
        }
    }

    /// The store key.
    fn finish(self) -> String {
        match self {
            Self::Hashed { head, hasher } => {
                let hash = hasher.finalize();
                let mut first = [0u8; 16];
                first.copy_from_slice(&hash[..16]);
                let mut key = String::with_capacity(head.len() + 32);
                key.push_str(head);
                crate::trace::push_hex(&mut key, u128::from_be_bytes(first), 32);
                key
            }
            Self::Raw(key) => key,
        }
    }
}

/// Appends `n` in decimal (per-request strings are written without `format!`).
fn push_decimal(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// The key of `parts` after an empty head: hashed (128 bits of SHA-256 in hex) or raw.
#[cfg(test)]
fn key_of(parts: &[(&str, &str)], hashed: bool) -> String {
    let mut key = BucketKey::new("", hashed);
    for (tag, value) in parts {
        key.part(tag, value);
    }
    key.finish()
}

#[cfg(test)]
fn digest(parts: &[(&str, &str)]) -> String {
    key_of(parts, true)
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

    /// Keys of different parts never collide, even when values are crafted to, hashed or raw.
    #[test]
    fn keys_are_unambiguous() {
        for hashed in [true, false] {
            let key = |parts: &[(&str, &str)]| key_of(parts, hashed);
            assert_ne!(
                key(&[("user", "a|b"), ("route", "c")]),
                key(&[("user", "a"), ("route", "b|c")])
            );
            assert_ne!(
                key(&[("user", "a1:b"), ("route", "c")]),
                key(&[("user", "a"), ("route", "1:bc")])
            );
            assert_ne!(key(&[("user", "7")]), key(&[("partner", "7")]));
            assert_ne!(key(&[("user", "")]), key(&[]));
        }
        assert_eq!(
            key_of(&[("user", "7"), ("route", "/agg")], false),
            "user1:7route4:/agg"
        );
    }

    /// Decimal rendering agrees with `Display` at the edges.
    #[test]
    fn decimals() {
        for n in [0, 1, 9, 10, 99, 1_000_000, u64::MAX] {
            let mut s = String::new();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    /// Keys are SHA-256 of the length-prefixed parts (unchanged, so buckets in a shared Redis carry over).
    #[test]
    fn digest_is_stable() {
        assert_eq!(digest(&[("ip", "127.0.0.1")]).len(), 32);
        assert_eq!(digest(&[("user", "7")]), {
            let mut h = Sha256::new();
            h.update(b"user");
            h.update(1u64.to_be_bytes());
            h.update(b"7");
            h.finalize()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        });
    }
}

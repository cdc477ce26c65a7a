//! Caching configuration: the gateway-wide `[cache]` section (local store size, optional Redis second level,
//! compression) and the per-downstream `[downstreams.<name>.cache]` policy (sharing, TTLs, stale windows,
//! coalescing, batching window). Every key is documented in `docs/configuration.md` and `docs/caching.md`.

use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;

/// `[cache]`: what all downstreams of the gateway share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Bound of the local (in-process) response cache, in bytes of bodies and keys; least recently and
    /// least frequently used entries are evicted beyond it. `0` turns the local store off (coalescing and
    /// batching still work).
    pub max_bytes: u64,
    /// The optional shared second level in Redis (off by default).
    pub redis: CacheRedisConfig,
    /// Compression of responses to clients.
    pub compression: CompressionConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            redis: CacheRedisConfig::default(),
            compression: CompressionConfig::default(),
        }
    }
}

/// `[cache.redis]`: a second cache level shared by every instance of the gateway. A Redis outage degrades
/// to the local cache (and to the downstream), never to errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheRedisConfig {
    /// Whether the second level is used.
    pub enabled: bool,
    /// `redis://host:port/db` or `redis+unix:///path/to/socket`.
    pub url: String,
    /// Bound on one Redis read or write, in milliseconds (a slower Redis counts as down).
    pub timeout_ms: u64,
    /// After a Redis failure, Redis is skipped for this long (milliseconds), then tried again.
    pub retry_interval_ms: u64,
    /// Prefix of every key; give each gateway its own.
    pub key_prefix: String,
}

impl Default for CacheRedisConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            url: "redis://127.0.0.1:6379".into(),
            timeout_ms: 50,
            retry_interval_ms: 5_000,
            key_prefix: "bff:cache:".into(),
        }
    }
}

/// `[cache.compression]`: gzip and brotli of response bodies by `Accept-Encoding`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionConfig {
    /// Whether responses are compressed at all.
    pub enabled: bool,
    /// Bodies smaller than this (bytes) are sent as they are: compressing them saves nothing.
    pub min_bytes: u16,
    /// Offer gzip.
    pub gzip: bool,
    /// Offer brotli (preferred over gzip when the client accepts both).
    pub br: bool,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_bytes: 1024,
            gzip: true,
            br: true,
        }
    }
}

/// `[downstreams.<name>.cache]`: how the GET answers of one downstream are cached, coalesced and batched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownstreamCacheConfig {
    /// Whether answers are stored in the response cache at all (coalescing is separate).
    pub enabled: bool,
    /// Whether the downstream's answers are the same for every caller (catalog, inventory): they are then
    /// cached once for everybody and batched across requests. Otherwise every entry is keyed by the caller's
    /// identity. An answer marked `private` is always keyed by identity.
    pub shared: bool,
    /// Freshness of an answer that states none (no `max-age` / `s-maxage`), in seconds; `0` = such answers
    /// are not served from the cache.
    pub ttl_s: u64,
    /// Per-route freshness: the longest matching `prefix` of the path (and query) wins over `ttl_s`.
    pub routes: Vec<RouteTtl>,
    /// Upper bound of any freshness, the downstream's own `max-age` included, in seconds.
    pub max_ttl_s: u64,
    /// After its freshness, an entry is still served for this long (seconds) while one background call
    /// refreshes it; `0` = off.
    pub stale_while_revalidate_s: u64,
    /// After its freshness, an entry is still served for this long (seconds) when the downstream fails
    /// (marked `part=stale` in `bff-degraded`); `0` = off.
    pub stale_if_error_s: u64,
    /// Concurrent identical GETs (same path and query, same identity unless shared) make one downstream call.
    pub coalesce: bool,
    /// Cross-request batching window, in milliseconds: item lookups of concurrent requests arriving within
    /// it are merged into one batch call (only for `shared` downstreams); `0` = every lookup calls at once.
    pub batch_window_ms: u64,
}

impl Default for DownstreamCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            shared: false,
            ttl_s: 0,
            routes: Vec::new(),
            max_ttl_s: 3_600,
            stale_while_revalidate_s: 0,
            stale_if_error_s: 0,
            coalesce: true,
            batch_window_ms: 1,
        }
    }
}

/// A freshness for the paths under `prefix`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTtl {
    /// Path prefix on the downstream, e.g. `/products/` (matched against path and query).
    pub prefix: String,
    /// Freshness of answers that state none, in seconds; `0` = not cached.
    pub ttl_s: u64,
}

impl DownstreamCacheConfig {
    /// The configured freshness of `path_and_query` (longest matching route prefix, else `ttl_s`).
    pub(crate) fn ttl_for(&self, path_and_query: &str) -> u64 {
        self.routes
            .iter()
            .filter(|r| path_and_query.starts_with(&r.prefix))
            .max_by_key(|r| r.prefix.len())
            .map_or(self.ttl_s, |r| r.ttl_s)
    }

    /// Checks the section; `key` is its dotted path.
    pub(crate) fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let invalid = |k: &str, reason: &str| ConfigError::Invalid {
            key: format!("{key}.{k}"),
            reason: reason.into(),
        };
        if self.max_ttl_s > 31 * 24 * 3_600 {
            return Err(invalid("max_ttl_s", "must be at most 2678400 (31 days)"));
        }
        if self.stale_while_revalidate_s > 86_400 || self.stale_if_error_s > 86_400 {
            return Err(invalid(
                "stale_while_revalidate_s",
                "stale windows must be at most 86400 (one day)",
            ));
        }
        if self.batch_window_ms > 50 {
            return Err(invalid(
                "batch_window_ms",
                "must be at most 50 (it delays every batched lookup)",
            ));
        }
        for (i, r) in self.routes.iter().enumerate() {
            if !r.prefix.starts_with('/') {
                return Err(invalid(
                    &format!("routes[{i}].prefix"),
                    "must start with `/`",
                ));
            }
        }
        Ok(())
    }
}

impl CacheConfig {
    /// Checks the section (`cache.*`).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.redis;
        if r.enabled {
            let scheme_ok = url::Url::parse(&r.url)
                .map(|u| matches!(u.scheme(), "redis" | "rediss" | "redis+unix" | "unix"))
                .unwrap_or(false);
            if !scheme_ok {
                return Err(ConfigError::Invalid {
                    key: "cache.redis.url".into(),
                    reason: "must be a redis:// or redis+unix:// URL".into(),
                });
            }
            if r.timeout_ms == 0 || r.timeout_ms > 10_000 {
                return Err(ConfigError::Invalid {
                    key: "cache.redis.timeout_ms".into(),
                    reason: "must be between 1 and 10000".into(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest matching route prefix wins over the downstream's TTL.
    #[test]
    fn route_ttl_longest_prefix() {
        let c = DownstreamCacheConfig {
            ttl_s: 5,
            routes: vec![
                RouteTtl {
                    prefix: "/products".into(),
                    ttl_s: 60,
                },
                RouteTtl {
                    prefix: "/products?category=".into(),
                    ttl_s: 0,
                },
            ],
            ..Default::default()
        };
        assert_eq!(c.ttl_for("/products/42"), 60);
        assert_eq!(c.ttl_for("/products?category=kitchen"), 0);
        assert_eq!(c.ttl_for("/other"), 5);
    }

    /// The keys of docs/configuration.md load from TOML (and environment), unknown ones are named.
    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error by design.
    fn loads_from_toml_and_env() {
        use crate::config::{BffConfig, DownstreamConfig};
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "gw.toml",
                r#"
[cache]
max_bytes = 1048576
[cache.redis]
enabled = true
url = "redis+unix:///tmp/r.sock"
[cache.compression]
min_bytes = 256
br = false
[downstreams.catalog.cache]
shared = true
ttl_s = 30
stale_if_error_s = 120
routes = [{ prefix = "/products?category=", ttl_s = 0 }]
"#,
            )?;
            jail.set_env("BFF_DOWNSTREAMS__CATALOG__CACHE__BATCH_WINDOW_MS", "2");
            let mut defaults = BffConfig::default();
            defaults
                .downstreams
                .insert("catalog".into(), DownstreamConfig::at("http://127.0.0.1:1"));
            let c =
                BffConfig::load(&defaults, Some(std::path::Path::new("gw.toml"))).expect("valid");
            assert_eq!(c.cache.max_bytes, 1_048_576);
            assert!(c.cache.redis.enabled && !c.cache.compression.br);
            let d = &c.downstreams["catalog"].cache;
            assert!(d.shared && d.coalesce);
            assert_eq!(
                (d.ttl_s, d.stale_if_error_s, d.batch_window_ms),
                (30, 120, 2)
            );
            assert_eq!(d.ttl_for("/products?category=x"), 0);
            jail.create_file(
                "bad.toml",
                "[downstreams.catalog.cache]
ttl = 1
",
            )?;
            let e = BffConfig::load(&defaults, Some(std::path::Path::new("bad.toml"))).unwrap_err();
            assert!(e.to_string().contains("ttl"), "{e}");
            Ok(())
        });
    }

    /// Out-of-range values are named.
    #[test]
    fn validation_names_keys() {
        let c = DownstreamCacheConfig {
            batch_window_ms: 500,
            ..Default::default()
        };
        let e = c.validate("downstreams.catalog.cache").unwrap_err();
        assert!(
            e.to_string()
                .contains("downstreams.catalog.cache.batch_window_ms")
        );
        let mut g = CacheConfig::default();
        g.redis.enabled = true;
        g.redis.url = "http://x".into();
        assert!(
            g.validate()
                .unwrap_err()
                .to_string()
                .contains("cache.redis.url")
        );
    }
}

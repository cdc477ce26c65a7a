//! The `[idempotency]` section: where `Idempotency-Key` records live, how long, and how long a key stays
//! locked while its command runs.

use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;
use crate::ratelimit::config::StoreKind;

/// `Idempotency-Key` handling of commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdempotencyConfig {
    /// Where records live: `memory` (this instance only) or `redis` (shared by every instance) — the same
    /// choice as `rate_limit.store`.
    pub store: StoreKind,
    /// The Redis store (used when `store = "redis"`).
    pub redis: IdempotencyRedisConfig,
    /// How long a completed command's answer is kept for replay, in seconds.
    pub ttl_s: u64,
    /// How long a key stays locked while its command runs, in milliseconds (released at once when the
    /// command ends; this bounds the lock of an instance that died mid-command). A request whose remaining
    /// time budget is longer locks for that budget plus one second instead.
    pub lock_ms: u64,
    /// Largest answer kept for replay, in bytes (a larger answer is sent but the key is released, not kept).
    pub max_response_bytes: usize,
    /// Most records in the memory store (oldest evicted first).
    pub max_entries: u64,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self {
            store: StoreKind::Memory,
            redis: IdempotencyRedisConfig::default(),
            ttl_s: 24 * 3600,
            lock_ms: 30_000,
            max_response_bytes: 256 * 1024,
            max_entries: 100_000,
        }
    }
}

/// The Redis store of idempotency records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdempotencyRedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `redis+unix:///path/to/redis.sock`.
    pub url: String,
    /// Prefix of every key; instances of one gateway share it.
    pub key_prefix: String,
    /// Bound on one operation (connect included), in milliseconds; past it the command is refused with 503
    /// `idempotency_unavailable` (never run without its key's protection).
    pub timeout_ms: u64,
}

impl Default for IdempotencyRedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "bff:idem:".into(),
            timeout_ms: 200,
        }
    }
}

impl IdempotencyConfig {
    /// Checks the section, naming the bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                key: format!("idempotency.{key}"),
                reason: reason.into(),
            })
        };
        if !(1..=30 * 24 * 3600).contains(&self.ttl_s) {
            return bad("ttl_s", "must be 1..=2592000");
        }
        if !(1..=3_600_000).contains(&self.lock_ms) {
            return bad("lock_ms", "must be 1..=3600000");
        }
        if !(1..=16 * 1024 * 1024).contains(&self.max_response_bytes) {
            return bad("max_response_bytes", "must be 1..=16777216");
        }
        if self.max_entries == 0 {
            return bad("max_entries", "must be positive");
        }
        if self.store == StoreKind::Redis {
            if redis::Client::open(self.redis.url.as_str()).is_err() {
                return bad("redis.url", "is not a valid Redis URL");
            }
            if self.redis.key_prefix.is_empty() {
                return bad("redis.key_prefix", "must not be empty");
            }
            if !(1..=10_000).contains(&self.redis.timeout_ms) {
                return bad("redis.timeout_ms", "must be 1..=10000");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::BffConfig;

    /// The `[body]` and `[idempotency]` keys of docs/configuration.md load from TOML and environment;
    /// unknown and out-of-range keys are named.
    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error by design.
    fn loads_from_toml_and_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "gw.toml",
                r#"
[body]
max_bytes = 4096
max_depth = 8
gzip_routes = ["/api/orders"]
[idempotency]
store = "redis"
ttl_s = 3600
lock_ms = 10000
max_response_bytes = 1024
max_entries = 10
[idempotency.redis]
url = "redis+unix:///tmp/r.sock"
key_prefix = "bff:idem:web:"
"#,
            )?;
            jail.set_env("BFF_IDEMPOTENCY__REDIS__TIMEOUT_MS", "50");
            let c = BffConfig::load(&BffConfig::default(), Some(std::path::Path::new("gw.toml")))
                .expect("valid");
            assert_eq!((c.body.max_bytes, c.body.max_depth), (4096, 8));
            assert_eq!(c.body.gzip_routes, ["/api/orders"]);
            assert_eq!(
                c.idempotency.store,
                crate::ratelimit::config::StoreKind::Redis
            );
            assert_eq!(
                (c.idempotency.ttl_s, c.idempotency.redis.timeout_ms),
                (3600, 50)
            );
            for (file, text, key) in [
                ("a.toml", "[idempotency]\nttl = 1\n", "ttl"),
                ("b.toml", "[body]\nmax_depth = 0\n", "body.max_depth"),
                ("c.toml", "[idempotency]\nttl_s = 0\n", "idempotency.ttl_s"),
                (
                    "d.toml",
                    "[body]\ngzip_routes = [\"api\"]\n",
                    "body.gzip_routes[0]",
                ),
            ] {
                jail.create_file(file, text)?;
                let e = BffConfig::load(&BffConfig::default(), Some(std::path::Path::new(file)))
                    .unwrap_err();
                assert!(e.to_string().contains(key), "{file}: {e}");
            }
            Ok(())
        });
    }
}

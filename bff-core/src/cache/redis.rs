//! The optional second cache level in Redis, shared by every instance of a gateway. Keys are
//! `key_prefix + sha256(cache key)` (no user id is readable in the key space); values are a one-line header
//! (`bff1 stored_unix_ms fresh_ms swr_ms sie_ms private`) and the body; each key expires (`PX`) when the
//! entry is no longer usable. Every operation is bounded by `timeout_ms`; after a failure Redis is skipped
//! for `retry_interval_ms`, so an outage costs one timeout and then nothing: lookups fall back to the local
//! level and the downstream, never to errors.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::Client;
use redis::aio::MultiplexedConnection;
use sha2::{Digest, Sha256};

use super::config::CacheRedisConfig;
use super::store::Entry;
use crate::metrics::{Counter, Metrics};

/// The Redis level. Cheap to share; the connection is opened lazily and reopened after failures.
#[derive(Debug)]
pub(crate) struct RedisLevel {
    inner: std::sync::Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    connection: Mutex<Option<MultiplexedConnection>>,
    timeout: Duration,
    retry_interval: Duration,
    prefix: String,
    /// Time zero of `down_until_ms`.
    origin: Instant,
    /// Until when (ms since `origin`) Redis is skipped; 0 = up.
    down_until_ms: AtomicU64,
    /// Whether the last operation failed (to log each outage and recovery once).
    failing: AtomicBool,
    hits: Counter,
    errors: Counter,
}

impl RedisLevel {
    /// A level for `config` (the URL is parsed; nothing is connected yet).
    pub(crate) fn new(
        config: &CacheRedisConfig,
        metrics: &Metrics,
    ) -> Result<Self, redis::RedisError> {
        Ok(Self {
            inner: std::sync::Arc::new(Inner {
                client: Client::open(config.url.as_str())?,
                connection: Mutex::new(None),
                timeout: Duration::from_millis(config.timeout_ms),
                retry_interval: Duration::from_millis(config.retry_interval_ms),
                prefix: config.key_prefix.clone(),
                origin: Instant::now(),
                down_until_ms: AtomicU64::new(0),
                failing: AtomicBool::new(false),
                hits: metrics.counter(
                    "bff_cache_redis_hits_total",
                    "Local cache misses answered by the Redis level.",
                    &[],
                ),
                errors: metrics.counter(
                    "bff_cache_redis_errors_total",
                    "Redis cache operations that failed or timed out (the local level and the downstream answered instead).",
                    &[],
                ),
            }),
        })
    }

    /// The entry under `key`, or `None` (absent, unreadable, Redis down or slow).
    pub(crate) async fn get(&self, key: &str) -> Option<Entry> {
        let redis_key = self.inner.redis_key(key);
        let value: Option<Vec<u8>> = self
            .inner
            .run(|mut c| async move {
                redis::cmd("GET")
                    .arg(&redis_key)
                    .query_async::<Option<Vec<u8>>>(&mut c)
                    .await
            })
            .await?;
        let entry = decode(&value?)?;
        self.inner.hits.inc();
        Some(entry)
    }

    /// Deletes the entry under `key` (within the timeout; a failure is counted and logged, the entry then
    /// lives until it expires).
    pub(crate) async fn remove(&self, key: &str) {
        let redis_key = self.inner.redis_key(key);
        self.inner
            .run(|mut c| async move {
                redis::cmd("DEL")
                    .arg(&redis_key)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await;
    }

    /// Writes `entry` under `key` in a background task (the request never waits for Redis to store).
    pub(crate) fn put_in_background(&self, key: &str, entry: &Entry) {
        let ttl_ms = entry.remaining_lifetime().as_millis() as u64;
        if ttl_ms == 0 || self.inner.is_down() {
            return;
        }
        let inner = self.inner.clone();
        let redis_key = inner.redis_key(key);
        let value = encode(entry);
        tokio::spawn(async move {
            inner
                .run(|mut c| async move {
                    redis::cmd("SET")
                        .arg(&redis_key)
                        .arg(value)
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
        });
    }
}

impl Inner {
    fn redis_key(&self, key: &str) -> String {
        let digest = Sha256::digest(key.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}{hex}", self.prefix)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn is_down(&self) -> bool {
        self.now_ms() < self.down_until_ms.load(Ordering::Relaxed)
    }

    /// Runs one command within the timeout; `None` (and Redis marked down for a while) on any failure.
    async fn run<T, F, Fut>(&self, command: F) -> Option<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.is_down() {
            return None;
        }
        let attempt = async {
            let existing = self.connection.lock().ok().and_then(|c| c.clone());
            let connection = match existing {
                Some(c) => c,
                None => self.connect().await?,
            };
            command(connection).await
        };
        let error = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::warn!("cache Redis reachable again; shared cache resumed");
                }
                return Some(value);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        self.errors.inc();
        if let Ok(mut c) = self.connection.lock() {
            *c = None;
        }
        let until = self.now_ms() + self.retry_interval.as_millis() as u64;
        self.down_until_ms.store(until, Ordering::Relaxed);
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %error, "cache Redis unavailable; local cache only");
        }
        None
    }

    async fn connect(&self) -> redis::RedisResult<MultiplexedConnection> {
        crate::redis_conn::connect_kept(&self.client, self.timeout, &self.connection).await
    }
}

/// `bff1 stored_unix_ms fresh_ms swr_ms sie_ms private\n` + body.
fn encode(entry: &Entry) -> Vec<u8> {
    let stored = entry
        .stored_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let header = format!(
        "bff1 {stored} {} {} {} {}\n",
        entry.fresh_for.as_millis(),
        entry.stale_while_revalidate.as_millis(),
        entry.stale_if_error.as_millis(),
        u8::from(entry.private)
    );
    let mut out = header.into_bytes();
    out.extend_from_slice(&entry.body);
    out
}

/// The inverse of [`encode`]; `None` for anything else.
fn decode(value: &[u8]) -> Option<Entry> {
    let newline = value.iter().position(|b| *b == b'\n')?;
    let header = std::str::from_utf8(&value[..newline]).ok()?;
    let mut fields = header.split(' ');
    if fields.next()? != "bff1" {
        return None;
    }
    let mut number = || fields.next()?.parse::<u64>().ok();
    let stored = number()?;
    let (fresh, swr, sie, private) = (number()?, number()?, number()?, number()?);
    let mut entry = Entry::new(
        Bytes::copy_from_slice(&value[newline + 1..]),
        Duration::from_millis(fresh),
        Duration::from_millis(swr),
        Duration::from_millis(sie),
        private == 1,
    );
    entry.stored_at = UNIX_EPOCH + Duration::from_millis(stored);
    // A clock far ahead on another instance must not make an entry fresh for longer than it says.
    if entry.stored_at > SystemTime::now() {
        entry.stored_at = SystemTime::now();
    }
    Some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries survive the wire format; garbage decodes to nothing.
    #[test]
    fn encode_decode_round_trip() {
        let entry = Entry::new(
            Bytes::from_static(b"{\"a\":\n1}"),
            Duration::from_secs(30),
            Duration::from_secs(5),
            Duration::from_secs(60),
            true,
        );
        let back = decode(&encode(&entry)).expect("decodes");
        assert_eq!(back.body, entry.body);
        assert_eq!(back.fresh_for, entry.fresh_for);
        assert_eq!(back.stale_while_revalidate, entry.stale_while_revalidate);
        assert_eq!(back.stale_if_error, entry.stale_if_error);
        assert!(back.private);
        assert!(decode(b"bff2 1 2 3 4 0\nx").is_none());
        assert!(decode(b"no newline").is_none());
        assert!(decode(b"bff1 x 2 3 4 0\nx").is_none());
    }
}

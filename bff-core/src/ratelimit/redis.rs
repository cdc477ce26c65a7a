//! The Redis store: one `EVALSHA` of [`super::gcra::SCRIPT`] per decision over one multiplexed connection
//! (concurrent decisions are pipelined on it), bounded by `timeout_ms`. After a failure Redis is left alone
//! for `retry_interval_ms` — decisions take the failure policy at once instead of each waiting for the
//! timeout — and then tried again (reconnecting when the connection was lost), so limiting resumes by itself.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{Client, Script};

use super::config::RedisConfig;
use super::gcra::{BucketState, Check, Decision, SCRIPT};

/// Shared bucket state in Redis.
#[derive(Debug)]
pub(crate) struct RedisStore {
    /// Parsed URL (no I/O until the first decision).
    client: Client,
    /// The GCRA script (its SHA-1 is sent; the body only after `NOSCRIPT`, e.g. after a Redis restart).
    script: Script,
    /// The live connection, if any; cloned out per decision (clones share one socket).
    connection: Mutex<Option<MultiplexedConnection>>,
    /// Bound on one decision.
    timeout: Duration,
    /// How long Redis is left alone after a failure.
    retry_interval: Duration,
    /// Time zero of `down_until_ms`.
    origin: Instant,
    /// Until when (ms since `origin`) Redis is considered down; 0 = up.
    down_until_ms: AtomicU64,
    /// Whether the last attempt failed (to log each outage and recovery once).
    failing: AtomicBool,
}

/// Why Redis gave no decision (logged; never sent to a client).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisStoreError {
    /// Within the retry interval after a failure: not tried.
    #[error("skipped: store marked down after a failure")]
    Down,
    /// No answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// Connection or command failure.
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    /// The script answered something unexpected.
    #[error("unexpected script reply")]
    Reply,
}

impl RedisStore {
    /// A store for validated config (the URL is parsed, nothing is connected yet).
    pub(crate) fn new(config: &RedisConfig) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: Client::open(config.url.as_str())?,
            script: Script::new(SCRIPT),
            connection: Mutex::new(None),
            timeout: Duration::from_millis(config.timeout_ms),
            retry_interval: Duration::from_millis(config.retry_interval_ms),
            origin: Instant::now(),
            down_until_ms: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Decides in Redis, within the timeout.
    pub(crate) async fn decide(&self, checks: &[Check]) -> Result<Decision, RedisStoreError> {
        if self.now_ms() < self.down_until_ms.load(Ordering::Relaxed) {
            return Err(RedisStoreError::Down);
        }
        let result = match tokio::time::timeout(self.timeout, self.attempt(checks)).await {
            Ok(result) => result,
            Err(_) => Err(RedisStoreError::Timeout),
        };
        match &result {
            Ok(_) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::warn!("rate-limit store reachable again; shared limits resumed");
                }
            }
            Err(e) => {
                // Drop the connection so the next attempt reconnects, and leave Redis alone for a while.
                if let Ok(mut c) = self.connection.lock() {
                    *c = None;
                }
                let until = self.now_ms() + self.retry_interval.as_millis() as u64;
                self.down_until_ms.store(until, Ordering::Relaxed);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "rate-limit store unreachable; failure policy applies");
                }
            }
        }
        result
    }

    async fn attempt(&self, checks: &[Check]) -> Result<Decision, RedisStoreError> {
        let existing = self.connection.lock().ok().and_then(|c| c.clone());
        let reused = existing.is_some();
        let mut connection = match existing {
            Some(c) => c,
            None => self.connect().await?,
        };
        let mut invocation = self.script.prepare_invoke();
        for check in checks {
            invocation
                .key(check.key.as_str())
                .arg(check.limit.interval_us)
                .arg(check.limit.burst)
                .arg(check.cost.weight());
        }
        let reply: Vec<i64> = match invocation.invoke_async(&mut connection).await {
            Ok(reply) => reply,
            // A kept connection found dead (Redis restarted, idle connection cut): reconnect once, within
            // the same timeout, before calling it a failure. (Should the lost reply have been a decision
            // Redis did make, the request is charged twice: stricter, never looser.)
            Err(e) if reused && (e.is_connection_dropped() || e.is_io_error()) => {
                let mut connection = self.connect().await?;
                invocation.invoke_async(&mut connection).await?
            }
            Err(e) => return Err(e.into()),
        };
        parse_reply(&reply, checks.len()).ok_or(RedisStoreError::Reply)
    }

    /// Opens a new multiplexed connection and keeps it for the next decisions.
    async fn connect(&self) -> Result<MultiplexedConnection, RedisStoreError> {
        crate::redis_conn::connect_kept(&self.client, self.timeout, &self.connection)
            .await
            .map_err(Into::into)
    }
}

/// `{allowed, retry_after_us, (remaining, reset_us) per check}` → a decision.
fn parse_reply(reply: &[i64], checks: usize) -> Option<Decision> {
    if reply.len() != 2 + 2 * checks {
        return None;
    }
    Some(Decision {
        allowed: reply[0] == 1,
        retry_after_us: reply[1],
        buckets: reply[2..]
            .chunks_exact(2)
            .map(|p| BucketState {
                remaining: p[0],
                reset_us: p[1],
            })
            .collect(),
    })
}

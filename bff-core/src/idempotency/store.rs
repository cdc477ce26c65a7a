//! The two stores of idempotency records, with the same three atomic operations: **begin** (lock an absent
//! key, or tell what is there), **complete** (replace our lock by the answer) and **release** (drop our
//! lock). A lock carries a random token, so an instance whose lock expired can never overwrite or drop
//! another's record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::Script;

use super::config::IdempotencyConfig;

/// A kept answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    /// HTTP status.
    pub(crate) status: u16,
    /// `Content-Type`, if any.
    pub(crate) content_type: Option<String>,
    /// `Location`, if any (a created resource).
    pub(crate) location: Option<String>,
    /// The body.
    pub(crate) body: Bytes,
}

/// What is recorded under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// A command runs under this key (locked by `token`).
    InFlight {
        /// The lock owner's token.
        token: u64,
        /// The request fingerprint.
        fingerprint: [u8; 32],
    },
    /// The command ended with this answer.
    Done {
        /// The request fingerprint.
        fingerprint: [u8; 32],
        /// The answer.
        answer: Arc<Stored>,
    },
}

/// The outcome of `begin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Begin {
    /// The key was free and is now locked by us with this token.
    Started(u64),
    /// Something is recorded already.
    Found(Record),
}

/// Why the store gave no answer (logged; the client gets 503).
pub(crate) use crate::redis_conn::RedisCallError as StoreError;

/// One of the stores.
#[derive(Debug)]
pub(crate) enum Store {
    /// This instance only.
    Memory(MemoryStore),
    /// Shared by every instance (boxed: the client and scripts are large).
    Redis(Box<RedisStore>),
}

impl Store {
    /// The store `config` names (nothing is connected yet).
    pub(crate) fn new(config: &IdempotencyConfig) -> Result<Self, redis::RedisError> {
        Ok(match config.store {
            crate::ratelimit::config::StoreKind::Memory => {
                Store::Memory(MemoryStore::new(config.max_entries))
            }
            crate::ratelimit::config::StoreKind::Redis => {
                Store::Redis(Box::new(RedisStore::new(config)?))
            }
        })
    }

    /// Locks `key` for `lock` if nothing is recorded, else tells what is.
    pub(crate) async fn begin(
        &self,
        key: &str,
        fingerprint: [u8; 32],
        lock: Duration,
    ) -> Result<Begin, StoreError> {
        let token = fastrand::u64(1..);
        match self {
            Store::Memory(m) => Ok(m.begin(key, token, fingerprint, lock)),
            Store::Redis(r) => r.begin(key, token, fingerprint, lock).await,
        }
    }

    /// Replaces our lock by the answer, kept for `ttl`.
    pub(crate) async fn complete(
        &self,
        key: &str,
        token: u64,
        fingerprint: [u8; 32],
        answer: Stored,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.complete(key, token, fingerprint, answer, ttl);
                Ok(())
            }
            Store::Redis(r) => r.complete(key, token, fingerprint, answer, ttl).await,
        }
    }

    /// Drops our lock.
    pub(crate) async fn release(&self, key: &str, token: u64) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.release(key, token);
                Ok(())
            }
            Store::Redis(r) => r.release(key, token).await,
        }
    }
}

/// The in-process store: a bounded moka cache, each record expiring after its own time to live; every
/// operation is atomic per key (`and_compute_with`).
#[derive(Debug)]
pub(crate) struct MemoryStore {
    records: moka::sync::Cache<String, (Record, Instant)>,
}

/// moka expiry: a record lives until its own deadline.
struct UntilDeadline;

impl moka::Expiry<String, (Record, Instant)> for UntilDeadline {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &(Record, Instant),
        now: Instant,
    ) -> Option<Duration> {
        Some(value.1.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &(Record, Instant),
        now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.1.saturating_duration_since(now))
    }
}

impl MemoryStore {
    fn new(max_entries: u64) -> Self {
        Self {
            records: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .expire_after(UntilDeadline)
                .build(),
        }
    }

    fn begin(&self, key: &str, token: u64, fingerprint: [u8; 32], lock: Duration) -> Begin {
        use moka::ops::compute::Op;
        let mut outcome = Begin::Started(token);
        self.records
            .entry(key.to_owned())
            .and_compute_with(|existing| match existing {
                Some(entry) if entry.value().1 > Instant::now() => {
                    outcome = Begin::Found(entry.into_value().0);
                    Op::Nop
                }
                _ => Op::Put((
                    Record::InFlight { token, fingerprint },
                    Instant::now() + lock,
                )),
            });
        outcome
    }

    fn complete(
        &self,
        key: &str,
        token: u64,
        fingerprint: [u8; 32],
        answer: Stored,
        ttl: Duration,
    ) {
        use moka::ops::compute::Op;
        self.records
            .entry(key.to_owned())
            .and_compute_with(|existing| match existing {
                Some(entry) if is_our_lock(&entry.value().0, token) => Op::Put((
                    Record::Done {
                        fingerprint,
                        answer: Arc::new(answer),
                    },
                    Instant::now() + ttl,
                )),
                _ => Op::Nop,
            });
    }

    fn release(&self, key: &str, token: u64) {
        use moka::ops::compute::Op;
        self.records
            .entry(key.to_owned())
            .and_compute_with(|existing| match existing {
                Some(entry) if is_our_lock(&entry.value().0, token) => Op::Remove,
                _ => Op::Nop,
            });
    }
}

fn is_our_lock(record: &Record, token: u64) -> bool {
    matches!(record, Record::InFlight { token: t, .. } if *t == token)
}

/// Lock an absent key (`SET .. PX`) or return what is there.
const BEGIN: &str = r"
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
";

/// Replace our lock (exact value) by the answer.
const COMPLETE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// Drop our lock (the value starts with `P <token> `).
const RELEASE: &str = r"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// Records in Redis: one script call per operation on one multiplexed connection, bounded by the timeout.
/// Values: `P <token> <fingerprint hex>` (in flight) or
/// `D <fingerprint hex> <status> <location or -> <content type or ->`,
/// a newline, and the body (done).
#[derive(Debug)]
pub(crate) struct RedisStore {
    redis: crate::redis_conn::KeptConnection,
    begin: Script,
    complete: Script,
    release: Script,
}

impl RedisStore {
    fn new(config: &IdempotencyConfig) -> Result<Self, redis::RedisError> {
        Ok(Self {
            redis: crate::redis_conn::KeptConnection::open(
                &config.redis.url,
                Duration::from_millis(config.redis.timeout_ms),
            )?,
            begin: Script::new(BEGIN),
            complete: Script::new(COMPLETE),
            release: Script::new(RELEASE),
        })
    }

    /// Runs one script invocation on the kept connection within the timeout.
    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.redis
            .run(|mut c| async move { invocation.invoke_async::<T>(&mut c).await })
            .await
    }

    async fn begin(
        &self,
        key: &str,
        token: u64,
        fingerprint: [u8; 32],
        lock: Duration,
    ) -> Result<Begin, StoreError> {
        let mut invocation = self.begin.prepare_invoke();
        invocation
            .key(key)
            .arg(in_flight_value(token, &fingerprint))
            .arg(lock.as_millis().max(1) as u64);
        let existing: Option<Vec<u8>> = self.run(invocation).await?;
        Ok(match existing {
            None => Begin::Started(token),
            Some(value) => match decode(&value) {
                Some(record) => Begin::Found(record),
                None => {
                    // Not ours to interpret: treat as a conflicting request still running.
                    tracing::warn!("unreadable idempotency record");
                    Begin::Found(Record::InFlight {
                        token: 0,
                        fingerprint: [0; 32],
                    })
                }
            },
        })
    }

    async fn complete(
        &self,
        key: &str,
        token: u64,
        fingerprint: [u8; 32],
        answer: Stored,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        // The location has no spaces (a header value that does is not kept); the content type comes last.
        let location = answer
            .location
            .as_deref()
            .filter(|l| !l.is_empty() && !l.contains([' ', '\n']))
            .unwrap_or("-");
        let mut done = format!(
            "D {} {} {location} {}\n",
            hex(&fingerprint),
            answer.status,
            answer.content_type.as_deref().unwrap_or("-")
        )
        .into_bytes();
        done.extend_from_slice(&answer.body);
        let mut invocation = self.complete.prepare_invoke();
        invocation
            .key(key)
            .arg(in_flight_value(token, &fingerprint))
            .arg(done)
            .arg(ttl.as_millis().max(1) as u64);
        self.run::<i64>(invocation).await.map(|_| ())
    }

    async fn release(&self, key: &str, token: u64) -> Result<(), StoreError> {
        let mut invocation = self.release.prepare_invoke();
        invocation.key(key).arg(format!("P {token} "));
        self.run::<i64>(invocation).await.map(|_| ())
    }
}

fn in_flight_value(token: u64, fingerprint: &[u8; 32]) -> String {
    format!("P {token} {}", hex(fingerprint))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

/// A Redis value → a record.
fn decode(value: &[u8]) -> Option<Record> {
    if let Some(rest) = value.strip_prefix(b"P ") {
        let text = std::str::from_utf8(rest).ok()?;
        let (token, fingerprint) = text.split_once(' ')?;
        return Some(Record::InFlight {
            token: token.parse().ok()?,
            fingerprint: unhex(fingerprint)?,
        });
    }
    let rest = value.strip_prefix(b"D ")?;
    let newline = rest.iter().position(|b| *b == b'\n')?;
    let header = std::str::from_utf8(&rest[..newline]).ok()?;
    let mut fields = header.splitn(4, ' ');
    let fingerprint = unhex(fields.next()?)?;
    let status = fields.next()?.parse().ok()?;
    let location = match fields.next()? {
        "-" => None,
        l => Some(l.to_owned()),
    };
    let content_type = match fields.next()? {
        "-" => None,
        ct => Some(ct.to_owned()),
    };
    Some(Record::Done {
        fingerprint,
        answer: Arc::new(Stored {
            status,
            content_type,
            location,
            body: Bytes::copy_from_slice(&rest[newline + 1..]),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Begin locks once; complete and release act only on our own lock.
    #[test]
    fn memory_store_locks_and_completes_once() {
        let store = MemoryStore::new(100);
        let fp = [7; 32];
        let lock = Duration::from_secs(30);
        let Begin::Started(token) = store.begin("k", 1, fp, lock) else {
            panic!("free key");
        };
        assert!(matches!(
            store.begin("k", 2, fp, lock),
            Begin::Found(Record::InFlight { token: 1, .. })
        ));
        store.release("k", 99);
        assert!(matches!(store.begin("k", 3, fp, lock), Begin::Found(_)));
        let answer = Stored {
            status: 201,
            content_type: Some("application/json".into()),
            location: None,
            body: Bytes::from_static(b"{}"),
        };
        store.complete("k", token, fp, answer.clone(), Duration::from_secs(60));
        match store.begin("k", 4, fp, lock) {
            Begin::Found(Record::Done { answer: a, .. }) => assert_eq!(*a, answer),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.begin("j", 5, fp, lock), Begin::Started(5));
        store.release("j", 5);
        assert_eq!(store.begin("j", 6, fp, lock), Begin::Started(6));
    }

    /// Redis values round-trip; garbage decodes to nothing.
    #[test]
    fn redis_values_round_trip() {
        let fp = [0xab; 32];
        assert_eq!(
            decode(in_flight_value(42, &fp).as_bytes()),
            Some(Record::InFlight {
                token: 42,
                fingerprint: fp
            })
        );
        let mut done = format!(
            "D {} 201 /v1/orders/7 application/json; charset=utf-8\n",
            hex(&fp)
        )
        .into_bytes();
        done.extend_from_slice(b"{\"a\":\n1}");
        match decode(&done) {
            Some(Record::Done {
                fingerprint,
                answer,
            }) => {
                assert_eq!(fingerprint, fp);
                assert_eq!(answer.status, 201);
                assert_eq!(answer.location.as_deref(), Some("/v1/orders/7"));
                assert_eq!(
                    answer.content_type.as_deref(),
                    Some("application/json; charset=utf-8")
                );
                assert_eq!(answer.body, Bytes::from_static(b"{\"a\":\n1}"));
            }
            other => panic!("{other:?}"),
        }
        assert!(decode(b"X whatever").is_none());
        assert!(decode(b"P notanumber ab").is_none());
    }
}

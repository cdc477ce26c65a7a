//! Where sessions live: in this instance's memory, or in Redis shared by every instance. Both keep the session
//! records (under the SHA-256 of the cookie value, never the value itself), the per-user and per-IdP-session
//! indexes back-channel logout needs, the pending logins (single use), and the per-session refresh locks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};

use super::config::{SessionConfig, SessionStoreKind};

/// A logged-in browser session (kept on the server only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Session {
    /// The user (`sub` of the ID token).
    pub(crate) sub: String,
    /// The identity provider's session id (`sid`), if it sent one.
    pub(crate) sid: Option<String>,
    /// The ID-token claims `/bff/user` returns.
    pub(crate) claims: serde_json::Map<String, serde_json::Value>,
    /// The access token used downstream.
    pub(crate) access_token: String,
    /// Its `exp` (Unix seconds).
    pub(crate) access_expires_at: u64,
    /// The refresh token, if the IdP issued one.
    pub(crate) refresh_token: Option<String>,
    /// Login time (Unix seconds): the absolute expiry counts from here.
    pub(crate) created_at: u64,
    /// Last time the idle expiry was pushed back (Unix seconds).
    pub(crate) touched_at: u64,
}

/// A login started by `/bff/login`, waiting for `/bff/callback` (single use).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PendingLogin {
    /// The `nonce` the ID token must carry.
    pub(crate) nonce: String,
    /// The PKCE code verifier.
    pub(crate) verifier: String,
    /// Where the browser goes after login (a local path).
    pub(crate) return_url: String,
}

/// The store could not answer (Redis down or slow, or a corrupt record).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// A Redis error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer within the timeout.
    #[error("redis timeout")]
    Timeout,
}

/// An in-memory entry: the value and when it expires.
type Entry<T> = (Arc<T>, tokio::time::Instant);

/// The in-memory store.
#[derive(Debug)]
pub(crate) struct Memory {
    sessions: moka::sync::Cache<String, Entry<Session>>,
    pending: moka::sync::Cache<String, Entry<PendingLogin>>,
    locks: Mutex<std::collections::HashMap<String, tokio::time::Instant>>,
}

/// The Redis store.
#[derive(Debug)]
pub(crate) struct Redis {
    client: redis::Client,
    connection: Mutex<Option<MultiplexedConnection>>,
    timeout: Duration,
    prefix: String,
}

/// The session store of a gateway.
#[derive(Debug)]
pub(crate) enum Store {
    /// This instance only.
    Memory(Box<Memory>),
    /// Shared by every instance.
    Redis(Box<Redis>),
}

/// Deletes a lock only if it still holds the caller's token.
const UNLOCK: &str =
    r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

impl Store {
    /// The store `config` selects.
    pub(crate) fn new(config: &SessionConfig) -> Result<Self, redis::RedisError> {
        Ok(match config.store {
            SessionStoreKind::Memory => Self::Memory(Box::new(Memory {
                sessions: moka::sync::Cache::new(config.max_sessions),
                pending: moka::sync::Cache::new(config.max_sessions),
                locks: Mutex::default(),
            })),
            SessionStoreKind::Redis => Self::Redis(Box::new(Redis {
                client: redis::Client::open(config.redis.url.as_str())?,
                connection: Mutex::new(None),
                timeout: Duration::from_millis(config.redis.timeout_ms),
                prefix: config.redis.key_prefix.clone(),
            })),
        })
    }

    /// Whether this is the in-memory store.
    pub(crate) fn is_memory(&self) -> bool {
        matches!(self, Self::Memory(_))
    }

    /// Keeps `session` under `key` for `ttl`, and indexes it by user and IdP session.
    pub(crate) async fn put(
        &self,
        key: &str,
        session: &Session,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Self::Memory(m) => {
                let until = tokio::time::Instant::now() + ttl;
                m.sessions
                    .insert(key.to_owned(), (Arc::new(session.clone()), until));
                Ok(())
            }
            Self::Redis(r) => {
                let json = serde_json::to_string(session).unwrap_or_default();
                let ms = ttl.as_millis().max(1) as u64;
                let mut pipe = redis::pipe();
                pipe.cmd("SET")
                    .arg(r.key("s:", key))
                    .arg(json)
                    .arg("PX")
                    .arg(ms)
                    .ignore();
                let mut indexes = vec![r.key("u:", &session.sub)];
                if let Some(sid) = &session.sid {
                    indexes.push(r.key("sid:", sid));
                }
                for index in indexes {
                    pipe.cmd("SADD").arg(&index).arg(key).ignore();
                    // The index outlives every session it names (each lives at most the absolute timeout).
                    pipe.cmd("PEXPIRE").arg(&index).arg(ms).arg("GT").ignore();
                    pipe.cmd("PEXPIRE").arg(&index).arg(ms).arg("NX").ignore();
                }
                r.query::<()>(&pipe).await
            }
        }
    }

    /// The session under `key`, if it exists and has not expired.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Session>, StoreError> {
        match self {
            Self::Memory(m) => Ok(m.sessions.get(key).and_then(|(s, until)| {
                (tokio::time::Instant::now() < until).then(|| (*s).clone())
            })),
            Self::Redis(r) => {
                let mut pipe = redis::pipe();
                pipe.cmd("GET").arg(r.key("s:", key));
                let (json,): (Option<String>,) = r.query(&pipe).await?;
                Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
            }
        }
    }

    /// Ends the session under `key`.
    pub(crate) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Self::Memory(m) => {
                m.sessions.invalidate(key);
                Ok(())
            }
            Self::Redis(r) => {
                let mut pipe = redis::pipe();
                pipe.cmd("DEL").arg(r.key("s:", key)).ignore();
                r.query::<()>(&pipe).await
            }
        }
    }

    /// Ends every session of user `sub` and/or IdP session `sid` (back-channel logout); how many ended.
    pub(crate) async fn delete_matching(
        &self,
        sub: Option<&str>,
        sid: Option<&str>,
    ) -> Result<usize, StoreError> {
        match self {
            Self::Memory(m) => {
                let doomed: Vec<String> = m
                    .sessions
                    .iter()
                    .filter(|(_, (s, _))| {
                        sub.is_none_or(|sub| s.sub == sub)
                            && sid.is_none_or(|sid| s.sid.as_deref() == Some(sid))
                    })
                    .map(|(k, _)| (*k).clone())
                    .collect();
                for k in &doomed {
                    m.sessions.invalidate(k);
                }
                Ok(doomed.len())
            }
            Self::Redis(r) => {
                // The candidates: by `sid` when given (narrowest), else by user.
                let index = match (sid, sub) {
                    (Some(sid), _) => r.key("sid:", sid),
                    (None, Some(sub)) => r.key("u:", sub),
                    (None, None) => return Ok(0),
                };
                let mut pipe = redis::pipe();
                pipe.cmd("SMEMBERS").arg(&index);
                let (keys,): (Vec<String>,) = r.query(&pipe).await?;
                let mut ended = 0;
                for key in keys {
                    let matches = match self.get(&key).await? {
                        Some(s) => sub.is_none_or(|sub| s.sub == sub),
                        None => false,
                    };
                    if matches {
                        self.delete(&key).await?;
                        ended += 1;
                    }
                }
                Ok(ended)
            }
        }
    }

    /// Keeps a pending login under `key` for `ttl`.
    pub(crate) async fn put_pending(
        &self,
        key: &str,
        login: &PendingLogin,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Self::Memory(m) => {
                let until = tokio::time::Instant::now() + ttl;
                m.pending
                    .insert(key.to_owned(), (Arc::new(login.clone()), until));
                Ok(())
            }
            Self::Redis(r) => {
                let json = serde_json::to_string(login).unwrap_or_default();
                let mut pipe = redis::pipe();
                pipe.cmd("SET")
                    .arg(r.key("l:", key))
                    .arg(json)
                    .arg("PX")
                    .arg(ttl.as_millis().max(1) as u64)
                    .ignore();
                r.query::<()>(&pipe).await
            }
        }
    }

    /// Takes the pending login under `key` (it can be taken once).
    pub(crate) async fn take_pending(&self, key: &str) -> Result<Option<PendingLogin>, StoreError> {
        match self {
            Self::Memory(m) => Ok(m.pending.remove(key).and_then(|(l, until)| {
                (tokio::time::Instant::now() < until).then(|| (*l).clone())
            })),
            Self::Redis(r) => {
                let mut pipe = redis::pipe();
                pipe.cmd("GETDEL").arg(r.key("l:", key));
                let (json,): (Option<String>,) = r.query(&pipe).await?;
                Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
            }
        }
    }

    /// Takes the refresh lock of session `key` for at most `ttl` with `token`; whether it was free.
    pub(crate) async fn lock(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Memory(m) => {
                let now = tokio::time::Instant::now();
                let mut locks = m.locks.lock().unwrap_or_else(|e| e.into_inner());
                locks.retain(|_, until| *until > now);
                if locks.contains_key(key) {
                    return Ok(false);
                }
                locks.insert(key.to_owned(), now + ttl);
                Ok(true)
            }
            Self::Redis(r) => {
                let mut pipe = redis::pipe();
                pipe.cmd("SET")
                    .arg(r.key("lock:", key))
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl.as_millis().max(1) as u64);
                let (set,): (Option<String>,) = r.query(&pipe).await?;
                Ok(set.is_some())
            }
        }
    }

    /// Releases the refresh lock of session `key` if `token` still holds it.
    pub(crate) async fn unlock(&self, key: &str, token: &str) -> Result<(), StoreError> {
        match self {
            Self::Memory(m) => {
                m.locks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(key);
                Ok(())
            }
            Self::Redis(r) => {
                let mut pipe = redis::pipe();
                pipe.cmd("EVAL")
                    .arg(UNLOCK)
                    .arg(1)
                    .arg(r.key("lock:", key))
                    .arg(token)
                    .ignore();
                r.query::<()>(&pipe).await
            }
        }
    }
}

impl Redis {
    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}{id}", self.prefix)
    }

    /// Runs `pipe` within the timeout, reconnecting when there is no live connection.
    async fn query<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        let attempt = async {
            let existing = self.connection.lock().ok().and_then(|c| c.clone());
            let mut connection = match existing {
                Some(c) => c,
                None => {
                    crate::redis_conn::connect_kept(&self.client, self.timeout, &self.connection)
                        .await?
                }
            };
            pipe.query_async::<T>(&mut connection).await
        };
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Redis(e)),
            Err(_) => Err(StoreError::Timeout),
        };
        if result.is_err()
            && let Ok(mut c) = self.connection.lock()
        {
            *c = None;
        }
        result
    }
}

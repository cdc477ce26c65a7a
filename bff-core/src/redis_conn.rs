//! The one way bff-core opens a Redis connection (rate limiter, shared cache, idempotency records, sessions):
//! a multiplexed connection with connect and response timeouts, kept in a slot for the next calls.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};

/// Opens a new multiplexed connection bounded by `timeout` and keeps it in `slot`.
pub(crate) async fn connect_kept(
    client: &Client,
    timeout: Duration,
    slot: &Mutex<Option<MultiplexedConnection>>,
) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    if let Ok(mut kept) = slot.lock() {
        *kept = Some(connection.clone());
    }
    Ok(connection)
}

/// Why a Redis call gave no answer (logged; never sent to a client).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisCallError {
    /// No answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// Connection or command failure.
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
}

/// A Redis server reached over one kept multiplexed connection, each call bounded by one timeout.
#[derive(Debug)]
pub(crate) struct KeptConnection {
    /// Parsed URL (no I/O until the first call).
    client: Client,
    /// The live connection, if any; cloned out per call (clones share one socket).
    slot: Mutex<Option<MultiplexedConnection>>,
    /// Bound on one call, connecting included.
    timeout: Duration,
}

impl KeptConnection {
    /// Parses `url`; nothing is connected until the first call.
    pub(crate) fn open(url: &str, timeout: Duration) -> redis::RedisResult<Self> {
        Ok(Self {
            client: Client::open(url)?,
            slot: Mutex::new(None),
            timeout,
        })
    }

    /// Runs `call` on the kept connection (connecting first when there is none) within the timeout; after
    /// any failure the connection is dropped, so the next call reconnects.
    pub(crate) async fn run<T, F, Fut>(&self, call: F) -> Result<T, RedisCallError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let existing = self.slot.lock().ok().and_then(|c| c.clone());
            let connection = match existing {
                Some(c) => c,
                None => connect_kept(&self.client, self.timeout, &self.slot).await?,
            };
            call(connection).await
        };
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RedisCallError::Redis(e)),
            Err(_) => Err(RedisCallError::Timeout),
        };
        if result.is_err()
            && let Ok(mut c) = self.slot.lock()
        {
            *c = None;
        }
        result
    }
}

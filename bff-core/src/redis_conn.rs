//! The one way bff-core opens a Redis connection (rate limiter, shared cache): a multiplexed connection with
//! connect and response timeouts, kept in a slot for the next calls.

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

//! The HTTP client of downstream calls: hyper-util's pooled HTTP/1.1 client. It never follows redirects (a 3xx
//! is an answer like any other), uses no proxy from the environment, and keeps idle connections for reuse.
//! Chosen over reqwest for CPU per call on the hot path (see docs/benchmarks.md).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// A pooled downstream HTTP client; cheap to clone (clones share the pool).
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Builds an HTTP client (one connection pool) with `connect_timeout` for establishing connections. A gateway
/// shares one client among all downstreams with the same connect timeout.
pub fn http_client(connect_timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// The status of a bodiless `GET url` (the answer's body is discarded), or `None` when no answer came.
pub(crate) async fn get_status(client: &HttpClient, url: &str) -> Option<axum::http::StatusCode> {
    let request = axum::http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .ok()?;
    client
        .request(request)
        .await
        .ok()
        .map(|response| response.status())
}

//! The HTTP client of downstream calls: hyper-util's pooled client over a rustls connector (`http://` and
//! `https://`). It never follows redirects (a 3xx is an answer like any other), uses no proxy from the
//! environment, and keeps idle connections for reuse. HTTP/1.1 by default; HTTP/2 when negotiated by ALPN
//! over TLS, or always (`h2c` prior knowledge on plain HTTP) as configured. Chosen over reqwest for CPU per
//! call on the hot path (see docs/benchmarks.md). The call stack's requests to a plain `http://` instance
//! (HTTP/1.1) go over that instance's lean pool instead (`h1pool.rs`); this client carries TLS, HTTP/2,
//! gRPC, event streams, health checks and the JWKS discovery.
//!
//! One client is one connection pool; a gateway builds one client per distinct (connect timeout, TLS
//! settings, HTTP/2 mode), so downstreams with different TLS settings never share a connection.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::error::ConfigError;
use crate::tls::{DownstreamTlsConfig, Http2Mode};

/// A pooled downstream HTTP(S) client; cheap to clone (clones share the pool).
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds a client (one connection pool) with `connect_timeout` for establishing connections (TCP and TLS
/// handshake), the platform's trust roots for `https://`, and HTTP/2 only by ALPN.
pub fn http_client(connect_timeout: Duration) -> HttpClient {
    match tls_client(
        connect_timeout,
        "downstreams",
        &DownstreamTlsConfig::default(),
        Http2Mode::Auto,
    ) {
        Ok(client) => client,
        // Without files to read, building the TLS configuration cannot fail.
        Err(e) => unreachable!("default TLS client configuration: {e}"),
    }
}

/// Builds a client with `connect_timeout`, the TLS settings `tls` (configured under `section`, e.g.
/// `downstreams.users.tls`; a file that cannot be read or does not match is an error naming its key), and
/// `http2`.
pub fn tls_client(
    connect_timeout: Duration,
    section: &str,
    tls: &DownstreamTlsConfig,
    http2: Http2Mode,
) -> Result<HttpClient, ConfigError> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let tls_config = crate::tls::client_config(section, tls)?;
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls_config)
        .https_or_http();
    // ALPN follows the mode: `h2` + `http/1.1` (auto), `h2` (always), none (never: HTTP/1.1).
    let connector = match http2 {
        Http2Mode::Auto => builder.enable_http1().enable_http2().wrap_connector(http),
        Http2Mode::Always => builder.enable_http2().wrap_connector(http),
        Http2Mode::Never => builder.enable_http1().wrap_connector(http),
    };
    let mut client = Client::builder(TokioExecutor::new());
    client
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256);
    if http2 == Http2Mode::Always {
        client.http2_only(true);
    }
    Ok(client.build(connector))
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

//! TLS in both directions, with rustls and its `ring` provider (no OpenSSL): [`EdgeTls`] terminates TLS at
//! the listener (`[server.tls]`, optional client certificates, ALPN `h2` / `http/1.1`, handshake timeout);
//! downstream clients speak TLS to `https://` URLs (`[downstreams.<name>.tls]`, platform roots + extra CA,
//! optional client certificate); certificates and keys are reloaded when their files change or on SIGHUP.

mod client;
mod config;
mod edge;
mod peer;
mod pem;
mod reload;

use std::sync::Arc;

pub(crate) use client::client_config;
pub use config::{ClientAuth, DownstreamTlsConfig, Http2Mode, ServerTlsConfig};
pub use edge::EdgeTls;
pub use peer::ClientCertificate;

/// The protocol versions spoken: TLS 1.3 and 1.2, nothing older.
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The crypto provider of every TLS configuration (explicit, so no process-wide default is needed).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `router` with `Strict-Transport-Security: max-age=<max_age_s>` on every response (for a TLS listener).
pub(crate) fn with_hsts(router: axum::Router, max_age_s: u64) -> axum::Router {
    let value = axum::http::HeaderValue::from(max_age_s);
    let value = axum::http::HeaderValue::from_str(&format!("max-age={max_age_s}")).unwrap_or(value);
    router.layer(axum::middleware::map_response(
        move |mut response: axum::response::Response| {
            response
                .headers_mut()
                .insert(axum::http::header::STRICT_TRANSPORT_SECURITY, value.clone());
            std::future::ready(response)
        },
    ))
}

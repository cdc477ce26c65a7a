//! CORS for browser clients: an exact origin allow-list from config (no wildcards), credentials only when
//! configured, preflights answered before authentication. Without configured origins no CORS headers are sent
//! and browsers keep the same-origin policy.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// CORS settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Exact origins allowed (`https://app.example.com`, scheme + host + optional port); empty = CORS off.
    pub allowed_origins: Vec<String>,
    /// Whether browsers may send cookies / credentials cross-origin (`Access-Control-Allow-Credentials`).
    pub allow_credentials: bool,
    /// Request headers a cross-origin request may carry.
    pub allowed_headers: Vec<String>,
    /// Response headers scripts may read.
    pub expose_headers: Vec<String>,
    /// How long browsers may cache a preflight answer, in seconds.
    pub max_age_s: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allow_credentials: false,
            allowed_headers: [
                "authorization",
                "content-type",
                "if-none-match",
                "x-request-id",
                "traceparent",
            ]
            .map(String::from)
            .to_vec(),
            expose_headers: ["bff-partial", "x-request-id", "etag", "retry-after"]
                .map(String::from)
                .to_vec(),
            max_age_s: 600,
        }
    }
}

/// Whether `origin` is an exact origin: `http(s)://host[:port]`, no path, no wildcard.
pub(crate) fn is_exact_origin(origin: &str) -> bool {
    match url::Url::parse(origin) {
        Ok(u) => {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.contains('*'))
                && u.path() == "/"
                && u.query().is_none()
                && u.fragment().is_none()
                && !origin.ends_with('/')
                && u.username().is_empty()
        }
        Err(_) => false,
    }
}

impl CorsConfig {
    /// The layer, or `None` when no origin is configured. Values were validated by
    /// [`crate::BffConfig::validate`]; anything unparsable is skipped rather than panicking.
    pub(crate) fn layer(&self) -> Option<CorsLayer> {
        if self.allowed_origins.is_empty() {
            return None;
        }
        let origins: Vec<HeaderValue> = self
            .allowed_origins
            .iter()
            .filter_map(|o| o.parse().ok())
            .collect();
        let headers: Vec<HeaderName> = self
            .allowed_headers
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect();
        let expose: Vec<HeaderName> = self
            .expose_headers
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect();
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
                .allow_headers(headers)
                .expose_headers(expose)
                .allow_credentials(self.allow_credentials)
                .max_age(Duration::from_secs(self.max_age_s)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only exact http(s) origins pass.
    #[test]
    fn exact_origins_only() {
        assert!(is_exact_origin("https://app.example.com"));
        assert!(is_exact_origin("http://localhost:5173"));
        for bad in [
            "*",
            "https://*.example.com",
            "https://app.example.com/",
            "https://a.com/x",
            "null",
            "file:///x",
        ] {
            assert!(!is_exact_origin(bad), "{bad}");
        }
    }
}

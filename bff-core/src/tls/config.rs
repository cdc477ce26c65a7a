//! The TLS configuration sections: `[server.tls]` (edge termination, optional client certificates) and
//! `[downstreams.<name>.tls]` (extra trust anchors, client certificate), plus the per-downstream HTTP/2 mode.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;

/// TLS termination at the edge (`[server.tls]`). Present = the listener speaks only TLS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM file with the certificate chain (leaf first).
    pub cert_file: PathBuf,
    /// PEM file with the private key of the leaf certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM file with the CA certificates client certificates are verified against; set = mTLS from clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: `required` (a handshake without a valid client certificate is refused) or
    /// `optional` (a client may connect without one, e.g. to use an API key; one it sends must be valid).
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Time a client has to complete the TLS handshake, in milliseconds; then the connection is closed.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// How often the certificate and key files are checked for changes, in milliseconds (`0` = only on
    /// SIGHUP). A changed pair that fails to load is refused with a log line; the old one keeps serving.
    #[serde(default = "default_reload_interval_ms")]
    pub reload_interval_ms: u64,
    /// `max-age` of the `Strict-Transport-Security` header every response carries, in seconds.
    #[serde(default = "default_hsts_max_age_s")]
    pub hsts_max_age_s: u64,
}

/// Whether clients must present a certificate (only meaningful with `client_ca_file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// A handshake without a valid client certificate is refused.
    #[default]
    Required,
    /// A client certificate is verified when sent, but not demanded.
    Optional,
}

fn default_handshake_timeout_ms() -> u64 {
    10_000
}

fn default_reload_interval_ms() -> u64 {
    5_000
}

fn default_hsts_max_age_s() -> u64 {
    31_536_000
}

impl ServerTlsConfig {
    /// A configuration serving `cert_file` / `key_file`, everything else default.
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        Self {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            client_ca_file: None,
            client_auth: ClientAuth::Required,
            handshake_timeout_ms: default_handshake_timeout_ms(),
            reload_interval_ms: default_reload_interval_ms(),
            hsts_max_age_s: default_hsts_max_age_s(),
        }
    }

    /// Range checks (the files are read when the listener is built; see [`crate::tls::EdgeTls::new`]).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.handshake_timeout_ms == 0 || self.handshake_timeout_ms > 60_000 {
            return Err(ConfigError::Invalid {
                key: "server.tls.handshake_timeout_ms".into(),
                reason: "must be between 1 and 60000".into(),
            });
        }
        Ok(())
    }
}

/// TLS towards one downstream (`[downstreams.<name>.tls]`); used for `https://` URLs. The platform's trust
/// roots are always trusted; hostname verification and SNI are always on (there is no switch to skip them).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DownstreamTlsConfig {
    /// PEM file of extra CA certificates trusted for this downstream (in addition to the platform's roots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// PEM file with the client certificate chain presented to the downstream (mTLS); needs `key_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// PEM file with the client certificate's private key; needs `cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// How often the client certificate and key files are checked for changes, in milliseconds (`0` = only
    /// on SIGHUP); default 5000.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reload_interval_ms: Option<u64>,
}

impl DownstreamTlsConfig {
    /// Checks that the client certificate and key come together, and that TLS settings are not given for a
    /// plain `http://` downstream (`url`); `key` is the section's dotted path.
    pub(crate) fn validate(&self, key: &str, url: &str) -> Result<(), ConfigError> {
        let configured = self.ca_file.is_some() || self.cert_file.is_some();
        if configured && url.starts_with("http://") {
            return Err(ConfigError::Invalid {
                key: key.to_owned(),
                reason: "TLS settings need an `https://` url".into(),
            });
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            let missing = if self.cert_file.is_some() {
                "key_file"
            } else {
                "cert_file"
            };
            return Err(ConfigError::Invalid {
                key: format!("{key}.{missing}"),
                reason: "`cert_file` and `key_file` must be set together".into(),
            });
        }
        Ok(())
    }
}

/// Which HTTP version a downstream is spoken to with (`[downstreams.<name>] http2`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Http2Mode {
    /// Over TLS, HTTP/2 when the downstream offers it by ALPN, else HTTP/1.1; plain `http://` is HTTP/1.1.
    #[default]
    Auto,
    /// Always HTTP/2: ALPN `h2` only over TLS, and `h2c` with prior knowledge on plain `http://`.
    Always,
    /// Always HTTP/1.1 (ALPN `http/1.1` only).
    Never,
}

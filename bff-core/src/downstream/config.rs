//! The `[downstreams.<name>]` section: protocol, base URL, timeouts, size cap, media types, and the nested
//! resilience, cache and TLS sections; its checks.

use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;

/// How a downstream's calls travel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 or HTTP/2 (see `http2`), JSON bodies.
    #[default]
    Http,
    /// gRPC (protobuf messages over HTTP/2: `h2c` on `http://`, ALPN `h2` on `https://`); handlers call it
    /// with [`crate::downstream::Downstream::unary`].
    Grpc,
}

/// One downstream service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownstreamConfig {
    /// `http` (default) or `grpc`. A gRPC downstream is always called over HTTP/2; its calls are never cached
    /// (their answers' client-facing cache policy is still recorded) and `json_content_types` does not apply.
    pub protocol: Protocol,
    /// Base URL (`http://` or `https://`), e.g. `http://127.0.0.1:7001`; paths are appended to it.
    pub url: String,
    /// Timeout of one call (connect + answer + body), in milliseconds; the request budget may cut it shorter.
    pub timeout_ms: u64,
    /// Timeout of establishing a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Largest accepted response body (for gRPC: response message), in bytes; a larger answer is a bad
    /// answer (502).
    pub max_response_bytes: usize,
    /// Bulkhead, retries, circuit breaker, instances and their health (`[downstreams.<name>.resilience]`).
    pub resilience: crate::resilience::ResilienceConfig,
    /// Response cache, coalescing and batching of this downstream's GETs (`[downstreams.<name>.cache]`).
    pub cache: crate::cache::config::DownstreamCacheConfig,
    /// TLS towards `https://` URLs: extra CA, client certificate (`[downstreams.<name>.tls]`).
    pub tls: crate::tls::DownstreamTlsConfig,
    /// HTTP version: `auto` (HTTP/2 if offered by ALPN over TLS), `always` (also `h2c` on plain HTTP), `never`.
    pub http2: crate::tls::Http2Mode,
    /// Media types accepted for a successful answer's `Content-Type` (compared without parameters, case
    /// insensitive); any other, or none, is a bad answer (502, or the part is dropped when optional). Empty =
    /// no check.
    pub json_content_types: Vec<String>,
    /// A protobuf descriptor set (`protoc --include_imports --descriptor_set_out`) describing this gRPC
    /// downstream's services, for `[[routes]]` with a `grpc_method`; a path relative to the working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub descriptor_set: Option<std::path::PathBuf>,
}

impl Default for DownstreamConfig {
    fn default() -> Self {
        Self {
            protocol: Protocol::Http,
            url: String::new(),
            timeout_ms: 2_000,
            connect_timeout_ms: 500,
            max_response_bytes: 4 * 1024 * 1024,
            resilience: Default::default(),
            cache: Default::default(),
            tls: Default::default(),
            http2: Default::default(),
            json_content_types: vec!["application/json".into()],
            descriptor_set: None,
        }
    }
}

impl DownstreamConfig {
    /// A downstream at `url` with default policy.
    pub fn at(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The HTTP version actually used: a gRPC downstream is always HTTP/2.
    pub fn effective_http2(&self) -> crate::tls::Http2Mode {
        match self.protocol {
            Protocol::Http => self.http2,
            Protocol::Grpc => crate::tls::Http2Mode::Always,
        }
    }

    /// Checks the section `downstreams.<name>`; the error names the first bad key.
    pub(crate) fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("downstreams.{name}.{k}");
        match url::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(ConfigError::invalid(
                    key("url"),
                    "must be an absolute http(s) URL",
                ));
            }
        }
        if self.protocol == Protocol::Grpc && self.http2 == crate::tls::Http2Mode::Never {
            return Err(ConfigError::invalid(
                key("http2"),
                "must not be `never` with protocol = \"grpc\" (gRPC runs over HTTP/2)",
            ));
        }
        if self.timeout_ms == 0 {
            return Err(ConfigError::invalid(key("timeout_ms"), "must be positive"));
        }
        if self.connect_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                key("connect_timeout_ms"),
                "must be positive",
            ));
        }
        if self.max_response_bytes == 0 {
            return Err(ConfigError::invalid(
                key("max_response_bytes"),
                "must be positive",
            ));
        }
        for (j, media) in self.json_content_types.iter().enumerate() {
            let valid = media.split_once('/').is_some_and(|(t, s)| {
                let token = |x: &str| {
                    !x.is_empty()
                        && x.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
                };
                token(t) && token(s)
            });
            if !valid {
                return Err(ConfigError::invalid(
                    format!("downstreams.{name}.json_content_types[{j}]"),
                    "must be a media type like `application/json`",
                ));
            }
        }
        self.resilience.validate(&key("resilience"))?;
        self.cache.validate(&key("cache"))?;
        self.tls.validate(&key("tls"), &self.url)?;
        Ok(())
    }
}

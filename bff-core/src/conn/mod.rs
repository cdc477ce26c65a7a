//! Connection-level protection of the listener, one concern per file: the limits (`[server.limits]`) and the
//! hyper builder they configure; the connection budget (global and per-IP caps, file-descriptor headroom,
//! accept backoff, [`budget`]); the first-bytes / protocol-detection timeout ([`detect`]); and paced responses
//! (bounded send buffers, a memory budget across connections, connections that stop reading closed,
//! [`pacing`]); idle HTTP/1 keep-alive connections parked outside hyper without buffers ([`park`]); the
//! connection task's rare-event futures polled only when woken ([`gate`]); a request's extensions allocated
//! once with room for what the gateway adds ([`extensions`]). [`crate::server`] only wires them
//! into its accept loop.

pub mod budget;
pub mod detect;
pub(crate) mod extensions;
pub mod gate;
pub mod pacing;
pub mod park;
pub mod release;

use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;

/// Connection-level limits of the HTTP server (`[server.limits]`). The defaults are safe without any
/// configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionLimits {
    /// Time a client has to send a complete request head (HTTP/1), in milliseconds; also bounds how long an
    /// idle keep-alive connection waits for its next request. Slow clients cannot hold connections open.
    pub header_read_timeout_ms: u64,
    /// Most request headers accepted (HTTP/1); more is answered 431.
    pub max_headers: usize,
    /// Largest request head (request line + headers) accepted, in bytes; larger is answered 431 (HTTP/1) or
    /// refused (HTTP/2 header list size).
    pub max_header_bytes: usize,
    /// Concurrent streams one HTTP/2 connection may open.
    pub h2_max_concurrent_streams: u32,
    /// Time a new connection has to send its first bytes and, for HTTP/2, the whole 24-byte connection
    /// preface, in milliseconds; a connection silent for longer is closed without an answer.
    pub first_byte_timeout_ms: u64,
    /// Most client connections open at once (the effective cap is also bounded by the file-descriptor limit
    /// minus `fd_headroom`); past it a new connection is answered 503 `overloaded` and closed.
    pub max_connections: usize,
    /// Most connections open at once from one client IP address; past it a new connection from that address
    /// is answered 429 `too_many_connections` and closed.
    pub max_connections_per_ip: usize,
    /// File descriptors kept free for everything that is not a client connection (downstream connections,
    /// Redis, logs): client connections are capped at the process's open-file limit minus this.
    pub fd_headroom: usize,
    /// Most response bytes one HTTP/2 stream buffers for sending (hyper's per-stream send buffer).
    pub h2_max_send_buf_bytes: usize,
    /// Time a response may wait for the client to take its next bytes, in milliseconds; a connection that
    /// stops reading (HTTP/1 or HTTP/2, e.g. a zero flow-control window) is closed after it.
    pub send_stall_timeout_ms: u64,
    /// Response bytes held for clients across all connections at most (bodies produced but not yet handed to
    /// the connection); a response that would exceed it is replaced by a 503 `overloaded`.
    pub response_memory_budget_bytes: usize,
    /// Time an HTTP/1 keep-alive connection may sit idle inside hyper before it is parked, in milliseconds:
    /// hyper's buffers and per-connection state are freed and the socket waits for the client's next bytes
    /// without a buffer (served then by a fresh hyper connection; the idle connection is still closed
    /// `header_read_timeout_ms` after its last answer). 0 never parks, nor does a delay not below
    /// `header_read_timeout_ms` (idle connections are closed first). TLS and HTTP/2 connections are never
    /// parked.
    pub park_idle_after_ms: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            max_headers: HYPER_MAX_HEADERS,
            max_header_bytes: 16 * 1024,
            h2_max_concurrent_streams: 128,
            first_byte_timeout_ms: 5_000,
            max_connections: 20_000,
            max_connections_per_ip: 1_024,
            fd_headroom: 128,
            h2_max_send_buf_bytes: 64 * 1024,
            send_stall_timeout_ms: 30_000,
            response_memory_budget_bytes: 256 * 1024 * 1024,
            park_idle_after_ms: 1_000,
        }
    }
}

impl ConnectionLimits {
    /// Checks ranges; the error names the key under `prefix` (`server.limits`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                key: format!("{prefix}.{key}"),
                reason: reason.to_owned(),
            })
        };
        let positive_ms = [
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("first_byte_timeout_ms", self.first_byte_timeout_ms),
            ("send_stall_timeout_ms", self.send_stall_timeout_ms),
        ];
        for (key, ms) in positive_ms {
            if ms == 0 || ms > 3_600_000 {
                return invalid(key, "must be between 1 and 3600000");
            }
        }
        if self.max_headers == 0 || self.max_headers > 1_000 {
            return invalid("max_headers", "must be between 1 and 1000");
        }
        if !(1024..=1024 * 1024).contains(&self.max_header_bytes) {
            return invalid("max_header_bytes", "must be between 1024 and 1048576");
        }
        if self.h2_max_concurrent_streams == 0 || self.h2_max_concurrent_streams > 10_000 {
            return invalid("h2_max_concurrent_streams", "must be between 1 and 10000");
        }
        if self.max_connections == 0 {
            return invalid("max_connections", "must be positive");
        }
        if self.max_connections_per_ip == 0 {
            return invalid("max_connections_per_ip", "must be positive");
        }
        if !(16 * 1024..=16 * 1024 * 1024).contains(&self.h2_max_send_buf_bytes) {
            return invalid(
                "h2_max_send_buf_bytes",
                "must be between 16384 and 16777216",
            );
        }
        if self.response_memory_budget_bytes < 1024 * 1024 {
            return invalid("response_memory_budget_bytes", "must be at least 1048576");
        }
        if self.park_idle_after_ms != 0 && !(10..=3_600_000).contains(&self.park_idle_after_ms) {
            return invalid(
                "park_idle_after_ms",
                "must be 0 (never park) or between 10 and 3600000",
            );
        }
        Ok(())
    }

    /// The idle time after which an HTTP/1 keep-alive connection is parked; `None` when parking is off (0,
    /// or a delay not below the header-read timeout, which closes an idle connection first).
    pub fn park_idle_after(&self) -> Option<Duration> {
        (self.park_idle_after_ms != 0 && self.park_idle_after_ms < self.header_read_timeout_ms)
            .then(|| Duration::from_millis(self.park_idle_after_ms))
    }

    /// The header-read timeout, which also bounds a keep-alive connection's idle wait.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// The first-bytes / protocol-detection timeout.
    pub fn first_byte_timeout(&self) -> Duration {
        Duration::from_millis(self.first_byte_timeout_ms)
    }

    /// The send-stall timeout.
    pub fn send_stall_timeout(&self) -> Duration {
        Duration::from_millis(self.send_stall_timeout_ms)
    }
}

/// The hyper connection builders configured with `limits`: HTTP/1.1 (with keep-alive) and HTTP/2 (the
/// protocol is known from [`detect`] before either is used).
#[derive(Clone)]
pub(crate) struct Builders {
    /// HTTP/1.1.
    pub(crate) http1: http1::Builder,
    /// HTTP/2.
    pub(crate) http2: http2::Builder<TokioExecutor>,
}

/// hyper's built-in limit on request headers (HTTP/1), the default of `max_headers`.
const HYPER_MAX_HEADERS: usize = 100;

/// The hyper connection builders configured with `limits`.
pub(crate) fn builders(limits: &ConnectionLimits) -> Builders {
    let mut h1 = http1::Builder::new();
    // hyper's own limit is enforced with header arrays on the stack; any other limit makes hyper fill arrays
    // of that size on every request (measured: ~2k instructions per request), so it is set only when asked.
    if limits.max_headers != HYPER_MAX_HEADERS {
        h1.max_headers(limits.max_headers);
    }
    h1.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout())
        // hyper's floor for the read buffer is 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(64)
        .max_local_error_reset_streams(256)
        // Validated ≤ 16 MiB, so within hyper's u32 bound.
        .max_send_buf_size(limits.h2_max_send_buf_bytes.min(u32::MAX as usize))
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    Builders {
        http1: h1,
        http2: h2,
    }
}

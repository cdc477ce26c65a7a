//! `[live]`: limits of WebSocket connections (tickets, origins, frames, keepalive, per-user count, queue).

use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;

/// `[live]`: how WebSocket connections are admitted and kept (see [`crate::live`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// How long a ticket from the ticket endpoint may be used to open a connection, in seconds (never past
    /// the expiry of the token it was obtained with; 1..=300; default 30).
    pub ticket_ttl_s: u64,
    /// Most tickets outstanding across all callers; beyond, the ticket endpoint answers 503 `overloaded`
    /// until some are used or expire (1..=10000000; default 100000).
    pub max_tickets: usize,
    /// Exact origins (`https://app.example.com`) allowed to open a connection; an upgrade with another
    /// `Origin` is refused with 403 `origin_not_allowed`. Empty (the default): `cors.allowed_origins`. An
    /// upgrade without `Origin` (a native app, not a browser) is allowed.
    pub allowed_origins: Vec<String>,
    /// Largest message (and frame) a client may send, in bytes; a larger one closes the connection with
    /// 1009 (message too big) (16..=16777216; default 65536).
    pub max_message_bytes: usize,
    /// Interval between the gateway's pings, in milliseconds (100..=300000; default 20000).
    pub ping_interval_ms: u64,
    /// A connection from which nothing (a pong or any frame) was heard for `ping_interval_ms` +
    /// `pong_timeout_ms` is closed with 1001 `ping_timeout`; also the time the gateway waits for its close
    /// frame to be taken (100..=300000; default 10000).
    pub pong_timeout_ms: u64,
    /// Most concurrent connections of one caller (JWT `sub`); one more is refused at the upgrade with 429
    /// `too_many_connections` (1..=1000; default 4).
    pub max_per_user: usize,
    /// Messages queued for one connection while the client has not taken the earlier ones; one more closes
    /// the connection with 1013 (try again later) `slow_consumer` instead of buffering further
    /// (1..=65536; default 256).
    pub send_queue: usize,
    /// Interval at which a gateway's polled feeds (e.g. stock levels) are refreshed, in milliseconds
    /// (100..=3600000; default 5000).
    pub poll_ms: u64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            ticket_ttl_s: 30,
            max_tickets: 100_000,
            allowed_origins: Vec::new(),
            max_message_bytes: 64 * 1024,
            ping_interval_ms: 20_000,
            pong_timeout_ms: 10_000,
            max_per_user: 4,
            send_queue: 256,
            poll_ms: 5_000,
        }
    }
}

impl LiveConfig {
    /// Checks the section, naming the bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::check_range("live.ticket_ttl_s", self.ticket_ttl_s, 1..=300)?;
        ConfigError::check_range("live.max_tickets", self.max_tickets, 1..=10_000_000)?;
        ConfigError::check_range(
            "live.max_message_bytes",
            self.max_message_bytes,
            16..=16 * 1024 * 1024,
        )?;
        ConfigError::check_range(
            "live.ping_interval_ms",
            self.ping_interval_ms,
            100..=300_000,
        )?;
        ConfigError::check_range("live.pong_timeout_ms", self.pong_timeout_ms, 100..=300_000)?;
        ConfigError::check_range("live.max_per_user", self.max_per_user, 1..=1_000)?;
        ConfigError::check_range("live.send_queue", self.send_queue, 1..=65_536)?;
        ConfigError::check_range("live.poll_ms", self.poll_ms, 100..=3_600_000)?;
        for (i, origin) in self.allowed_origins.iter().enumerate() {
            if !crate::cors::is_exact_origin(origin) {
                return Err(ConfigError::Invalid {
                    key: format!("live.allowed_origins[{i}]"),
                    reason: "must be an exact origin like `https://app.example.com` (no wildcard, no path)"
                        .into(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults are valid; each bound names its key.
    #[test]
    fn bounds_name_their_key() {
        assert!(LiveConfig::default().validate().is_ok());
        let bad = [
            LiveConfig {
                ticket_ttl_s: 0,
                ..Default::default()
            },
            LiveConfig {
                max_message_bytes: 1,
                ..Default::default()
            },
            LiveConfig {
                send_queue: 0,
                ..Default::default()
            },
            LiveConfig {
                allowed_origins: vec!["https://*.example.com".into()],
                ..Default::default()
            },
        ];
        let keys: Vec<String> = bad
            .iter()
            .map(|c| match c.validate() {
                Err(ConfigError::Invalid { key, .. }) => key,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            keys,
            [
                "live.ticket_ttl_s",
                "live.max_message_bytes",
                "live.send_queue",
                "live.allowed_origins[0]"
            ]
        );
    }

    /// `[live]` loads from TOML and the environment; an unknown key is refused.
    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error by design.
    fn loads_from_toml_and_env() {
        use crate::config::BffConfig;
        figment::Jail::expect_with(|jail| {
            jail.create_file("gw.toml", "[live]\nmax_per_user = 2\nsend_queue = 8\n")?;
            jail.set_env("BFF_LIVE__TICKET_TTL_S", "10");
            let c = BffConfig::load(&BffConfig::default(), Some(std::path::Path::new("gw.toml")))
                .expect("valid");
            assert_eq!(
                (c.live.max_per_user, c.live.send_queue, c.live.ticket_ttl_s),
                (2, 8, 10)
            );
            jail.create_file("bad.toml", "[live]\nper_user = 2\n")?;
            assert!(
                BffConfig::load(
                    &BffConfig::default(),
                    Some(std::path::Path::new("bad.toml"))
                )
                .is_err()
            );
            Ok(())
        });
    }
}

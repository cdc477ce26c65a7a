//! `[streams]`: limits of long-lived event streams (Server-Sent Events).

use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;

/// `[streams]`: heartbeats, idle timeout, per-user limit and the reconnect delay of event streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamsConfig {
    /// Interval between heartbeat comment lines (`: hb`) in milliseconds, so proxies and clients see a live
    /// connection (100..=300000; default 15000).
    pub heartbeat_ms: u64,
    /// A stream that sent no event for this long ends (heartbeats do not count), in milliseconds
    /// (1000..=86400000; default 300000).
    pub idle_timeout_ms: u64,
    /// Most concurrent streams of one caller (JWT `sub`); one more is refused with 429 `too_many_streams`
    /// (1..=1000; default 4).
    pub max_per_user: usize,
    /// The reconnect delay told to clients in `retry:` at the start of a stream and when the gateway shuts
    /// down, in milliseconds (0..=600000; default 3000).
    pub retry_ms: u64,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        Self {
            heartbeat_ms: 15_000,
            idle_timeout_ms: 300_000,
            max_per_user: 4,
            retry_ms: 3_000,
        }
    }
}

impl StreamsConfig {
    /// Checks the section, naming the bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::check_range("streams.heartbeat_ms", self.heartbeat_ms, 100..=300_000)?;
        ConfigError::check_range(
            "streams.idle_timeout_ms",
            self.idle_timeout_ms,
            1_000..=86_400_000,
        )?;
        ConfigError::check_range("streams.max_per_user", self.max_per_user, 1..=1_000)?;
        ConfigError::check_range("streams.retry_ms", self.retry_ms, 0..=600_000)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults are valid; each bound names its key.
    #[test]
    fn bounds_name_their_key() {
        assert!(StreamsConfig::default().validate().is_ok());
        let bad = [
            StreamsConfig {
                heartbeat_ms: 50,
                ..Default::default()
            },
            StreamsConfig {
                idle_timeout_ms: 10,
                ..Default::default()
            },
            StreamsConfig {
                max_per_user: 0,
                ..Default::default()
            },
            StreamsConfig {
                retry_ms: 600_001,
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
                "streams.heartbeat_ms",
                "streams.idle_timeout_ms",
                "streams.max_per_user",
                "streams.retry_ms"
            ]
        );
    }

    /// `[streams]` loads from TOML and the environment; an unknown key is refused.
    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error by design.
    fn loads_from_toml_and_env() {
        use crate::config::BffConfig;
        figment::Jail::expect_with(|jail| {
            jail.create_file("gw.toml", "[streams]\nmax_per_user = 2\nretry_ms = 0\n")?;
            jail.set_env("BFF_STREAMS__HEARTBEAT_MS", "500");
            let c = BffConfig::load(&BffConfig::default(), Some(std::path::Path::new("gw.toml")))
                .expect("valid");
            assert_eq!(
                (
                    c.streams.max_per_user,
                    c.streams.retry_ms,
                    c.streams.heartbeat_ms
                ),
                (2, 0, 500)
            );
            jail.create_file("bad.toml", "[streams]\nper_user = 2\n")?;
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

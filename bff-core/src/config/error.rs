//! The error of loading or checking a configuration, naming the offending key. A leaf: every section module
//! (`*/config.rs`) depends on it, it depends on none of them.

/// A configuration that could not be loaded or is invalid; the message names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Parsing or merging failed (syntax, unknown key, wrong type).
    #[error("{0}")]
    Load(String),
    /// A value is out of its allowed range or inconsistent.
    #[error("invalid value for key `{key}`: {reason}")]
    Invalid {
        /// Dotted path of the key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// `Ok` when `value` lies in `range`; otherwise the error naming `key`, with the range as the reason
    /// (`must be 1..=1000`).
    pub(crate) fn check_range<T: PartialOrd + std::fmt::Display>(
        key: &str,
        value: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<(), Self> {
        if range.contains(&value) {
            Ok(())
        } else {
            Err(Self::invalid(
                key,
                format!("must be {}..={}", range.start(), range.end()),
            ))
        }
    }
}

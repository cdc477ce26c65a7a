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
}

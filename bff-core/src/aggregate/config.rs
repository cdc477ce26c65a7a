//! The `[[aggregates]]` section: declarative aggregations, their parts, and the checks that make a
//! configured aggregation safe to serve (every placeholder resolvable, dependencies only on earlier parts).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::template::PartTemplate;
use crate::config::error::ConfigError;
use crate::downstream::config::DownstreamConfig;

/// How the parts of a declarative aggregation are merged into one JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MergeMode {
    /// Each part under its name: `{"user": {...}, "orders": {...}}`; a failed optional part is `null`.
    #[default]
    Nest,
    /// The top-level fields of every part's object merged into one object (later parts win on clashes);
    /// a failed optional part contributes nothing.
    Flatten,
}

/// Largest accepted `for_each_max`.
pub(crate) const FOR_EACH_LIMIT: usize = 1_000;

/// One part of a declarative aggregation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatePartConfig {
    /// Part name: the key in the merged object (`nest`) and the name in `bff-partial`; letters, digits, `_`
    /// and `-` (at most 64), not `caller` or `each`.
    pub name: String,
    /// The downstream to call.
    pub downstream: String,
    /// Path (and query) on the downstream. Placeholders, each percent-encoded where it stands: `{name}` (a
    /// parameter of the aggregate's `path`), `{caller.user_id}` / `{caller.partner_id}` (the verified
    /// caller), `{<part>.<dotted.field>}` (a scalar field of an earlier part's answer, which makes this part
    /// wait for that one), and `{each}` (with `for_each`: the selected values, comma-separated).
    pub path: String,
    /// Whether the aggregation fails when this part fails (else the part is dropped and named in `bff-partial`).
    #[serde(default = "default_true")]
    pub required: bool,
    /// Static default served when the part fails (and no fresh-enough last good value exists); the part is
    /// then named in `bff-degraded` as `name=default` instead of failing or being `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<serde_json::Value>,
    /// Serve the part's last good answer (per caller and path) when the call fails, if at most this many
    /// seconds old, named in `bff-degraded` as `name=stale`; `0` = off.
    #[serde(default)]
    pub stale_max_age_s: u64,
    /// `<part>.<dotted.field>` of an earlier part: every value found there (arrays on the way are walked,
    /// duplicates dropped) fills `{each}` in one batch call. No values: no call, the part is `[]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    /// Most values `for_each` may select (default 100, at most 1000); beyond, the part fails.
    #[serde(default = "default_for_each_max")]
    pub for_each_max: usize,
}

impl Default for AggregatePartConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            downstream: String::new(),
            path: String::new(),
            required: true,
            fallback: None,
            stale_max_age_s: 0,
            for_each: None,
            for_each_max: default_for_each_max(),
        }
    }
}

impl AggregatePartConfig {
    /// A required part `name` calling `path` on `downstream`, everything else default.
    pub fn new(name: &str, downstream: &str, path: &str) -> Self {
        Self {
            name: name.into(),
            downstream: downstream.into(),
            path: path.into(),
            ..Self::default()
        }
    }

    /// This part, optional (`required = false`).
    #[must_use]
    pub fn optional(mut self) -> Self {
        self.required = false;
        self
    }

    /// This part, fanning out over the values at `source` (see [`Self::for_each`]).
    #[must_use]
    pub fn for_each(mut self, source: &str) -> Self {
        self.for_each = Some(source.into());
        self
    }
}

fn default_true() -> bool {
    true
}

fn default_for_each_max() -> usize {
    100
}

/// A declarative aggregation: `GET path` calls every part (in parallel, a part that reads another after it)
/// and merges the JSON answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    /// Public path, with `{name}` parameters.
    pub path: String,
    /// How the parts are merged.
    #[serde(default)]
    pub merge: MergeMode,
    /// The parts; each starts as soon as the parts it reads have answered.
    pub parts: Vec<AggregatePartConfig>,
    /// Scopes the caller must hold.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Names a part may not have: they are placeholder namespaces.
pub(crate) const RESERVED_PART_NAMES: &[&str] = &["caller", "each"];

/// Whether `name` is a valid part name.
pub(crate) fn is_part_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        && !RESERVED_PART_NAMES.contains(&name)
}

/// Checks every aggregation against the configured downstreams; the error names the offending key.
pub(crate) fn validate(
    aggregates: &[AggregateConfig],
    downstreams: &BTreeMap<String, DownstreamConfig>,
) -> Result<(), ConfigError> {
    for (i, a) in aggregates.iter().enumerate() {
        let key = |k: &str| format!("aggregates[{i}].{k}");
        if a.parts.is_empty() {
            return Err(ConfigError::invalid(
                key("parts"),
                "needs at least one part",
            ));
        }
        for (j, part) in a.parts.iter().enumerate() {
            let key = |k: &str| format!("aggregates[{i}].parts[{j}].{k}");
            if !is_part_name(&part.name) || a.parts[..j].iter().any(|p| p.name == part.name) {
                return Err(ConfigError::invalid(
                    key("name"),
                    "must be unique, 1-64 letters, digits, `_` or `-`, and not `caller` or `each`",
                ));
            }
            if !downstreams.contains_key(&part.downstream) {
                return Err(ConfigError::invalid(
                    key("downstream"),
                    "names no configured downstream",
                ));
            }
            if !part.path.starts_with('/') {
                return Err(ConfigError::invalid(key("path"), "must start with `/`"));
            }
            let template = PartTemplate::parse(&part.path, &a.path, &a.parts[..j])
                .map_err(|reason| ConfigError::invalid(key("path"), reason))?;
            match (&part.for_each, template.uses_each()) {
                (Some(source), true) => {
                    super::template::FieldRef::parse(source, &a.parts[..j])
                        .map_err(|reason| ConfigError::invalid(key("for_each"), reason))?;
                }
                (None, true) => {
                    return Err(ConfigError::invalid(
                        key("path"),
                        "`{each}` needs `for_each` on the part",
                    ));
                }
                (Some(_), false) => {
                    return Err(ConfigError::invalid(
                        key("for_each"),
                        "the part's `path` must use `{each}`",
                    ));
                }
                (None, false) => {}
            }
            if !(1..=FOR_EACH_LIMIT).contains(&part.for_each_max) {
                return Err(ConfigError::invalid(
                    key("for_each_max"),
                    format!("must be between 1 and {FOR_EACH_LIMIT}"),
                ));
            }
            // A required part reading an optional one would fail whenever that one does: say so now.
            let reads = template.reads().chain(
                part.for_each
                    .as_deref()
                    .and_then(|s| super::template::FieldRef::parse(s, &a.parts[..j]).ok())
                    .map(|f| f.part),
            );
            for dep in reads {
                if part.required && !a.parts[dep].required {
                    return Err(ConfigError::invalid(
                        key("required"),
                        format!(
                            "a required part cannot read the optional part `{}`",
                            a.parts[dep].name
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

//! A part's downstream path template: literal text and placeholders (`{param}`, `{caller.user_id}`,
//! `{caller.partner_id}`, `{<part>.<dotted.field>}`, `{each}`), parsed once at start-up and rendered per request,
//! every value percent-encoded where it stands.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::config::AggregatePartConfig;
use crate::downstream::{encode_query, encode_segment};

/// Longest value a placeholder may take from an earlier part (a longer one fails the part).
const MAX_VALUE_BYTES: usize = 1_024;
/// Most segments of a dotted field path.
const MAX_FIELD_DEPTH: usize = 16;

/// A field of an earlier part's answer: `<part>.<dotted.field>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldRef {
    /// Index of the part read (always before the reading part).
    pub(crate) part: usize,
    /// The field path; a numeric segment indexes an array.
    pub(crate) fields: Vec<String>,
}

impl FieldRef {
    /// Parses `<part>.<dotted.field>` naming one of `earlier`.
    pub(crate) fn parse(source: &str, earlier: &[AggregatePartConfig]) -> Result<Self, String> {
        let (name, rest) = source
            .split_once('.')
            .ok_or_else(|| format!("`{source}` must be `<part>.<field>`"))?;
        let part = earlier.iter().position(|p| p.name == name).ok_or_else(|| {
            format!("`{name}` is not an earlier part (a part may read only parts listed before it)")
        })?;
        let fields: Vec<String> = rest.split('.').map(str::to_owned).collect();
        let valid = fields.len() <= MAX_FIELD_DEPTH
            && fields.iter().all(|f| {
                !f.is_empty()
                    && f.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
            });
        if !valid {
            return Err(format!(
                "`{source}`: fields are letters, digits, `_` or `-`, at most {MAX_FIELD_DEPTH} deep"
            ));
        }
        Ok(Self { part, fields })
    }

    /// The scalar at this path of `value` (a numeric segment indexes an array), rendered as text.
    pub(crate) fn scalar(&self, value: &Value) -> Option<String> {
        let mut at = value;
        for field in &self.fields {
            at = match at {
                Value::Object(map) => map.get(field)?,
                Value::Array(items) => items.get(field.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        scalar_text(at)
    }

    /// Every scalar found at this path of `value`, walking every array on the way (and a final array of
    /// scalars), in order, without duplicates; `None` when a value is not a scalar or more than `max` are
    /// found.
    pub(crate) fn each(&self, value: &Value, max: usize) -> Option<Vec<String>> {
        let mut out = Vec::new();
        collect(value, &self.fields, max, &mut out)?;
        Some(out)
    }
}

fn collect(value: &Value, fields: &[String], max: usize, out: &mut Vec<String>) -> Option<()> {
    match (value, fields.split_first()) {
        (Value::Array(items), _) => {
            for item in items {
                collect(item, fields, max, out)?;
            }
            Some(())
        }
        (Value::Object(map), Some((field, rest))) => match map.get(field) {
            Some(next) => collect(next, rest, max, out),
            // An element without the field contributes nothing (a line without a product, say).
            None => Some(()),
        },
        (Value::Null, _) => Some(()),
        (leaf, None) => {
            let text = scalar_text(leaf)?;
            if !out.contains(&text) {
                if out.len() == max {
                    return None;
                }
                out.push(text);
            }
            Some(())
        }
        _ => None,
    }
}

/// A JSON string, number or boolean as placeholder text; `None` for anything else or an over-long value.
fn scalar_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!text.is_empty() && text.len() <= MAX_VALUE_BYTES).then_some(text)
}

/// What a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// A parameter of the aggregate's public path.
    Param(String),
    /// The verified caller's user id.
    CallerUser,
    /// The verified caller's partner id.
    CallerPartner,
    /// A field of an earlier part.
    Field(FieldRef),
    /// The `for_each` values, comma-separated.
    Each,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Slot {
        slot: Slot,
        /// After the `?`: encoded as a query component, else as a path segment.
        in_query: bool,
    },
}

/// A parsed part path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartTemplate {
    pieces: Vec<Piece>,
}

/// The verified caller's ids a template may use.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Caller<'a> {
    /// The user id, when the caller is a user.
    pub(crate) user_id: Option<&'a str>,
    /// The partner id, when the caller is a partner.
    pub(crate) partner_id: Option<&'a str>,
}

/// Everything a template is rendered from.
pub(crate) struct Inputs<'a> {
    /// The aggregate's path parameters.
    pub(crate) params: &'a HashMap<String, String>,
    /// The caller.
    pub(crate) caller: Caller<'a>,
    /// The answers of earlier parts, by part index (`None`: failed, or not read by this part).
    pub(crate) parts: &'a [Option<Arc<Value>>],
    /// The `for_each` values.
    pub(crate) each: Option<&'a [String]>,
}

impl PartTemplate {
    /// Parses `template`: `aggregate_path`'s parameters and the names of `earlier` parts may be used.
    pub(crate) fn parse(
        template: &str,
        aggregate_path: &str,
        earlier: &[AggregatePartConfig],
    ) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = template;
        let mut in_query = false;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                Some(at) if rest.as_bytes()[at] == b'}' => {
                    return Err("`}` without `{`".into());
                }
                Some(at) => {
                    let (literal, after) = rest.split_at(at);
                    in_query |= literal.contains('?');
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(literal.to_owned()));
                    }
                    let close = after.find('}').ok_or("`{` without `}`")?;
                    let inner = &after[1..close];
                    let slot = Self::slot(inner, aggregate_path, earlier)?;
                    pieces.push(Piece::Slot { slot, in_query });
                    rest = &after[close + 1..];
                }
                None => {
                    pieces.push(Piece::Literal(rest.to_owned()));
                    rest = "";
                }
            }
        }
        Ok(Self { pieces })
    }

    fn slot(
        inner: &str,
        aggregate_path: &str,
        earlier: &[AggregatePartConfig],
    ) -> Result<Slot, String> {
        if inner.contains(['{', '/', '?', '&', '=']) {
            return Err(format!("`{{{inner}}}` is not a placeholder"));
        }
        match inner {
            "each" => Ok(Slot::Each),
            "caller.user_id" => Ok(Slot::CallerUser),
            "caller.partner_id" => Ok(Slot::CallerPartner),
            _ if inner.starts_with("caller.") => Err(format!(
                "`{{{inner}}}`: the caller offers `caller.user_id` and `caller.partner_id`"
            )),
            _ if inner.contains('.') => FieldRef::parse(inner, earlier).map(Slot::Field),
            _ if crate::routes::path_params(aggregate_path).any(|p| p == inner) => {
                Ok(Slot::Param(inner.to_owned()))
            }
            _ => Err(format!(
                "parameter `{inner}` does not occur in the aggregate's `path`"
            )),
        }
    }

    /// Whether `{each}` occurs.
    pub(crate) fn uses_each(&self) -> bool {
        self.slots().any(|s| *s == Slot::Each)
    }

    /// Whether `{caller.user_id}` occurs.
    pub(crate) fn uses_caller_user(&self) -> bool {
        self.slots().any(|s| *s == Slot::CallerUser)
    }

    /// Whether `{caller.partner_id}` occurs.
    pub(crate) fn uses_caller_partner(&self) -> bool {
        self.slots().any(|s| *s == Slot::CallerPartner)
    }

    /// The earlier parts this template reads.
    pub(crate) fn reads(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots().filter_map(|s| match s {
            Slot::Field(f) => Some(f.part),
            _ => None,
        })
    }

    fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Slot { slot, .. } => Some(slot),
            Piece::Literal(_) => None,
        })
    }

    /// The downstream path, or why it cannot be built (a missing field, a failed part, a missing caller).
    pub(crate) fn render(&self, inputs: &Inputs<'_>) -> Result<String, &'static str> {
        let mut out = String::with_capacity(64);
        for piece in &self.pieces {
            let (slot, in_query) = match piece {
                Piece::Literal(text) => {
                    out.push_str(text);
                    continue;
                }
                Piece::Slot { slot, in_query } => (slot, *in_query),
            };
            let encode = |v: &str| {
                if in_query {
                    encode_query(v)
                } else {
                    encode_segment(v)
                }
            };
            match slot {
                Slot::Param(name) => {
                    out.push_str(&encode(inputs.params.get(name).ok_or("missing parameter")?))
                }
                Slot::CallerUser => out.push_str(&encode(
                    inputs.caller.user_id.ok_or("the caller is no user")?,
                )),
                Slot::CallerPartner => out.push_str(&encode(
                    inputs.caller.partner_id.ok_or("the caller is no partner")?,
                )),
                Slot::Field(field) => {
                    let value = inputs
                        .parts
                        .get(field.part)
                        .and_then(Option::as_ref)
                        .ok_or("a part it reads failed")?;
                    out.push_str(&encode(
                        &field.scalar(value).ok_or("a field it reads is missing")?,
                    ));
                }
                Slot::Each => {
                    let values = inputs.each.ok_or("no `for_each` values")?;
                    for (i, v) in values.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(&encode(v));
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts(names: &[&str]) -> Vec<AggregatePartConfig> {
        names
            .iter()
            .map(|n| AggregatePartConfig::new(n, "d", "/"))
            .collect()
    }

    #[test]
    fn parses_and_renders_every_placeholder_encoded_where_it_stands() {
        let earlier = parts(&["profile", "orders"]);
        let t = PartTemplate::parse(
            "/u/{caller.user_id}/x/{profile.address.city}?q={id}&ids={each}",
            "/api/x/{id}",
            &earlier,
        )
        .unwrap();
        assert!(t.uses_each() && t.uses_caller_user() && !t.uses_caller_partner());
        assert_eq!(t.reads().collect::<Vec<_>>(), vec![0]);
        let params = HashMap::from([("id".to_owned(), "a b".to_owned())]);
        let profile = Some(Arc::new(json!({"address": {"city": "São/Paulo"}})));
        let each = vec!["1".to_owned(), "2&x".to_owned()];
        let inputs = Inputs {
            params: &params,
            caller: Caller {
                user_id: Some("7/../8"),
                partner_id: None,
            },
            parts: &[profile, None],
            each: Some(&each),
        };
        assert_eq!(
            t.render(&inputs).unwrap(),
            "/u/7%2F%2E%2E%2F8/x/S%C3%A3o%2FPaulo?q=a%20b&ids=1,2%26x"
        );
    }

    #[test]
    fn refuses_unknown_later_and_malformed_placeholders() {
        let earlier = parts(&["profile"]);
        for (template, expected) in [
            ("/a/{nope}", "does not occur"),
            ("/a/{orders.id}", "not an earlier part"),
            ("/a/{caller.email}", "caller offers"),
            ("/a/{profile.}", "fields are"),
            ("/a/{id", "without `}`"),
            ("/a/id}", "without `{`"),
            ("/a/{x/y}", "not a placeholder"),
        ] {
            let err = PartTemplate::parse(template, "/api/{id}", &earlier).unwrap_err();
            assert!(err.contains(expected), "{template}: {err}");
        }
    }

    #[test]
    fn missing_fields_and_failed_parts_do_not_render() {
        let earlier = parts(&["profile"]);
        let t = PartTemplate::parse("/a/{profile.id}", "/", &earlier).unwrap();
        let params = HashMap::new();
        let render = |value: Option<Value>| {
            t.render(&Inputs {
                params: &params,
                caller: Caller::default(),
                parts: &[value.map(Arc::new)],
                each: None,
            })
        };
        assert_eq!(render(Some(json!({"id": 12}))).unwrap(), "/a/12");
        assert!(render(Some(json!({"id": {"nested": 1}}))).is_err());
        assert!(render(Some(json!({"id": null}))).is_err());
        assert!(render(Some(json!({"other": 1}))).is_err());
        assert!(render(None).is_err());
    }

    #[test]
    fn each_walks_arrays_dedupes_and_bounds() {
        let earlier = parts(&["orders"]);
        let f = FieldRef::parse("orders.items.items.product_id", &earlier).unwrap();
        let v = json!({"items": [
            {"items": [{"product_id": "1"}, {"product_id": "2"}]},
            {"items": [{"product_id": "2"}, {"product_id": 3}, {"other": true}]},
        ]});
        assert_eq!(f.each(&v, 10).unwrap(), vec!["1", "2", "3"]);
        assert!(f.each(&v, 2).is_none());
        let scalars = FieldRef::parse("orders.ids", &earlier).unwrap();
        assert_eq!(
            scalars.each(&json!({"ids": ["a", "b"]}), 10).unwrap(),
            vec!["a", "b"]
        );
        assert!(scalars.each(&json!({"ids": [{"x": 1}]}), 10).is_none());
        assert_eq!(
            scalars.each(&json!({"ids": []}), 10).unwrap(),
            Vec::<String>::new()
        );
    }
}

//! Response shaping: keep only listed fields (dotted paths, applied through arrays) — from config
//! (declarative routes) or chosen by the client (`?fields=a,b.c`, sparse fieldsets) within a per-endpoint
//! allow-list.
//!
//! ```
//! use bff_core::shape::{sparse_fields, sparse_json};
//! # fn handler(uri: axum::http::Uri) -> Result<axum::response::Response, bff_core::error::BffError> {
//! const FIELDS: &[&str] = &["id", "name", "price", "price.amount_cents"];
//! let fields = sparse_fields(uri.query(), FIELDS)?;   // 400 naming unknown fields
//! // ... compose ...
//! let view = serde_json::json!({"id": "42", "name": "Kettle", "price": {"amount_cents": 2599, "currency": "EUR"}});
//! Ok(sparse_json(&view, fields.as_ref()))
//! # }
//! assert!(handler("/p?fields=id,price.amount_cents".parse().unwrap()).is_ok());
//! assert!(handler("/p?fields=internal_cost".parse().unwrap()).is_err());
//! ```

use std::collections::BTreeMap;

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::BffError;

/// Most paths a client may list in `fields`.
pub const MAX_SPARSE_FIELDS: usize = 64;

/// The client's sparse fieldset from the `fields` query parameter (comma-separated dotted paths; several
/// `fields` parameters are joined), or `None` without one. Every path must be listed in `allowed`; unknown
/// or disallowed paths are a 400 problem naming them (and an empty list, or more than
/// [`MAX_SPARSE_FIELDS`] paths, a 400 too).
pub fn sparse_fields(query: Option<&str>, allowed: &[&str]) -> Result<Option<FieldSet>, BffError> {
    let Some(query) = query else {
        return Ok(None);
    };
    let mut requested: Vec<String> = Vec::new();
    let mut present = false;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if name == "fields" {
            present = true;
            requested.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    if !present {
        return Ok(None);
    }
    if requested.is_empty() {
        return Err(BffError::BadRequest {
            detail: "`fields` must name at least one field".into(),
        });
    }
    if requested.len() > MAX_SPARSE_FIELDS {
        return Err(BffError::BadRequest {
            detail: format!("`fields` may name at most {MAX_SPARSE_FIELDS} fields"),
        });
    }
    let mut unknown: Vec<&str> = requested
        .iter()
        .map(String::as_str)
        .filter(|p| !allowed.contains(p))
        .collect();
    unknown.dedup();
    if !unknown.is_empty() {
        // Echo only short, printable names (the detail is client-facing; nothing internal is in it).
        let named: Vec<String> = unknown
            .iter()
            .take(10)
            .map(|p| p.chars().filter(|c| !c.is_control()).take(64).collect())
            .collect();
        return Err(BffError::BadRequest {
            detail: format!(
                "unknown or disallowed fields: {}; allowed: {}",
                named.join(", "),
                allowed.join(", ")
            ),
        });
    }
    Ok(Some(FieldSet::new(requested.iter().map(String::as_str))))
}

/// The JSON answer of `view`, reduced to `fields` when the client chose some. A view that cannot be
/// serialized (a bug) is a 500 problem, never a panic.
pub fn sparse_json<T: Serialize>(view: &T, fields: Option<&FieldSet>) -> Response {
    match fields {
        None => Json(view).into_response(),
        Some(fields) => match serde_json::to_value(view) {
            Ok(value) => Json(fields.pick(value)).into_response(),
            Err(_) => BffError::Internal.into_response(),
        },
    }
}

/// A compiled set of dotted field paths, e.g. `["id", "price.amount_cents", "images.url"]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSet {
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// Compiles dotted paths; empty segments are ignored.
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> Self {
        let mut root = Self::default();
        for path in paths {
            let mut node = &mut root;
            for segment in path.split('.').filter(|s| !s.is_empty()) {
                node = node.children.entry(segment.to_owned()).or_default();
            }
        }
        root
    }

    /// Whether no field is listed (then [`FieldSet::pick`] keeps everything).
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Keeps only the listed fields of `value`; a listed object field with no sub-paths is kept whole;
    /// arrays are shaped element by element.
    pub fn pick(&self, value: Value) -> Value {
        if self.is_empty() {
            return value;
        }
        match value {
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, v) in map {
                    if let Some(child) = self.children.get(&key) {
                        out.insert(key, child.pick(v));
                    }
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.pick(v)).collect()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Nested paths and arrays are shaped; unlisted fields disappear.
    #[test]
    fn picks_nested_and_array_fields() {
        let fields = FieldSet::new(["id", "price.amount_cents", "images.url"]);
        let v = json!({"id": "1", "internal": {"cost": 3}, "price": {"amount_cents": 5, "currency": "EUR"},
                       "images": [{"url": "a", "width": 1}, {"url": "b", "width": 2}]});
        assert_eq!(
            fields.pick(v),
            json!({"id": "1", "price": {"amount_cents": 5}, "images": [{"url": "a"}, {"url": "b"}]})
        );
    }

    /// Sparse fieldsets: absent is None; allowed paths pick; unknown ones are a 400 naming them.
    #[test]
    fn sparse_fieldsets() {
        let allowed = &["id", "price", "price.amount_cents", "items.id"];
        assert_eq!(sparse_fields(None, allowed).unwrap(), None);
        assert_eq!(sparse_fields(Some("a=1"), allowed).unwrap(), None);
        let f = sparse_fields(Some("fields=id,price.amount_cents&x=1"), allowed)
            .unwrap()
            .unwrap();
        assert_eq!(
            f.pick(json!({"id": 1, "price": {"amount_cents": 5, "currency": "EUR"}, "name": "n"})),
            json!({"id": 1, "price": {"amount_cents": 5}})
        );
        let f = sparse_fields(Some("fields=id%2Citems.id"), allowed)
            .unwrap()
            .unwrap();
        assert_eq!(
            f.pick(json!({"id": 1, "items": [{"id": "a", "x": 1}]})),
            json!({"id": 1, "items": [{"id": "a"}]})
        );
        let e = sparse_fields(Some("fields=id,secret,price.cost"), allowed).unwrap_err();
        let detail = e.problem().detail.unwrap();
        assert!(detail.contains("secret, price.cost"), "{detail}");
        assert_eq!(e.status().as_u16(), 400);
        assert!(sparse_fields(Some("fields="), allowed).is_err());
        let many = format!("fields={}", vec!["id"; 65].join(","));
        assert!(sparse_fields(Some(&many), allowed).is_err());
    }

    /// An empty set keeps the whole value.
    #[test]
    fn empty_keeps_everything() {
        assert_eq!(FieldSet::new([]).pick(json!({"a": 1})), json!({"a": 1}));
    }
}

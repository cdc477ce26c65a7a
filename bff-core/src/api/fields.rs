//! Sparse fieldsets (`?fields=a,b.c`) as an extractor and responder: [`Fields<V>`] checks the client's
//! fieldset against the dotted paths of the view `V` — read from `V`'s OpenAPI schema, so the allow-list can
//! never drift from the view — before the handler composes anything (400 `bad_request` naming unknown
//! paths), then shapes the answer.

use std::any::TypeId;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Mutex, OnceLock};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{Required, Type};
use utoipa::{IntoParams, ToSchema};

use crate::error::BffError;
use crate::shape::{FieldSet, sparse_fields, sparse_json};

/// The client's sparse fieldset for a view `V` (none: the whole view).
pub struct Fields<V> {
    set: Option<FieldSet>,
    view: PhantomData<fn() -> V>,
}

impl<V: Serialize> Fields<V> {
    /// The JSON answer of `view`, reduced to the chosen fields.
    pub fn json(&self, view: &V) -> Response {
        sparse_json(view, self.set.as_ref())
    }
}

impl<V> std::fmt::Debug for Fields<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fields").field("set", &self.set).finish()
    }
}

impl<V: ToSchema + 'static, S: Send + Sync> FromRequestParts<S> for Fields<V> {
    type Rejection = BffError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, BffError> {
        let set = sparse_fields(parts.uri.query(), allowed::<V>())?;
        Ok(Self {
            set,
            view: PhantomData,
        })
    }
}

/// Documents the `fields` query parameter with the paths of `V`.
impl<V: ToSchema + 'static> IntoParams for Fields<V> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let description = format!(
            "Sparse fieldset: comma-separated dotted paths of the answer; any of {}",
            allowed::<V>().join(", ")
        );
        let schema = utoipa::openapi::ObjectBuilder::new().schema_type(Type::String);
        vec![
            ParameterBuilder::new()
                .name("fields")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(schema))
                .build(),
        ]
    }
}

/// The dotted paths of `V` (objects and their members, through arrays and optional values), computed once
/// per view type.
pub fn allowed<V: ToSchema + 'static>() -> &'static [&'static str] {
    static KNOWN: OnceLock<Mutex<HashMap<TypeId, &'static [&'static str]>>> = OnceLock::new();
    let known = KNOWN.get_or_init(Default::default);
    let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
    known.entry(TypeId::of::<V>()).or_insert_with(|| {
        // One leaked list per view type of the gateway: bounded by the program, computed once.
        let paths: Vec<&'static str> = schema_paths::<V>()
            .into_iter()
            .map(|p| &*Box::leak(p.into_boxed_str()))
            .collect();
        Box::leak(paths.into_boxed_slice())
    })
}

/// The dotted paths of `V`'s schema, in document order.
fn schema_paths<V: ToSchema>() -> Vec<String> {
    let mut named = Vec::new();
    V::schemas(&mut named);
    let defs: HashMap<String, Value> = named
        .into_iter()
        .filter_map(|(name, schema)| Some((name, serde_json::to_value(schema).ok()?)))
        .collect();
    let root = serde_json::to_value(V::schema()).unwrap_or_default();
    let mut out = Vec::new();
    walk(&root, "", &defs, 0, &mut out);
    out
}

/// Collects the property paths of `schema` under `prefix` (references resolved, at most 8 levels deep).
fn walk(
    schema: &Value,
    prefix: &str,
    defs: &HashMap<String, Value>,
    depth: u8,
    out: &mut Vec<String>,
) {
    if depth > 8 {
        return;
    }
    if let Some(name) = schema["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
        if let Some(def) = defs.get(name) {
            walk(def, prefix, defs, depth + 1, out);
        }
        return;
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for alternative in schema[key].as_array().into_iter().flatten() {
            walk(alternative, prefix, defs, depth + 1, out);
        }
    }
    if let Some(items) = schema.get("items") {
        walk(items, prefix, defs, depth + 1, out);
    }
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if !out.contains(&path) {
            out.push(path.clone());
        }
        walk(property, &path, defs, depth + 1, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, ToSchema)]
    struct Money {
        amount_cents: i64,
        currency: String,
    }

    #[derive(Serialize, ToSchema)]
    struct Line {
        name: Option<String>,
        price: Option<Money>,
    }

    #[derive(Serialize, ToSchema)]
    struct View {
        id: String,
        total: Money,
        lines: Vec<Line>,
        extra: Option<Vec<Line>>,
    }

    /// The allow-list is every member path of the view: nested, through arrays and optional values.
    #[test]
    fn paths_follow_the_schema() {
        let mut paths = allowed::<View>().to_vec();
        paths.sort_unstable();
        assert_eq!(
            paths,
            [
                "extra",
                "extra.name",
                "extra.price",
                "extra.price.amount_cents",
                "extra.price.currency",
                "id",
                "lines",
                "lines.name",
                "lines.price",
                "lines.price.amount_cents",
                "lines.price.currency",
                "total",
                "total.amount_cents",
                "total.currency",
            ]
        );
        // Computed once: the same list.
        assert!(std::ptr::eq(allowed::<View>(), allowed::<View>()));
    }

    /// The extractor refuses unknown paths before the handler runs and shapes the answer.
    #[tokio::test]
    async fn extracts_and_shapes() {
        let (mut parts, ()) = axum::http::Request::get("/v?fields=id,total.currency")
            .body(())
            .unwrap()
            .into_parts();
        let fields = Fields::<View>::from_request_parts(&mut parts, &())
            .await
            .unwrap();
        let view = View {
            id: "1".into(),
            total: Money {
                amount_cents: 5,
                currency: "EUR".into(),
            },
            lines: vec![],
            extra: None,
        };
        let body = axum::body::to_bytes(fields.json(&view).into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"id":"1","total":{"currency":"EUR"}}"#);
        let (mut parts, ()) = axum::http::Request::get("/v?fields=id,secret")
            .body(())
            .unwrap()
            .into_parts();
        let e = Fields::<View>::from_request_parts(&mut parts, &())
            .await
            .unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        let params = Fields::<View>::into_params(|| None);
        assert_eq!(params[0].name, "fields");
    }
}

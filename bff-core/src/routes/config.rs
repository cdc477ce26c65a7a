//! The `[[routes]]` section: declarative forwarding routes and their checks, with the path-template rules
//! shared by routes and aggregations (valid templates, no two public paths the same route).

use std::collections::BTreeMap;

use axum::http::HeaderName;
use serde::{Deserialize, Serialize};

use crate::aggregate::config::AggregateConfig;
use crate::config::error::ConfigError;
use crate::downstream::config::DownstreamConfig;

/// The built-in public paths of every gateway (no declarative route or aggregation may shadow them).
pub const PUBLIC_PATHS: &[&str] = &["/healthz", "/readyz", "/openapi.json", "/docs"];

/// A declarative route: a public path forwarded to a downstream path, or translated into a call of a gRPC
/// method (`grpc_method`, see docs/grpc.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Public path, with `{name}` parameters, e.g. `/api/users/{id}/card`.
    pub path: String,
    /// The downstream to forward to.
    pub downstream: String,
    /// Path on the downstream, with the same `{name}` parameters, e.g. `/users/{id}`. Empty with
    /// `grpc_method`.
    #[serde(default)]
    pub downstream_path: String,
    /// A unary gRPC method of the downstream (`protocol = "grpc"` with a `descriptor_set`), as
    /// `package.Service/Method`, e.g. `shop.inventory.Inventory/GetStock`: path parameters and allow-listed
    /// query parameters fill the request fields of their name; the answer is rendered in the proto3 JSON
    /// mapping (proto field names, default values included) before `fields` shapes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_method: Option<String>,
    /// Query parameters passed through (others are dropped).
    #[serde(default)]
    pub query_allow: Vec<String>,
    /// Request headers passed through (identity and hop-by-hop headers never are).
    #[serde(default)]
    pub header_allow: Vec<String>,
    /// Response fields kept (dotted paths, e.g. `price.amount_cents`); empty keeps the whole body.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Scopes the caller must hold.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// The `{name}` parameters of a path template.
pub fn path_params(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// Why a configured path template cannot be served, or `Ok`: absolute, canonical (see
/// [`crate::hygiene::check_path`]), every segment either literal or a whole `{name}` parameter (`name` of
/// ASCII letters, digits and `_`, unique in the template), no `*` or `:` segments (the router would panic).
pub fn check_template(template: &str) -> Result<(), &'static str> {
    if template.len() > 1024 {
        return Err("is longer than 1024 bytes");
    }
    let rest = template.strip_prefix('/').ok_or("must start with `/`")?;
    let mut names: Vec<&str> = Vec::new();
    for segment in rest.split('/') {
        if rest.is_empty() {
            break;
        }
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let valid = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err("a `{name}` parameter must be letters, digits and `_`");
            }
            if names.contains(&name) {
                return Err("a parameter name occurs twice");
            }
            names.push(name);
            continue;
        }
        if segment.contains(['{', '}']) {
            return Err("`{` and `}` may only enclose a whole segment");
        }
        if segment.starts_with([':', '*']) {
            return Err("segments may not start with `:` or `*` (use `{name}`)");
        }
    }
    let literal: String = template
        .split('/')
        .map(|s| if s.starts_with('{') { "p" } else { s })
        .collect::<Vec<_>>()
        .join("/");
    crate::hygiene::check_path(&literal).map_err(|_| "is not a canonical path")?;
    Ok(())
}

/// Whether two path templates would be the same route to the router: as many segments, and at every position
/// either the same literal or a parameter in both (whatever their names).
pub fn templates_overlap(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    let param = |s: &str| s.starts_with('{');
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| (param(x) && param(y)) || (!param(x) && !param(y) && x == y))
}

/// Whether a request header may be named in a declarative route's `header_allow` (credential, identity,
/// hop-by-hop and tracing headers never may).
pub fn is_forwardable_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    HeaderName::from_bytes(lower.as_bytes()).is_ok()
        && !NEVER_FORWARDED.contains(&lower.as_str())
        && !lower.starts_with(crate::auth::IDENTITY_HEADER_PREFIX)
}

/// Headers never forwarded, whatever the allow-list says.
pub(crate) const NEVER_FORWARDED: &[&str] = &[
    "authorization",
    "x-api-key",
    "cookie",
    "host",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "x-request-id",
    "traceparent",
    "tracestate",
    "forwarded",
    "x-forwarded-for",
    "proxy-authenticate",
    "set-cookie",
];

/// The public paths of declarative routes and aggregations: valid templates, none the same route as a
/// built-in path or as another one (the router would refuse to start).
pub(crate) fn validate_paths(
    routes: &[RouteConfig],
    aggregates: &[AggregateConfig],
) -> Result<(), ConfigError> {
    let paths = routes
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("routes[{i}].path"), &r.path))
        .chain(
            aggregates
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("aggregates[{i}].path"), &a.path)),
        );
    let mut seen: Vec<(String, &String)> = Vec::new();
    for (key, path) in paths {
        check_template(path).map_err(|r| ConfigError::invalid(&key, r))?;
        if let Some(builtin) = PUBLIC_PATHS.iter().find(|b| templates_overlap(b, path)) {
            return Err(ConfigError::invalid(
                key,
                format!("shadows the built-in path `{builtin}`"),
            ));
        }
        if let Some((other, _)) = seen.iter().find(|(_, p)| templates_overlap(p, path)) {
            return Err(ConfigError::invalid(
                key,
                format!("is the same route as `{other}`"),
            ));
        }
        seen.push((key, path));
    }
    Ok(())
}

/// Checks the `[[routes]]`: forwardable headers only, a downstream path starting with `/` on a configured
/// downstream, using only parameters of the public path; for a `grpc_method`, the checks of
/// [`super::grpc::validate`] (and every `descriptor_set` readable); the error names the first bad key.
pub(crate) fn validate(
    routes: &[RouteConfig],
    downstreams: &BTreeMap<String, DownstreamConfig>,
) -> Result<(), ConfigError> {
    let pools = super::grpc::descriptor_sets(downstreams)?;
    for (i, r) in routes.iter().enumerate() {
        let key = |k: &str| format!("routes[{i}].{k}");
        if let Some(method) = &r.grpc_method {
            super::grpc::validate(i, r, method, downstreams, &pools)?;
            continue;
        }
        for (j, h) in r.header_allow.iter().enumerate() {
            if !is_forwardable_header(h) {
                return Err(ConfigError::invalid(
                    format!("routes[{i}].header_allow[{j}]"),
                    "credential, identity (`x-bff-*`), hop-by-hop and tracing headers are never forwarded",
                ));
            }
        }
        if !r.downstream_path.starts_with('/') {
            return Err(ConfigError::invalid(
                key("downstream_path"),
                "must start with `/`",
            ));
        }
        if !downstreams.contains_key(&r.downstream) {
            return Err(ConfigError::invalid(
                key("downstream"),
                "names no configured downstream",
            ));
        }
        for param in path_params(&r.downstream_path) {
            if !path_params(&r.path).any(|p| p == param) {
                return Err(ConfigError::invalid(
                    key("downstream_path"),
                    format!("parameter `{param}` does not occur in `path`"),
                ));
            }
        }
    }
    Ok(())
}

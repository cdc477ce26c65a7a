//! Declarative routes from config: a public path forwarded to a downstream path, with path parameters encoded,
//! query parameters and request headers passed only by allow-list, and the response shaped by a field
//! allow-list. Lets a service move or split without clients noticing.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::routing::get;

use crate::config::RouteConfig;
use crate::context::RequestContext;
use crate::downstream::{Downstream, encode_query, encode_segment};
use crate::error::BffError;
use crate::shape::FieldSet;

/// The `{name}` parameters of a path template.
pub fn path_params(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// Headers never forwarded, whatever the allow-list says.
const NEVER_FORWARDED: &[&str] = &[
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
];

struct Forward {
    downstream: Downstream,
    template: String,
    query_allow: Vec<String>,
    header_allow: Vec<HeaderName>,
    fields: FieldSet,
    scopes: Vec<String>,
}

impl Forward {
    fn downstream_path(
        &self,
        params: &HashMap<String, String>,
        query: Option<&str>,
    ) -> Result<String, BffError> {
        let mut path = String::with_capacity(self.template.len() + 16);
        for (i, segment) in self.template.split('/').enumerate() {
            if i > 0 {
                path.push('/');
            }
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    path.push_str(&encode_segment(params.get(name).ok_or(BffError::NotFound)?))
                }
                None => path.push_str(segment),
            }
        }
        let pairs: Vec<String> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .filter(|(k, _)| self.query_allow.iter().any(|a| a == k))
            .map(|(k, v)| format!("{}={}", encode_query(&k), encode_query(&v)))
            .collect();
        if !pairs.is_empty() {
            path.push('?');
            path.push_str(&pairs.join("&"));
        }
        Ok(path)
    }

    async fn handle(
        &self,
        ctx: RequestContext,
        params: HashMap<String, String>,
        query: Option<String>,
        headers: HeaderMap,
    ) -> Result<Json<serde_json::Value>, BffError> {
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        if !scopes.is_empty() {
            ctx.require_scopes(&scopes)?;
        }
        let path = self.downstream_path(&params, query.as_deref())?;
        let extra: Vec<(HeaderName, HeaderValue)> = self
            .header_allow
            .iter()
            .filter_map(|name| headers.get(name).map(|v| (name.clone(), v.clone())))
            .collect();
        let body = ctx
            .required("upstream", self.downstream.get_bytes(&ctx, &path, &extra))
            .await?;
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            tracing::warn!(downstream = %self.downstream.name(), error = %e, "malformed JSON");
            BffError::BadGateway { part: "upstream" }
        })?;
        Ok(Json(self.fields.pick(value)))
    }
}

/// A router serving every declarative route (GET only).
pub(crate) fn router(
    routes: &[RouteConfig],
    downstream: impl Fn(&str) -> Option<Downstream>,
) -> Router {
    let mut router = Router::new();
    for route in routes {
        let Some(target) = downstream(&route.downstream) else {
            continue;
        };
        let forward = std::sync::Arc::new(Forward {
            downstream: target,
            template: route.downstream_path.clone(),
            query_allow: route.query_allow.clone(),
            header_allow: route
                .header_allow
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok())
                .filter(|h| {
                    !NEVER_FORWARDED.contains(&h.as_str())
                        && !h.as_str().starts_with(crate::auth::IDENTITY_HEADER_PREFIX)
                })
                .collect(),
            fields: FieldSet::new(route.fields.iter().map(String::as_str)),
            scopes: route.scopes.clone(),
        });
        router = router.route(
            &route.path,
            get(
                move |ctx: RequestContext,
                      params: Option<Path<HashMap<String, String>>>,
                      RawQuery(query): RawQuery,
                      headers: HeaderMap| async move {
                    let params = params.map(|Path(p)| p).unwrap_or_default();
                    forward.handle(ctx, params, query, headers).await
                },
            ),
        );
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parameters are encoded into their segment and only allow-listed query parameters pass.
    #[test]
    fn downstream_path_is_encoded_and_filtered() {
        let client = reqwest::Client::new();
        let forward = Forward {
            downstream: Downstream::new(
                "users",
                &crate::config::DownstreamConfig::at("http://x"),
                client,
            ),
            template: "/users/{id}/orders".into(),
            query_allow: vec!["limit".into()],
            header_allow: vec![],
            fields: FieldSet::default(),
            scopes: vec![],
        };
        let params = HashMap::from([("id".to_string(), "../admin".to_string())]);
        let path = forward
            .downstream_path(&params, Some("limit=5&debug=1&limit=a%20b"))
            .unwrap();
        assert_eq!(path, "/users/%2E%2E%2Fadmin/orders?limit=5&limit=a%20b");
        assert_eq!(
            path_params("/a/{x}/b/{y}").collect::<Vec<_>>(),
            vec!["x", "y"]
        );
    }
}

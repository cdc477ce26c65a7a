//! Declarative routes from config: a public path forwarded to a downstream path (or translated into a gRPC
//! call, see [`grpc`]), with path parameters encoded, query parameters and request headers passed only by
//! allow-list, and the response shaped by a field allow-list. Lets a service move or split without clients
//! noticing.

pub mod config;
pub(crate) mod grpc;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::Response;
use axum::routing::get;

use crate::context::RequestContext;
use crate::downstream::{Downstream, encode_query, encode_segment};
use crate::error::BffError;
use crate::shape::FieldSet;
use config::NEVER_FORWARDED;
pub use config::{
    RouteConfig, check_template, is_forwardable_header, path_params, templates_overlap,
};

/// `template` with every `{name}` segment replaced by the percent-encoded parameter (404 when a parameter is
/// missing, which a validated config rules out).
pub(crate) fn fill_path(
    template: &str,
    params: &HashMap<String, String>,
) -> Result<String, BffError> {
    if !template.contains('{') {
        // No parameter: the path is the template.
        return Ok(template.to_owned());
    }
    let mut path = String::with_capacity(template.len() + 16);
    for (i, segment) in template.split('/').enumerate() {
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
    Ok(path)
}

/// One declarative route, ready to serve.
struct Forward {
    downstream: Downstream,
    /// The gRPC method called instead of `template`, for a route with a `grpc_method`.
    grpc: Option<grpc::GrpcTarget>,
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
        let mut path = fill_path(&self.template, params)?;
        if self.query_allow.is_empty() {
            // No parameter may pass: the query is not even parsed.
            return Ok(path);
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
        headers: &HeaderMap,
    ) -> Result<Response, BffError> {
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        if !scopes.is_empty() {
            ctx.require_scopes(&scopes)?;
        }
        if let Some(target) = &self.grpc {
            return self.call_grpc(ctx, target, params, query).await;
        }
        let path = self.downstream_path(&params, query.as_deref())?;
        let extra: Vec<(HeaderName, HeaderValue)> = self
            .header_allow
            .iter()
            .filter_map(|name| headers.get(name).map(|v| (name.clone(), v.clone())))
            .collect();
        let answer = ctx
            .required("upstream", self.downstream.get_answer(&ctx, &path, &extra))
            .await?;
        if self.fields.is_empty() {
            // Pass-through: forwarded as received, like a reverse proxy, without being parsed (its media type
            // was checked and its size capped by the call; docs/configuration.md, `[[routes]]`). Its tag is
            // derived from the downstream's when there is one, instead of hashing the body (etag.rs).
            let mut response = json_response(answer.body);
            if let Some(tag) = answer
                .etag
                .as_ref()
                .and_then(crate::etag::tag_of_downstream)
            {
                response.headers_mut().insert(header::ETAG, tag);
            }
            return Ok(response);
        }
        // Shaped: parsed, picked and written again; the conditional layer tags the new body.
        let value: serde_json::Value = serde_json::from_slice(&answer.body).map_err(|e| {
            tracing::warn!(downstream = %self.downstream.name(), error = %e, "malformed JSON");
            BffError::BadGateway { part: "upstream" }
        })?;
        let body = serde_json::to_vec(&self.fields.pick(value)).map_err(|_| BffError::Internal)?;
        Ok(json_response(body.into()))
    }

    /// Serves the route by a unary call of `target` (an idempotent read, as the route is a `GET`): the
    /// request message filled from the parameters, the answer rendered as proto3 JSON and shaped.
    async fn call_grpc(
        &self,
        ctx: RequestContext,
        target: &grpc::GrpcTarget,
        params: HashMap<String, String>,
        query: Option<String>,
    ) -> Result<Response, BffError> {
        let request = target.request(&params, query.as_deref())?;
        let body = ctx
            .required(
                "upstream",
                self.downstream
                    .unary_raw(&ctx, target.path(), true, &request),
            )
            .await?;
        let value = target.render(body).ok_or_else(|| {
            tracing::warn!(downstream = %self.downstream.name(), method = target.path(), "malformed protobuf message");
            BffError::BadGateway { part: "upstream" }
        })?;
        let value = if self.fields.is_empty() {
            value
        } else {
            self.fields.pick(value)
        };
        let body = serde_json::to_vec(&value).map_err(|_| BffError::Internal)?;
        Ok(json_response(body.into()))
    }
}

/// The headers a forwarded or composed answer leaves with, at most, before rate limiting adds its own:
/// `content-type`, `content-length`, `etag`, `cache-control`, `vary`, the four security headers,
/// `x-request-id`, `traceparent`, `bff-partial`.
const ANSWER_HEADERS: usize = 12;

/// `body` as an `application/json` answer, its header map sized for the headers the layers add on the way
/// out (a map grown from the default size is rehashed once per request on the way).
pub(crate) fn json_response(body: bytes::Bytes) -> Response {
    let mut headers = HeaderMap::with_capacity(ANSWER_HEADERS);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut response = Response::new(axum::body::Body::from(body));
    *response.headers_mut() = headers;
    response
}

/// A router serving every declarative route (GET only); `descriptor_set` gives a downstream's descriptor set
/// file, for the routes with a `grpc_method` (a route that validation would refuse is left out).
pub(crate) fn router(
    routes: &[RouteConfig],
    downstream: impl Fn(&str) -> Option<Downstream>,
    descriptor_set: impl Fn(&str) -> Option<std::path::PathBuf>,
) -> Router {
    let mut router = Router::new();
    let mut pools = HashMap::new();
    for route in routes {
        let Some(target) = downstream(&route.downstream) else {
            continue;
        };
        let grpc = match &route.grpc_method {
            None => None,
            Some(method) => {
                let Some(file) = descriptor_set(&route.downstream) else {
                    continue;
                };
                if !pools.contains_key(&file) {
                    let Ok(pool) = grpc::load_pool(&file) else {
                        continue;
                    };
                    pools.insert(file.clone(), pool);
                }
                let Ok(target) =
                    grpc::GrpcTarget::new(&pools[&file], method, &route.path, &route.query_allow)
                else {
                    continue;
                };
                Some(target)
            }
        };
        let forward = std::sync::Arc::new(Forward {
            downstream: target,
            grpc,
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
                      request: axum::extract::Request| async move {
                    // The request's headers read in place (the `HeaderMap` extractor would copy them all).
                    let params = params.map(|Path(p)| p).unwrap_or_default();
                    forward.handle(ctx, params, query, request.headers()).await
                },
            ),
        );
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Templates the router would refuse (or panic on) are refused, and overlapping templates are seen.
    #[test]
    fn templates_are_checked_and_overlaps_found() {
        for ok in ["/", "/a", "/api/users/{id}/card", "/v1/{a}/{b_2}"] {
            assert_eq!(check_template(ok), Ok(()), "{ok}");
        }
        for bad in [
            "a",
            "/a/{",
            "/a/{}",
            "/a/x{id}",
            "/a/:id",
            "/a/*rest",
            "/a//b",
            "/a/",
            "/a/../b",
            "/{x}/{x}",
            "/a/{id-x}",
        ] {
            assert!(check_template(bad).is_err(), "{bad}");
        }
        assert!(templates_overlap("/a/{x}", "/a/{y}"));
        assert!(templates_overlap("/healthz", "/healthz"));
        assert!(!templates_overlap("/a/{x}", "/a/b"));
        assert!(!templates_overlap("/a/{x}", "/a/{x}/c"));
        assert!(!is_forwardable_header("Authorization"));
        assert!(!is_forwardable_header("x-bff-user-id"));
        assert!(!is_forwardable_header("Cookie"));
        assert!(!is_forwardable_header("bad header"));
        assert!(is_forwardable_header("accept-language"));
    }

    /// Parameters are encoded into their segment and only allow-listed query parameters pass.
    #[test]
    fn downstream_path_is_encoded_and_filtered() {
        let client = crate::downstream::http_client(std::time::Duration::from_millis(500));
        let forward = Forward {
            downstream: Downstream::new(
                "users",
                &crate::config::DownstreamConfig::at("http://x"),
                client,
            ),
            grpc: None,
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

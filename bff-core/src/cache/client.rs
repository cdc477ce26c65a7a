//! What the client sees of caching: the `Cache-Control` of a composed response computed from its parts
//! (strictest wins; always `private` for an authenticated caller; `no-cache` for a partial or degraded
//! response or one without recorded parts), `Vary` on the credential header, and the compression layer
//! (gzip, brotli; above a minimum size; never a 304 or an empty body). Strong ETags and 304s are in
//! [`crate::etag`].

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header};
use axum::response::Response;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{And, NotForContentType, Predicate, SizeAbove};

use super::compress::CompressIfAcceptedLayer;
use super::config::CompressionConfig;
use crate::context::RequestContext;

/// Sets the computed `Cache-Control` and `Vary` on a successful GET/HEAD answer (edge step). A handler that
/// set its own `Cache-Control` keeps it.
pub(crate) fn apply(
    response: &mut Response,
    ctx: &RequestContext,
    method: &Method,
    vary_on: Option<&HeaderName>,
) {
    let cacheable_method = method == Method::GET || method == Method::HEAD;
    if !cacheable_method || !response.status().is_success() {
        return;
    }
    let headers = response.headers_mut();
    if let Some(credential) = vary_on {
        headers.append(header::VARY, HeaderValue::from(credential.clone()));
    }
    if headers.contains_key(header::CACHE_CONTROL) {
        return;
    }
    let mut policy = ctx.cache_policy();
    if ctx.identity().is_some() {
        policy.private = true;
    }
    let incomplete = !ctx.partial_parts().is_empty() || !ctx.degraded_parts().is_empty();
    if !policy.recorded || incomplete {
        policy.max_age = Some(0);
    }
    if let Some(v) = policy.static_header_value() {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(v));
    } else if let Ok(v) = HeaderValue::from_str(&policy.header_value()) {
        headers.insert(header::CACHE_CONTROL, v);
    }
}

/// Never compress a `304 Not Modified` (it has no body, and its headers must describe the cached one).
fn not_304(status: StatusCode, _: Version, _: &HeaderMap, _: &axum::http::Extensions) -> bool {
    status != StatusCode::NOT_MODIFIED
}

/// When a response is compressed: at least `min_bytes`, not an image / gRPC / event stream, not a 304.
pub(crate) type CompressWhen = And<
    And<And<And<SizeAbove, NotForContentType>, NotForContentType>, NotForContentType>,
    fn(StatusCode, Version, &HeaderMap, &axum::http::Extensions) -> bool,
>;

/// The compression layer of `[cache.compression]` (gzip and brotli by `Accept-Encoding`, brotli at
/// quality 4 as tower-http sets it; `Vary: accept-encoding` added by the layer), entered only by requests
/// that send `Accept-Encoding` (see [`super::compress`]).
pub(crate) fn compression(config: &CompressionConfig) -> CompressIfAcceptedLayer {
    let when = SizeAbove::new(config.min_bytes)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::SSE)
        .and(not_304 as fn(StatusCode, Version, &HeaderMap, &axum::http::Extensions) -> bool);
    let layer = CompressionLayer::new()
        .gzip(config.enabled && config.gzip)
        .br(config.enabled && config.br)
        .compress_when(when.clone());
    CompressIfAcceptedLayer::new(layer, when)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CachePolicy;
    use crate::trace::TraceContext;
    use axum::response::IntoResponse;
    use std::time::Duration;

    fn ctx() -> RequestContext {
        RequestContext::new(
            "r".into(),
            TraceContext::from_headers(&HeaderMap::new()),
            None,
            tokio::time::Instant::now() + Duration::from_secs(1),
        )
    }

    /// Parts merge strictest-wins; partial responses and responses without parts revalidate; errors and
    /// handler-set policies are left alone; Vary names the credential header.
    #[tokio::test]
    async fn computed_cache_control() {
        let header_of = |ctx: &RequestContext, method: Method, status: StatusCode| {
            let mut r = status.into_response();
            apply(&mut r, ctx, &method, Some(&header::AUTHORIZATION));
            (
                r.headers()
                    .get(header::CACHE_CONTROL)
                    .map(|v| v.to_str().unwrap().to_owned()),
                r.headers()
                    .get(header::VARY)
                    .map(|v| v.to_str().unwrap().to_owned()),
            )
        };
        let c = ctx();
        assert_eq!(
            header_of(&c, Method::GET, StatusCode::OK).0.as_deref(),
            Some("no-cache")
        );
        c.record_cache(CachePolicy::part(Duration::from_secs(60), false, false));
        c.record_cache(CachePolicy::part(Duration::from_secs(20), false, false));
        let (cc, vary) = header_of(&c, Method::GET, StatusCode::OK);
        assert_eq!(cc.as_deref(), Some("max-age=20"));
        assert_eq!(vary.as_deref(), Some("authorization"));
        assert_eq!(header_of(&c, Method::POST, StatusCode::OK).0, None);
        assert_eq!(header_of(&c, Method::GET, StatusCode::BAD_GATEWAY).0, None);
        c.mark_partial("recs");
        assert_eq!(
            header_of(&c, Method::GET, StatusCode::OK).0.as_deref(),
            Some("no-cache")
        );
        let c = ctx();
        c.record_cache(CachePolicy::part(Duration::from_secs(60), true, false));
        assert_eq!(
            header_of(&c, Method::GET, StatusCode::OK).0.as_deref(),
            Some("private, max-age=60")
        );
        c.record_cache(CachePolicy::part(Duration::from_secs(60), false, true));
        assert_eq!(
            header_of(&c, Method::GET, StatusCode::OK).0.as_deref(),
            Some("no-store")
        );
    }
}

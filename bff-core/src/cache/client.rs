//! What the client sees of caching: the `Cache-Control` of a composed response computed from its parts
//! (strictest wins; always `private` for an authenticated caller; `no-cache` for a partial or degraded
//! response or one without recorded parts), `Vary` on the credential header, and the compression layer
//! (gzip, brotli; above a minimum size; never a 304 or an empty body). Strong ETags and 304s are in
//! [`crate::etag`].

use axum::body::HttpBody;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::Predicate;

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

/// When a response is compressed: at least `min_bytes` (when its size is known), not an image (SVG is text),
/// not gRPC (gRPC-Web may be), not an event stream, not a `304 Not Modified` (no body; its headers describe the
/// cached one). The rules of tower-http's `SizeAbove` and `NotForContentType::{IMAGES, GRPC, SSE}`, with the
/// `Content-Type` read once instead of once per rule (their chain cost ~0.7k instructions per request,
/// bench/notes.md).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompressWhen {
    /// Smallest body compressed, in bytes.
    min_bytes: u16,
}

impl Predicate for CompressWhen {
    fn should_compress<B: HttpBody>(&self, response: &axum::http::Response<B>) -> bool {
        if response.status() == StatusCode::NOT_MODIFIED {
            return false;
        }
        let headers = response.headers();
        let size = response.body().size_hint().exact().or_else(|| {
            (headers.get(header::CONTENT_LENGTH))
                .and_then(|h| h.to_str().ok())
                .and_then(|v| v.parse().ok())
        });
        if size.is_some_and(|size| size < u64::from(self.min_bytes)) {
            return false;
        }
        let content_type = (headers.get(header::CONTENT_TYPE))
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let allowed = |refused: &str, except: Option<&str>| {
            except.is_some_and(|e| content_type.starts_with(e))
                || !content_type.starts_with(refused)
        };
        allowed("image/", Some("image/svg+xml"))
            && allowed("application/grpc", Some("application/grpc-web"))
            && allowed("text/event-stream", None)
    }
}

/// The compression layer of `[cache.compression]` (gzip and brotli by `Accept-Encoding`, brotli at
/// quality 4 as tower-http sets it; `Vary: accept-encoding` added by the layer), entered only by requests
/// that send `Accept-Encoding` (see [`super::compress`]).
pub(crate) fn compression(config: &CompressionConfig) -> CompressIfAcceptedLayer {
    let when = CompressWhen {
        min_bytes: config.min_bytes,
    };
    let layer = CompressionLayer::new()
        .gzip(config.enabled && config.gzip)
        .br(config.enabled && config.br)
        .compress_when(when);
    CompressIfAcceptedLayer::new(layer, when)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CachePolicy;
    use crate::trace::TraceContext;
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    use std::time::Duration;

    /// `CompressWhen` answers as tower-http's own predicates chained (`SizeAbove` and the three
    /// `NotForContentType`s) plus "not a 304", for every combination of content type, known or unknown size,
    /// and status.
    #[test]
    fn compress_when_agrees_with_tower_http() {
        use tower_http::compression::predicate::{NotForContentType, SizeAbove};
        let ours = CompressWhen { min_bytes: 256 };
        let theirs = SizeAbove::new(256)
            .and(NotForContentType::IMAGES)
            .and(NotForContentType::GRPC)
            .and(NotForContentType::SSE);
        let types = [
            None,
            Some("application/json"),
            Some("image/png"),
            Some("image/svg+xml"),
            Some("image/svg+xml; charset=utf-8"),
            Some("application/grpc"),
            Some("application/grpc+proto"),
            Some("application/grpc-web"),
            Some("application/grpc-web-text"),
            Some("text/event-stream"),
            Some("text/event-streaming"),
            Some("text/html"),
            Some("IMAGE/PNG"),
        ];
        for content_type in types {
            for (body, length) in [
                (0, None),
                (255, None),
                (256, None),
                (10_000, None),
                (0, Some("300")),
                (0, Some("10")),
                (0, Some("x")),
            ] {
                for status in [
                    StatusCode::OK,
                    StatusCode::NOT_MODIFIED,
                    StatusCode::NOT_FOUND,
                ] {
                    // A known-size body (`Full`), or a streamed one whose size only `Content-Length` tells.
                    let mut response = if length.is_some() {
                        let stream =
                            futures::stream::empty::<Result<axum::body::Bytes, std::io::Error>>();
                        axum::body::Body::from_stream(stream).into_response()
                    } else {
                        vec![b'x'; body].into_response()
                    };
                    *response.status_mut() = status;
                    let headers = response.headers_mut();
                    headers.remove(header::CONTENT_TYPE);
                    if let Some(t) = content_type {
                        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(t));
                    }
                    if let Some(l) = length {
                        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static(l));
                    }
                    let expected =
                        theirs.should_compress(&response) && status != StatusCode::NOT_MODIFIED;
                    assert_eq!(
                        ours.should_compress(&response),
                        expected,
                        "{content_type:?} {body} {length:?} {status}"
                    );
                }
            }
        }
    }

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

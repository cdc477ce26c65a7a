//! The compression layer as the gateway applies it: tower-http's [`Compression`] for a request that
//! sends `Accept-Encoding`, and the inner service directly for one that does not, which could only be
//! answered in `identity`. Both answer the same headers (`Vary: accept-encoding` wherever tower-http would
//! add it); the direct path skips tower-http's response body wrapper, 5.8 KB with its Brotli encoder state
//! inline, which was moved and boxed on every request (~3k instructions per request, bench/notes.md).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use tower::{Layer, Service};
use tower_http::compression::predicate::Predicate;
use tower_http::compression::{Compression, CompressionLayer, ResponseFuture};

use super::client::CompressWhen;

/// [`CompressIfAccepted`] around each route (see [`crate::gateway`]).
#[derive(Clone)]
pub(crate) struct CompressIfAcceptedLayer {
    layer: CompressionLayer<CompressWhen>,
    when: CompressWhen,
}

impl CompressIfAcceptedLayer {
    /// `layer`, compressing `when` (the predicate `layer` was built with).
    pub(crate) fn new(layer: CompressionLayer<CompressWhen>, when: CompressWhen) -> Self {
        Self { layer, when }
    }
}

impl<S> Layer<S> for CompressIfAcceptedLayer {
    type Service = CompressIfAccepted<S>;

    fn layer(&self, inner: S) -> CompressIfAccepted<S> {
        CompressIfAccepted {
            compress: self.layer.layer(inner),
            when: self.when,
        }
    }
}

/// A route's service with tower-http's compression for requests that accept a content coding. One copy of
/// the inner service (inside tower-http's `Compression`): the route is cloned on every request, and a second
/// copy cost a second clone of everything inside.
#[derive(Clone)]
pub(crate) struct CompressIfAccepted<S> {
    compress: Compression<S, CompressWhen>,
    when: CompressWhen,
}

impl<S> Service<Request> for CompressIfAccepted<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = Infallible;
    type Future = CompressIfAcceptedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // `Compression` forwards to the inner service: this readies the one service either path calls.
        self.compress.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Called here, the service polled ready: its future owns what it needs, so the service is not
        // cloned (a clone reaches down to the boxed route, an allocation per request).
        if request.headers().contains_key(header::ACCEPT_ENCODING) {
            CompressIfAcceptedFuture::Compressed(self.compress.call(request))
        } else {
            CompressIfAcceptedFuture::Plain {
                answer: self.compress.get_mut().call(request),
                when: self.when,
            }
        }
    }
}

/// The answer of [`CompressIfAccepted`].
pub(crate) enum CompressIfAcceptedFuture<F> {
    /// Through tower-http's compression.
    Compressed(ResponseFuture<F, CompressWhen>),
    /// Straight from the inner service (`identity`), `Vary` added as tower-http would.
    Plain {
        /// The inner service's answer.
        answer: F,
        /// When tower-http would have added `Vary: accept-encoding`.
        when: CompressWhen,
    },
}

impl<F> Future for CompressIfAcceptedFuture<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Compressed(future) => Pin::new(future).poll(cx).map(|answer| {
                answer.map(|response| {
                    let mut response = response.map(Body::new);
                    weaken_tag_if_encoded(response.headers_mut());
                    response
                })
            }),
            Self::Plain { answer, when } => {
                let mut response = match std::task::ready!(Pin::new(answer).poll(cx)) {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                add_vary(&mut response, when);
                Poll::Ready(Ok(response))
            }
        }
    }
}

/// A strong `ETag` set inside (by a handler, or derived from a downstream's) on an answer compressed here
/// becomes weak (`W/`), as nginx's gzip does: it names the uncompressed bytes, and a strong tag must differ
/// between content codings (RFC 9110 §8.8.3). `If-None-Match` compares weakly, so a client's revalidation
/// still gets its `304`. (Tags the conditional layer computes are taken after compression: one per coding.)
fn weaken_tag_if_encoded(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CONTENT_ENCODING) {
        return;
    }
    let Some(tag) = headers.get(header::ETAG) else {
        return;
    };
    if tag.as_bytes().starts_with(b"W/") {
        return;
    }
    let mut weak = Vec::with_capacity(tag.len() + 2);
    weak.extend_from_slice(b"W/");
    weak.extend_from_slice(tag.as_bytes());
    if let Ok(weak) = HeaderValue::from_bytes(&weak) {
        headers.insert(header::ETAG, weak);
    }
}

/// `Vary: accept-encoding` on a response tower-http's compression would have compressed for a client that
/// accepted a coding (the same tests as its own), unless a `Vary` value already names it.
fn add_vary<B: HttpBody>(response: &mut Response<B>, when: &CompressWhen) {
    let headers = response.headers();
    let compressible = !headers.contains_key(header::CONTENT_ENCODING)
        && !headers.contains_key(header::CONTENT_RANGE)
        && when.should_compress(response);
    let named = || {
        (response.headers().get_all(header::VARY).iter()).any(|v| {
            (v.as_bytes().windows(b"accept-encoding".len()))
                .any(|w| w.eq_ignore_ascii_case(b"accept-encoding"))
        })
    };
    if compressible && !named() {
        (response.headers_mut()).append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use tower::ServiceExt;
    use tower::util::BoxCloneSyncService;

    use super::*;
    use crate::cache::config::CompressionConfig;

    type Answer = fn() -> Response;

    /// The answers whose headers the two paths must agree on.
    fn answers() -> Vec<(&'static str, Answer)> {
        vec![
            ("big json", || {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    "x".repeat(4096),
                )
                    .into_response()
            }),
            ("small json", || {
                ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
            }),
            ("image", || {
                ([(header::CONTENT_TYPE, "image/png")], vec![0u8; 4096]).into_response()
            }),
            ("304", || StatusCode::NOT_MODIFIED.into_response()),
            ("already varies", || {
                let headers = [
                    (header::VARY, "Authorization, Accept-Encoding"),
                    (header::CONTENT_TYPE, "application/json"),
                ];
                (headers, "x".repeat(4096)).into_response()
            }),
            ("already encoded", || {
                let headers = [
                    (header::CONTENT_ENCODING, "gzip"),
                    (header::CONTENT_TYPE, "application/json"),
                ];
                (headers, "x".repeat(4096)).into_response()
            }),
        ]
    }

    fn service(answer: Answer) -> BoxCloneSyncService<Request, Response, Infallible> {
        BoxCloneSyncService::new(tower::service_fn(move |_: Request| async move {
            Ok::<_, Infallible>(answer())
        }))
    }

    async fn call<S, B>(svc: S, accept: Option<&str>) -> (HeaderMap, Vec<u8>)
    where
        S: Service<Request, Response = Response<B>, Error = Infallible>,
        B: HttpBody<Data = axum::body::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let mut request = Request::builder().uri("/");
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT_ENCODING, accept);
        }
        let response = svc
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.map(Body::new).into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        (parts.headers, bytes.to_vec())
    }

    /// A strong tag set inside becomes weak when the answer is compressed here, and stays as it was when it
    /// is not (no coding accepted, or a body too small to compress); a weak one stays weak.
    #[tokio::test]
    async fn a_tag_set_inside_is_weakened_by_compression() {
        let config = CompressionConfig::default();
        let layer = super::super::client::compression(&config);
        let tagged: Answer = || {
            let headers = [
                (header::CONTENT_TYPE, "application/json"),
                (header::ETAG, "\"t\""),
            ];
            (headers, "x".repeat(4096)).into_response()
        };
        let small: Answer = || {
            (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::ETAG, "\"t\""),
                ],
                "{}",
            )
                .into_response()
        };
        let weak: Answer = || {
            let headers = [
                (header::CONTENT_TYPE, "application/json"),
                (header::ETAG, "W/\"t\""),
            ];
            (headers, "x".repeat(4096)).into_response()
        };
        let (headers, _) = call(layer.layer(service(tagged)), Some("gzip")).await;
        assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
        assert_eq!(headers[header::ETAG], "W/\"t\"");
        let (headers, _) = call(layer.layer(service(tagged)), None).await;
        assert!(headers.get(header::CONTENT_ENCODING).is_none());
        assert_eq!(headers[header::ETAG], "\"t\"");
        let (headers, _) = call(layer.layer(service(small)), Some("gzip")).await;
        assert!(headers.get(header::CONTENT_ENCODING).is_none());
        assert_eq!(headers[header::ETAG], "\"t\"");
        let (headers, _) = call(layer.layer(service(weak)), Some("gzip")).await;
        assert_eq!(headers[header::ETAG], "W/\"t\"");
    }

    /// Without `Accept-Encoding` the layer answers what tower-http's compression answers (same headers,
    /// `Vary` included, same bytes) without entering it; with it, tower-http compresses.
    #[tokio::test]
    async fn the_direct_path_answers_what_tower_http_would() {
        let config = CompressionConfig::default();
        let ours = super::super::client::compression(&config);
        for (name, answer) in answers() {
            let direct = call(ours.layer(service(answer)), None).await;
            let reference = {
                let layer = CompressionLayer::new().compress_when(ours.when);
                call(layer.layer(service(answer)), None).await
            };
            assert_eq!(direct.0, reference.0, "{name}: headers");
            assert_eq!(direct.1, reference.1, "{name}: body");
        }
        let (headers, body) = call(ours.layer(service(answers()[0].1)), Some("gzip")).await;
        assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
        assert_eq!(&body[..2], &[0x1f, 0x8b]);
        assert_eq!(headers[header::VARY], "accept-encoding");
    }
}

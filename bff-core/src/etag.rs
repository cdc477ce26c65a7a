//! Conditional GET for every gateway: a strong `ETag` over the exact bytes of each `200` answer to a GET
//! (after compression, so each content coding has its own tag, as RFC 9110 wants of strong validators), and
//! `304 Not Modified` with an empty body when the request's `If-None-Match` already names it. It sits
//! outside the compression layer and the edge (see `gateway.rs`); a handler that sets its own `ETag`
//! keeps it, and gets the same `304`. A forwarding route whose downstream sent an `ETag` sets one derived from
//! it ([`tag_of_downstream`]) instead of hashing the body. Saves the radio and the client's parsing, not the
//! downstream calls (the response cache does that).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http_body_util::BodyExt;
use tower::{Layer, Service};

/// Bodies larger than this are sent untagged (streamed through as they come).
pub const MAX_TAGGED_BYTES: usize = 8 * 1024 * 1024;

/// The 64-bit XXH3 hash of `bytes` (seed 0): a fixed, published algorithm (unlike `std`'s hasher), so every
/// replica and every later run of the same build computes the same tag for the same body. It reads eight
/// bytes at a time (the FNV-1a it replaced took ~4 instructions per byte); a release that changes the hash
/// changes every tag once, and clients holding an old tag just get one full `200` when they revalidate.
pub fn hash64(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// The strong entity tag of `body`: `"` + 16 lower-case hex digits + `"`.
pub fn tag_of(body: &[u8]) -> String {
    let mut tag = String::with_capacity(18);
    tag.push('"');
    crate::trace::push_hex(&mut tag, u128::from(hash64(body)), 16);
    tag.push('"');
    tag
}

/// Seed of the hash in [`tag_of_downstream`]: keeps derived tags apart from body tags (the same bytes hashed
/// as a body and as a downstream's tag give different tags).
const DOWNSTREAM_TAG_SEED: u64 = 0x6266_665f_7461_6773;

/// The entity tag of a forwarded answer whose downstream sent `downstream` as its `ETag`: the downstream's tag
/// hashed (XXH3, [`DOWNSTREAM_TAG_SEED`]) into the same `"` + 16 hex digits + `"` form, weak (`W/`) when the
/// downstream's is. The body is forwarded unchanged, so the downstream's validator changes exactly when it
/// does (its contract); hashing ~20 bytes instead of the whole body is what it saves, and the downstream's own
/// tag (which may encode file metadata such as inode numbers) never reaches the client. `None` for a value
/// that is not an entity tag: the body is then hashed as any other.
pub fn tag_of_downstream(downstream: &HeaderValue) -> Option<HeaderValue> {
    let raw = downstream.as_bytes();
    let (weak, opaque) = match raw.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let inner = opaque.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    // RFC 9110 etagc: %x21 / %x23-7E / obs-text, so no quote, space or control inside.
    if inner.iter().any(|&b| b == b'"' || b <= b' ' || b == 0x7f) {
        return None;
    }
    let hash = xxhash_rust::xxh3::xxh3_64_with_seed(inner, DOWNSTREAM_TAG_SEED);
    let mut tag = [0u8; 20];
    let start = if weak {
        tag[..2].copy_from_slice(b"W/");
        2
    } else {
        0
    };
    tag[start] = b'"';
    tag[start + 1..start + 17].copy_from_slice(&crate::trace::hex16(hash));
    tag[start + 17] = b'"';
    HeaderValue::from_bytes(&tag[..start + 18]).ok()
}

/// Whether the `If-None-Match` headers of a request match `tag` (a quoted tag, strong or `W/`): `*`, or any
/// listed tag equal to it under the weak comparison RFC 9110 prescribes for `If-None-Match` (a `W/` prefix is
/// ignored on both sides). Several header lines and comma-separated lists are accepted; unreadable values
/// match nothing.
pub fn if_none_match(headers: &HeaderMap, tag: &str) -> bool {
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|candidate| {
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == tag
        })
}

/// Whether an answer is an event stream (never collected: it is long-lived and has no tag).
fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// The conditional-GET layer (the outermost of every route, see `gateway.rs`): [`Conditional`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConditionalLayer;

impl<S> Layer<S> for ConditionalLayer {
    type Service = Conditional<S>;

    fn layer(&self, inner: S) -> Conditional<S> {
        Conditional { inner }
    }
}

/// Conditional GET around a route's `inner` service: tags a GET's `200` body, answers `304` (empty, with
/// the `ETag`, `Cache-Control`, `Vary` and other headers of the `200`, without the body's `Content-*`) when
/// `If-None-Match` names the tag. Hand-written rather than `axum::middleware::from_fn`, which boxes the
/// inner service again on every request (bench/notes.md).
#[derive(Debug, Clone)]
pub(crate) struct Conditional<S> {
    inner: S,
}

impl<S> Service<Request> for Conditional<S>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let is_get = request.method() == Method::GET;
        let mut conditions = HeaderMap::new();
        for value in request.headers().get_all(header::IF_NONE_MATCH) {
            conditions.append(header::IF_NONE_MATCH, value.clone());
        }
        // Called here, the service polled ready: its future owns what it needs, so the service is not
        // cloned (a clone reaches down to the boxed route, an allocation per request).
        let answer = self.inner.call(request);
        Box::pin(async move {
            // Boxed into an axum `Body` at once: kept generic, the compression layer's body (its Brotli
            // encoder state inline) made this future so large that moving it into its box cost ~19k
            // instructions of memcpy per request (bench/callgrind, 2026-12-03); the box costs ~1.4k.
            let response = match answer.await {
                Ok(response) => response.into_response(),
                Err(never) => match never {},
            };
            Ok(conditional(is_get, &conditions, response).await)
        })
    }
}

/// The answer to a request (a GET when `is_get`, with the `If-None-Match` values `conditions`): `response`
/// tagged, or the `304` that replaces it.
async fn conditional(is_get: bool, conditions: &HeaderMap, response: Response) -> Response {
    if !is_get || response.status() != StatusCode::OK || is_event_stream(response.headers()) {
        return response;
    }
    if let Some(tag) = response.headers().get(header::ETAG) {
        // Tagged inside (a handler's own tag, a forwarded answer's derived one): kept, and answered by the
        // same rule.
        let named = tag.to_str().is_ok_and(|tag| if_none_match(conditions, tag));
        if !named {
            return response;
        }
        let (parts, _) = response.into_parts();
        return not_modified(parts);
    }
    let (mut parts, mut body) = response.into_parts();
    // Collect the body up to the bound; beyond it, stream the rest through untagged. The usual answer is one
    // frame: it is kept as it is, without a copy.
    let mut collected = Collected::default();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            tracing::warn!("response body failed while tagging");
            return Response::from_parts(parts, Body::from(collected.into_bytes()));
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers: not used by JSON answers
        };
        collected.push(data);
        if collected.len() > MAX_TAGGED_BYTES {
            let head = futures::stream::once(async move { Ok(collected.into_bytes()) });
            let rest = body.into_data_stream();
            return Response::from_parts(parts, Body::from_stream(head.chain(rest)));
        }
    }
    let collected = collected.into_bytes();
    let tag = tag_of(&collected);
    if let Ok(v) = HeaderValue::from_str(&tag) {
        parts.headers.insert(header::ETAG, v);
    }
    if if_none_match(conditions, &tag) {
        return not_modified(parts);
    }
    Response::from_parts(parts, Body::from(collected))
}

/// The `304` that replaces a `200` of these `parts`: its headers without the body's `Content-*`, no body.
fn not_modified(mut parts: axum::http::response::Parts) -> Response {
    parts.status = StatusCode::NOT_MODIFIED;
    for name in [
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
    ] {
        parts.headers.remove(name);
    }
    Response::from_parts(parts, Body::empty())
}

/// A body gathered frame by frame: one frame stays as it came (no copy); more are concatenated.
#[derive(Default)]
struct Collected {
    /// The first frame, while it is the only one.
    first: Option<Bytes>,
    /// All frames so far, once there is more than one.
    joined: Vec<u8>,
}

impl Collected {
    fn push(&mut self, data: Bytes) {
        match self.first.take() {
            None if self.joined.is_empty() => self.first = Some(data),
            first => {
                if let Some(first) = first {
                    self.joined.extend_from_slice(&first);
                }
                self.joined.extend_from_slice(&data);
            }
        }
    }

    fn len(&self) -> usize {
        self.first.as_ref().map_or(self.joined.len(), Bytes::len)
    }

    fn into_bytes(self) -> Bytes {
        self.first.unwrap_or_else(|| Bytes::from(self.joined))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    fn with_inm(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    /// The bytes of xxHash's own sanity-check buffer (`XSUM_fillTestBuffer` in the xxHash repository's
    /// `cli/xsum_sanity_check.c`), against which its published XXH3 vectors are given.
    fn xxhash_sanity_buffer(len: usize) -> Vec<u8> {
        const PRIME32: u64 = 2_654_435_761;
        const PRIME64: u64 = 11_400_714_785_074_694_797;
        let mut generator = PRIME32;
        (0..len)
            .map(|_| {
                let byte = (generator >> 56) as u8;
                generator = generator.wrapping_mul(PRIME64);
                byte
            })
            .collect()
    }

    /// A downstream's tag becomes a quoted 16-digit hash of its opaque part (weak stays weak; the same
    /// downstream tag gives the same tag, another gives another, and neither is the downstream's own nor the
    /// tag of the same bytes as a body); values that are not entity tags give none.
    #[test]
    fn tags_derived_from_a_downstream() {
        let of = |v: &str| tag_of_downstream(&HeaderValue::from_str(v).unwrap());
        let strong = of("\"abc-123\"").unwrap();
        let strong = strong.to_str().unwrap();
        assert_eq!(strong.len(), 18);
        assert!(strong.starts_with('"') && strong.ends_with('"'));
        assert!(
            strong[1..17]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(of("\"abc-123\"").unwrap(), strong);
        assert_ne!(of("\"abc-124\"").unwrap(), strong);
        assert_ne!(strong, tag_of(b"abc-123"));
        let weak = of("W/\"abc-123\"").unwrap();
        assert_eq!(weak.to_str().unwrap(), format!("W/{strong}"));
        assert!(of("\"\"").is_some(), "an empty opaque tag is a tag");
        for bad in [
            "abc",
            "\"abc",
            "abc\"",
            "W/abc",
            "w/\"abc\"",
            "\"a\"b\"",
            "\"a b\"",
            "",
        ] {
            assert!(of(bad).is_none(), "{bad:?}");
        }
        // Weak comparison on both sides: a weak tag is named by itself and by its strong form.
        assert!(if_none_match(&with_inm(&["W/\"x\""]), "W/\"x\""));
        assert!(if_none_match(&with_inm(&["\"x\""]), "W/\"x\""));
        assert!(!if_none_match(&with_inm(&["\"y\""]), "W/\"x\""));
    }

    /// The hash is XXH3-64 with seed 0: xxHash's published vectors, from the empty input through every
    /// length class (short, mid-size, one block, several blocks with an overlapping last stripe); tags are
    /// quoted 16-digit lower-case hex and differ per body.
    #[test]
    fn hash_and_tag_format() {
        assert_eq!(hash64(b""), 0x2D06_8005_38D3_94C2);
        assert_eq!(hash64(b"a"), 0xE6C6_32B6_1E96_4E1F);
        assert_eq!(hash64(b"abc"), 0x78AF_5F94_892F_3950);
        let buffer = xxhash_sanity_buffer(2367);
        for (len, expected) in [
            (1, 0xC44B_DFF4_074E_ECDB_u64),
            (6, 0x27B5_6A84_CD2D_7325),
            (12, 0xA713_DAF0_DFBB_77E7),
            (24, 0xA3FE_70BF_9D35_10EB),
            (48, 0x397D_A259_ECBA_1F11),
            (80, 0xBCDE_FBBB_2C47_C90A),
            (195, 0xCD94_217E_E362_EC3A),
            (403, 0xCDEB_804D_65C6_DEA4),
            (512, 0x617E_4959_9013_CB6B),
            (2048, 0xDD59_E2C3_A5F0_38E0),
            (2240, 0x6E73_A905_39CF_2948),
            (2367, 0xCB37_AEB9_E5D3_61ED),
        ] {
            assert_eq!(hash64(&buffer[..len]), expected, "length {len}");
        }
        assert_eq!(tag_of(b""), "\"2d06800538d394c2\"");
        let t = tag_of(b"{}");
        assert_eq!(t.len(), 18);
        assert!(t.starts_with('"') && t.ends_with('"'));
        assert!(
            t[1..17]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(tag_of(b"{\"a\":1}"), tag_of(b"{\"a\":2}"));
    }

    /// If-None-Match: exact, listed, weak-prefixed, `*` and multi-line match; others and garbage do not.
    #[test]
    fn if_none_match_parsing() {
        let tag = "\"00000000000000ab\"";
        assert!(if_none_match(&with_inm(&[tag]), tag));
        assert!(if_none_match(
            &with_inm(&["\"x\", \"00000000000000ab\""]),
            tag
        ));
        assert!(if_none_match(&with_inm(&["W/\"00000000000000ab\""]), tag));
        assert!(if_none_match(&with_inm(&["*"]), tag));
        assert!(if_none_match(&with_inm(&["\"x\"", tag]), tag));
        assert!(!if_none_match(&with_inm(&[]), tag));
        assert!(!if_none_match(&with_inm(&["\"00000000000000ac\""]), tag));
        assert!(!if_none_match(&with_inm(&["00000000000000ab"]), tag));
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_bytes(b"\xff\"x\"").unwrap(),
        );
        assert!(!if_none_match(&h, tag));
    }

    async fn call(app: &Router, method: Method, path: &str, inm: Option<&str>) -> Response {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(tag) = inm {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        app.clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn body_of(r: Response) -> Vec<u8> {
        axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec()
    }

    /// A body sent in several frames is tagged over all of them and forwarded whole, in order.
    #[tokio::test]
    async fn multi_frame_bodies_are_tagged_whole() {
        let app = Router::new()
            .route(
                "/chunks",
                get(|| async {
                    let chunks = ["{\"a\":", "[1,2,", "3]}"].map(|c| {
                        Ok::<_, std::convert::Infallible>(Bytes::from_static(c.as_bytes()))
                    });
                    Body::from_stream(futures::stream::iter(chunks))
                }),
            )
            .layer(ConditionalLayer);
        let response = call(&app, Method::GET, "/chunks", None).await;
        let tag = response.headers()[header::ETAG]
            .to_str()
            .unwrap()
            .to_owned();
        let body = body_of(response).await;
        assert_eq!(body, br#"{"a":[1,2,3]}"#);
        assert_eq!(tag, tag_of(br#"{"a":[1,2,3]}"#));
        let again = call(&app, Method::GET, "/chunks", Some(&tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    /// 200 carries the body and its tag; a matching If-None-Match gets an empty 304 with the same tag and
    /// the 200's caching headers; a stale tag gets the full 200; non-GET, non-200 and pre-tagged answers are
    /// left alone.
    #[tokio::test]
    async fn tags_and_answers_304() {
        let app = Router::new()
            .route(
                "/v",
                get(|| async {
                    (
                        [(header::CACHE_CONTROL, "private, no-cache")],
                        axum::Json(serde_json::json!({"a": 1})),
                    )
                })
                .post(|| async { "posted" }),
            )
            .route(
                "/tagged",
                get(|| async { ([(header::ETAG, "\"mine\"")], "x") }),
            )
            .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
            .layer(ConditionalLayer);
        let first = call(&app, Method::GET, "/v", None).await;
        assert_eq!(first.status(), StatusCode::OK);
        let tag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        let body = body_of(first).await;
        assert_eq!(body, br#"{"a":1}"#);
        assert_eq!(tag, tag_of(&body));

        let second = call(&app, Method::GET, "/v", Some(&tag)).await;
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(second.headers()[header::ETAG].to_str().unwrap(), tag);
        assert_eq!(second.headers()[header::CACHE_CONTROL], "private, no-cache");
        assert!(second.headers().get(header::CONTENT_TYPE).is_none());
        assert!(body_of(second).await.is_empty());

        let stale = call(&app, Method::GET, "/v", Some("\"0000000000000000\"")).await;
        assert_eq!(stale.status(), StatusCode::OK);
        assert_eq!(call(&app, Method::GET, "/v", Some("*")).await.status(), 304);

        let post = call(&app, Method::POST, "/v", Some("*")).await;
        assert_eq!(post.status(), StatusCode::OK);
        assert!(post.headers().get(header::ETAG).is_none());
        // A handler's own tag is kept, and answered by the same rule.
        let tagged = call(&app, Method::GET, "/tagged", Some("\"other\"")).await;
        assert_eq!(tagged.status(), StatusCode::OK);
        assert_eq!(tagged.headers()[header::ETAG], "\"mine\"");
        assert_eq!(body_of(tagged).await, b"x");
        for named in ["\"mine\"", "W/\"mine\"", "*"] {
            let revalidated = call(&app, Method::GET, "/tagged", Some(named)).await;
            assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED, "{named}");
            assert_eq!(revalidated.headers()[header::ETAG], "\"mine\"");
            assert!(revalidated.headers().get(header::CONTENT_TYPE).is_none());
            assert!(body_of(revalidated).await.is_empty());
        }
        assert_eq!(
            call(&app, Method::GET, "/missing", Some("*"))
                .await
                .status(),
            404
        );
    }
}

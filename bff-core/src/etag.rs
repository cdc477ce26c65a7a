//! Conditional GET for composed responses: a strong `ETag` over the exact JSON body, `Cache-Control: private,
//! no-cache` (a client may keep the body but must revalidate it), and `304 Not Modified` with an empty body when
//! the request's `If-None-Match` already names the current tag. Saves the radio, not the downstream calls.
//!
//! ```ignore
//! async fn handler(headers: HeaderMap, ...) -> Result<Response, BffError> {
//!     let view = ...;
//!     Ok(etag::respond(&headers, &view))
//! }
//! ```

use crate::error::BffError;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The `Cache-Control` of a private, revalidated answer.
pub const CACHE_CONTROL: &str = "private, no-cache";

/// 64-bit FNV-1a of `bytes`: stable across processes and releases (unlike `std`'s hasher), so every replica
/// of the gateway computes the same tag for the same body.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// The strong entity tag of `body`: `"` + 16 lower-case hex digits + `"`.
pub fn tag_of(body: &[u8]) -> String {
    format!("\"{:016x}\"", fnv1a64(body))
}

/// Whether the `If-None-Match` headers of a request match `tag` (a quoted strong tag): `*`, or any listed tag
/// equal to it under the weak comparison RFC 9110 prescribes for `If-None-Match` (a `W/` prefix is ignored).
/// Several header lines and comma-separated lists are accepted; unreadable values match nothing.
pub fn if_none_match(headers: &HeaderMap, tag: &str) -> bool {
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

/// Serializes `view` as the JSON body and answers `200` with `ETag` and `Cache-Control: private, no-cache`,
/// or `304` with an empty body and the same headers when the request's `If-None-Match` names the tag.
/// A view that cannot be serialized (a bug) is a 500 problem, never a panic.
pub fn respond(request_headers: &HeaderMap, view: &impl Serialize) -> Response {
    // Views are plain structs of strings and numbers: serialization cannot fail short of a bug.
    let Ok(body) = serde_json::to_vec(view) else {
        return BffError::Internal.into_response();
    };
    let tag = tag_of(&body);
    let not_modified = if_none_match(request_headers, &tag);
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = (StatusCode::OK, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_inm(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    async fn body_of(r: Response) -> Vec<u8> {
        axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec()
    }

    /// FNV-1a matches its published test vectors; tags are quoted 16-digit hex and differ per body.
    #[test]
    fn hash_and_tag_format() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
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

    /// 200 carries the JSON body, its tag and the cache policy; a matching If-None-Match gets an empty 304
    /// with the same tag; a stale tag gets the full 200 again.
    #[tokio::test]
    async fn respond_200_then_304() {
        let view = json!({"first_name": "Ada", "orders": []});
        let first = respond(&HeaderMap::new(), &view);
        assert_eq!(first.status(), StatusCode::OK);
        let tag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        assert_eq!(first.headers()[header::CACHE_CONTROL], CACHE_CONTROL);
        assert_eq!(first.headers()[header::CONTENT_TYPE], "application/json");
        let body = body_of(first).await;
        assert_eq!(body, serde_json::to_vec(&view).unwrap());
        assert_eq!(tag, tag_of(&body));

        let second = respond(&with_inm(&[&tag]), &view);
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(second.headers()[header::ETAG].to_str().unwrap(), tag);
        assert_eq!(second.headers()[header::CACHE_CONTROL], CACHE_CONTROL);
        assert!(body_of(second).await.is_empty());

        let changed = json!({"first_name": "Ada", "orders": [1]});
        let third = respond(&with_inm(&[&tag]), &changed);
        assert_eq!(third.status(), StatusCode::OK);
        assert_ne!(third.headers()[header::ETAG].to_str().unwrap(), tag);

        let star = respond(&with_inm(&["*"]), &view);
        assert_eq!(star.status(), StatusCode::NOT_MODIFIED);
    }
}

//! Request hygiene at the edge, before authentication and routing: one canonical form of the path that both
//! the auth rule and the router see (anything else is refused, never "fixed up"), bounded request targets,
//! refused methods, no credentials in URLs, and standard security headers on every response.

use std::borrow::Cow;

use axum::http::{HeaderMap, HeaderValue, Method, Uri, Version, header};

use crate::error::BffError;

/// Why a path is not canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathProblem {
    /// Not starting with `/`.
    NotAbsolute,
    /// An empty segment (`//`).
    EmptySegment,
    /// A `.` or `..` segment, literal or percent-encoded.
    DotSegment,
    /// A segment ending in `.` (`/api/home.`), which some servers strip.
    TrailingDot,
    /// An encoded `/` or `\` (`%2F`, `%5C`) that would split a segment after decoding.
    EncodedSeparator,
    /// A percent-encoded unreserved character (`%61` for `a`): the same path written twice.
    EncodedUnreserved,
    /// Malformed percent-encoding (`%zz`, `%4`).
    BadEncoding,
    /// `;` (path parameters), `\`, or a control character.
    ForbiddenCharacter,
}

/// Checks that `path` is in the one canonical form the gateway routes: absolute, no empty or dot segments (also
/// when percent-decoded), no encoded separators, no encoded unreserved characters, no `;` or `\`. The root `/`
/// is canonical; a single trailing `/` is an empty last segment and refused like `//`.
pub fn check_path(path: &str) -> Result<(), PathProblem> {
    let rest = path.strip_prefix('/').ok_or(PathProblem::NotAbsolute)?;
    if rest.is_empty() {
        return Ok(());
    }
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Err(PathProblem::EmptySegment);
        }
        let decoded = decode_segment(segment)?;
        if decoded == "." || decoded == ".." {
            return Err(PathProblem::DotSegment);
        }
        if decoded.ends_with('.') {
            return Err(PathProblem::TrailingDot);
        }
    }
    Ok(())
}

/// Percent-decodes one segment, refusing what would make two spellings of one path. A segment without `%`
/// is its own decoding (borrowed, no copy: the common case of every request).
fn decode_segment(segment: &str) -> Result<Cow<'_, str>, PathProblem> {
    let bytes = segment.as_bytes();
    if !bytes.contains(&b'%') {
        if bytes.iter().any(|&b| forbidden(b)) {
            return Err(PathProblem::ForbiddenCharacter);
        }
        return Ok(Cow::Borrowed(segment));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathProblem::BadEncoding)?;
                let hex = std::str::from_utf8(hex).map_err(|_| PathProblem::BadEncoding)?;
                let byte = u8::from_str_radix(hex, 16).map_err(|_| PathProblem::BadEncoding)?;
                if byte == b'/' || byte == b'\\' {
                    return Err(PathProblem::EncodedSeparator);
                }
                if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                    return Err(PathProblem::EncodedUnreserved);
                }
                if byte.is_ascii_control() || byte == b';' {
                    return Err(PathProblem::ForbiddenCharacter);
                }
                out.push(byte);
                i += 3;
            }
            b if forbidden(b) => return Err(PathProblem::ForbiddenCharacter),
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
}

/// A byte a path segment may not carry unencoded: `;` (path parameters), `\\`, control characters.
fn forbidden(b: u8) -> bool {
    b == b';' || b == b'\\' || b.is_ascii_control()
}

/// Query parameter names that would carry a credential in the URL (logged by every proxy on the way).
const CREDENTIAL_PARAMS: &[&str] = &["access_token", "api_key", "apikey", "token"];

/// Methods whose requests take no body at the edge: such a request that carries one (whatever the framing:
/// `Content-Length`, chunked, HTTP/2 DATA) is refused before routing, so no downstream is ever called with an
/// unread body behind it.
pub const BODYLESS_METHODS: &[Method] =
    &[Method::GET, Method::HEAD, Method::DELETE, Method::OPTIONS];

/// What the edge knows about a request before reading its body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Framing {
    /// The HTTP version.
    pub(crate) version: Version,
    /// Whether a body may follow (not provably empty).
    pub(crate) has_body: bool,
}

/// Whether the connection must close after the answer to this request: an HTTP/1 request with a
/// `Transfer-Encoding` (hyper's chunk parser is laxer than RFC 9112 — it accepts whitespace after a chunk
/// size — so nothing a chunked body might hide is ever read as the next request), or one refused with its body
/// unread.
pub(crate) fn closes_connection(version: Version, headers: &HeaderMap) -> bool {
    version <= Version::HTTP_11 && headers.contains_key(header::TRANSFER_ENCODING)
}

/// The checks of the request line and headers that come before authentication.
pub(crate) fn check_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    framing: Framing,
    max_uri_bytes: usize,
    max_body_bytes: usize,
) -> Result<(), BffError> {
    if *method == Method::TRACE || *method == Method::CONNECT {
        return Err(BffError::MethodNotAllowed);
    }
    let target_len = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > max_uri_bytes {
        return Err(BffError::UriTooLong);
    }
    if let Err(problem) = check_path(uri.path()) {
        tracing::info!(?problem, "non-canonical path refused");
        return Err(BffError::BadRequest {
            detail: "the request path is not in canonical form".into(),
        });
    }
    // A declared body over the limit is refused before a byte of it is read (chunked bodies are bounded by
    // the body-limit layer while streaming).
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body_bytes as u64) {
        return Err(BffError::PayloadTooLarge);
    }
    match headers.get_all(header::HOST).iter().count() {
        // RFC 9112 §3.2: an HTTP/1.1 request without Host is answered 400 (HTTP/2 carries `:authority`).
        0 if framing.version == Version::HTTP_11 => {
            return Err(BffError::BadRequest {
                detail: "the Host header is required".into(),
            });
        }
        0 | 1 => {}
        _ => {
            return Err(BffError::BadRequest {
                detail: "more than one Host header".into(),
            });
        }
    }
    if framing.has_body && BODYLESS_METHODS.contains(method) {
        return Err(BffError::BadRequest {
            detail: "this method takes no request body".into(),
        });
    }
    if let Some(query) = uri.query() {
        let has_credential = url::form_urlencoded::parse(query.as_bytes())
            .any(|(k, _)| CREDENTIAL_PARAMS.iter().any(|c| k.eq_ignore_ascii_case(c)));
        if has_credential {
            return Err(BffError::Unauthenticated {
                reason: "credentials in the URL are not accepted",
            });
        }
    }
    Ok(())
}

/// The standard security headers of API responses, prebuilt (no parsing or allocation per response).
const SECURITY_HEADERS: [(header::HeaderName, HeaderValue); 4] = [
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    ),
];

/// Standard security headers for API responses; a header the response already carries is kept. `extra` is
/// how many more headers the caller will add: the map grows once for all of them.
pub(crate) fn add_security_headers(headers: &mut HeaderMap, extra: usize) {
    headers.reserve(SECURITY_HEADERS.len() + extra);
    for (name, value) in SECURITY_HEADERS {
        // One lookup per header: kept when present, inserted otherwise.
        headers.entry(name).or_insert(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every known spelling of traversal, encoded separators and duplicate spellings is refused.
    #[test]
    fn refuses_non_canonical_paths() {
        let cases = [
            ("api/home", PathProblem::NotAbsolute),
            ("/api//home", PathProblem::EmptySegment),
            ("/api/home/", PathProblem::EmptySegment),
            ("/api/../admin", PathProblem::DotSegment),
            ("/api/./home", PathProblem::DotSegment),
            ("/api/%2e%2e/admin", PathProblem::EncodedUnreserved),
            ("/api/%2E%2E/admin", PathProblem::EncodedUnreserved),
            (
                "/api/products/1%2F..%2Fadmin",
                PathProblem::EncodedSeparator,
            ),
            ("/api/products/1%2f", PathProblem::EncodedSeparator),
            ("/api/products/1%5C", PathProblem::EncodedSeparator),
            ("/api/%61pi", PathProblem::EncodedUnreserved),
            ("/api/home.", PathProblem::TrailingDot),
            ("/api/home;jsessionid=1", PathProblem::ForbiddenCharacter),
            ("/api\\home", PathProblem::ForbiddenCharacter),
            ("/api/%zz", PathProblem::BadEncoding),
            ("/api/%4", PathProblem::BadEncoding),
            ("/api/%00", PathProblem::ForbiddenCharacter),
        ];
        for (path, problem) in cases {
            assert_eq!(check_path(path), Err(problem), "{path}");
        }
        for ok in [
            "/",
            "/api/home",
            "/api/products/42",
            "/v1/orders/701",
            "/a/b%20c",
            "/x/%C3%A9",
        ] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
    }

    proptest! {
        /// Paths made of ordinary segments are accepted unchanged.
        #[test]
        fn ordinary_paths_pass(segments in proptest::collection::vec("[a-zA-Z0-9_~-]{1,12}", 0..6)) {
            let path = format!("/{}", segments.join("/"));
            prop_assert_eq!(check_path(&path), Ok(()));
        }

        /// Whatever the input, an accepted path decodes to segments with no separator, no dot segment and no
        /// empty segment: nothing that could address another route after decoding.
        #[test]
        fn accepted_paths_cannot_climb(path in "/[a-zA-Z0-9%./;\\\\_~-]{0,40}") {
            if check_path(&path).is_ok() {
                for segment in path[1..].split('/').filter(|s| !s.is_empty()) {
                    let decoded = decode_segment(segment).unwrap();
                    prop_assert!(!decoded.contains('/') && !decoded.contains('\\'));
                    prop_assert!(decoded != "." && decoded != "..");
                }
                prop_assert!(!path.contains("//"));
            }
        }

        /// The check never panics, whatever bytes arrive.
        #[test]
        fn never_panics(path in "\\PC{0,64}") {
            let _ = check_path(&path);
        }
    }
}

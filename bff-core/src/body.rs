//! Typed JSON request bodies: [`JsonBody<T>`], an extractor that refuses everything but a small,
//! well-formed, valid command, each refusal a problem+json with a stable code, before a handler runs and
//! before anything reaches a downstream.
//!
//! In order:
//! 1. `Content-Type` must be `application/json` (a `charset` parameter, if any, `utf-8`): else **415**
//!    `unsupported_media_type`;
//! 2. `Content-Encoding`: none (or `identity`), or `gzip` on the routes listed in `body.gzip_routes` only:
//!    else **415**;
//! 3. the body is read up to `body.max_bytes` (and `server.max_body_bytes` at the edge); a gzip body is
//!    decompressed up to `body.max_bytes` — the limit applies **after** decompression, so a gzip bomb stops
//!    at the limit: **413** `payload_too_large`;
//! 4. the bytes must be UTF-8 and nested at most `body.max_depth` levels, checked by a linear scan before
//!    any value is built: else **400** `malformed_body`;
//! 5. JSON syntax (truncated, trailing data): **400** `malformed_body` with line and column;
//! 6. the typed shape (wrong type, number out of range, unknown field, duplicate field, missing field):
//!    **422** `invalid_body` with the field's JSON Pointer in `errors`;
//! 7. [`Validate`] (business-free rules the gateway owns: ranges, lengths, formats): **422** `invalid_body`,
//!    every offending field listed.

use std::io::Read;
use std::sync::Arc;

use axum::extract::{FromRequest, MatchedPath, Request};
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;
use crate::error::{BffError, FieldError};

/// `[body]`: limits of JSON request bodies (commands).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BodyConfig {
    /// Largest accepted JSON body in bytes, after decompression (413 beyond). Also bounded by
    /// `server.max_body_bytes` before decompression.
    pub max_bytes: usize,
    /// Deepest accepted nesting of arrays and objects (400 beyond), checked before parsing.
    pub max_depth: usize,
    /// Route patterns (as registered, e.g. `/api/orders`) that accept `Content-Encoding: gzip` bodies. Empty
    /// (default): no route does (415).
    pub gzip_routes: Vec<String>,
}

impl Default for BodyConfig {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024,
            max_depth: 32,
            gzip_routes: Vec::new(),
        }
    }
}

impl BodyConfig {
    /// Checks the section, naming the bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=16 * 1024 * 1024).contains(&self.max_bytes) {
            return Err(ConfigError::Invalid {
                key: "body.max_bytes".into(),
                reason: "must be 1..=16777216".into(),
            });
        }
        if !(1..=128).contains(&self.max_depth) {
            return Err(ConfigError::Invalid {
                key: "body.max_depth".into(),
                reason: "must be 1..=128".into(),
            });
        }
        if let Some(i) = self.gzip_routes.iter().position(|r| !r.starts_with('/')) {
            return Err(ConfigError::Invalid {
                key: format!("body.gzip_routes[{i}]"),
                reason: "must be a route pattern starting with /".into(),
            });
        }
        Ok(())
    }
}

/// Semantic checks of a command the gateway owns (the service keeps the business rules). Each violation
/// names its field by JSON Pointer.
pub trait Validate {
    /// Records every violation in `errors` (none: valid).
    fn validate(&self, errors: &mut Violations);
}

/// The violations found by [`Validate::validate`].
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldError>);

impl Violations {
    /// Records a violation at `pointer` unless `ok`.
    pub fn check(&mut self, ok: bool, pointer: impl Into<String>, detail: &str) {
        if !ok {
            self.0.push(FieldError {
                pointer: pointer.into(),
                detail: detail.to_owned(),
            });
        }
    }

    /// Whether none was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A JSON body of type `T`, checked as the module docs say. Its rejection is a [`BffError`].
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

/// The limits in force, put in the request extensions by the gateway (defaults when absent).
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyLimits(pub(crate) Arc<BodyConfig>);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = BffError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let limits = request
            .extensions()
            .get::<BodyLimits>()
            .map(|l| l.0.clone())
            .unwrap_or_default();
        check_content_type(request.headers())?;
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned());
        let gzip = encoding_is_gzip(request.headers(), &limits, route.as_deref())?;
        let raw = axum::body::to_bytes(request.into_body(), limits.max_bytes)
            .await
            .map_err(|e| {
                tracing::debug!(error = %e, "request body refused while reading");
                if is_length_limit(&e) {
                    BffError::PayloadTooLarge
                } else {
                    BffError::MalformedBody {
                        detail: "the body could not be read".into(),
                    }
                }
            })?;
        let bytes = if gzip {
            gunzip(&raw, limits.max_bytes)?.into()
        } else {
            raw
        };
        parse(&bytes, limits.max_depth).map(JsonBody)
    }
}

/// Parses and validates `bytes` as a `T` (steps 4–7 of the module docs).
pub fn parse<T: DeserializeOwned + Validate>(
    bytes: &[u8],
    max_depth: usize,
) -> Result<T, BffError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(BffError::MalformedBody {
            detail: "the body is not UTF-8".into(),
        });
    }
    check_depth(bytes, max_depth)?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| shape_error(Some(e.path()), e.inner()))?;
    deserializer.end().map_err(|e| shape_error(None, &e))?;
    let mut violations = Violations::default();
    value.validate(&mut violations);
    if violations.is_empty() {
        Ok(value)
    } else {
        Err(BffError::InvalidBody {
            errors: violations.0,
        })
    }
}

/// 415 unless the content type is JSON in UTF-8.
fn check_content_type(headers: &HeaderMap) -> Result<(), BffError> {
    const ACCEPTED: &str = "Content-Type must be application/json (UTF-8)";
    let refused = BffError::UnsupportedMediaType { detail: ACCEPTED };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| refused.clone())?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(refused);
    }
    for parameter in parts {
        let (name, v) = parameter.split_once('=').unwrap_or((parameter, ""));
        if name.trim().eq_ignore_ascii_case("charset")
            && !v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        {
            return Err(refused);
        }
    }
    Ok(())
}

/// Whether the body is gzip (allowed on this route), plain, or refused (415).
fn encoding_is_gzip(
    headers: &HeaderMap,
    limits: &BodyConfig,
    route: Option<&str>,
) -> Result<bool, BffError> {
    let mut codings = headers.get_all(header::CONTENT_ENCODING).iter();
    let Some(first) = codings.next() else {
        return Ok(false);
    };
    let value = first.to_str().unwrap_or_default().trim();
    let allowed = route.is_some_and(|r| limits.gzip_routes.iter().any(|g| g == r));
    if codings.next().is_none() && value.eq_ignore_ascii_case("identity") {
        return Ok(false);
    }
    if allowed && codings.next().is_none() && value.eq_ignore_ascii_case("gzip") {
        return Ok(true);
    }
    Err(BffError::UnsupportedMediaType {
        detail: if allowed {
            "Content-Encoding must be gzip or absent"
        } else {
            "this route does not accept a Content-Encoding"
        },
    })
}

/// Decompresses at most `max` bytes; more is a 413 (the rest is never inflated).
fn gunzip(compressed: &[u8], max: usize) -> Result<Vec<u8>, BffError> {
    let mut out = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(compressed).take(max as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|e| {
        tracing::debug!(error = %e, "gzip body refused");
        BffError::MalformedBody {
            detail: "the gzip body is corrupt".into(),
        }
    })?;
    if out.len() > max {
        return Err(BffError::PayloadTooLarge);
    }
    Ok(out)
}

/// Whether reading stopped at the length limit (the edge's or ours).
fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// 400 when arrays/objects nest deeper than `max` (a linear scan that skips strings; nothing is allocated).
fn check_depth(bytes: &[u8], max: usize) -> Result<(), BffError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(BffError::MalformedBody {
                        detail: format!("the body nests deeper than {max} levels"),
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A serde error → 400 (syntax) or 422 (shape) naming the field.
fn shape_error(path: Option<&serde_path_to_error::Path>, inner: &serde_json::Error) -> BffError {
    use serde_json::error::Category;
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => BffError::MalformedBody {
            detail: format!(
                "{} at line {} column {}",
                match inner.classify() {
                    Category::Eof => "the JSON ends early",
                    _ => "the JSON is not well-formed",
                },
                inner.line(),
                inner.column()
            ),
        },
        Category::Data => {
            let mut pointer = path.map(pointer_of).unwrap_or_default();
            // serde's message without its position suffix; for unknown/duplicate/missing fields the field is
            // named in backticks and belongs at the end of the pointer.
            let message = inner.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m)
                .to_owned();
            for prefix in ["unknown field `", "duplicate field `", "missing field `"] {
                if let Some(rest) = message.strip_prefix(prefix)
                    && let Some((field, _)) = rest.split_once('`')
                {
                    let token = format!("/{}", escape_pointer(field));
                    if !pointer.ends_with(&token) {
                        pointer.push_str(&token);
                    }
                }
            }
            BffError::InvalidBody {
                errors: vec![FieldError {
                    pointer,
                    detail: message,
                }],
            }
        }
    }
}

/// The JSON Pointer of a serde path (`items[0].quantity` → `/items/0/quantity`).
fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                pointer.push('/');
                pointer.push_str(&index.to_string());
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push('/');
                pointer.push_str(&escape_pointer(key));
            }
            Segment::Unknown => {}
        }
    }
    pointer
}

/// RFC 6901 escaping of one reference token.
fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Line {
        #[allow(dead_code)]
        product_id: String,
        quantity: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Command {
        items: Vec<Line>,
    }

    impl Validate for Command {
        fn validate(&self, errors: &mut Violations) {
            for (i, line) in self.items.iter().enumerate() {
                errors.check(
                    (1..=20).contains(&line.quantity),
                    format!("/items/{i}/quantity"),
                    "must be 1..=20",
                );
            }
        }
    }

    fn pointers(e: BffError) -> Vec<String> {
        match e {
            BffError::InvalidBody { errors } => errors.into_iter().map(|e| e.pointer).collect(),
            other => panic!("expected invalid_body, got {other:?}"),
        }
    }

    /// Shape errors name the offending field by JSON Pointer; syntax errors are 400.
    #[test]
    fn errors_point_at_fields() {
        let p = |s: &str| parse::<Command>(s.as_bytes(), 32);
        assert!(p(r#"{"items":[{"product_id":"1","quantity":2}]}"#).is_ok());
        assert_eq!(
            pointers(p(r#"{"items":[{"product_id":"1","quantity":"2"}]}"#).unwrap_err()),
            ["/items/0/quantity"]
        );
        assert_eq!(
            pointers(p(r#"{"items":[{"product_id":"1","quantity":5000000000}]}"#).unwrap_err()),
            ["/items/0/quantity"]
        );
        assert_eq!(
            pointers(p(r#"{"items":[],"x/y":1}"#).unwrap_err()),
            ["/x~1y"]
        );
        assert_eq!(
            pointers(p(r#"{"items":[{"product_id":"1","quantity":1,"quantity":2}]}"#).unwrap_err()),
            ["/items/0/quantity"]
        );
        assert_eq!(
            pointers(p(r#"{"items":[{"product_id":"1","quantity":0},{"product_id":"2","quantity":21}]}"#).unwrap_err()),
            ["/items/0/quantity", "/items/1/quantity"]
        );
        for bad in [r#"{"items":["#, r#"{"items":[]} x"#, "", r#"{items:[]}"#] {
            assert_eq!(p(bad).unwrap_err().code(), "malformed_body", "{bad}");
        }
        assert_eq!(
            parse::<Command>(b"{\"items\":[\xff]}", 32)
                .unwrap_err()
                .code(),
            "malformed_body"
        );
    }

    /// Depth is checked before parsing, and brackets inside strings do not count.
    #[test]
    fn depth_is_bounded_before_parsing() {
        let deep = "[".repeat(10_000);
        assert_eq!(
            check_depth(deep.as_bytes(), 32).unwrap_err().code(),
            "malformed_body"
        );
        assert!(check_depth(br#"{"a":"[[[[[[[[[[\"[[[["}"#, 2).is_ok());
        assert!(check_depth(b"[[[]]]", 3).is_ok());
        assert!(check_depth(b"[[[[]]]]", 3).is_err());
    }

    /// A gzip bomb inflates only up to the limit.
    #[test]
    fn gzip_is_bounded_after_decompression() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&vec![b' '; 10 * 1024 * 1024]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 64 * 1024);
        assert_eq!(gunzip(&bomb, 64 * 1024), Err(BffError::PayloadTooLarge));
        assert_eq!(
            gunzip(b"not gzip", 1024).unwrap_err().code(),
            "malformed_body"
        );
    }

    /// Only JSON in UTF-8 is accepted.
    #[test]
    fn content_types() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            check_content_type(&h).is_ok()
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=UTF-8"));
        assert!(!with("application/json; charset=latin1"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(check_content_type(&HeaderMap::new()).is_err());
    }
}

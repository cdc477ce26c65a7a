//! Request ids and W3C trace context: accepted from the client when well-formed, generated otherwise, and
//! propagated to every downstream call and back to the client.

use axum::http::HeaderMap;

/// Header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";
/// Header carrying the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The client's `x-request-id` when it is 1..=128 characters of `[A-Za-z0-9._:-]`, else a new UUID.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id)
}

fn is_valid_request_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// This hop's W3C trace context: the trace it belongs to and the span id the gateway uses as parent of its
/// downstream calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lower-case hex digits, never all zero.
    pub trace_id: String,
    /// 16 lower-case hex digits: the gateway's own span.
    pub span_id: String,
    /// Trace flags (bit 0 = sampled).
    pub flags: u8,
    /// The client's span (16 lower-case hex digits) when the trace was continued from its `traceparent`.
    pub parent_id: Option<String>,
}

impl TraceContext {
    /// Continues the client's trace when its `traceparent` is valid (version 00), else starts a new one;
    /// either way with a new span id for this hop.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let span_id = hex(u128::from(random_u64_nonzero()), 16);
        match headers
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent)
        {
            Some((trace_id, parent, flags)) => Self {
                trace_id,
                span_id,
                flags,
                parent_id: Some(parent),
            },
            None => Self {
                trace_id: hex(fastrand::u128(1..), 32),
                span_id,
                flags: 1,
                parent_id: None,
            },
        }
    }

    /// The `traceparent` header value naming this hop as parent.
    pub fn header_value(&self) -> String {
        self.header_naming(&self.span_id)
    }

    /// The `traceparent` header value naming the span `span_id` of this trace (a downstream attempt's) as
    /// parent.
    pub fn header_value_for(&self, span_id: u64) -> String {
        self.header_naming(&hex(u128::from(span_id), 16))
    }

    fn header_naming(&self, span_id: &str) -> String {
        let mut v = String::with_capacity(55);
        v.push_str("00-");
        v.push_str(&self.trace_id);
        v.push('-');
        v.push_str(span_id);
        v.push('-');
        push_hex(&mut v, u128::from(self.flags), 2);
        v
    }
}

fn random_u64_nonzero() -> u64 {
    fastrand::u64(1..)
}

/// A new request id in UUID v4 form. Ids and trace ids need uniqueness, not secrecy: a fast thread-local
/// generator (no system call per request) is enough.
pub fn new_request_id() -> String {
    let v = (fastrand::u128(..) & !(0xF << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let mut id = String::with_capacity(36);
    for (i, digits) in [(96, 8), (80, 4), (64, 4), (48, 4), (0, 12)] {
        if i != 96 {
            id.push('-');
        }
        push_hex(&mut id, (v >> i) & ((1 << (digits * 4)) - 1), digits);
    }
    id
}

/// Appends the `digits` lowest hex digits of `v`, lower-case, most significant first. Per-request ids are
/// written this way rather than with `format!` (measured: formatting was ~8 % of a pass-through's instructions).
pub(crate) fn push_hex(out: &mut String, v: u128, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(char::from(HEX[((v >> (i * 4)) & 0xf) as usize]));
    }
}

/// The `digits` lowest hex digits of `v` (see [`push_hex`]).
fn hex(v: u128, digits: u32) -> String {
    let mut s = String::with_capacity(digits as usize);
    push_hex(&mut s, v, digits);
    s
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; returns the trace id, parent id and flags.
fn parse_traceparent(v: &str) -> Option<(String, String, u8)> {
    let mut parts = v.trim().split('-');
    let (version, trace_id, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || version != "00" {
        return None;
    }
    let valid = trace_id.len() == 32
        && parent.len() == 16
        && flags.len() == 2
        && [trace_id, parent, flags].iter().all(|s| is_lower_hex(s))
        && trace_id.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    if !valid {
        return None;
    }
    Some((
        trace_id.to_owned(),
        parent.to_owned(),
        u8::from_str_radix(flags, 16).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    /// A valid client traceparent is continued with a new span id; an invalid one starts a new trace.
    #[test]
    fn traceparent_continued_or_restarted() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceContext::from_headers(&headers(TRACEPARENT, incoming));
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_ne!(t.span_id, "00f067aa0ba902b7");
        assert_eq!(
            t.header_value_for(0xab),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00000000000000ab-01"
        );
        assert!(
            t.header_value()
                .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let t = TraceContext::from_headers(&headers(TRACEPARENT, bad));
            assert_ne!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(t.trace_id.len(), 32);
        }
    }

    /// The hand-written hex matches `format!`'s, digit for digit, including leading zeros.
    #[test]
    fn hex_matches_format() {
        for v in [
            0u128,
            1,
            0xabc,
            u128::from(u64::MAX),
            u128::MAX,
            fastrand::u128(..),
        ] {
            assert_eq!(hex(v, 32), format!("{v:032x}"));
            assert_eq!(
                hex(v & u128::from(u64::MAX), 16),
                format!("{:016x}", v & u128::from(u64::MAX))
            );
        }
        let t = TraceContext {
            trace_id: "a".repeat(32),
            span_id: "b".repeat(16),
            flags: 1,
            parent_id: None,
        };
        assert_eq!(
            t.header_value(),
            format!("00-{}-{}-01", "a".repeat(32), "b".repeat(16))
        );
        let id = new_request_id();
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
        assert!(
            id.bytes()
                .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    /// Well-formed request ids are kept; malformed or oversized ones are replaced.
    #[test]
    fn request_id_validated() {
        assert_eq!(request_id(&headers(REQUEST_ID, "abc-123")), "abc-123");
        let long = "a".repeat(129);
        assert_ne!(request_id(&headers(REQUEST_ID, &long)), long);
        assert_ne!(request_id(&headers(REQUEST_ID, "a b")), "a b");
        let generated = request_id(&HeaderMap::new());
        assert_eq!(generated.len(), 36);
        assert_eq!(&generated[14..15], "4", "UUID v4 form: {generated}");
        assert!(
            matches!(&generated[19..20], "8" | "9" | "a" | "b"),
            "{generated}"
        );
        assert_ne!(generated, request_id(&HeaderMap::new()));
    }
}

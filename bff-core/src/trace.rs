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
    let digits = hex32(v);
    let mut id = [b'-'; 36];
    for (from, to) in [
        (0..8, 0),
        (8..12, 9),
        (12..16, 14),
        (16..20, 19),
        (20..32, 24),
    ] {
        id[to..to + from.len()].copy_from_slice(&digits[from]);
    }
    ascii_str(&id).to_owned()
}

/// Appends the `digits` (at most 32) lowest hex digits of `v`, lower-case, most significant first. Per-request
/// ids are written this way rather than with `format!` (measured: formatting was ~8 % of a pass-through's
/// instructions), and a word at a time rather than digit by digit (bench/notes.md).
pub(crate) fn push_hex(out: &mut String, v: u128, digits: u32) {
    let digits = digits.min(32) as usize;
    if digits <= 16 {
        out.push_str(ascii_str(&hex16(v as u64)[16 - digits..]));
    } else {
        out.push_str(ascii_str(&hex32(v)[32 - digits..]));
    }
}

/// The `digits` lowest hex digits of `v` (see [`push_hex`]).
fn hex(v: u128, digits: u32) -> String {
    let mut s = String::with_capacity(digits as usize);
    push_hex(&mut s, v, digits);
    s
}

/// The 32 hex digits of `v`.
fn hex32(v: u128) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(&hex16((v >> 64) as u64));
    out[16..].copy_from_slice(&hex16(v as u64));
    out
}

/// The 16 hex digits of `v`: each half's nibbles spread one per byte, then turned into digits together.
fn hex16(v: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&digits_of(nibbles(v >> 32)).to_be_bytes());
    out[8..].copy_from_slice(&digits_of(nibbles(v & 0xFFFF_FFFF)).to_be_bytes());
    out
}

/// The 8 nibbles of the 32-bit `x`, one per byte, the least significant in the lowest byte.
fn nibbles(x: u64) -> u64 {
    let x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    let x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F
}

/// Each byte of `n` (a value 0–15) as its lower-case hex digit (no byte carries into the next).
fn digits_of(n: u64) -> u64 {
    let letters = ((n + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    n + 0x3030_3030_3030_3030 + letters * u64::from(b'a' - b'0' - 10)
}

/// `bytes` (ASCII) as a `str`.
fn ascii_str(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
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

    proptest::proptest! {
        /// Any value, any digit count: the same digits as `format!`; request ids are UUID v4 text.
        #[test]
        fn hex_is_format(v: u128, digits in 1u32..=32) {
            let mask = if digits == 32 { u128::MAX } else { (1u128 << (digits * 4)) - 1 };
            proptest::prop_assert_eq!(hex(v, digits), format!("{:0width$x}", v & mask, width = digits as usize));
            let id = new_request_id();
            let uuid = format!("{:032x}", u128::from_str_radix(&id.replace('-', ""), 16).unwrap());
            let dashed = format!("{}-{}-{}-{}-{}", &uuid[..8], &uuid[8..12], &uuid[12..16], &uuid[16..20], &uuid[20..]);
            proptest::prop_assert_eq!(&id, &dashed);
            proptest::prop_assert_eq!(&id[14..15], "4");
            proptest::prop_assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{}", id);
        }
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

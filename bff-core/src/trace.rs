//! Request ids and W3C trace context: accepted from the client when well-formed, generated otherwise, and
//! propagated to every downstream call and back to the client.

use axum::http::{HeaderMap, HeaderValue};

/// Header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";
/// Header carrying the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// A request id, held as the header value it travels as: echoed to the client and sent with every
/// downstream call, so a clone shares the bytes instead of copying them (a client's id shares the buffer its
/// request was read into).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value (a clone shares its bytes).
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl From<String> for RequestId {
    /// `id` when it is a valid header value, else a new id.
    fn from(id: String) -> Self {
        HeaderValue::try_from(id).map_or_else(|_| new_request_id(), Self)
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The client's `x-request-id` when it is 1..=128 characters of `[A-Za-z0-9._:-]`, else a new UUID.
pub fn request_id(headers: &HeaderMap) -> RequestId {
    headers
        .get(REQUEST_ID)
        .filter(|v| is_valid_request_id(v.as_bytes()))
        .map_or_else(new_request_id, |v| RequestId(v.clone()))
}

fn is_valid_request_id(v: &[u8]) -> bool {
    (1..=128).contains(&v.len())
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A trace id: 128 bits, never zero, shown as 32 lower-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId(pub u128);

impl std::fmt::Display for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(ascii_str(&hex32(self.0)))
    }
}

/// This hop's W3C trace context: the trace it belongs to and the span id the gateway uses as parent of its
/// downstream calls. Held as numbers: they are written as hex only into the headers and logs that show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace (never zero).
    pub trace_id: TraceId,
    /// The gateway's own span (never zero).
    pub span_id: u64,
    /// Trace flags (bit 0 = sampled).
    pub flags: u8,
    /// The client's span when the trace was continued from its `traceparent`.
    pub parent_id: Option<u64>,
}

impl TraceContext {
    /// Continues the client's trace when its `traceparent` is valid (version 00), else starts a new one;
    /// either way with a new span id for this hop.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let span_id = random_u64_nonzero();
        match headers
            .get(TRACEPARENT)
            .and_then(|v| parse_traceparent(v.as_bytes()))
        {
            Some((trace_id, parent, flags)) => Self {
                trace_id: TraceId(trace_id),
                span_id,
                flags,
                parent_id: Some(parent),
            },
            None => Self {
                trace_id: TraceId(fastrand::u128(1..)),
                span_id,
                flags: 1,
                parent_id: None,
            },
        }
    }

    /// The `traceparent` header value naming this hop as parent.
    pub fn header_value(&self) -> HeaderValue {
        self.header_value_for(self.span_id)
    }

    /// The `traceparent` header value naming the span `span_id` of this trace (a downstream attempt's) as
    /// parent.
    pub fn header_value_for(&self, span_id: u64) -> HeaderValue {
        let mut v = [b'-'; 55];
        v[..2].copy_from_slice(b"00");
        v[3..35].copy_from_slice(&hex32(self.trace_id.0));
        v[36..52].copy_from_slice(&hex16(span_id));
        v[53..].copy_from_slice(&hex16(u64::from(self.flags))[14..]);
        HeaderValue::from_bytes(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

fn random_u64_nonzero() -> u64 {
    fastrand::u64(1..)
}

/// A new request id in UUID v4 form. Ids and trace ids need uniqueness, not secrecy: a fast thread-local
/// generator (no system call per request) is enough.
pub fn new_request_id() -> RequestId {
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
    RequestId(HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("-")))
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
#[cfg(test)]
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
pub(crate) fn hex16(v: u64) -> [u8; 16] {
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

/// The value of the lower-case hex digits `s` (at most 32), `None` when one is not a lower-case hex digit.
fn lower_hex(s: &[u8]) -> Option<u128> {
    s.iter().try_fold(0u128, |v, &b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(v << 4 | u128::from(d))
    })
}

/// Parses `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>` (surrounding whitespace allowed); returns
/// the trace id, parent id and flags. Both ids must be non-zero.
fn parse_traceparent(v: &[u8]) -> Option<(u128, u64, u8)> {
    let v = v.trim_ascii();
    if v.len() != 55 || !v.starts_with(b"00-") || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let trace_id = lower_hex(&v[3..35]).filter(|&t| t != 0)?;
    let parent = lower_hex(&v[36..52]).filter(|&p| p != 0)?;
    let flags = lower_hex(&v[53..])?;
    Some((trace_id, parent as u64, flags as u8))
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
        assert_eq!(t.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id, Some(0x00f0_67aa_0ba9_02b7));
        assert_eq!(t.flags, 1);
        assert_ne!(t.span_id, 0x00f0_67aa_0ba9_02b7);
        assert_eq!(
            t.header_value_for(0xab),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00000000000000ab-01"
        );
        assert_eq!(
            t.header_value(),
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{:016x}-01", t.span_id).as_str()
        );
        let unsampled = TraceContext::from_headers(&headers(
            TRACEPARENT,
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe ",
        ));
        assert_eq!(unsampled.flags, 0xfe);
        assert!(unsampled.header_value().to_str().unwrap().ends_with("-fe"));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736+00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "garbage",
        ] {
            let t = TraceContext::from_headers(&headers(TRACEPARENT, bad));
            assert_ne!(
                t.trace_id.0, 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                "{bad}"
            );
            assert_ne!(t.trace_id.0, 0);
            assert_eq!(t.parent_id, None, "{bad}");
            assert_eq!(t.flags, 1, "{bad}");
            assert_eq!(t.trace_id.to_string().len(), 32);
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
            trace_id: TraceId(u128::MAX / 15 * 10),
            span_id: u64::MAX / 15 * 11,
            flags: 1,
            parent_id: None,
        };
        assert_eq!(
            t.header_value(),
            format!("00-{}-{}-01", "a".repeat(32), "b".repeat(16)).as_str()
        );
        let id = new_request_id().as_str().to_owned();
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
            let id = new_request_id().as_str().to_owned();
            let uuid = format!("{:032x}", u128::from_str_radix(&id.replace('-', ""), 16).unwrap());
            let dashed = format!("{}-{}-{}-{}-{}", &uuid[..8], &uuid[8..12], &uuid[12..16], &uuid[16..20], &uuid[20..]);
            proptest::prop_assert_eq!(&id, &dashed);
            proptest::prop_assert_eq!(&id[14..15], "4");
            proptest::prop_assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{}", id);
        }

        /// Any trace context makes a `traceparent` that is read back as the same trace, parent and flags.
        #[test]
        fn traceparent_round_trips(trace in 1u128.., span in 1u64.., flags: u8) {
            let t = TraceContext { trace_id: TraceId(trace), span_id: 1, flags, parent_id: None };
            let mut h = HeaderMap::new();
            h.insert(TRACEPARENT, t.header_value_for(span));
            let read = TraceContext::from_headers(&h);
            proptest::prop_assert_eq!(read.trace_id, TraceId(trace));
            proptest::prop_assert_eq!(read.parent_id, Some(span));
            proptest::prop_assert_eq!(read.flags, flags);
            proptest::prop_assert_eq!(
                h[TRACEPARENT].to_str().unwrap(),
                format!("00-{trace:032x}-{span:016x}-{flags:02x}")
            );
        }
    }

    /// Well-formed request ids are kept; malformed or oversized ones are replaced.
    #[test]
    fn request_id_validated() {
        assert_eq!(
            request_id(&headers(REQUEST_ID, "abc-123")).as_str(),
            "abc-123"
        );
        let long = "a".repeat(129);
        assert_ne!(request_id(&headers(REQUEST_ID, &long)).as_str(), long);
        assert_ne!(request_id(&headers(REQUEST_ID, "a b")).as_str(), "a b");
        let generated = request_id(&HeaderMap::new());
        let generated = generated.as_str();
        assert_eq!(generated.len(), 36);
        assert_eq!(&generated[14..15], "4", "UUID v4 form: {generated}");
        assert!(
            matches!(&generated[19..20], "8" | "9" | "a" | "b"),
            "{generated}"
        );
        assert_ne!(generated, request_id(&HeaderMap::new()).as_str());
        assert_eq!(RequestId::from("r-1".to_owned()).as_str(), "r-1");
        assert_eq!(RequestId::from("bad\nid".to_owned()).as_str().len(), 36);
    }
}

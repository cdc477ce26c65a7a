//! The `RateLimit-Policy` and `RateLimit` response headers (IETF httpapi-ratelimit-headers draft, one item per
//! applied policy). A policy's `RateLimit-Policy` item depends only on its configuration, so it is rendered
//! once when the limiter is built; the per-request `RateLimit` state is written without `format!`.

use axum::http::{HeaderName, HeaderValue};

use super::gcra::{Decision, Limit};
use super::push_decimal;

/// Response header listing the policies applied to the request (`"name";q=<quota>;w=<window s>`).
pub const RATELIMIT_POLICY_HEADER: &str = "ratelimit-policy";
/// Response header with each policy's state (`"name";r=<remaining>;t=<seconds until full>`).
pub const RATELIMIT_HEADER: &str = "ratelimit";

const POLICY_NAME: HeaderName = HeaderName::from_static(RATELIMIT_POLICY_HEADER);
const STATE_NAME: HeaderName = HeaderName::from_static(RATELIMIT_HEADER);

/// One policy's limit (its default or a tier's) with its `RateLimit-Policy` item rendered.
#[derive(Debug)]
pub(super) struct Rated {
    /// The limit.
    pub(super) limit: Limit,
    /// `"name";q=<burst>;w=<seconds to refill a burst>`.
    item: String,
    /// The same item as a whole header value (the common case: one policy applies).
    value: Option<HeaderValue>,
}

impl Rated {
    /// The limit of the policy `name`, its item rendered.
    pub(super) fn new(name: &str, limit: Limit) -> Self {
        let window = ceil_s(limit.burst * limit.interval_us).max(1);
        let mut item = String::with_capacity(name.len() + 32);
        item.push('"');
        item.push_str(name);
        item.push_str("\";q=");
        push_decimal(&mut item, limit.burst.unsigned_abs());
        item.push_str(";w=");
        push_decimal(&mut item, window);
        let value = HeaderValue::from_str(&item).ok();
        Self { limit, item, value }
    }
}

/// A policy applied to a request: its name and its limit as rated.
pub(super) struct Applied<'a> {
    /// The policy's name.
    pub(super) name: &'a str,
    /// Its limit for this caller.
    pub(super) rated: &'a Rated,
}

/// Whole seconds, rounded up, of `us` microseconds (0 for negative values).
pub(super) fn ceil_s(us: i64) -> u64 {
    u64::try_from((us.max(0) + 999_999) / 1_000_000).unwrap_or(0)
}

/// `RateLimit-Policy: "name";q=<burst>;w=<seconds to refill a burst>` and
/// `RateLimit: "name";r=<remaining>;t=<seconds until full>`, one item per applied policy.
pub(super) fn rate_limit_headers(
    applied: &[Applied<'_>],
    decision: &Decision,
) -> Vec<(HeaderName, HeaderValue)> {
    if applied.is_empty() {
        return Vec::new();
    }
    let policy = match applied {
        [one] => one.rated.value.clone(),
        _ => {
            let items: Vec<&str> = applied.iter().map(|a| a.rated.item.as_str()).collect();
            HeaderValue::from_str(&items.join(", ")).ok()
        }
    };
    let mut state = String::with_capacity(applied.len() * 48);
    for (i, (a, bucket)) in applied.iter().zip(&decision.buckets).enumerate() {
        if i > 0 {
            state.push_str(", ");
        }
        state.push('"');
        state.push_str(a.name);
        state.push_str("\";r=");
        push_decimal(&mut state, bucket.remaining.unsigned_abs());
        state.push_str(";t=");
        push_decimal(&mut state, ceil_s(bucket.reset_us));
    }
    let mut headers = Vec::with_capacity(2);
    // The string becomes the header value as it is (no copy).
    if let (Some(p), Ok(s)) = (policy, HeaderValue::try_from(state)) {
        headers.push((POLICY_NAME, p));
        headers.push((STATE_NAME, s));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::gcra::BucketState;

    /// The headers follow the draft's structured-field syntax, one item per policy.
    #[test]
    fn headers_format() {
        let user = Rated::new(
            "user",
            Limit {
                interval_us: 600_000,
                burst: 20,
            },
        );
        let ip = Rated::new(
            "ip",
            Limit {
                interval_us: 1_000,
                burst: 5,
            },
        );
        let applied = [
            Applied {
                name: "user",
                rated: &user,
            },
            Applied {
                name: "ip",
                rated: &ip,
            },
        ];
        let decision = Decision {
            allowed: true,
            retry_after_us: 0,
            buckets: vec![
                BucketState {
                    remaining: 19,
                    reset_us: 600_000,
                },
                BucketState {
                    remaining: 4,
                    reset_us: 1_000,
                },
            ],
        };
        let h = rate_limit_headers(&applied, &decision);
        assert_eq!(h[0].1, "\"user\";q=20;w=12, \"ip\";q=5;w=1");
        assert_eq!(h[1].1, "\"user\";r=19;t=1, \"ip\";r=4;t=1");
        let h = rate_limit_headers(&applied[..1], &decision);
        assert_eq!(h[0].1, "\"user\";q=20;w=12");
        assert_eq!(h[1].1, "\"user\";r=19;t=1");
    }
}

//! `Cache-Control` both ways: what a downstream answer allows ([`Directives::parse`]), and the policy of one
//! part of a composed response ([`CachePolicy`]), merged strictest-wins and rendered for the client.

use std::time::Duration;

/// The directives of a downstream answer's `Cache-Control` that the response cache obeys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    /// `no-store`: never stored.
    pub(crate) no_store: bool,
    /// `no-cache`: never served without revalidation, so never served fresh from the cache.
    pub(crate) no_cache: bool,
    /// `private`: for one user only, so stored (if at all) under the caller's identity.
    pub(crate) private: bool,
    /// `must-revalidate` / `proxy-revalidate`: never served stale.
    pub(crate) must_revalidate: bool,
    /// `s-maxage`, else `max-age`, in seconds.
    pub(crate) max_age: Option<u64>,
}

impl Directives {
    /// Parses a `Cache-Control` value (case-insensitive names, quoted or bare numbers, unknown directives
    /// ignored). A malformed `max-age` counts as `0` (RFC 9111: stale), never as fresh.
    pub(crate) fn parse(value: &str) -> Self {
        let mut d = Self::default();
        let mut max_age = None;
        let mut s_maxage = None;
        for item in value.split(',') {
            let (name, arg) = match item.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (item.trim(), None),
            };
            let seconds = || arg.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
            match name.to_ascii_lowercase().as_str() {
                "no-store" => d.no_store = true,
                "no-cache" => d.no_cache = true,
                "private" => d.private = true,
                "must-revalidate" | "proxy-revalidate" => d.must_revalidate = true,
                "max-age" => max_age = Some(seconds()),
                "s-maxage" => s_maxage = Some(seconds()),
                _ => {}
            }
        }
        d.max_age = s_maxage.or(max_age);
        d
    }
}

/// The cache policy of (a part of) a response: what a client or an intermediary may do with it. Parts are
/// merged strictest-wins ([`CachePolicy::merge`]): `no-store` if any part is, `private` if any part is, the
/// smallest `max-age`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CachePolicy {
    /// Whether any part was recorded (a response without parts gets no computed policy).
    pub recorded: bool,
    /// Must not be stored at all.
    pub no_store: bool,
    /// For the caller only (private data, or fetched with the caller's identity).
    pub private: bool,
    /// Seconds the response stays fresh; `Some(0)` = revalidate every time (`no-cache`); `None` = no limit
    /// was stated (only for an empty merge).
    pub max_age: Option<u64>,
}

impl CachePolicy {
    /// The policy of one part: fresh for `fresh_for` (zero = revalidate every time).
    pub fn part(fresh_for: Duration, private: bool, no_store: bool) -> Self {
        Self {
            recorded: true,
            no_store,
            private,
            max_age: Some(fresh_for.as_secs()),
        }
    }

    /// The strictest of `self` and `other`.
    pub fn merge(self, other: Self) -> Self {
        Self {
            recorded: self.recorded || other.recorded,
            no_store: self.no_store || other.no_store,
            private: self.private || other.private,
            max_age: match (self.max_age, other.max_age) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }

    /// The `Cache-Control` value when it is one of the constant ones (`no-store`, `no-cache`,
    /// `private, no-cache`), so the common uncacheable answer costs no allocation; `None` for a `max-age`.
    pub fn static_header_value(&self) -> Option<&'static str> {
        match (self.no_store, self.max_age, self.private) {
            (true, _, _) => Some("no-store"),
            (false, Some(n), _) if n > 0 => None,
            (false, _, false) => Some("no-cache"),
            (false, _, true) => Some("private, no-cache"),
        }
    }

    /// The `Cache-Control` value: `no-store`; or `private, max-age=N` / `max-age=N`; or `private, no-cache` /
    /// `no-cache` when the freshness is zero or unknown.
    pub fn header_value(&self) -> String {
        if self.no_store {
            return "no-store".into();
        }
        let freshness = match self.max_age {
            Some(n) if n > 0 => format!("max-age={n}"),
            _ => "no-cache".into(),
        };
        if self.private {
            format!("private, {freshness}")
        } else {
            freshness
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known directives are read case-insensitively; s-maxage wins over max-age; garbage is stale, not fresh.
    #[test]
    fn parses_directives() {
        let d = Directives::parse("Public, MAX-AGE=60, s-maxage=\"30\", stale-while-revalidate=5");
        assert_eq!(d.max_age, Some(30));
        assert!(!d.private && !d.no_store && !d.no_cache);
        let d = Directives::parse("private, max-age=10, must-revalidate");
        assert!(d.private && d.must_revalidate);
        assert_eq!(d.max_age, Some(10));
        assert!(Directives::parse("no-store").no_store);
        assert!(Directives::parse("no-cache").no_cache);
        assert_eq!(Directives::parse("max-age=abc").max_age, Some(0));
        assert_eq!(Directives::parse("").max_age, None);
    }

    /// Strictest wins: any no-store, any private, the smallest max-age.
    #[test]
    fn merge_is_strictest() {
        let a = CachePolicy::part(Duration::from_secs(60), false, false);
        let b = CachePolicy::part(Duration::from_secs(30), true, false);
        let merged = CachePolicy::default().merge(a).merge(b);
        assert_eq!(merged.header_value(), "private, max-age=30");
        assert_eq!(a.header_value(), "max-age=60");
        let zero = CachePolicy::part(Duration::ZERO, false, false);
        assert_eq!(a.merge(zero).header_value(), "no-cache");
        let none = CachePolicy::part(Duration::from_secs(60), false, true);
        assert_eq!(merged.merge(none).header_value(), "no-store");
        assert_eq!(CachePolicy::default().header_value(), "no-cache");
        for p in [
            merged,
            a,
            a.merge(zero),
            merged.merge(none),
            CachePolicy::default(),
        ] {
            if let Some(v) = p.static_header_value() {
                assert_eq!(v, p.header_value());
            } else {
                assert!(p.header_value().contains("max-age="));
            }
        }
        assert!(!CachePolicy::default().recorded);
    }
}

//! Retries: which failures of which calls are retried ([`is_retryable`]), how long to wait before each retry
//! ([`RetryPolicy::backoff`], exponential with jitter), and how many retries a downstream may get at all
//! ([`RetryBudget`]: a fraction of its recent calls, so retries cannot multiply the load on a failing service).

use std::sync::Mutex;
use std::time::Duration;

use axum::http::Method;
use tokio::time::Instant;

use crate::downstream::DownstreamErrorKind;
use crate::resilience::RetryConfig;

/// Whether a failed attempt of a `method` call may be retried: only idempotent reads (GET, HEAD), and only
/// when the failure says the downstream did not process it or is briefly unavailable — no connection, a
/// reset or broken answer, 502/503/504. Never a POST; never when the request's own budget is spent
/// (`Deadline`); never a per-call timeout (a slow service is not made faster by more calls — hedging is the
/// tool for slow tails); never an open breaker or a full bulkhead.
pub fn is_retryable(method: &Method, kind: DownstreamErrorKind) -> bool {
    let idempotent = *method == Method::GET || *method == Method::HEAD;
    idempotent && is_retryable_failure(kind)
}

/// Whether a failed attempt of an idempotent call (a GET, an idempotent gRPC method) may be retried: no
/// connection, a reset or broken answer, 502/503/504, gRPC `UNAVAILABLE`.
pub fn is_retryable_failure(kind: DownstreamErrorKind) -> bool {
    matches!(
        kind,
        DownstreamErrorKind::Connect
            | DownstreamErrorKind::Body
            | DownstreamErrorKind::Unavailable
            | DownstreamErrorKind::Status(502..=504)
    )
}

/// The retry and hedging policy of one downstream.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Extra attempts after the first.
    pub max_retries: u32,
    /// Backoff before the first retry.
    pub base: Duration,
    /// Largest backoff.
    pub max: Duration,
    /// Start a second attempt when the first has not answered after this long.
    pub hedge_after: Option<Duration>,
}

impl RetryPolicy {
    /// The policy of a `[retry]` table.
    pub fn from_config(c: &RetryConfig) -> Self {
        Self {
            max_retries: c.max_retries,
            base: Duration::from_millis(c.backoff_base_ms),
            max: Duration::from_millis(c.backoff_max_ms),
            hedge_after: (c.hedge_after_ms > 0).then(|| Duration::from_millis(c.hedge_after_ms)),
        }
    }

    /// The wait before retry number `retry` (1-based): `min(max, base · 2^(retry-1))`, halved and topped up by
    /// a random amount up to the other half ("equal jitter"): never zero, so a retry does not hit the same
    /// broken moment, and spread, so the retries of many requests do not arrive together.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        let cap = exp.min(self.max);
        let half = cap / 2;
        let jitter_ns = fastrand::u64(0..=half.as_nanos().min(u128::from(u64::MAX)) as u64);
        half + Duration::from_nanos(jitter_ns)
    }
}

/// Number of one-second slots of the budget's window.
const WINDOW_S: usize = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    second: u64,
    calls: u64,
    retries: u64,
}

/// The retry budget of one downstream: over the last 10 seconds, retries (and hedges) may be at most
/// `min_per_s · 10 + ratio · calls`. When a downstream fails hard, at most `ratio` extra load reaches it.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    min_per_s: u32,
    origin: Instant,
    slots: Mutex<[Slot; WINDOW_S]>,
}

impl RetryBudget {
    /// A budget of `ratio` of the calls plus `min_per_s` retries per second.
    pub fn new(ratio: f64, min_per_s: u32) -> Self {
        Self {
            ratio,
            min_per_s,
            origin: Instant::now(),
            slots: Mutex::new([Slot::default(); WINDOW_S]),
        }
    }

    fn with_slot<R>(&self, f: impl FnOnce(&mut [Slot; WINDOW_S], usize, u64) -> R) -> R {
        self.with_slot_at(Instant::now(), f)
    }

    fn with_slot_at<R>(
        &self,
        now: Instant,
        f: impl FnOnce(&mut [Slot; WINDOW_S], usize, u64) -> R,
    ) -> R {
        let second = now.duration_since(self.origin).as_secs();
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let i = (second % WINDOW_S as u64) as usize;
        if slots[i].second != second {
            slots[i] = Slot {
                second,
                ..Slot::default()
            };
        }
        f(&mut slots, i, second)
    }

    /// Counts one original call (deposits `ratio` of a retry), made at `now`.
    pub fn record_call(&self, now: Instant) {
        self.with_slot_at(now, |slots, i, _| slots[i].calls += 1);
    }

    /// Takes one retry from the budget, or says no.
    pub fn try_withdraw(&self) -> bool {
        self.with_slot(|slots, i, second| {
            let (calls, retries) = slots
                .iter()
                .filter(|s| s.second + WINDOW_S as u64 > second)
                .fold((0u64, 0u64), |(c, r), s| (c + s.calls, r + s.retries));
            let allowed = f64::from(self.min_per_s) * WINDOW_S as f64 + self.ratio * calls as f64;
            if (retries + 1) as f64 <= allowed {
                slots[i].retries += 1;
                true
            } else {
                false
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only GET/HEAD are retried, and only after failures that say "try again".
    #[test]
    fn only_idempotent_calls_and_retryable_failures() {
        use DownstreamErrorKind as K;
        for kind in [
            K::Connect,
            K::Body,
            K::Status(502),
            K::Status(503),
            K::Status(504),
        ] {
            assert!(is_retryable(&Method::GET, kind), "{kind:?}");
            assert!(!is_retryable(&Method::POST, kind), "POST {kind:?}");
            assert!(!is_retryable(&Method::PATCH, kind), "PATCH {kind:?}");
        }
        for kind in [
            K::Deadline,
            K::Timeout,
            K::NotFound,
            K::Status(500),
            K::Status(429),
            K::Decode,
            K::TooLarge,
            K::CircuitOpen { retry_after_ms: 1 },
            K::Saturated,
        ] {
            assert!(!is_retryable(&Method::GET, kind), "{kind:?}");
        }
    }

    /// Backoff doubles per retry, stays within [cap/2, cap] and never exceeds the maximum.
    #[test]
    fn backoff_is_exponential_with_jitter() {
        let p = RetryPolicy {
            max_retries: 5,
            base: Duration::from_millis(25),
            max: Duration::from_millis(250),
            hedge_after: None,
        };
        for _ in 0..100 {
            let b1 = p.backoff(1);
            assert!(b1 >= Duration::from_micros(12_500) && b1 <= Duration::from_millis(25));
            let b3 = p.backoff(3);
            assert!(b3 >= Duration::from_millis(50) && b3 <= Duration::from_millis(100));
            let b9 = p.backoff(9);
            assert!(b9 >= Duration::from_millis(125) && b9 <= Duration::from_millis(250));
        }
    }

    /// The budget lets retries add at most `ratio` of the calls (plus the floor).
    #[tokio::test(start_paused = true)]
    async fn budget_caps_retries() {
        let budget = RetryBudget::new(0.2, 0);
        assert!(!budget.try_withdraw(), "no calls, no floor: no retry");
        for _ in 0..10 {
            budget.record_call(Instant::now());
        }
        assert!(budget.try_withdraw());
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw(), "20% of 10 calls = 2 retries");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!budget.try_withdraw(), "old calls left the window");
        let floor = RetryBudget::new(0.0, 1);
        for _ in 0..10 {
            assert!(floor.try_withdraw());
        }
        assert!(!floor.try_withdraw(), "1/s over 10 s");
    }
}

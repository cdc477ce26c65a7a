//! The in-memory store: the GCRA of [`super::gcra`] over a map of TATs, one decision under one lock (so a
//! multi-bucket decision is atomic), entries dropped once their TAT is in the past (an expired entry is
//! exactly a fresh bucket), so memory stays bounded by the buckets active within their refill time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::gcra::{Check, Decision, decide};

/// Bucket state of this process.
#[derive(Debug)]
pub(crate) struct MemoryStore {
    /// Time zero of the store's clock.
    origin: Instant,
    /// TATs by bucket key, and decisions since the last sweep.
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tats: HashMap<String, i64>,
    since_sweep: usize,
}

/// Decisions between two sweeps of expired entries, at least (and at least the map's size, so sweeping
/// costs O(1) per decision on average).
const SWEEP_EVERY: usize = 4_096;

impl MemoryStore {
    /// An empty store.
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Decides now.
    pub(crate) fn decide(&self, checks: &[Check]) -> Decision {
        let now = i64::try_from(self.origin.elapsed().as_micros()).unwrap_or(i64::MAX / 2);
        self.decide_at(checks, now)
    }

    /// Decides at `now` (µs on the store's clock).
    pub(crate) fn decide_at(&self, checks: &[Check], now: i64) -> Decision {
        let mut inner = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let stored: Vec<Option<i64>> = checks
            .iter()
            .map(|c| inner.tats.get(&c.key).copied())
            .collect();
        let (decision, writes) = decide(checks, &stored, now);
        for (check, write) in checks.iter().zip(writes) {
            if let Some(tat) = write {
                // The key is copied only for a new bucket.
                match inner.tats.get_mut(&check.key) {
                    Some(stored) => *stored = tat,
                    None => {
                        inner.tats.insert(check.key.clone(), tat);
                    }
                }
            }
        }
        inner.since_sweep += 1;
        if inner.since_sweep >= SWEEP_EVERY.max(inner.tats.len()) {
            inner.since_sweep = 0;
            inner.tats.retain(|_, tat| *tat > now);
        }
        decision
    }

    /// Number of buckets held (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().map(|i| i.tats.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::gcra::{Cost, Limit};

    /// Idle buckets are dropped by the periodic sweep, so keys rotated by a client do not accumulate.
    #[test]
    fn expired_buckets_are_swept() {
        let store = MemoryStore::new();
        let limit = Limit {
            interval_us: 1_000,
            burst: 1,
        };
        for i in 0..SWEEP_EVERY - 1 {
            let check = Check {
                key: format!("k{i}"),
                limit,
                cost: Cost::Consume,
            };
            assert!(store.decide_at(&[check], 0).allowed);
        }
        assert_eq!(store.len(), SWEEP_EVERY - 1);
        let check = Check {
            key: "late".into(),
            limit,
            cost: Cost::Consume,
        };
        assert!(store.decide_at(&[check], 5_000).allowed);
        assert_eq!(store.len(), 1, "only the live bucket is kept");
    }
}

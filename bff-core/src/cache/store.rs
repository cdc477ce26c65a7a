//! The store of cached downstream answers: one moka cache per gateway, bounded by the bytes it holds (a
//! weigher), each entry expiring once neither fresh nor usable stale; optionally backed by Redis
//! ([`super::redis::RedisLevel`]) shared by every instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::config::CacheConfig;
use super::redis::RedisLevel;
use crate::metrics::Metrics;

/// One cached answer body and its freshness.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The answer body (a 2xx).
    pub(crate) body: Bytes,
    /// When it was fetched (wall clock, so a second level shared by instances can tell its age).
    pub(crate) stored_at: SystemTime,
    /// How long it is fresh.
    pub(crate) fresh_for: Duration,
    /// How long after that it is served while being refreshed.
    pub(crate) stale_while_revalidate: Duration,
    /// How long after freshness it is served when the downstream fails.
    pub(crate) stale_if_error: Duration,
    /// Whether it is the answer for one caller (stored under that caller's key).
    pub(crate) private: bool,
    /// Whether a background refresh was started (at most one per entry).
    pub(crate) refreshing: AtomicBool,
}

/// Where an entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// Fresh for this much longer.
    Fresh(Duration),
    /// Stale, within the stale-while-revalidate window.
    Revalidate,
    /// Stale, only usable when the downstream fails.
    IfError,
    /// Unusable.
    Expired,
}

impl Entry {
    /// A new entry fetched now.
    pub(crate) fn new(
        body: Bytes,
        fresh_for: Duration,
        stale_while_revalidate: Duration,
        stale_if_error: Duration,
        private: bool,
    ) -> Self {
        Self {
            body,
            stored_at: SystemTime::now(),
            fresh_for,
            stale_while_revalidate,
            stale_if_error,
            private,
            refreshing: AtomicBool::new(false),
        }
    }

    /// Its age now (zero if the clock went backwards).
    fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.stored_at)
            .unwrap_or_default()
    }

    /// Where it stands now.
    pub(crate) fn freshness(&self) -> Freshness {
        let age = self.age();
        if age < self.fresh_for {
            return Freshness::Fresh(self.fresh_for - age);
        }
        let stale_for = age - self.fresh_for;
        if stale_for < self.stale_while_revalidate {
            Freshness::Revalidate
        } else if stale_for < self.stale_if_error {
            Freshness::IfError
        } else {
            Freshness::Expired
        }
    }

    /// How long it is worth keeping from its creation: fresh plus the longer stale window.
    pub(crate) fn lifetime(&self) -> Duration {
        self.fresh_for + self.stale_while_revalidate.max(self.stale_if_error)
    }

    /// What is left of its lifetime.
    pub(crate) fn remaining_lifetime(&self) -> Duration {
        self.lifetime().saturating_sub(self.age())
    }

    /// Marks that a background refresh starts; false when one already did.
    pub(crate) fn start_refresh(&self) -> bool {
        !self.refreshing.swap(true, Ordering::AcqRel)
    }
}

/// moka expiry: an entry lives as long as it is fresh or usable stale.
struct EntryExpiry;

impl moka::Expiry<String, Arc<Entry>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.remaining_lifetime())
    }
}

/// Bytes an entry is charged for: key, body and a fixed overhead.
const ENTRY_OVERHEAD: usize = 96;

/// The response store of one gateway (both levels), shared by its downstream clients.
#[derive(Debug)]
pub struct Store {
    /// The local level; `None` when `cache.max_bytes = 0`.
    local: Option<moka::future::Cache<String, Arc<Entry>>>,
    /// The shared level, when configured.
    redis: Option<RedisLevel>,
}

impl Store {
    /// A store as configured by `[cache]`, counting into `metrics`. Nothing is connected yet.
    pub fn new(config: &CacheConfig, metrics: &Metrics) -> Self {
        let local = (config.max_bytes > 0).then(|| {
            moka::future::Cache::builder()
                .max_capacity(config.max_bytes)
                .weigher(|key: &String, entry: &Arc<Entry>| {
                    u32::try_from(key.len() + entry.body.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                })
                .expire_after(EntryExpiry)
                .build()
        });
        let redis = config
            .redis
            .enabled
            .then(|| RedisLevel::new(&config.redis, metrics))
            .and_then(|r| {
                r.map_err(
                    |e| tracing::error!(error = %e, "cache Redis URL unusable; local cache only"),
                )
                .ok()
            });
        Self { local, redis }
    }

    /// A store that keeps nothing (coalescing only).
    pub fn disabled() -> Self {
        Self {
            local: None,
            redis: None,
        }
    }

    /// Whether anything can be stored.
    pub(crate) fn is_enabled(&self) -> bool {
        self.local.is_some() || self.redis.is_some()
    }

    /// The entry under `key`: the local level, else the shared level (copied into the local level).
    pub(crate) async fn get(&self, key: &str) -> Option<Arc<Entry>> {
        if let Some(local) = &self.local
            && let Some(entry) = local.get(key).await
        {
            return Some(entry);
        }
        let entry = Arc::new(self.redis.as_ref()?.get(key).await?);
        if entry.freshness() == Freshness::Expired {
            return None;
        }
        if let Some(local) = &self.local {
            local.insert(key.to_owned(), entry.clone()).await;
        }
        Some(entry)
    }

    /// Stores `entry` under `key` in both levels (the shared level in the background).
    pub(crate) async fn put(&self, key: String, entry: Arc<Entry>) {
        if let Some(redis) = &self.redis {
            redis.put_in_background(&key, &entry);
        }
        if let Some(local) = &self.local {
            local.insert(key, entry).await;
        }
    }

    /// Removes the entry under `key` from both levels (the shared level awaited, within its timeout), so the
    /// next read, on any instance, fetches anew.
    pub(crate) async fn remove(&self, key: &str) {
        if let Some(local) = &self.local {
            local.invalidate(key).await;
        }
        if let Some(redis) = &self.redis {
            redis.remove(key).await;
        }
    }

    /// Entries in the local level (approximate; for tests and diagnostics).
    pub fn local_entries(&self) -> u64 {
        self.local.as_ref().map_or(0, |l| l.entry_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry is fresh, then revalidate-stale, then error-only stale, then expired.
    #[test]
    fn freshness_windows() {
        let mut e = Entry::new(
            Bytes::from_static(b"x"),
            Duration::from_secs(10),
            Duration::from_secs(5),
            Duration::from_secs(20),
            false,
        );
        assert!(matches!(e.freshness(), Freshness::Fresh(d) if d <= Duration::from_secs(10)));
        let back = |s| SystemTime::now() - Duration::from_secs(s);
        e.stored_at = back(12);
        assert_eq!(e.freshness(), Freshness::Revalidate);
        e.stored_at = back(20);
        assert_eq!(e.freshness(), Freshness::IfError);
        e.stored_at = back(31);
        assert_eq!(e.freshness(), Freshness::Expired);
        assert_eq!(e.lifetime(), Duration::from_secs(30));
        assert!(e.start_refresh());
        assert!(!e.start_refresh());
    }

    /// The local level is bounded by bytes: far more bytes than the bound are never all kept.
    #[tokio::test]
    async fn bounded_by_bytes() {
        let config = CacheConfig {
            max_bytes: 64 * 1024,
            ..Default::default()
        };
        let store = Store::new(&config, &Metrics::default());
        for i in 0..64 {
            let entry = Entry::new(
                Bytes::from(vec![b'x'; 8 * 1024]),
                Duration::from_secs(60),
                Duration::ZERO,
                Duration::ZERO,
                false,
            );
            store.put(format!("k{i}"), Arc::new(entry)).await;
        }
        if let Some(local) = &store.local {
            local.run_pending_tasks().await;
            assert!(
                local.weighted_size() <= 64 * 1024,
                "{}",
                local.weighted_size()
            );
            assert!(local.entry_count() < 10, "{}", local.entry_count());
        }
    }
}

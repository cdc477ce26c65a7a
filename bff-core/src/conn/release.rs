//! Freed connection state handed back to the OS: parking drops hyper's per-connection state, but an allocator
//! such as mimalloc returns the freed pages only on later allocator activity, which an idle gateway does not
//! have. The gateway binary registers its allocator's collect function ([`set_collector`]); each park asks
//! for one collection ([`collect_soon`]), run once per burst of parks, [`BURST`] after the burst began.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long after the first park of a burst the collection runs (parks during it join the same one).
pub const BURST: Duration = Duration::from_millis(200);

/// One collect function and whether a collection is already scheduled.
#[derive(Debug)]
pub struct Collector {
    collect: fn(),
    pending: AtomicBool,
}

impl Collector {
    /// A collector calling `collect`.
    pub const fn new(collect: fn()) -> Self {
        Self {
            collect,
            pending: AtomicBool::new(false),
        }
    }

    /// Schedules one collection [`BURST`] from now on the current tokio runtime, unless one is already
    /// scheduled; outside a runtime, nothing.
    pub fn collect_soon(&'static self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        runtime.spawn(async move {
            tokio::time::sleep(BURST).await;
            self.pending.store(false, Ordering::Release);
            (self.collect)();
        });
    }
}

/// The process's collector, set once by the gateway binary.
static COLLECTOR: OnceLock<Collector> = OnceLock::new();

/// Registers the allocator's collect function (the first registration wins). `bff_core::gateway_main!`
/// registers mimalloc's forced `mi_collect(true)`: it returns the pages the calling thread's heap (and any
/// abandoned one) no longer uses at once, instead of on later allocator activity; with several worker threads
/// a collection reaches the heap of the thread it runs on. At most one runs per [`BURST`].
pub fn set_collector(collect: fn()) {
    let _ = COLLECTOR.set(Collector::new(collect));
}

/// Asks for a collection after a connection released its state (nothing without a registered collector).
pub fn collect_soon() {
    if let Some(collector) = COLLECTOR.get() {
        collector.collect_soon();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    static CALLS: AtomicUsize = AtomicUsize::new(0);
    static COUNTING: Collector = Collector::new(|| {
        CALLS.fetch_add(1, Ordering::SeqCst);
    });

    /// A burst of requests is one collection, run after [`BURST`]; the next burst is another.
    #[tokio::test(start_paused = true)]
    async fn one_collection_per_burst() {
        for _ in 0..100 {
            COUNTING.collect_soon();
        }
        tokio::time::sleep(BURST / 2).await;
        assert_eq!(CALLS.load(Ordering::SeqCst), 0, "not before the burst ends");
        tokio::time::sleep(BURST).await;
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
        COUNTING.collect_soon();
        COUNTING.collect_soon();
        tokio::time::sleep(BURST * 2).await;
        assert_eq!(CALLS.load(Ordering::SeqCst), 2);
    }

    /// Outside a runtime nothing is scheduled, and nothing panics.
    #[test]
    fn outside_a_runtime_nothing_happens() {
        static NEVER: Collector = Collector::new(|| panic!("not called"));
        NEVER.collect_soon();
        assert!(!NEVER.pending.load(Ordering::SeqCst));
    }
}

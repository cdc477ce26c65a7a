//! Per-caller limits of long-lived things (event streams, WebSocket connections): at most `max` open at once
//! per subject, each counted by a [`Slot`] until the slot is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Open things per caller (`sub`), bounded by `max` each.
#[derive(Debug)]
pub struct PerUser {
    max: usize,
    open: Mutex<HashMap<String, usize>>,
}

/// One admitted thing of a caller: counted until dropped.
#[derive(Debug)]
pub struct Slot {
    counts: Arc<PerUser>,
    user: String,
}

impl PerUser {
    /// At most `max` open at once per caller.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// One more slot of `subject`, or `None` when the caller has `max` open already.
    pub fn admit(self: &Arc<Self>, subject: &str) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(subject.to_owned()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            counts: self.clone(),
            user: subject.to_owned(),
        })
    }

    /// Open slots of the caller `subject`.
    pub fn open_of(&self, subject: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(subject).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `max` per caller, callers counted apart, a dropped slot frees its place (and an idle caller's entry).
    #[test]
    fn bounded_per_caller_and_freed_on_drop() {
        let counts = PerUser::new(2);
        let a1 = counts.admit("a").expect("first");
        let _a2 = counts.admit("a").expect("second");
        assert!(counts.admit("a").is_none());
        let b = counts.admit("b").expect("another caller");
        assert_eq!((counts.open_of("a"), counts.open_of("b")), (2, 1));
        drop(a1);
        assert!(counts.admit("a").is_some());
        drop(b);
        assert_eq!(counts.open_of("b"), 0);
        assert!(!counts.open.lock().unwrap().contains_key("b"));
    }
}

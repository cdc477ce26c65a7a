//! The passes of a streamed screen over one shared memo of part answers. The *driver* pass runs the handler
//! for real: each part calls its downstream and its answer (or failure) is kept in the [`Memo`]. A *render*
//! pass runs the same handler again without calling anything: a required part waits for the driver's
//! answer, an optional part answers from the memo when the pass includes it and is absent (`None`, as if it
//! had failed) otherwise. Parts are matched by name and, for a name used several times, by the order in
//! which they start.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::error::BffError;

/// A part's key in the memo: its name and which start of that name it is (0 for the first).
pub(crate) type PartKey = (&'static str, u32);

/// One finished part of the driver pass.
#[derive(Clone)]
pub(crate) struct Entry {
    /// The part.
    pub(crate) key: PartKey,
    /// Whether the part is optional.
    pub(crate) optional: bool,
    /// Its answer as the handler sees it, `None` when it failed (an optional part: marked partial).
    pub(crate) value: Option<Arc<dyn Any + Send + Sync>>,
}

/// The answers of the driver pass, in order of completion, shared with the render passes.
pub(crate) struct Memo {
    entries: Mutex<Vec<Entry>>,
    /// (entries so far, whether the driver pass has finished): render passes and the stream wait on it.
    progress: watch::Sender<(usize, bool)>,
}

impl Memo {
    /// An empty memo.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            entries: Mutex::new(Vec::new()),
            progress: watch::Sender::new((0, false)),
        })
    }

    fn record(&self, entry: Entry) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.push(entry);
        let n = entries.len();
        drop(entries);
        self.progress.send_modify(|p| p.0 = n);
    }

    /// Marks the driver pass finished: no more entries will come.
    pub(crate) fn finish(&self) {
        self.progress.send_modify(|p| p.1 = true);
    }

    /// The entries from index `from` on.
    pub(crate) fn since(&self, from: usize) -> Vec<Entry> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(from..)
            .map(<[Entry]>::to_vec)
            .unwrap_or_default()
    }

    /// Follows the memo's progress.
    pub(crate) fn subscribe(&self) -> watch::Receiver<(usize, bool)> {
        self.progress.subscribe()
    }

    fn find(&self, key: PartKey) -> Option<Entry> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.iter().find(|e| e.key == key).cloned()
    }

    /// The entry of `key`, once the driver has it; `None` when the driver finished without it.
    async fn wait(&self, key: PartKey) -> Option<Entry> {
        let mut progress = self.subscribe();
        loop {
            if let Some(entry) = self.find(key) {
                return Some(entry);
            }
            if progress.borrow_and_update().1 {
                return self.find(key);
            }
            if progress.changed().await.is_err() {
                return self.find(key);
            }
        }
    }
}

/// What a pass does with its parts.
pub(crate) enum Role {
    /// Runs them and records their answers.
    Driver,
    /// Answers them from the memo: required parts always (waiting for them), optional parts only when
    /// listed here.
    Render(Vec<PartKey>),
}

/// One run of the screen's handler (see the module documentation).
pub(crate) struct Pass {
    memo: Arc<Memo>,
    role: Role,
    /// How many parts of each name started so far in this pass.
    started: Mutex<HashMap<&'static str, u32>>,
}

impl std::fmt::Debug for Pass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let role = match self.role {
            Role::Driver => "driver",
            Role::Render(_) => "render",
        };
        f.debug_struct("Pass").field("role", &role).finish()
    }
}

impl Pass {
    /// A pass of `role` over `memo`.
    pub(crate) fn new(memo: Arc<Memo>, role: Role) -> Self {
        Self {
            memo,
            role,
            started: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this pass only renders (calls nothing downstream).
    pub(crate) fn renders(&self) -> bool {
        matches!(self.role, Role::Render(_))
    }

    fn key(&self, part: &'static str) -> PartKey {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let n = started.entry(part).or_insert(0);
        let key = (part, *n);
        *n += 1;
        key
    }

    /// The required part `part`, whose real work is `run` (only the driver awaits it).
    pub(crate) async fn required<T: Clone + Send + Sync + 'static>(
        &self,
        part: &'static str,
        run: impl Future<Output = Result<T, BffError>>,
    ) -> Result<T, BffError> {
        let key = self.key(part);
        if let Role::Driver = self.role {
            let result = run.await;
            let value = result.as_ref().ok().map(|v| share(v.clone()));
            self.memo.record(Entry {
                key,
                optional: false,
                value,
            });
            return result;
        }
        // A render pass: the driver's answer; its failure fails this rendering (the driver's own answer,
        // the problem, is what the client gets).
        let entry = self.memo.wait(key).await;
        entry
            .and_then(|e| e.value)
            .and_then(|v| v.downcast_ref::<T>().cloned())
            .ok_or(BffError::Internal)
    }

    /// The optional part `part`, whose real work is `run` (only the driver awaits it).
    pub(crate) async fn optional<T: Clone + Send + Sync + 'static>(
        &self,
        part: &'static str,
        run: impl Future<Output = Result<Option<T>, BffError>>,
    ) -> Result<Option<T>, BffError> {
        let key = self.key(part);
        match &self.role {
            Role::Driver => {
                let result = run.await;
                let value = match &result {
                    Ok(Some(v)) => Some(share(v.clone())),
                    _ => None,
                };
                self.memo.record(Entry {
                    key,
                    optional: true,
                    value,
                });
                result
            }
            Role::Render(included) if included.contains(&key) => Ok(self
                .memo
                .find(key)
                .and_then(|e| e.value)
                .and_then(|v| v.downcast_ref::<T>().cloned())),
            Role::Render(_) => Ok(None),
        }
    }
}

fn share<T: Send + Sync + 'static>(value: T) -> Arc<dyn Any + Send + Sync> {
    Arc::new(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn never<T>() -> Result<T, BffError> {
        panic!("a render pass runs nothing")
    }

    /// A render pass answers required parts from the driver's memo and optional ones only when included.
    #[tokio::test]
    async fn render_reads_the_drivers_answers() {
        let memo = Memo::new();
        let driver = Pass::new(memo.clone(), Role::Driver);
        let a = driver.required("a", async { Ok(1u32) }).await;
        let b = driver.optional("b", async { Ok(Some(2u32)) }).await;
        let c = driver.optional::<u32>("c", async { Ok(None) }).await;
        assert_eq!((a, b, c), (Ok(1), Ok(Some(2)), Ok(None)));
        memo.finish();
        let first = Pass::new(memo.clone(), Role::Render(vec![]));
        assert_eq!(first.required::<u32>("a", never()).await, Ok(1));
        assert_eq!(first.optional::<u32>("b", never()).await, Ok(None));
        let with_b = Pass::new(memo.clone(), Role::Render(vec![("b", 0)]));
        assert_eq!(with_b.optional::<u32>("b", never()).await, Ok(Some(2)));
        // A part the driver never ran fails the rendering instead of waiting forever.
        assert_eq!(
            with_b.required::<u32>("z", never()).await,
            Err(BffError::Internal)
        );
    }
}

//! [`Gated`]: a future polled only after it asked to be woken, so the rare-event futures a connection task
//! waits on beside its hyper connection (drain signal, stalled reader, park tick) cost nothing on the several
//! wake-ups of every request, which are all the connection's own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

/// `inner`, polled on its first poll and afterwards only when a waker it registered was woken; the task is
/// woken through it as usual.
pub struct Gated<F> {
    inner: Pin<Box<F>>,
    flag: WakeFlag,
}

/// A waker that records that it was woken, then wakes the task registered last: what lets a future (a
/// [`Gated`] one, a downstream connection driven by its call) be polled only when one of its own wakers
/// fired, not on every wake-up of the task that holds it. Starts woken (a future is polled once to register).
#[derive(Debug)]
pub(crate) struct WakeFlag {
    gate: Arc<Gate>,
    waker: Waker,
}

/// What [`WakeFlag`]'s waker points to.
#[derive(Debug)]
struct Gate {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl WakeFlag {
    /// A flag that reads woken once.
    pub(crate) fn new() -> Self {
        let gate = Arc::new(Gate {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Self {
            waker: Waker::from(gate.clone()),
            gate,
        }
    }

    /// Whether the flag's waker was woken since the last call (clearing it); a wake-up from now on wakes
    /// `task`.
    pub(crate) fn take(&self, task: &Waker) -> bool {
        self.gate.task.register(task);
        self.take_unregistered()
    }

    /// Whether the flag's waker was woken since the last call (clearing it), leaving the task to wake as it
    /// is.
    pub(crate) fn take_unregistered(&self) -> bool {
        self.gate.woken.swap(false, Ordering::AcqRel)
    }

    /// From now on a wake-up is only recorded, waking no task (until the next [`Self::take`]).
    pub(crate) fn wake_no_task(&self) {
        self.gate.task.register(Waker::noop());
    }

    /// The waker to poll the gated future with.
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }
}

impl<F: Future> Gated<F> {
    /// Gates `inner` (boxed once: it is polled through its own waker).
    pub fn new(inner: F) -> Self {
        Self {
            inner: Box::pin(inner),
            flag: WakeFlag::new(),
        }
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        if !this.flag.take(cx.waker()) {
            return Poll::Pending;
        }
        this.inner
            .as_mut()
            .poll(&mut Context::from_waker(this.flag.waker()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::Notify;

    use super::*;

    /// Counts the task's wake-ups.
    #[derive(Default)]
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts its polls; ready once notified.
    struct Counted<'a> {
        polls: &'a AtomicUsize,
        notified: Pin<Box<tokio::sync::futures::Notified<'a>>>,
    }

    impl Future for Counted<'_> {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            self.notified.as_mut().poll(cx)
        }
    }

    /// A counted future waiting for `notify`.
    fn counted<'a>(polls: &'a AtomicUsize, notify: &'a Notify) -> Counted<'a> {
        Counted {
            polls,
            notified: Box::pin(notify.notified()),
        }
    }

    /// Polled once to register, not on the task's other wake-ups, and again when its own event wakes the
    /// task.
    #[test]
    fn polls_only_when_woken() {
        let (polls, notify, task) = (
            AtomicUsize::new(0),
            Notify::new(),
            Arc::new(Task::default()),
        );
        let mut gated = std::pin::pin!(Gated::new(counted(&polls, &notify)));
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        for _ in 0..10 {
            assert!(gated.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::Relaxed), 1);
        assert_eq!(task.0.load(Ordering::Relaxed), 0);
        notify.notify_waiters();
        assert_eq!(
            task.0.load(Ordering::Relaxed),
            1,
            "the task is woken through the gate"
        );
        assert!(gated.as_mut().poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }

    /// A task that moved to another waker is still the one woken.
    #[test]
    fn wakes_the_latest_task() {
        let (polls, notify) = (AtomicUsize::new(0), Notify::new());
        let (first, second) = (Arc::new(Task::default()), Arc::new(Task::default()));
        let mut gated = std::pin::pin!(Gated::new(counted(&polls, &notify)));
        let waker = Waker::from(first.clone());
        assert!(
            gated
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let waker = Waker::from(second.clone());
        assert!(
            gated
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        notify.notify_waiters();
        assert_eq!(first.0.load(Ordering::Relaxed), 0);
        assert_eq!(second.0.load(Ordering::Relaxed), 1);
    }
}

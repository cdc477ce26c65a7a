//! The circuit breaker: closed (calls pass, failures counted) → open (calls fail fast for a while) →
//! half-open (a few probes pass) → closed on a probe's success, open again on its failure. Used per downstream
//! (gating every attempt) and per instance (passive health: an open instance breaker means "ejected").
//! Every state change is logged.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Number of slots of the failure-rate window.
const SLOTS: usize = 10;

/// When the breaker opens, how long it stays open and how many probes it admits.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerPolicy {
    /// Open after this many consecutive failures; `0` = off.
    pub consecutive_failures: u32,
    /// Open when this fraction of the calls in the window failed (`> 1.0` = off).
    pub failure_rate: f64,
    /// Length of the failure-rate window.
    pub window: Duration,
    /// Fewest calls in the window before the rate is judged.
    pub min_calls: u32,
    /// How long the breaker stays open.
    pub open_for: Duration,
    /// Probes admitted at once while half-open.
    pub half_open_probes: u32,
}

/// What a finished call tells the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The downstream answered (2xx, or a 4xx that is the caller's business).
    Success,
    /// The downstream failed: unreachable, reset, timed out, 5xx.
    Failure,
    /// Says nothing about the downstream (the request's own budget ran out, the call was cancelled).
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { probes_in_flight: u32 },
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    epoch: u64,
    ok: u32,
    failed: u32,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    consecutive: u32,
    slots: [Slot; SLOTS],
}

/// One circuit breaker. Cheap when closed: one uncontended lock per call.
#[derive(Debug)]
pub struct Breaker {
    /// Names the breaker in logs, e.g. `downstream users` or `instance 2 of users`.
    label: String,
    policy: BreakerPolicy,
    /// Start of the window clock.
    origin: Instant,
    state: Mutex<State>,
    /// Where state changes are reported (`bff_circuit_state`, `bff_circuit_transitions_total`), if anywhere.
    report: Option<StateReport>,
}

/// The metrics a breaker reports its state changes to.
#[derive(Debug, Clone)]
pub struct StateReport {
    /// Set to 0 (closed), 1 (open) or 2 (half-open).
    pub state: prometheus_client::metrics::gauge::Gauge,
    /// Incremented on entering closed, open, half-open (in that order).
    pub entered: [crate::metrics::Counter; 3],
}

impl StateReport {
    fn enter(&self, phase: usize) {
        self.state.set(phase as i64);
        self.entered[phase].inc();
    }
}

/// Admission to call through a breaker; report the result with [`Permit::record`]. Dropping it unrecorded
/// (a cancelled call) counts as [`Outcome::Ignore`] and frees its probe slot.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    recorded: bool,
}

impl Permit<'_> {
    /// Reports how the call went.
    pub fn record(self, outcome: Outcome) {
        self.record_at(outcome, Instant::now());
    }

    /// Reports how the call went, as of `now` (a caller that has just read the clock passes its reading).
    pub fn record_at(mut self, outcome: Outcome, now: Instant) {
        self.recorded = true;
        self.breaker.finish(self.probe, outcome, now);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker
                .finish(self.probe, Outcome::Ignore, Instant::now());
        }
    }
}

impl Breaker {
    /// A closed breaker named `label` in logs.
    pub fn new(label: impl Into<String>, policy: BreakerPolicy) -> Self {
        Self {
            label: label.into(),
            policy,
            origin: Instant::now(),
            state: Mutex::new(State {
                phase: Phase::Closed,
                consecutive: 0,
                slots: [Slot::default(); SLOTS],
            }),
            report: None,
        }
    }

    /// The breaker, reporting its state changes to `report`.
    pub fn reporting(mut self, report: StateReport) -> Self {
        report.state.set(0);
        self.report = Some(report);
        self
    }

    fn reported(&self, phase: usize) {
        if let Some(report) = &self.report {
            report.enter(phase);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a call, or says how long until the breaker admits again (it is open or its probes are out).
    pub fn try_acquire(&self) -> Result<Permit<'_>, Duration> {
        let mut state = self.lock();
        let probe = match state.phase {
            Phase::Closed => false,
            // The clock is read only here, once: a closed breaker admits without it.
            Phase::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(until - now);
                }
                // Transition open → half-open: the cool-down is over; this call is the first probe.
                state.phase = Phase::HalfOpen {
                    probes_in_flight: 1,
                };
                tracing::info!(breaker = %self.label, state = "half_open", "circuit breaker state changed");
                self.reported(2);
                true
            }
            Phase::HalfOpen { probes_in_flight } => {
                if probes_in_flight >= self.policy.half_open_probes {
                    // The probes are out; callers come back after about one probe's time.
                    return Err(Duration::from_secs(1));
                }
                state.phase = Phase::HalfOpen {
                    probes_in_flight: probes_in_flight + 1,
                };
                true
            }
        };
        Ok(Permit {
            breaker: self,
            probe,
            recorded: false,
        })
    }

    /// Whether the breaker is open and still cooling down (an ejected instance gets no traffic).
    pub fn is_open(&self) -> bool {
        matches!(self.lock().phase, Phase::Open { until } if Instant::now() < until)
    }

    /// Reports the outcome of a call that was not gated by [`Breaker::try_acquire`] (instance health): once
    /// the open period is over, the next outcome decides: success closes, failure opens again.
    pub fn observe(&self, outcome: Outcome) {
        self.observe_at(outcome, Instant::now());
    }

    /// [`Breaker::observe`] as of `now`.
    pub fn observe_at(&self, outcome: Outcome, now: Instant) {
        let mut state = self.lock();
        match state.phase {
            Phase::Open { until } if now < until => {}
            Phase::Open { .. } | Phase::HalfOpen { .. } => match outcome {
                Outcome::Success => self.close(&mut state, "recovered"),
                Outcome::Failure => self.open(&mut state, now, "still failing"),
                Outcome::Ignore => {}
            },
            Phase::Closed => self.count(&mut state, now, outcome),
        }
    }

    /// Opens the breaker now, or keeps it open for another full period (an active health check failed).
    pub fn trip(&self, reason: &'static str) {
        let now = Instant::now();
        let mut state = self.lock();
        if matches!(state.phase, Phase::Open { until } if now < until) {
            state.phase = Phase::Open {
                until: now + self.policy.open_for,
            };
        } else {
            self.open(&mut state, now, reason);
        }
    }

    /// Closes the breaker now (an active health check succeeded), unless it already is closed.
    pub fn reset(&self, reason: &'static str) {
        let mut state = self.lock();
        if state.phase != Phase::Closed {
            self.close(&mut state, reason);
        }
    }

    fn finish(&self, probe: bool, outcome: Outcome, now: Instant) {
        let mut state = self.lock();
        match (state.phase, probe) {
            (Phase::HalfOpen { probes_in_flight }, true) => match outcome {
                // Transition half-open → closed: a probe got through.
                Outcome::Success => self.close(&mut state, "probe succeeded"),
                // Transition half-open → open: the downstream is still failing.
                Outcome::Failure => self.open(&mut state, now, "probe failed"),
                Outcome::Ignore => {
                    state.phase = Phase::HalfOpen {
                        probes_in_flight: probes_in_flight.saturating_sub(1),
                    };
                }
            },
            (Phase::Closed, _) => self.count(&mut state, now, outcome),
            // A call admitted before the breaker opened (or a late probe) says nothing about now.
            _ => {}
        }
    }

    /// Counts an outcome while closed; opens on too many consecutive failures or too high a failure rate.
    fn count(&self, state: &mut State, now: Instant, outcome: Outcome) {
        let slot_len = (self.policy.window / SLOTS as u32).max(Duration::from_millis(1));
        let epoch = (now.duration_since(self.origin).as_nanos() / slot_len.as_nanos()) as u64;
        let slot = &mut state.slots[(epoch % SLOTS as u64) as usize];
        if slot.epoch != epoch {
            *slot = Slot {
                epoch,
                ..Slot::default()
            };
        }
        match outcome {
            Outcome::Success => {
                slot.ok += 1;
                state.consecutive = 0;
            }
            Outcome::Failure => {
                slot.failed += 1;
                state.consecutive += 1;
            }
            Outcome::Ignore => return,
        }
        if outcome != Outcome::Failure {
            return;
        }
        let p = &self.policy;
        if p.consecutive_failures > 0 && state.consecutive >= p.consecutive_failures {
            // Transition closed → open: a run of failures.
            self.open(state, now, "consecutive failures");
            return;
        }
        let live = state
            .slots
            .iter()
            .filter(|s| s.epoch + SLOTS as u64 > epoch);
        let (ok, failed) = live.fold((0u64, 0u64), |(o, f), s| {
            (o + u64::from(s.ok), f + u64::from(s.failed))
        });
        let total = ok + failed;
        if total >= u64::from(p.min_calls) && failed as f64 >= p.failure_rate * total as f64 {
            // Transition closed → open: too high a failure rate over the window.
            self.open(state, now, "failure rate");
        }
    }

    fn open(&self, state: &mut State, now: Instant, reason: &'static str) {
        state.phase = Phase::Open {
            until: now + self.policy.open_for,
        };
        tracing::warn!(
            breaker = %self.label,
            state = "open",
            reason,
            open_ms = self.policy.open_for.as_millis() as u64,
            "circuit breaker state changed"
        );
        self.reported(1);
    }

    fn close(&self, state: &mut State, reason: &'static str) {
        state.phase = Phase::Closed;
        state.consecutive = 0;
        state.slots = [Slot::default(); SLOTS];
        tracing::info!(breaker = %self.label, state = "closed", reason, "circuit breaker state changed");
        self.reported(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            consecutive_failures: 3,
            failure_rate: 0.5,
            window: Duration::from_secs(10),
            min_calls: 10,
            open_for: Duration::from_secs(5),
            half_open_probes: 1,
        }
    }

    fn call(b: &Breaker, outcome: Outcome) -> bool {
        match b.try_acquire() {
            Ok(p) => {
                p.record(outcome);
                true
            }
            Err(_) => false,
        }
    }

    /// Consecutive failures open it; it fails fast while open, admits one probe after the cool-down, and a
    /// successful probe closes it.
    #[tokio::test(start_paused = true)]
    async fn opens_probes_and_closes() {
        let b = Breaker::new("t", policy());
        assert!(call(&b, Outcome::Failure));
        assert!(call(&b, Outcome::Success)); // resets the run
        for _ in 0..3 {
            assert!(call(&b, Outcome::Failure));
        }
        let wait = b.try_acquire().unwrap_err();
        assert!(wait <= Duration::from_secs(5) && wait > Duration::from_secs(4));
        tokio::time::advance(Duration::from_secs(5)).await;
        let probe = b.try_acquire().expect("probe admitted");
        assert!(b.try_acquire().is_err(), "only one probe at a time");
        probe.record(Outcome::Success);
        assert!(call(&b, Outcome::Success), "closed again");
    }

    /// A failed probe reopens it for another cool-down; a cancelled probe frees its slot.
    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens_and_cancelled_probe_frees_slot() {
        let b = Breaker::new("t", policy());
        for _ in 0..3 {
            call(&b, Outcome::Failure);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(b.try_acquire().expect("probe"));
        let probe = b.try_acquire().expect("slot freed by the cancelled probe");
        probe.record(Outcome::Failure);
        assert!(b.try_acquire().is_err(), "open again");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.try_acquire().is_ok(), "probe after the second cool-down");
    }

    /// A failure rate at or above the threshold opens it once `min_calls` are seen, even without a run.
    #[tokio::test(start_paused = true)]
    async fn failure_rate_opens() {
        let b = Breaker::new("t", policy());
        for i in 0..9 {
            call(
                &b,
                if i % 2 == 0 {
                    Outcome::Success
                } else {
                    Outcome::Failure
                },
            );
        }
        assert!(b.try_acquire().is_ok(), "9 calls: below min_calls");
        call(&b, Outcome::Failure); // 10 calls, 5 failed
        assert!(b.try_acquire().is_err());
    }

    /// Old failures leave the window.
    #[tokio::test(start_paused = true)]
    async fn window_forgets() {
        let b = Breaker::new("t", policy());
        for i in 0..8 {
            call(
                &b,
                if i % 2 == 0 {
                    Outcome::Success
                } else {
                    Outcome::Failure
                },
            );
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        call(&b, Outcome::Success);
        call(&b, Outcome::Failure);
        assert!(b.try_acquire().is_ok(), "only 2 calls in the window");
    }

    /// Instance health: observe() ejects after the run, and the first outcome after the ejection decides.
    #[tokio::test(start_paused = true)]
    async fn observed_ejection() {
        let b = Breaker::new("t", policy());
        for _ in 0..3 {
            b.observe(Outcome::Failure);
        }
        assert!(b.is_open());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!b.is_open());
        b.observe(Outcome::Failure);
        assert!(b.is_open(), "ejected again");
        tokio::time::advance(Duration::from_secs(5)).await;
        b.observe(Outcome::Success);
        assert!(!b.is_open());
        b.trip("check failed");
        assert!(b.is_open());
        b.reset("check passed");
        assert!(!b.is_open());
    }
}

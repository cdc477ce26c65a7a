//! The per-downstream metric handles, resolved once when the downstream client is built so that recording
//! an attempt is a few atomic operations (no label hashing on the call path).

use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;

use super::{Counter, DownstreamLabels, DownstreamOutcome, Metrics, TransitionLabels, one};
use crate::resilience::breaker::StateReport;

/// Every outcome, in the order of [`DownstreamMetrics::outcomes`].
const OUTCOMES: [DownstreamOutcome; 10] = [
    DownstreamOutcome::Ok,
    DownstreamOutcome::NotFound,
    DownstreamOutcome::ErrorStatus,
    DownstreamOutcome::Timeout,
    DownstreamOutcome::Deadline,
    DownstreamOutcome::Connect,
    DownstreamOutcome::Reset,
    DownstreamOutcome::TooLarge,
    DownstreamOutcome::BreakerOpen,
    DownstreamOutcome::BulkheadFull,
];

/// The metrics of one downstream's attempts.
#[derive(Debug, Clone)]
pub(crate) struct DownstreamMetrics {
    outcomes: [Counter; 10],
    duration: Histogram,
    retries: Counter,
    hedges: Counter,
}

impl DownstreamMetrics {
    /// The handles of the downstream `name` in `metrics` (its series exist from the start, at zero).
    pub(crate) fn new(metrics: &Metrics, name: &str) -> Self {
        let label = one("downstream", name);
        Self {
            outcomes: OUTCOMES.map(|outcome| {
                metrics
                    .downstream_requests
                    .get_or_create_owned(&DownstreamLabels {
                        downstream: name.to_owned(),
                        outcome,
                    })
            }),
            duration: metrics.downstream_duration.get_or_create_owned(&label),
            retries: metrics.retries.get_or_create_owned(&label),
            hedges: metrics.hedges.get_or_create_owned(&label),
        }
    }

    /// Records one attempt: its outcome and, when it was sent, its latency.
    pub(crate) fn attempt(&self, outcome: DownstreamOutcome, elapsed: Duration) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[i].inc();
        }
        if outcome.was_sent() {
            self.duration.observe(elapsed.as_secs_f64());
        }
    }

    /// Records a retry.
    pub(crate) fn retry(&self) {
        self.retries.inc();
    }

    /// Records a hedged second attempt.
    pub(crate) fn hedge(&self) {
        self.hedges.inc();
    }
}

/// Where the circuit breaker of the downstream `name` reports its state.
pub(crate) fn breaker_report(metrics: &Metrics, name: &str) -> StateReport {
    let to = |to: &'static str| {
        metrics
            .circuit_transitions
            .get_or_create_owned(&TransitionLabels {
                downstream: name.to_owned(),
                to,
            })
    };
    StateReport {
        state: metrics
            .circuit_state
            .get_or_create_owned(&one("downstream", name)),
        entered: [to("closed"), to("open"), to("half_open")],
    }
}

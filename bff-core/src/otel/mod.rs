//! OpenTelemetry trace export over OTLP/HTTP (protobuf), off by default (`[telemetry.otlp]`).
//!
//! One span per client request (kind server), one per composed part (internal) and one per downstream
//! attempt (client; retries and hedges are separate spans), all in the W3C trace the edge continued or
//! started (see [`crate::trace`]): the request span's id is the one the edge reports, each attempt span's
//! id is the parent id in that attempt's `traceparent`, so a downstream's own spans join the same tree.
//!
//! Sampling is parent-based: a client `traceparent` decides (its sampled flag is honoured); a new trace is
//! sampled with `sample_ratio`, decided on its trace id (as OpenTelemetry's `TraceIdRatioBased`), and the
//! decision is propagated downstream in the flags. An unsampled request records nothing.
//!
//! Export never slows a request: finished spans go into a bounded queue with a non-blocking send (a full
//! queue drops the span and counts it in `bff_trace_spans_dropped_total`); one background task batches and
//! posts them, each post bounded by `export_timeout_ms` (see [`export`]).
//!
//! Spans are recorded here, not through `tracing-opentelemetry`: the official SDK and exporter would add
//! ~15 crates (tonic among them, for the protobuf types), keep one process-wide tracer (a gateway's tracer
//! is per build here, so a reload or a test's second gateway gets its own endpoint and ratio), and expose
//! no count of dropped spans. The wire format is the same OTLP, with `prost` messages ([`proto`]).

mod export;
pub mod proto;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;
use crate::metrics::{Counter, Metrics};
use crate::trace::TraceContext;

pub use export::Exporter;

/// `[telemetry.otlp]`: where and how much to export. Off while `endpoint` is unset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// OTLP/HTTP base URL of the collector, e.g. `http://127.0.0.1:4318`; spans are posted (protobuf) to
    /// `<endpoint>/v1/traces`. Unset = no trace export.
    pub endpoint: Option<String>,
    /// Share of new traces (no client `traceparent`) recorded, 0.0–1.0; a client's sampled flag decides for
    /// the traces it continues.
    pub sample_ratio: f64,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Finished spans waiting for export at most; beyond, spans are dropped and counted.
    pub queue_size: usize,
    /// Spans per export request at most.
    pub batch_size: usize,
    /// Longest wait before a partial batch is exported, in milliseconds.
    pub export_interval_ms: u64,
    /// Longest time one export request may take (connect included), in milliseconds; also the bound of
    /// the final flush at shutdown.
    pub export_timeout_ms: u64,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            sample_ratio: 1.0,
            service_name: "bff".into(),
            queue_size: 2048,
            batch_size: 512,
            export_interval_ms: 1000,
            export_timeout_ms: 2000,
        }
    }
}

impl OtlpConfig {
    /// Checks the values, naming the bad key under `prefix` (`telemetry.otlp`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        if let Some(endpoint) = &self.endpoint {
            match url::Url::parse(endpoint) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.host().is_some()
                        && u.query().is_none() => {}
                _ => {
                    return Err(ConfigError::invalid(
                        key("endpoint"),
                        "must be an http:// or https:// URL with a host and no query",
                    ));
                }
            }
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(ConfigError::invalid(
                key("sample_ratio"),
                "must be between 0.0 and 1.0",
            ));
        }
        if self.service_name.is_empty() || self.service_name.len() > 128 {
            return Err(ConfigError::invalid(
                key("service_name"),
                "must be 1 to 128 characters",
            ));
        }
        if !(1..=1_000_000).contains(&self.queue_size) {
            return Err(ConfigError::invalid(
                key("queue_size"),
                "must be between 1 and 1000000",
            ));
        }
        if self.batch_size == 0 || self.batch_size > self.queue_size {
            return Err(ConfigError::invalid(
                key("batch_size"),
                "must be between 1 and queue_size",
            ));
        }
        if !(1..=60_000).contains(&self.export_interval_ms) {
            return Err(ConfigError::invalid(
                key("export_interval_ms"),
                "must be between 1 and 60000",
            ));
        }
        if !(1..=60_000).contains(&self.export_timeout_ms) {
            return Err(ConfigError::invalid(
                key("export_timeout_ms"),
                "must be between 1 and 60000",
            ));
        }
        Ok(())
    }
}

/// The tracer of one gateway build: the sampling rule and the exporter's queue.
#[derive(Debug)]
pub struct Tracer {
    /// Traces whose id's lower 63 bits fall below this are sampled (`u64::MAX` = all, 0 = none).
    threshold: u64,
    exporter: Exporter,
}

impl Tracer {
    /// The tracer configured by `config`, exporting in a background task on the current Tokio runtime, or
    /// `None` when export is off or there is no runtime (e.g. `check`).
    pub fn new(config: &OtlpConfig, metrics: &Metrics) -> Option<Arc<Self>> {
        let endpoint = config.endpoint.as_deref()?;
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let exporter = Exporter::start(&runtime, endpoint, config, metrics)?;
        Some(Arc::new(Self {
            threshold: ratio_threshold(config.sample_ratio),
            exporter,
        }))
    }

    /// Decides whether the request with context `trace` is recorded, and sets its sampled flag accordingly
    /// when the trace starts here. `started` is the request's arrival (wall clock, ns since the epoch).
    pub(crate) fn sample(self: &Arc<Self>, trace: &mut TraceContext) -> Option<RequestSpans> {
        let (trace_id, span_id) = (trace.trace_id.0, trace.span_id);
        let sampled = match trace.parent_id {
            Some(_) => trace.flags & 1 == 1,
            None => {
                let sampled = (trace_id as u64 >> 1) < self.threshold;
                trace.flags = (trace.flags & !1) | u8::from(sampled);
                sampled
            }
        };
        sampled.then(|| RequestSpans {
            tracer: self.clone(),
            trace_id,
            request_span: span_id,
            parent: trace.parent_id.unwrap_or(0),
            started: now_ns(),
            attempts_under: None,
        })
    }

    /// Exports what is queued, waiting at most `bound` (for a graceful shutdown).
    pub async fn flush(&self, bound: Duration) {
        self.exporter.flush(bound).await;
    }

    fn emit(&self, span: SpanData) {
        self.exporter.send(span);
    }
}

/// The sampling threshold of `ratio` on 63 bits of the trace id.
fn ratio_threshold(ratio: f64) -> u64 {
    if ratio >= 1.0 {
        u64::MAX
    } else if ratio <= 0.0 {
        0
    } else {
        (ratio * (1u64 << 63) as f64) as u64
    }
}

/// Nanoseconds since the Unix epoch, now.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A new non-zero span id.
fn new_span_id() -> u64 {
    fastrand::u64(1..)
}

/// One attribute value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Attr {
    /// A fixed string.
    Static(&'static str),
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A flag.
    Bool(bool),
}

/// One finished span, as queued for export.
#[derive(Debug, Clone)]
pub(crate) struct SpanData {
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    /// 0 for a root span.
    pub(crate) parent: u64,
    pub(crate) name: String,
    pub(crate) kind: i32,
    pub(crate) start_ns: u64,
    pub(crate) end_ns: u64,
    pub(crate) attributes: Vec<(&'static str, Attr)>,
    /// Status error (5xx of the request, failed part or attempt).
    pub(crate) error: bool,
}

/// The recording of one sampled request: its trace, its own span and the tracer. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct RequestSpans {
    tracer: Arc<Tracer>,
    trace_id: u128,
    /// The request (server) span's id: the edge's span id of [`TraceContext`].
    request_span: u64,
    /// The client's span, parent of the request span (0 = a new trace).
    parent: u64,
    /// Arrival, ns since the epoch.
    started: u64,
    /// The parent of attempts made outside the part's task (a batch call): the part that opened it.
    attempts_under: Option<u64>,
}

/// What the edge knows of a finished request, for its span.
pub(crate) struct RequestEnd<'a> {
    /// Method.
    pub(crate) method: &'a str,
    /// Route template, `None` when no route matched.
    pub(crate) route: Option<&'a str>,
    /// Final status.
    pub(crate) status: u16,
}

impl RequestSpans {
    /// Records the request's server span (the last span of a request).
    pub(crate) fn request(&self, end: RequestEnd<'_>) {
        let mut attributes = vec![
            ("http.request.method", Attr::Str(end.method.to_owned())),
            ("http.response.status_code", Attr::Int(end.status.into())),
        ];
        let name = match end.route {
            Some(route) => {
                attributes.push(("http.route", Attr::Str(route.to_owned())));
                format!("{} {route}", end.method)
            }
            None => end.method.to_owned(),
        };
        let error = end.status >= 500;
        if error {
            attributes.push(("error.type", Attr::Str(end.status.to_string())));
        }
        self.tracer.emit(SpanData {
            trace_id: self.trace_id,
            span_id: self.request_span,
            parent: self.parent,
            name,
            kind: proto::span_kind::SERVER,
            start_ns: self.started,
            end_ns: now_ns(),
            attributes,
            error,
        });
    }

    /// Opens the span of the composed part `name` (recorded when the guard is finished or dropped).
    pub(crate) fn part(&self, name: &'static str) -> PartGuard {
        PartGuard {
            spans: self.clone(),
            name,
            id: new_span_id(),
            start_ns: now_ns(),
            done: false,
        }
    }

    /// Records a finished part with its outcome (`ok`, `failed`, `stale`, `default`).
    pub(crate) fn part_done(&self, name: &'static str, span: PartSpan, outcome: &'static str) {
        self.emit_part(name, span.id, span.start_ns, span.end_ns, outcome);
    }

    fn emit_part(
        &self,
        name: &'static str,
        id: u64,
        start_ns: u64,
        end_ns: u64,
        outcome: &'static str,
    ) {
        self.tracer.emit(SpanData {
            trace_id: self.trace_id,
            span_id: id,
            parent: self.request_span,
            name: format!("part {name}"),
            kind: proto::span_kind::INTERNAL,
            start_ns,
            end_ns,
            attributes: vec![
                ("bff.part", Attr::Static(name)),
                ("bff.part.outcome", Attr::Static(outcome)),
            ],
            error: outcome != "ok",
        });
    }

    /// The recording of calls made for the part running on this task (if it is of this trace) from
    /// another task: their attempts are children of that part.
    pub(crate) fn for_current_part(&self) -> Self {
        Self {
            attempts_under: crate::context::current_part_span(self.trace_id),
            ..self.clone()
        }
    }

    /// Opens the span of one downstream attempt, child of the part running on this task (or the part
    /// the recording was made for), else of the request span.
    pub(crate) fn attempt(&self, downstream: &str, method: &str, attempt: Attempt) -> AttemptGuard {
        let parent = self
            .attempts_under
            .or_else(|| crate::context::current_part_span(self.trace_id))
            .unwrap_or(self.request_span);
        AttemptGuard {
            span: Some(SpanData {
                trace_id: self.trace_id,
                span_id: new_span_id(),
                parent,
                name: format!("{method} {downstream}"),
                kind: proto::span_kind::CLIENT,
                start_ns: now_ns(),
                end_ns: 0,
                attributes: vec![
                    ("http.request.method", Attr::Str(method.to_owned())),
                    ("bff.downstream", Attr::Str(downstream.to_owned())),
                    ("bff.attempt", Attr::Int(attempt.number.into())),
                    ("bff.hedge", Attr::Bool(attempt.hedge)),
                ],
                error: false,
            }),
            tracer: self.tracer.clone(),
            retry: attempt.number - 1,
        }
    }
}

/// Which attempt of a logical call: 1 for the first, 2 for the first retry, …; a hedge has the number of
/// the attempt it races.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// 1-based.
    pub(crate) number: u32,
    /// A hedged (parallel) attempt.
    pub(crate) hedge: bool,
}

/// The finished span of a part, kept with its record until the request's end tells its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSpan {
    id: u64,
    start_ns: u64,
    end_ns: u64,
}

/// A part's span while it runs. Dropped unfinished (a required sibling failed and the part was cancelled),
/// it is recorded at once with outcome `cancelled`.
#[derive(Debug)]
pub(crate) struct PartGuard {
    spans: RequestSpans,
    name: &'static str,
    id: u64,
    start_ns: u64,
    done: bool,
}

impl PartGuard {
    /// The span's trace and id (parent of the part's attempts).
    pub(crate) fn id(&self) -> crate::context::PartGuardId {
        (self.spans.trace_id, self.id)
    }

    /// The part finished: its span waits for the outcome.
    pub(crate) fn finish(mut self) -> PartSpan {
        self.done = true;
        PartSpan {
            id: self.id,
            start_ns: self.start_ns,
            end_ns: now_ns(),
        }
    }
}

impl Drop for PartGuard {
    fn drop(&mut self) {
        if !self.done {
            self.spans
                .emit_part(self.name, self.id, self.start_ns, now_ns(), "cancelled");
        }
    }
}

/// An attempt's span while it runs. Dropped unfinished (a hedge that lost, a cancelled part), it is
/// recorded with `error.type` `cancelled`.
#[derive(Debug)]
pub(crate) struct AttemptGuard {
    span: Option<SpanData>,
    tracer: Arc<Tracer>,
    retry: u32,
}

impl AttemptGuard {
    /// The span's id: the parent id sent in the attempt's `traceparent`.
    pub(crate) fn id(&self) -> u64 {
        self.span.as_ref().map_or(0, |s| s.span_id)
    }

    /// The attempt ended with `status` (when the downstream answered) and `error` (the outcome of a
    /// failure: `timeout`, `connect`, a status code, …).
    pub(crate) fn finish(mut self, status: Option<u16>, error: Option<String>) {
        let Some(mut span) = self.span.take() else {
            return;
        };
        if self.retry > 0 {
            span.attributes
                .push(("http.request.resend_count", Attr::Int(self.retry.into())));
        }
        if let Some(status) = status {
            span.attributes
                .push(("http.response.status_code", Attr::Int(status.into())));
        }
        if let Some(error) = error {
            span.error = true;
            span.attributes.push(("error.type", Attr::Str(error)));
        }
        span.end_ns = now_ns();
        self.tracer.emit(span);
    }
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        if let Some(mut span) = self.span.take() {
            span.error = true;
            span.attributes
                .push(("error.type", Attr::Static("cancelled")));
            span.end_ns = now_ns();
            self.tracer.emit(span);
        }
    }
}

/// The counters of the exporter, registered on the gateway's metrics.
#[derive(Debug, Clone)]
pub(crate) struct ExportCounters {
    /// `bff_trace_spans_dropped_total{reason="queue_full"}`.
    pub(crate) queue_full: Counter,
    /// `bff_trace_spans_dropped_total{reason="export_failed"}`.
    pub(crate) export_failed: Counter,
    /// `bff_trace_spans_exported_total`.
    pub(crate) exported: Counter,
}

impl ExportCounters {
    /// The counters, registered on `metrics` on first use (shared by every build of the gateway).
    pub(crate) fn new(metrics: &Metrics) -> Self {
        const DROPPED: &str = "Finished spans not exported, by reason (queue_full, export_failed)";
        Self {
            queue_full: metrics.counter(
                "bff_trace_spans_dropped_total",
                DROPPED,
                &[("reason", "queue_full")],
            ),
            export_failed: metrics.counter(
                "bff_trace_spans_dropped_total",
                DROPPED,
                &[("reason", "export_failed")],
            ),
            exported: metrics.counter(
                "bff_trace_spans_exported_total",
                "Spans accepted by the trace collector",
                &[],
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ratio threshold samples about the configured share of random trace ids, all at 1, none at 0.
    #[test]
    fn ratio_sampling() {
        let share = |ratio: f64| {
            let t = ratio_threshold(ratio);
            (0..20_000)
                .filter(|_| (fastrand::u128(1..) as u64 >> 1) < t)
                .count() as f64
                / 20_000.0
        };
        assert_eq!(share(1.0), 1.0);
        assert_eq!(share(0.0), 0.0);
        let tenth = share(0.1);
        assert!((0.08..0.12).contains(&tenth), "{tenth}");
    }

    /// Keys are validated with their names.
    #[test]
    fn config_validated() {
        let ok = OtlpConfig {
            endpoint: Some("http://127.0.0.1:4318".into()),
            ..OtlpConfig::default()
        };
        assert!(ok.validate("telemetry.otlp").is_ok());
        for (bad, key) in [
            (
                OtlpConfig {
                    endpoint: Some("ftp://x".into()),
                    ..ok.clone()
                },
                "telemetry.otlp.endpoint",
            ),
            (
                OtlpConfig {
                    sample_ratio: 1.5,
                    ..ok.clone()
                },
                "telemetry.otlp.sample_ratio",
            ),
            (
                OtlpConfig {
                    batch_size: 5000,
                    ..ok.clone()
                },
                "telemetry.otlp.batch_size",
            ),
        ] {
            let e = bad.validate("telemetry.otlp").unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }
}

//! The background exporter: a bounded queue of finished spans, one task that batches them (`batch_size`
//! spans, or whatever waited `export_interval_ms`) and posts each batch as one OTLP/HTTP protobuf request,
//! bounded by `export_timeout_ms`. Requests only ever `try_send` into the queue: a collector that is down,
//! slow or hanging fills the queue, and what does not fit is dropped and counted, never waited for. A failed
//! export is not retried (its spans are counted as dropped). When the last handle goes (a reload replaced
//! the gateway), the task exports what is left, within one export timeout, and ends.

use std::time::Duration;

use axum::http::{Method, Request, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::proto::{self, any_value};
use super::{Attr, ExportCounters, OtlpConfig, SpanData};
use crate::downstream::{HttpClient, http_client};
use crate::metrics::Metrics;

/// The sending side of the export queue; the task ends when it is dropped.
#[derive(Debug)]
pub struct Exporter {
    spans: mpsc::Sender<SpanData>,
    flushes: mpsc::Sender<oneshot::Sender<()>>,
    counters: ExportCounters,
}

/// Export failures are logged at most this often (a collector that is down fails every batch).
const LOG_EVERY: Duration = Duration::from_secs(60);

impl Exporter {
    /// Starts the export task on `runtime`, posting to `<endpoint>/v1/traces`.
    pub(crate) fn start(
        runtime: &tokio::runtime::Handle,
        endpoint: &str,
        config: &OtlpConfig,
        metrics: &Metrics,
    ) -> Option<Self> {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let uri: axum::http::Uri = url.parse().ok()?;
        let (spans, queue) = mpsc::channel(config.queue_size);
        let (flushes, flush_requests) = mpsc::channel(4);
        let counters = ExportCounters::new(metrics);
        let timeout = Duration::from_millis(config.export_timeout_ms);
        let task = Task {
            client: http_client(timeout),
            uri,
            timeout,
            batch_size: config.batch_size,
            interval: Duration::from_millis(config.export_interval_ms),
            resource: resource(&config.service_name),
            counters: counters.clone(),
            last_logged: None,
        };
        runtime.spawn(task.run(queue, flush_requests));
        Some(Self {
            spans,
            flushes,
            counters,
        })
    }

    /// Queues `span` without waiting; a full queue drops it (counted).
    pub(crate) fn send(&self, span: SpanData) {
        if self.spans.try_send(span).is_err() {
            self.counters.queue_full.inc();
        }
    }

    /// Exports everything queued now, waiting at most `bound`.
    pub(crate) async fn flush(&self, bound: Duration) {
        let (done, finished) = oneshot::channel();
        let asked = tokio::time::timeout(bound, self.flushes.send(done)).await;
        if matches!(asked, Ok(Ok(()))) {
            let _ = tokio::time::timeout(bound, finished).await;
        }
    }
}

/// The resource of every batch: `service.name`.
fn resource(service_name: &str) -> proto::Resource {
    proto::Resource {
        attributes: vec![
            key_value("service.name", Attr::Str(service_name.to_owned())),
            key_value("telemetry.sdk.name", Attr::Static("bff-core")),
            key_value("telemetry.sdk.language", Attr::Static("rust")),
        ],
    }
}

fn key_value(key: &str, value: Attr) -> proto::KeyValue {
    let value = match value {
        Attr::Static(s) => any_value::Value::StringValue(s.to_owned()),
        Attr::Str(s) => any_value::Value::StringValue(s),
        Attr::Int(i) => any_value::Value::IntValue(i),
        Attr::Bool(b) => any_value::Value::BoolValue(b),
    };
    proto::KeyValue {
        key: key.to_owned(),
        value: Some(proto::AnyValue { value: Some(value) }),
    }
}

/// One span on the wire.
fn encode_span(span: SpanData) -> proto::Span {
    proto::Span {
        trace_id: span.trace_id.to_be_bytes().to_vec(),
        span_id: span.span_id.to_be_bytes().to_vec(),
        parent_span_id: if span.parent == 0 {
            Vec::new()
        } else {
            span.parent.to_be_bytes().to_vec()
        },
        name: span.name,
        kind: span.kind,
        start_time_unix_nano: span.start_ns,
        end_time_unix_nano: span.end_ns.max(span.start_ns),
        attributes: span
            .attributes
            .into_iter()
            .map(|(k, v)| key_value(k, v))
            .collect(),
        status: span.error.then(|| proto::Status {
            message: String::new(),
            code: proto::STATUS_ERROR,
        }),
        // Sampled (only sampled spans are recorded).
        flags: 1,
    }
}

/// The export task's state.
struct Task {
    client: HttpClient,
    uri: axum::http::Uri,
    timeout: Duration,
    batch_size: usize,
    interval: Duration,
    resource: proto::Resource,
    counters: ExportCounters,
    last_logged: Option<Instant>,
}

impl Task {
    async fn run(
        mut self,
        mut queue: mpsc::Receiver<SpanData>,
        mut flush_requests: mpsc::Receiver<oneshot::Sender<()>>,
    ) {
        let mut batch = Vec::with_capacity(self.batch_size);
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                span = queue.recv() => match span {
                    Some(span) => {
                        batch.push(span);
                        if batch.len() >= self.batch_size {
                            self.export(&mut batch).await;
                        }
                    }
                    // Every handle is gone: what is left was drained into `batch`.
                    None => {
                        self.export(&mut batch).await;
                        return;
                    }
                },
                _ = ticker.tick() => {
                    if !batch.is_empty() {
                        self.export(&mut batch).await;
                    }
                }
                Some(done) = flush_requests.recv() => {
                    while let Ok(span) = queue.try_recv() {
                        batch.push(span);
                        if batch.len() >= self.batch_size {
                            self.export(&mut batch).await;
                        }
                    }
                    self.export(&mut batch).await;
                    let _ = done.send(());
                }
            }
        }
    }

    /// Posts `batch` (emptied) as one request, within the export timeout.
    async fn export(&mut self, batch: &mut Vec<SpanData>) {
        if batch.is_empty() {
            return;
        }
        let count = batch.len() as u64;
        let request = proto::ExportTraceServiceRequest {
            resource_spans: vec![proto::ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![proto::ScopeSpans {
                    scope: Some(proto::InstrumentationScope {
                        name: "bff-core".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                    }),
                    spans: batch.drain(..).map(encode_span).collect(),
                }],
            }],
        };
        let body = Bytes::from(request.encode_to_vec());
        let outcome = tokio::time::timeout(self.timeout, self.post(body)).await;
        match outcome {
            Ok(Ok(())) => {
                self.counters.exported.inc_by(count);
            }
            Ok(Err(reason)) => self.failed(count, &reason),
            Err(_) => self.failed(count, "timed out"),
        }
    }

    async fn post(&self, body: Bytes) -> Result<(), String> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        // The answer is read (bounded in size and by the timeout) so the connection can be reused.
        let _ = http_body_util::Limited::new(response.into_body(), 64 * 1024)
            .collect()
            .await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("collector answered {}", status.as_u16()))
        }
    }

    fn failed(&mut self, count: u64, reason: &str) {
        self.counters.export_failed.inc_by(count);
        if self.last_logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            self.last_logged = Some(Instant::now());
            tracing::warn!(spans = count, reason, "trace export failed; spans dropped");
        }
    }
}

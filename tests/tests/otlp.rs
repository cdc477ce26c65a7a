//! OpenTelemetry trace export over real OTLP/HTTP: a collector inside the test (an axum listener on
//! `127.0.0.1:0` decoding each protobuf `ExportTraceServiceRequest`) receives the span tree of a composed
//! request (request → parts → attempts, with parents, attributes and the client's trace continued, a retry
//! visible as two attempt spans, the attempt's span id being the downstream's `traceparent` parent);
//! parent-based ratio sampling; and a collector that is down or hangs costs the requests nothing, the spans
//! that do not fit being counted as dropped.

mod common;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, header};
use axum::routing::post;
use bff_core::BffConfig;
use bff_core::otel::proto::{
    self, ExportTraceServiceRequest, ExportTraceServiceResponse, any_value::Value,
};
use bytes::Bytes;
use common::*;
use mock_services::{FaultKind, FaultRule, MockStack, Service};
use prost::Message;

const AUD: &str = "bff-web";
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// One span as the collector received it, with its resource's `service.name`.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    span: proto::Span,
}

/// An OTLP/HTTP collector on an ephemeral port.
struct Collector {
    endpoint: String,
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    async fn start() -> Self {
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let store = spans.clone();
        let app = Router::new().route(
            "/v1/traces",
            post(move |headers: HeaderMap, body: Bytes| {
                let store = store.clone();
                async move {
                    assert_eq!(
                        headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
                        Some(&b"application/x-protobuf"[..])
                    );
                    let request = ExportTraceServiceRequest::decode(body)
                        .expect("a valid OTLP protobuf body");
                    let mut store = store.lock().unwrap();
                    for rs in request.resource_spans {
                        let service = rs
                            .resource
                            .iter()
                            .flat_map(|r| &r.attributes)
                            .find(|kv| kv.key == "service.name")
                            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                                Value::StringValue(s) => Some(s.clone()),
                                _ => None,
                            })
                            .unwrap_or_default();
                        for ss in rs.scope_spans {
                            for span in ss.spans {
                                store.push(Received {
                                    service: service.clone(),
                                    span,
                                });
                            }
                        }
                    }
                    (
                        [(header::CONTENT_TYPE, "application/x-protobuf")],
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { endpoint, spans }
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr<'a>(span: &'a proto::Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn str_attr<'a>(span: &'a proto::Span, key: &str) -> Option<&'a str> {
    match attr(span, key)? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn int_attr(span: &proto::Span, key: &str) -> Option<i64> {
    match attr(span, key)? {
        Value::IntValue(i) => Some(*i),
        _ => None,
    }
}

/// bff-web on `mocks`, exporting to `endpoint`, response store off (every part calls its downstream).
async fn web_tracing(
    mocks: &MockStack,
    endpoint: &str,
    tune: impl FnOnce(&mut BffConfig),
) -> RunningGateway {
    let mut config = uncached(config_for(bff_web::defaults(), mocks));
    let otlp = &mut config.telemetry.otlp;
    otlp.endpoint = Some(endpoint.to_owned());
    otlp.sample_ratio = 1.0;
    otlp.export_interval_ms = 50;
    tune(&mut config);
    start(bff_web::app, config).await
}

/// The admin metrics' sample `name{labels}` (0 when absent).
async fn metric(gw: &RunningGateway, sample: &str) -> f64 {
    let text = get(&format!("{}/metrics", gw.admin_url), &[]).await.body;
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// A composed request continued from the client's trace: one server span (child of the client's span),
/// one span per part (children of the request), one client span per downstream attempt (children of their
/// part); the retried profile call shows two attempts, and the downstream received the second attempt's
/// span id as its parent.
#[tokio::test]
async fn composed_request_exports_its_span_tree() {
    let collector = Collector::start().await;
    let mocks = mocks().await;
    let healthy_users = mock_services::spawn(
        Service::Users,
        std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        mock_services::ServiceConfig::default(),
    )
    .await
    .unwrap();
    // The first users instance fails with 503; round-robin sends the first attempt there, the retry to
    // the healthy one.
    mocks
        .handle(Service::Users)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 503 })]);
    let gw = web_tracing(&mocks, &collector.endpoint, |c| {
        let users = c.downstreams.get_mut("users").unwrap();
        users.resilience.instances = vec![healthy_users.url()];
        users.resilience.balance = bff_core::resilience::BalanceMode::RoundRobin;
    })
    .await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let incoming = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let r = get(
        &format!("{}/api/home", gw.url),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("traceparent", &incoming),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let answered = r.header("traceparent").expect("traceparent").to_owned();
    assert!(
        answered.starts_with(&format!("00-{CLIENT_TRACE}-")) && answered.ends_with("-01"),
        "{answered}"
    );
    assert!(
        eventually(Duration::from_secs(10), || collector
            .spans()
            .iter()
            .any(|s| s.span.kind == proto::span_kind::SERVER))
        .await,
        "the request span reaches the collector"
    );
    let spans: Vec<proto::Span> = collector.spans().into_iter().map(|r| r.span).collect();
    assert!(collector.spans().iter().all(|r| r.service == "bff-web"));
    assert!(spans.iter().all(|s| hex(&s.trace_id) == CLIENT_TRACE));
    assert!(
        spans
            .iter()
            .all(|s| s.end_time_unix_nano >= s.start_time_unix_nano && s.start_time_unix_nano > 0)
    );

    // The request span: the edge's span id, child of the client's span, semantic-convention attributes.
    let server: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == proto::span_kind::SERVER)
        .collect();
    assert_eq!(server.len(), 1);
    let server = server[0];
    assert_eq!(hex(&server.parent_span_id), CLIENT_SPAN);
    assert_eq!(
        answered,
        format!("00-{CLIENT_TRACE}-{}-01", hex(&server.span_id))
    );
    assert_eq!(server.name, "GET /api/home");
    assert_eq!(str_attr(server, "http.request.method"), Some("GET"));
    assert_eq!(str_attr(server, "http.route"), Some("/api/home"));
    assert_eq!(int_attr(server, "http.response.status_code"), Some(200));
    let mut keys: Vec<&str> = server.attributes.iter().map(|kv| kv.key.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "http.request.method",
            "http.response.status_code",
            "http.route"
        ],
        "no raw path, no client identity"
    );

    // One span per part, children of the request span, with their outcome.
    let parts: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == proto::span_kind::INTERNAL)
        .collect();
    let mut names: Vec<&str> = parts
        .iter()
        .map(|s| str_attr(s, "bff.part").unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["order_products", "orders", "profile", "recommendations"]
    );
    for part in &parts {
        assert_eq!(part.parent_span_id, server.span_id, "{}", part.name);
        assert_eq!(
            str_attr(part, "bff.part.outcome"),
            Some("ok"),
            "{}",
            part.name
        );
        assert_eq!(part.status, None);
    }
    let profile = parts
        .iter()
        .find(|s| str_attr(s, "bff.part") == Some("profile"))
        .unwrap();

    // Attempts: client spans under their part; the profile's retry is a second attempt span.
    let attempts: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == proto::span_kind::CLIENT)
        .collect();
    for a in &attempts {
        assert!(
            parts.iter().any(|p| p.span_id == a.parent_span_id),
            "attempt {} is a child of a part",
            a.name
        );
        assert_eq!(str_attr(a, "http.request.method"), Some("GET"));
    }
    let mut users: Vec<_> = attempts
        .iter()
        .filter(|s| str_attr(s, "bff.downstream") == Some("users"))
        .collect();
    users.sort_by_key(|s| int_attr(s, "bff.attempt"));
    assert_eq!(users.len(), 2, "the failed attempt and its retry");
    for a in &users {
        assert_eq!(a.parent_span_id, profile.span_id);
        assert_eq!(a.name, "GET users");
    }
    assert_eq!(int_attr(users[0], "bff.attempt"), Some(1));
    assert_eq!(int_attr(users[0], "http.response.status_code"), Some(503));
    assert_eq!(str_attr(users[0], "error.type"), Some("503"));
    assert_eq!(
        users[0].status.as_ref().map(|s| s.code),
        Some(proto::STATUS_ERROR)
    );
    assert_eq!(int_attr(users[0], "http.request.resend_count"), None);
    assert_eq!(int_attr(users[1], "bff.attempt"), Some(2));
    assert_eq!(int_attr(users[1], "http.request.resend_count"), Some(1));
    assert_eq!(int_attr(users[1], "http.response.status_code"), Some(200));
    assert_eq!(str_attr(users[1], "error.type"), None);
    assert!(users[1].start_time_unix_nano >= users[0].end_time_unix_nano);
    // The downstreams saw the attempts' span ids as their parents, in the client's trace.
    assert_eq!(
        mocks.handle(Service::Users).last_header("traceparent"),
        Some(format!("00-{CLIENT_TRACE}-{}-01", hex(&users[0].span_id)))
    );
    assert_eq!(
        healthy_users.last_header("traceparent"),
        Some(format!("00-{CLIENT_TRACE}-{}-01", hex(&users[1].span_id)))
    );
    // Batched lookups (catalog, inventory) are attempts of the parts that made them (the two catalog
    // lookups of one request may be merged into one call, under the part that opened the batch).
    for (downstream, under) in [
        ("orders", &["orders"][..]),
        ("recommendations", &["recommendations"]),
        ("catalog", &["order_products", "recommendations"]),
        ("inventory", &["recommendations"]),
    ] {
        let parents: Vec<&Vec<u8>> = parts
            .iter()
            .filter(|p| under.contains(&str_attr(p, "bff.part").unwrap()))
            .map(|p| &p.span_id)
            .collect();
        assert!(
            attempts
                .iter()
                .any(|a| str_attr(a, "bff.downstream") == Some(downstream)
                    && parents.contains(&&a.parent_span_id)),
            "an attempt of {downstream} under its part"
        );
    }
    for service in [Service::Orders, Service::Recommendations] {
        let sent = mocks.handle(service).last_header("traceparent").unwrap();
        let parent = sent.split('-').nth(2).unwrap();
        assert!(
            attempts.iter().any(|a| hex(&a.span_id) == parent),
            "{service:?} got the span id of an exported attempt: {sent}"
        );
    }

    // A route with a path parameter is named by its template, never by the raw path.
    let r = get_auth(&format!("{}/api/products/42", gw.url), &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        eventually(Duration::from_secs(10), || collector.spans().iter().any(
            |s| { str_attr(&s.span, "http.route") == Some("/api/products/{id}") }
        ))
        .await
    );
    let product = collector
        .spans()
        .into_iter()
        .find(|s| str_attr(&s.span, "http.route") == Some("/api/products/{id}"))
        .unwrap()
        .span;
    assert_eq!(product.name, "GET /api/products/{id}");
    assert!(
        product.parent_span_id.is_empty(),
        "a new trace: a root span"
    );
    assert!(
        !collector
            .spans()
            .iter()
            .flat_map(|s| &s.span.attributes)
            .any(
                |kv| matches!(kv.value.as_ref().and_then(|v| v.value.as_ref()),
                Some(Value::StringValue(s)) if s.contains("/42") || s.contains(&token))
            ),
        "no raw path or credential in any attribute"
    );
    assert_eq!(
        metric(&gw, "bff_trace_spans_dropped_total{reason=\"queue_full\"}").await,
        0.0
    );
    gw.admin.flush_traces(Duration::from_secs(5)).await;
    assert_eq!(
        metric(&gw, "bff_trace_spans_exported_total").await,
        collector.spans().len() as f64
    );
}

/// Parent-based sampling: with ratio 0 a new trace is not recorded (and its sampled flag is cleared for the
/// downstreams and the client), a client's unsampled flag is honoured, and a client's sampled flag is
/// recorded even at ratio 0.
#[tokio::test]
async fn sampling_is_parent_based_with_a_ratio_for_new_traces() {
    let collector = Collector::start().await;
    let mocks = mocks().await;
    let gw = web_tracing(&mocks, &collector.endpoint, |c| {
        c.telemetry.otlp.sample_ratio = 0.0
    })
    .await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let bearer = format!("Bearer {token}");
    let home = format!("{}/api/home", gw.url);
    for _ in 0..5 {
        let r = get(&home, &[("authorization", &bearer)]).await;
        assert_eq!(r.status, 200);
        assert!(r.header("traceparent").unwrap().ends_with("-00"));
        let sent = mocks
            .handle(Service::Users)
            .last_header("traceparent")
            .unwrap();
        assert!(sent.ends_with("-00"), "{sent}");
    }
    let unsampled = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-00");
    let r = get(
        &home,
        &[("authorization", &bearer), ("traceparent", &unsampled)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.header("traceparent").unwrap().ends_with("-00"));
    gw.admin.flush_traces(Duration::from_secs(5)).await;
    assert!(collector.spans().is_empty(), "{:?}", collector.spans());

    let sampled_trace = "0af7651916cd43dd8448eb211c80319c";
    let sampled = format!("00-{sampled_trace}-b7ad6b7169203331-01");
    let r = get(
        &home,
        &[("authorization", &bearer), ("traceparent", &sampled)],
    )
    .await;
    assert_eq!(r.status, 200);
    gw.admin.flush_traces(Duration::from_secs(5)).await;
    let spans = collector.spans();
    assert!(
        spans
            .iter()
            .any(|s| s.span.kind == proto::span_kind::SERVER)
    );
    assert!(spans.iter().all(|s| hex(&s.span.trace_id) == sampled_trace));
}

/// A collector that is down (closed port): every request still answers 200; the failed exports are
/// counted as dropped spans.
#[tokio::test]
async fn a_dead_collector_costs_requests_nothing() {
    let closed = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mocks = mocks().await;
    let gw = web_tracing(&mocks, &endpoint, |_| {}).await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let client = client();
    let (home, bearer) = (format!("{}/api/home", gw.url), format!("Bearer {token}"));
    let headers = [("authorization", bearer.as_str())];
    let requests = (0..30).map(|_| get_with(&client, &home, &headers));
    for r in futures::future::join_all(requests).await {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    gw.admin.flush_traces(Duration::from_secs(5)).await;
    let failed = metric(
        &gw,
        "bff_trace_spans_dropped_total{reason=\"export_failed\"}",
    )
    .await;
    // At least the 30 request spans, besides their parts and attempts.
    assert!(failed >= 30.0, "{failed}");
    assert_eq!(metric(&gw, "bff_trace_spans_exported_total").await, 0.0);
}

/// A collector that accepts connections and never answers: requests are not slowed (each answers 200
/// within its own deadline); the queue fills while the export hangs and the spans that do not fit are
/// dropped and counted.
#[tokio::test]
async fn a_hanging_collector_costs_requests_nothing_and_drops_are_counted() {
    // The kernel accepts connections on this socket; nothing ever reads or answers.
    let hanging = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let endpoint = format!("http://{}", hanging.local_addr().unwrap());
    let mocks = mocks().await;
    let gw = web_tracing(&mocks, &endpoint, |c| {
        let otlp = &mut c.telemetry.otlp;
        otlp.queue_size = 16;
        otlp.batch_size = 4;
        otlp.export_timeout_ms = 60_000;
        // The request's own deadline: a request slowed by the exporter would answer 504.
        c.server.request_timeout_ms = 5_000;
    })
    .await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let client = client();
    let (home, bearer) = (format!("{}/api/home", gw.url), format!("Bearer {token}"));
    let headers = [("authorization", bearer.as_str())];
    for round in 0..4 {
        let requests = (0..10).map(|_| get_with(&client, &home, &headers));
        for r in futures::future::join_all(requests).await {
            assert_eq!(r.status, 200, "round {round}: {}", r.body);
        }
    }
    let dropped = metric(&gw, "bff_trace_spans_dropped_total{reason=\"queue_full\"}").await;
    // 40 requests of about ten spans each, into a queue of 16 behind an export that never ends.
    assert!(dropped >= 100.0, "dropped {dropped}");
    drop(hanging);
}

/// A failed optional part is a span with outcome `failed` and status error (its attempt carries the
/// status), while the request span of the partial 200 is not an error.
#[tokio::test]
async fn a_failed_optional_part_is_marked_in_its_span() {
    let collector = Collector::start().await;
    let mocks = mocks().await;
    mocks
        .handle(Service::Recommendations)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    let gw = web_tracing(&mocks, &collector.endpoint, |_| {}).await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let r = get_auth(&format!("{}/api/home", gw.url), &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("bff-partial"), Some("recommendations"));
    gw.admin.flush_traces(Duration::from_secs(5)).await;
    let spans: Vec<proto::Span> = collector.spans().into_iter().map(|r| r.span).collect();
    let server = spans
        .iter()
        .find(|s| s.kind == proto::span_kind::SERVER)
        .expect("request span");
    assert_eq!(server.status, None);
    let part = spans
        .iter()
        .find(|s| str_attr(s, "bff.part") == Some("recommendations"))
        .expect("part span");
    assert_eq!(str_attr(part, "bff.part.outcome"), Some("failed"));
    assert_eq!(
        part.status.as_ref().map(|s| s.code),
        Some(proto::STATUS_ERROR)
    );
    let attempt = spans
        .iter()
        .find(|s| str_attr(s, "bff.downstream") == Some("recommendations"))
        .expect("attempt span");
    assert_eq!(attempt.parent_span_id, part.span_id);
    assert_eq!(int_attr(attempt, "http.response.status_code"), Some(500));
    assert_eq!(str_attr(attempt, "error.type"), Some("500"));
}

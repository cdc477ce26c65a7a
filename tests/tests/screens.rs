//! Streamed screens over real HTTP (`Accept: text/event-stream` on a composed `GET`): bff-web's
//! `GET /api/home` and a config `[[aggregates]]` endpoint, with real tokens and fault injection at the mocks.
//! The first event holds the required parts, each optional part follows as its own event (a merge patch) or
//! as a `partial` marker, `end` lists the partial parts; applying the patches gives the JSON view (up to
//! `null` members, which an RFC 7396 patch cannot carry).

mod common;

use std::time::Duration;

use bff_core::BffConfig;
use bff_core::config::{AggregateConfig, AggregatePartConfig, MergeMode};
use common::{RunningGateway, assert_no_leak, client, config_for, get, mocks, start, token};
use mock_services::{FaultKind, FaultRule, MockStack, Service};
use serde_json::{Value, json};

const AUD: &str = "bff-web";
const EVENT_STREAM: &str = "text/event-stream";

/// Mocks + bff-web with `tweak` applied to its config.
async fn web_with(tweak: impl FnOnce(&mut BffConfig)) -> (MockStack, RunningGateway) {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    tweak(&mut config);
    let gw = start(bff_web::app, config).await;
    (mocks, gw)
}

/// One event of a stream: its `event:` name and its `data:` as JSON.
#[derive(Debug, Clone)]
struct Event {
    name: String,
    data: Value,
}

/// A streamed screen read to its end (hang guard: 20 s): status, content type and events in order.
struct Streamed {
    status: u16,
    content_type: String,
    events: Vec<Event>,
    text: String,
}

impl Streamed {
    fn names(&self) -> Vec<&str> {
        self.events.iter().map(|e| e.name.as_str()).collect()
    }

    fn event(&self, name: &str) -> Option<&Event> {
        self.events.iter().find(|e| e.name == name)
    }

    /// The view a client holds at the end: the `required` view with every patch applied.
    fn folded(&self) -> Value {
        let mut view = self.events[0].data.clone();
        for e in &self.events[1..] {
            if !["partial", "end", "error"].contains(&e.name.as_str()) {
                merge(&mut view, &e.data);
            }
        }
        view
    }
}

/// `value` without its `null` members (RFC 7396 cannot carry one: applying a patch drops it, and a client
/// reads a missing member as `null`), for comparing a folded stream with a JSON view.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// RFC 7396 merge patch, as a client applies it.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let Value::Object(object) = target else {
        return;
    };
    for (key, value) in members {
        if value.is_null() {
            object.remove(key);
        } else {
            merge(object.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Parses `text/event-stream` text into events (comments and `retry:` skipped).
fn parse(text: &str) -> Vec<Event> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            Some(Event {
                name: name?,
                data: serde_json::from_str(&data).unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// GET `url` with `Accept: text/event-stream` and a bearer `token`, read to the end.
async fn stream(url: &str, token: &str) -> Streamed {
    stream_with(url, ("authorization", &format!("Bearer {token}"))).await
}

/// GET `url` with `Accept: text/event-stream` and the credential header `credential`, read to the end.
async fn stream_with(url: &str, credential: (&str, &str)) -> Streamed {
    let read = async {
        let response = client()
            .get(url)
            .header("accept", EVENT_STREAM)
            .header(credential.0, credential.1)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("body");
        Streamed {
            status,
            content_type,
            events: parse(&text),
            text,
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the stream ends (hang guard)")
}

/// Required parts first, then each optional part as its own event, the slow one last; the folded view is
/// the JSON view of an ordinary request (up to `null` members), and every downstream was called once.
#[tokio::test]
async fn first_event_holds_the_required_parts_before_a_slow_optional_part() {
    let (mocks, gw) = web_with(|_| {}).await;
    let token = token(&mocks, "7", AUD, &[]).await;
    mocks
        .handle(Service::Recommendations)
        .set_faults(vec![FaultRule::new(FaultKind::Latency {
            ms: 500,
            jitter_ms: 0,
        })]);
    let url = format!("{}/api/home", gw.url);
    let s = stream(&url, &token).await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(s.content_type, EVENT_STREAM);
    assert_eq!(
        s.names(),
        ["required", "order_products", "recommendations", "end"],
        "{}",
        s.text
    );
    let required = &s.events[0].data;
    assert_eq!(required["profile"]["id"], "7");
    assert!(required["recent_orders"].as_array().is_some());
    assert!(required["recommendations"].is_null(), "{required}");
    // The recommendations event carries the part's fields only.
    let recs = &s.event("recommendations").expect("recommendations").data;
    assert_eq!(
        recs.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["recommendations".to_owned()])
    );
    assert!(
        !recs["recommendations"]
            .as_array()
            .expect("array")
            .is_empty()
    );
    assert_eq!(s.event("end").expect("end").data, json!({"partial": []}));
    // Each downstream was called once by the stream (renderings call nothing).
    assert_eq!(
        mocks
            .handle(Service::Recommendations)
            .route_count("GET /users/{id}/recommendations"),
        1
    );
    assert_eq!(
        mocks.handle(Service::Users).route_count("GET /users/{id}"),
        1
    );
    // The folded stream is the ordinary JSON view.
    let plain = get(&url, &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(plain.status, 200, "{}", plain.body);
    assert_eq!(without_nulls(&s.folded()), without_nulls(&plain.json()));
    assert_no_leak(&s.text, &mocks);
}

/// A failed optional part is a `partial` marker event, and `end` lists it.
#[tokio::test]
async fn failed_optional_part_is_a_partial_event() {
    let (mocks, gw) = web_with(|_| {}).await;
    let token = token(&mocks, "7", AUD, &[]).await;
    mocks
        .handle(Service::Recommendations)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    let s = stream(&format!("{}/api/home", gw.url), &token).await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(s.events[0].name, "required");
    assert_eq!(
        s.event("partial").expect("partial marker").data,
        json!({"part": "recommendations"})
    );
    assert!(s.event("recommendations").is_none(), "{}", s.text);
    assert_eq!(
        s.events.last().map(|e| (e.name.as_str(), e.data.clone())),
        Some(("end", json!({"partial": ["recommendations"]})))
    );
    assert_no_leak(&s.text, &mocks);
}

/// A required part failing before the first event is the ordinary problem+json answer with its status.
#[tokio::test]
async fn required_failure_is_a_problem_not_a_stream() {
    let (mocks, gw) = web_with(|_| {}).await;
    let token = token(&mocks, "7", AUD, &[]).await;
    mocks
        .handle(Service::Users)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    let s = stream(&format!("{}/api/home", gw.url), &token).await;
    assert_eq!(s.status, 502, "{}", s.text);
    assert_eq!(s.content_type, "application/problem+json");
    let problem: Value = serde_json::from_str(&s.text).expect("problem JSON");
    assert_eq!(problem["code"], "bad_gateway", "{problem}");
    assert_no_leak(&s.text, &mocks);
    // Without a credential: 401 as ever, not a stream.
    let anonymous = stream(&format!("{}/api/home", gw.url), "not-a-token").await;
    assert_eq!(anonymous.status, 401);
}

/// The request's deadline bounds the whole stream: an optional part that never answers is cut at the
/// deadline and reported partial, and the stream ends.
#[tokio::test]
async fn deadline_bounds_the_stream() {
    let (mocks, gw) = web_with(|c| {
        c.server.request_timeout_ms = 1_000;
        c.downstreams
            .get_mut("recommendations")
            .expect("recommendations")
            .timeout_ms = 60_000;
    })
    .await;
    let token = token(&mocks, "7", AUD, &[]).await;
    mocks
        .handle(Service::Recommendations)
        .set_faults(vec![FaultRule::new(FaultKind::Hang)]);
    let s = stream(&format!("{}/api/home", gw.url), &token).await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(s.events[0].name, "required");
    assert_eq!(
        s.event("partial").map(|e| e.data.clone()),
        Some(json!({"part": "recommendations"})),
        "{}",
        s.text
    );
    assert_eq!(s.events.last().map(|e| e.name.as_str()), Some("end"));
    assert_eq!(
        s.events.last().map(|e| e.data["partial"].clone()),
        Some(json!(["recommendations"]))
    );
}

/// A config `[[aggregates]]` endpoint streams too: the required part first, then the optional ones.
#[tokio::test]
async fn config_aggregate_streams() {
    let (mocks, gw) = web_with(|c| {
        let part = |name: &str, downstream: &str, path: &str, required: bool| AggregatePartConfig {
            name: name.into(),
            downstream: downstream.into(),
            path: path.into(),
            required,
            ..Default::default()
        };
        c.aggregates.push(AggregateConfig {
            path: "/api/agg/{id}".into(),
            merge: MergeMode::Nest,
            parts: vec![
                part("user", "users", "/users/{id}", true),
                part("stock", "inventory", "/inventory/{id}", false),
                part("product", "catalog", "/products/{id}", false),
            ],
            scopes: vec![],
        });
    })
    .await;
    let token = token(&mocks, "7", AUD, &[]).await;
    mocks
        .handle(Service::Inventory)
        .set_faults(vec![FaultRule::new(FaultKind::Latency {
            ms: 1_200,
            jitter_ms: 0,
        })]);
    mocks
        .handle(Service::Catalog)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 503 })]);
    let url = format!("{}/api/agg/12", gw.url);
    let s = stream(&url, &token).await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(
        s.names(),
        ["required", "partial", "stock", "end"],
        "{}",
        s.text
    );
    assert_eq!(
        s.events[0].data,
        json!({"user": s.events[0].data["user"].clone(), "stock": null, "product": null})
    );
    assert_eq!(s.events[0].data["user"]["id"], "12");
    assert_eq!(s.events[1].data, json!({"part": "product"}));
    assert_eq!(s.events[2].data["stock"]["product_id"], "12");
    assert_eq!(s.events[3].data, json!({"partial": ["product"]}));
    // Documented as a streamed screen too.
    let doc = get(&format!("{}/openapi.json", gw.url), &[]).await.json();
    let ok = &doc["paths"]["/api/agg/{id}"]["get"]["responses"]["200"]["content"];
    assert!(ok["application/json"].is_object(), "{ok}");
    assert!(ok[EVENT_STREAM].is_object(), "{ok}");
}

/// A request without `Accept: text/event-stream` is unchanged: the same JSON body and ETag before and after
/// a streamed request, 304 on its tag, and the order event stream keeps its own protocol.
#[tokio::test]
async fn ordinary_requests_are_unchanged() {
    let (mocks, gw) = web_with(|_| {}).await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let url = format!("{}/api/home", gw.url);
    let bearer = format!("Bearer {token}");
    let before = get(&url, &[("authorization", &bearer)]).await;
    assert_eq!(before.status, 200, "{}", before.body);
    assert_eq!(before.header("content-type"), Some("application/json"));
    let tag = before.header("etag").expect("etag").to_owned();
    let streamed = stream(&url, &token).await;
    assert_eq!(streamed.status, 200);
    assert!(streamed.text.starts_with("id: 0\nevent: required\n"));
    let after = get(
        &url,
        &[("authorization", &bearer), ("accept", "application/json")],
    )
    .await;
    assert_eq!(after.body, before.body);
    assert_eq!(after.header("etag"), Some(tag.as_str()));
    let not_modified = get(&url, &[("authorization", &bearer), ("if-none-match", &tag)]).await;
    assert_eq!(not_modified.status, 304);
    // A route that is itself an event stream is not a streamed screen.
    let doc = get(&format!("{}/openapi.json", gw.url), &[]).await.json();
    let home = &doc["paths"]["/api/home"]["get"]["responses"]["200"]["content"];
    assert!(home["application/json"].is_object(), "{home}");
    assert!(home[EVENT_STREAM].is_object(), "{home}");
    let events = &doc["paths"]["/api/orders/{id}/events"]["get"]["responses"]["200"]["content"];
    assert_eq!(
        events[EVENT_STREAM]["schema"]["description"],
        Value::Null,
        "{events}"
    );
}

/// bff-partner's screens stream too, for an API-key caller.
#[tokio::test]
async fn partner_screens_stream() {
    let mocks = mocks().await;
    let gw = start(
        bff_partner::app,
        config_for(bff_partner::defaults(), &mocks),
    )
    .await;
    for path in ["/v1/products/42", "/v1/products/42/availability"] {
        let url = format!("{}{path}", gw.url);
        let key = ("x-api-key", "dev-acme-key");
        let s = stream_with(&url, key).await;
        assert_eq!(s.status, 200, "{path}: {}", s.text);
        assert_eq!(s.content_type, EVENT_STREAM, "{path}: {}", s.text);
        assert_eq!(s.events[0].name, "required", "{path}");
        assert_eq!(s.events.last().map(|e| e.name.as_str()), Some("end"));
        let plain = get(&url, &[key]).await;
        assert_eq!(plain.status, 200, "{path}: {}", plain.body);
        assert_eq!(without_nulls(&s.folded()), without_nulls(&plain.json()));
        assert_no_leak(&s.text, &mocks);
    }
}

/// Every screen of bff-web and bff-mobile streams, and its folded stream is its JSON view.
#[tokio::test]
async fn every_screen_streams_to_its_json_view() {
    let mocks = mocks().await;
    let web = start(bff_web::app, config_for(bff_web::defaults(), &mocks)).await;
    let mobile = start(bff_mobile::app, config_for(bff_mobile::defaults(), &mocks)).await;
    let screens = [
        (&web, AUD, "/api/home"),
        (&web, AUD, "/api/products/42"),
        (
            &web,
            AUD,
            "/api/products?category=kitchen&page=1&page_size=5",
        ),
        (&web, AUD, "/api/orders/701"),
        (&web, AUD, "/api/cart"),
        (&mobile, "bff-mobile", "/api/home"),
        (&mobile, "bff-mobile", "/api/products/42"),
        (&mobile, "bff-mobile", "/api/orders/701"),
    ];
    for (gw, aud, path) in screens {
        let token = token(&mocks, "7", aud, &["orders:read"]).await;
        let url = format!("{}{path}", gw.url);
        let s = stream(&url, &token).await;
        assert_eq!(s.status, 200, "{aud} {path}: {}", s.text);
        assert_eq!(s.content_type, EVENT_STREAM, "{aud} {path}: {}", s.text);
        assert_eq!(s.events[0].name, "required", "{aud} {path}");
        assert_eq!(
            s.events.last().map(|e| e.name.as_str()),
            Some("end"),
            "{aud} {path}"
        );
        let plain = get(&url, &[("authorization", &format!("Bearer {token}"))]).await;
        assert_eq!(plain.status, 200, "{aud} {path}: {}", plain.body);
        assert_eq!(
            without_nulls(&s.folded()),
            without_nulls(&plain.json()),
            "{aud} {path}: {}",
            s.text
        );
    }
}

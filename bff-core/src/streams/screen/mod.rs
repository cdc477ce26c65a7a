//! Streamed screens, the "@defer" of REST: a composed `GET` asked for with `Accept: text/event-stream`
//! answers an event stream instead of one JSON view. The first event (`required`) is the full view rendered
//! as soon as the required parts have answered, every optional part absent (as if it had failed); then each
//! optional part is one event when it finishes: named after the part, its data the JSON Merge Patch
//! (RFC 7396) that turns the view the client has into the view with that part filled, or a `partial`
//! event (`{"part": name}`) when it failed; last `end` (`{"partial": [...]}`). Everything runs under the
//! request's deadline; a required failure before the first event is the ordinary problem+json answer.
//!
//! Implemented once for every screen ([`crate::api::Api`] `GET` routes and `[[aggregates]]`) through the
//! parts of [`crate::compose`]: the handler runs once for real (the *driver* pass, calling the downstreams)
//! and once more per event without calling anything (*render* passes answering the parts from the driver's
//! answers, see `pass.rs`); each rendering is diffed with the previous one (`patch.rs`). A request without
//! `Accept: text/event-stream` costs one header look-up more than before.

mod pass;
mod patch;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, Method, header, request::Parts};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::time::Sleep;
use tracing::Instrument;

pub(crate) use pass::Pass;
use pass::{Memo, PartKey, Role};

use super::SseEvent;
use crate::context::RequestContext;

/// The largest view a rendering may produce to be streamed (a larger one is served unstreamed).
const MAX_VIEW_BYTES: usize = 8 << 20;

/// Whether the client asks for an event stream (`Accept` names `text/event-stream`, not with `q=0`).
pub(crate) fn wants_events(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut params = range.split(';').map(str::trim);
            params
                .next()
                .is_some_and(|media| media.eq_ignore_ascii_case("text/event-stream"))
                && !params.any(|p| {
                    p.strip_prefix("q=")
                        .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
                })
        })
}

/// Whether `request` asks for its screen as a stream: a `GET` whose `Accept` names `text/event-stream`.
pub(crate) fn asks_for_stream(request: &Request) -> bool {
    request.method() == Method::GET && wants_events(request.headers())
}

/// The handler of a screen, as its route guard ([`crate::api::guard`]) hands it over: the route's service,
/// boxed once per streamed request, called once per pass.
pub(crate) type Next = tower::util::BoxCloneSyncService<Request, Response, Infallible>;

/// The answer of one call of `next`.
async fn run(next: Next, request: Request) -> Response {
    match tower::ServiceExt::oneshot(next, request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The screen `next` answers for `request`, streamed (boxed: an ordinary request's future does not carry
/// the size of this one).
pub(crate) async fn streamed(request: Request, next: Next) -> Response {
    Box::pin(stream(request, next)).await
}

/// A running pass of the handler.
type Running = Pin<Box<dyn Future<Output = Response> + Send>>;

/// The passes of one streamed screen.
struct Screen {
    next: Next,
    parts: Parts,
    ctx: RequestContext,
    memo: Arc<Memo>,
    /// The driver pass while it runs.
    driver: Option<Running>,
    /// The driver's answer once it has finished.
    driven: Option<Response>,
    /// The request's span, so that what the passes log belongs to the request after its head was sent.
    span: tracing::Span,
}

impl Screen {
    /// Starts one pass of the handler with `role`.
    fn run(&self, role: Role) -> Running {
        let mut parts = self.parts.clone();
        let ctx = self.ctx.in_pass(Pass::new(self.memo.clone(), role));
        parts.extensions.insert(ctx);
        let pass = run(self.next.clone(), Request::from_parts(parts, Body::empty()));
        let pass = crate::context::with_request_id(self.ctx.request_id_value().clone(), pass);
        Box::pin(pass.instrument(self.span.clone()))
    }

    /// Keeps the driver going until `until` completes.
    async fn alongside<T>(&mut self, until: impl Future<Output = T>) -> T {
        let mut until = std::pin::pin!(until);
        loop {
            let Some(driver) = &mut self.driver else {
                return until.await;
            };
            tokio::select! {
                biased;
                out = &mut until => return out,
                response = driver => self.driven(response),
            }
        }
    }

    fn driven(&mut self, response: Response) {
        self.memo.finish();
        self.driven = Some(response);
        self.driver = None;
    }

    /// The view rendered by a pass of `role` (the driver keeps going meanwhile), if it is a JSON view.
    async fn render(&mut self, role: Role) -> Option<Value> {
        let render = self.run(role);
        let response = self.alongside(render).await;
        view_of(response).await.ok()
    }

    /// The driver's answer, once it has finished.
    async fn finish(mut self) -> Response {
        if let Some(driver) = self.driver.take() {
            let response = driver.await;
            self.driven(response);
        }
        self.driven.take().unwrap_or_else(|| {
            axum::response::IntoResponse::into_response(crate::error::BffError::Internal)
        })
    }
}

/// The JSON view of a handler's answer, or the answer itself when it is not a successful JSON view.
async fn view_of(response: Response) -> Result<Value, Response> {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(response.status().is_success() && is_json) {
        return Err(response);
    }
    let (head, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_VIEW_BYTES).await;
    match bytes.map(|b| serde_json::from_slice::<Value>(&b).map_err(|_| b)) {
        Ok(Ok(view)) => Ok(view),
        Ok(Err(bytes)) => Err(Response::from_parts(head, Body::from(bytes))),
        Err(_) => Err(axum::response::IntoResponse::into_response(
            crate::error::BffError::Internal,
        )),
    }
}

async fn stream(request: Request, next: Next) -> Response {
    let Some(ctx) = request.extensions().get::<RequestContext>().cloned() else {
        return run(next, request).await;
    };
    let (parts, _) = request.into_parts();
    let mut screen = Screen {
        next,
        parts,
        memo: Memo::new(),
        driver: None,
        driven: None,
        span: tracing::Span::current(),
        ctx: ctx.clone(),
    };
    screen.driver = Some(screen.run(Role::Driver));
    let Some(view) = screen.render(Role::Render(Vec::new())).await else {
        // A required part failed (or the handler does not answer a JSON view): the driver's own answer,
        // not streamed — the problem+json of the failure, with its status.
        return screen.finish().await;
    };
    let deadline = Box::pin(tokio::time::sleep_until(ctx.deadline()));
    let first = SseEvent {
        id: "0".into(),
        event: "required",
        data: view.to_string(),
    };
    let events = Events {
        screen,
        view,
        seen: 0,
        included: Vec::new(),
        queue: VecDeque::from([first.encode()]),
        sent: 1,
        deadline,
        done: false,
    };
    let body = futures::stream::unfold(events, |mut events| async move {
        let bytes = events.next().await?;
        Some((Ok::<_, Infallible>(bytes), events))
    });
    super::relay::event_stream(Body::from_stream(body))
}

/// The events of a streamed screen after its first.
struct Events {
    screen: Screen,
    /// The view as the client has it now.
    view: Value,
    /// Memo entries handled so far.
    seen: usize,
    /// The optional parts that answered, included in the next renderings.
    included: Vec<PartKey>,
    queue: VecDeque<Bytes>,
    /// Events sent so far (the next event's id).
    sent: u64,
    deadline: Pin<Box<Sleep>>,
    done: bool,
}

impl Events {
    fn push(&mut self, event: &'static str, data: &Value) {
        let event = SseEvent {
            id: self.sent.to_string(),
            event,
            data: data.to_string(),
        };
        self.sent += 1;
        self.queue.push_back(event.encode());
    }

    /// The final `end` event.
    fn end(&mut self, reason: Option<&str>) {
        let partial = self.screen.ctx.partial_parts();
        let data = match reason {
            Some(reason) => json!({"partial": partial, "reason": reason}),
            None => json!({"partial": partial}),
        };
        self.push("end", &data);
        self.done = true;
    }

    /// The next bytes to send; `None` ends the response.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.queue.pop_front() {
                return Some(bytes);
            }
            if self.done {
                return None;
            }
            let fresh = self.screen.memo.since(self.seen);
            if !fresh.is_empty() {
                self.seen += fresh.len();
                for entry in fresh.into_iter().filter(|e| e.optional) {
                    let part = entry.key.0;
                    if entry.value.is_none() {
                        self.push("partial", &json!({ "part": part }));
                        continue;
                    }
                    self.included.push(entry.key);
                    // A rendering that fails leaves its part to the final view.
                    if let Some(view) = self
                        .screen
                        .render(Role::Render(self.included.clone()))
                        .await
                    {
                        let patch = patch::diff(&self.view, &view);
                        self.view = view;
                        self.push(part, &patch);
                    }
                }
                continue;
            }
            if self.screen.driver.is_none() {
                self.last().await;
                continue;
            }
            let mut progress = self.screen.memo.subscribe();
            let seen = self.seen;
            let Some(driver) = &mut self.screen.driver else {
                continue;
            };
            tokio::select! {
                biased;
                response = driver => self.screen.driven(response),
                _ = progress.wait_for(|(n, _)| *n > seen) => {}
                () = &mut self.deadline => {
                    // The parts end at the deadline themselves; this bounds whatever else the handler does.
                    self.screen.driver = None;
                    self.end(Some("deadline"));
                }
            }
        }
    }

    /// After the driver: what its final view adds (nothing when every part had its event), or the failure
    /// it answered (`error` with the problem document), then `end`.
    async fn last(&mut self) {
        let Some(response) = self.screen.driven.take() else {
            self.end(None);
            return;
        };
        match view_of(response).await {
            Ok(view) => {
                let patch = patch::diff(&self.view, &view);
                if patch.as_object().is_none_or(|p| !p.is_empty()) {
                    self.push("view", &patch);
                }
                self.view = view;
            }
            Err(problem) => {
                let bytes = axum::body::to_bytes(problem.into_body(), MAX_VIEW_BYTES)
                    .await
                    .unwrap_or_default();
                let problem = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
                self.push("error", &problem);
            }
        }
        self.end(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downstream::{DownstreamError, DownstreamErrorKind};
    use crate::error::BffError;
    use crate::trace::TraceContext;
    use axum::Json;
    use axum::http::HeaderValue;
    use std::time::Duration;
    use tower::ServiceExt;

    /// A screen whose required part `c` is only asked for once the optional part `b` answered, and fails.
    async fn late_failure(ctx: RequestContext) -> Result<Json<Value>, BffError> {
        let a = ctx.required("a", async { Ok::<_, DownstreamError>(1u32) });
        let b = ctx.optional("b", async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, DownstreamError>(2u32)
        });
        let (a, b) = tokio::try_join!(a, b)?;
        if b.is_some() {
            let failed = DownstreamError::new("x", DownstreamErrorKind::Status(500));
            ctx.required("c", async { Err::<u32, _>(failed) }).await?;
        }
        Ok(Json(json!({"a": a, "b": b})))
    }

    /// `GET /s` asking for `text/event-stream`, with a request context of 10 s.
    fn event_stream_request() -> Request<Body> {
        let ctx = RequestContext::new(
            "rid".into(),
            TraceContext::from_headers(&HeaderMap::new()),
            None,
            tokio::time::Instant::now() + Duration::from_secs(10),
        );
        let mut request = Request::get("/s")
            .header(header::ACCEPT, "text/event-stream")
            .body(Body::empty())
            .expect("request");
        request.extensions_mut().insert(ctx);
        request
    }

    /// The events of `GET /s` on a router whose screen is `late_failure`, streamed.
    async fn streamed_text() -> String {
        let app = axum::Router::new()
            .route("/s", axum::routing::get(late_failure))
            .route_layer(crate::api::guard::GuardLayer::screen());
        let response = app
            .oneshot(event_stream_request())
            .await
            .expect("infallible");
        assert_eq!(response.status(), 200);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await;
        String::from_utf8_lossy(&body.expect("body")).into_owned()
    }

    /// A screen that calls a downstream outside its parts is served unstreamed (its plain JSON view), and
    /// the downstream is called once: a render pass calls nothing.
    #[tokio::test]
    async fn a_call_outside_the_parts_is_served_unstreamed() {
        use crate::downstream::{Downstream, DownstreamConfig, http_client};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let service = axum::Router::new().route(
            "/x",
            axum::routing::get(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async { Json(json!({"n": 7})) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, service).await });
        let d = Downstream::new(
            "x",
            &DownstreamConfig::at(&url),
            http_client(Duration::from_secs(1)),
        );
        let handler = move |ctx: RequestContext| async move {
            let outside: Value = d
                .get_json(&ctx, "/x")
                .await
                .map_err(|_| BffError::Internal)?;
            let b = ctx
                .optional("b", async { Ok::<_, DownstreamError>(2u32) })
                .await?;
            Ok::<_, BffError>(Json(json!({"outside": outside, "b": b})))
        };
        let app = axum::Router::new()
            .route("/s", axum::routing::get(handler))
            .route_layer(crate::api::guard::GuardLayer::screen());
        let response = app
            .oneshot(event_stream_request())
            .await
            .expect("infallible");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(HeaderValue::as_bytes),
            Some(&b"application/json"[..])
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await;
        let view: Value = serde_json::from_slice(&body.expect("body")).expect("JSON");
        assert_eq!(view, json!({"outside": {"n": 7}, "b": 2}));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    /// A failure the handler meets after the first event is sent as `error` (the problem document), then
    /// `end`; the optional part whose rendering failed has no event.
    #[tokio::test]
    async fn a_failure_after_the_first_event_is_an_error_event() {
        let text = streamed_text().await;
        let events: Vec<(&str, Value)> = text
            .split("\n\n")
            .filter_map(|block| {
                let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
                let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
                Some((name, serde_json::from_str(data).ok()?))
            })
            .collect();
        let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["required", "error", "end"], "{text}");
        assert_eq!(events[0].1, json!({"a": 1, "b": null}));
        assert_eq!(events[1].1["status"], 502, "{text}");
        assert_eq!(events[1].1["code"], "bad_gateway", "{text}");
        assert_eq!(events[2].1, json!({"partial": []}));
    }

    #[test]
    fn accept_names_event_stream() {
        let accepts = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(v));
            wants_events(&h)
        };
        assert!(accepts("text/event-stream"));
        assert!(accepts("application/json;q=0.5, Text/Event-Stream"));
        assert!(!accepts("text/event-stream;q=0"));
        assert!(!accepts("application/json"));
        assert!(!accepts("*/*"));
        assert!(!wants_events(&HeaderMap::new()));
    }
}

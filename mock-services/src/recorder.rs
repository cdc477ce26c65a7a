//! Recording of received requests: counts per route template, the total, the requests abandoned by the
//! caller (the connection closed before the answer was ready), and the last request's method,
//! path-and-query and headers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The last request a service received.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LastRequest {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Path and query, e.g. `/users/1?x=y`.
    pub uri: String,
    /// Headers, names lowercased, repeated headers joined with `", "`, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body of a request other than GET/HEAD (lossy UTF-8; at most 1 MiB is read), `None` for GET/HEAD.
    #[serde(default)]
    pub body: Option<String>,
}

/// Snapshot of what a service received: the body of `GET /admin/received`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Received {
    /// Number of non-admin requests.
    pub total: u64,
    /// Count per `"METHOD /route/{template}"`.
    pub routes: BTreeMap<String, u64>,
    /// Requests whose caller went away before the answer was ready (the server dropped the handler: the
    /// gateway cancelled the call).
    #[serde(default)]
    pub abandoned: u64,
    /// The last request, if any.
    pub last: Option<LastRequest>,
}

impl Received {
    /// The JSON form: like the derived one, but `last.headers` is an object `{"name": "value"}`.
    pub fn to_json(&self) -> serde_json::Value {
        let last = self.last.as_ref().map(|l| {
            let headers: serde_json::Map<String, serde_json::Value> = l
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            serde_json::json!({"method": l.method, "uri": l.uri, "headers": headers, "body": l.body})
        });
        serde_json::json!({"total": self.total, "routes": self.routes, "abandoned": self.abandoned, "last": last})
    }
}

/// The shared recorder of one service.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Received>>);

impl Recorder {
    /// A snapshot of everything recorded.
    pub fn snapshot(&self) -> Received {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets everything recorded.
    pub fn reset(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Received::default();
    }

    /// Records one request under its route template.
    pub fn record(&self, route: &str, req: &Request) {
        self.record_with_body(route, req, None);
    }

    /// Records one request under its route template, with the body it carried.
    pub fn record_with_body(&self, route: &str, req: &Request, body: Option<&[u8]>) {
        let mut headers: Vec<(String, String)> = Vec::new();
        for (name, value) in req.headers() {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match headers.iter_mut().find(|(n, _)| n == name.as_str()) {
                Some((_, v)) => {
                    v.push_str(", ");
                    v.push_str(&value);
                }
                None => headers.push((name.as_str().to_owned(), value)),
            }
        }
        let uri = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_owned(), |pq| pq.to_string());
        let mut rec = self.0.lock().unwrap_or_else(|e| e.into_inner());
        rec.total += 1;
        *rec.routes
            .entry(format!("{} {route}", req.method()))
            .or_default() += 1;
        rec.last = Some(LastRequest {
            method: req.method().to_string(),
            uri,
            headers,
            body: body.map(|b| String::from_utf8_lossy(b).into_owned()),
        });
    }
}

/// Records every request that reaches a non-admin route.
pub(crate) async fn record_middleware(
    State(recorder): State<Recorder>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned());
    // Commands carry a body worth recording (tests prove what the gateway sent); it is read here (at most
    // 1 MiB, else 413) and handed on unchanged.
    let req = if req.method() == axum::http::Method::GET || req.method() == axum::http::Method::HEAD
    {
        recorder.record(&route, &req);
        req
    } else {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, 1024 * 1024).await else {
            return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
        };
        let req = Request::from_parts(parts, axum::body::Body::from(bytes.clone()));
        recorder.record_with_body(&route, &req, Some(&bytes));
        req
    };
    let mut pending = Abandoned {
        recorder: &recorder,
        answered: false,
    };
    let response = next.run(req).await;
    pending.answered = true;
    response
}

/// Counts the request as abandoned if dropped before the answer is ready.
struct Abandoned<'a> {
    recorder: &'a Recorder,
    answered: bool,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.recorder
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .abandoned += 1;
        }
    }
}

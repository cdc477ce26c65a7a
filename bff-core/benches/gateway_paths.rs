//! End-to-end benchmarks of the two paths the load benchmark compares with nginx (`bench/run`): a request
//! through the complete gateway router (edge, routing, handler, compression and ETag layers) to a real
//! backend over loopback HTTP — a declarative pass-through route and a 3-way `[[aggregates]]` composition
//! (flatten and nest), coalescing and caching off as in `bench/conf/bff.toml`. `cargo bench -p bff-core
//! --bench gateway_paths`; instruction counts per stage come from `bench/callgrind`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use bff_core::config::BffConfig;
use bff_core::gateway::Gateway;
use criterion::{Criterion, criterion_group, criterion_main};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use tower::ServiceExt;

/// A ~1 KB JSON document like the load benchmark's backends serve.
fn document(kind: &str) -> String {
    let items: Vec<serde_json::Value> = (0..12)
        .map(|i| serde_json::json!({"id": i, "name": format!("{kind} item {i}"), "price_cents": 1999 + i}))
        .collect();
    serde_json::json!({ kind: items, "note": "bench" }).to_string()
}

/// The backend: three static JSON documents on an ephemeral loopback port.
async fn backend() -> SocketAddr {
    let (user, orders, recs) = (document("user"), document("orders"), document("recs"));
    let app = Router::new()
        .route(
            "/user.json",
            get(move || async move { ([("content-type", "application/json")], user) }),
        )
        .route(
            "/orders.json",
            get(move || async move { ([("content-type", "application/json")], orders) }),
        )
        .route(
            "/recs.json",
            get(move || async move { ([("content-type", "application/json")], recs) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

fn gateway(backend: SocketAddr) -> Router {
    let toml = format!(
        r#"
[downstreams.b]
url = "http://{backend}"
cache = {{ enabled = false, coalesce = false }}

[[routes]]
path = "/data.json"
downstream = "b"
downstream_path = "/user.json"

[[aggregates]]
path = "/agg"
merge = "flatten"
parts = [
  {{ name = "user", downstream = "b", path = "/user.json" }},
  {{ name = "orders", downstream = "b", path = "/orders.json" }},
  {{ name = "recs", downstream = "b", path = "/recs.json", required = false }},
]

[[aggregates]]
path = "/agg_nest"
merge = "nest"
parts = [
  {{ name = "user", downstream = "b", path = "/user.json" }},
  {{ name = "orders", downstream = "b", path = "/orders.json" }},
  {{ name = "recs", downstream = "b", path = "/recs.json", required = false }},
]
"#
    );
    let figment =
        Figment::from(Serialized::defaults(BffConfig::default())).merge(Toml::string(&toml));
    let config = BffConfig::from_figment(figment).expect("config");
    Gateway::new(config)
        .expect("gateway")
        .into_router(Router::new(), utoipa::openapi::OpenApi::default(), &[])
        .expect("router")
}

fn paths(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let app = rt.block_on(async { gateway(backend().await) });
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    for (name, path) in [
        ("gateway_passthrough", "/data.json"),
        ("gateway_aggregate_flatten", "/agg"),
        ("gateway_aggregate_nest", "/agg_nest"),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut request = Request::get(path).body(Body::empty()).expect("request");
                    request.extensions_mut().insert(ConnectInfo(peer));
                    let response = app.clone().oneshot(request).await.expect("infallible");
                    assert_eq!(response.status(), StatusCode::OK);
                    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                        .await
                        .expect("body");
                    black_box(body)
                })
            })
        });
    }
}

criterion_group!(benches, paths);
criterion_main!(benches);

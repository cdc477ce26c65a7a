//! Micro-benchmarks of bff-core's per-request hot paths, so regressions show without a full load run:
//! `cargo bench -p bff-core`. Token verification runs against a real dev identity provider (JWKS fetched once,
//! then cached, as in production).
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use axum::http::HeaderMap;
use bff_core::RequestContext;
use bff_core::auth::JwtVerifier;
use bff_core::config::{DownstreamConfig, JwtConfig};
use bff_core::downstream::{Downstream, DownstreamError};
use bff_core::shape::FieldSet;
use bff_core::trace::TraceContext;
use criterion::{Criterion, criterion_group, criterion_main};
use mock_services::{Service, ServiceConfig};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn token_verification(c: &mut Criterion) {
    let rt = runtime();
    let (verifier, rs256, es256) = rt.block_on(async {
        let idp = mock_services::spawn(
            Service::Identity,
            (IpAddr::V4(Ipv4Addr::LOCALHOST), 0).into(),
            ServiceConfig::default(),
        )
        .await
        .expect("idp");
        let config = JwtConfig {
            audience: "bff-web".into(),
            ..JwtConfig::default()
        };
        let jwks = Downstream::new("identity", &DownstreamConfig::at(idp.url()), bff_core::downstream::http_client(Duration::from_millis(500)));
        let verifier = JwtVerifier::new(config, jwks);
        let mint = |alg: &str| {
            let body = serde_json::json!({"sub": "7", "aud": "bff-web", "scopes": ["orders:read"], "alg": alg});
            let url = format!("{}/token", idp.url());
            async move {
                let r: serde_json::Value =
                    reqwest::Client::new().post(url).json(&body).send().await.unwrap().json().await.unwrap();
                r["access_token"].as_str().unwrap().to_owned()
            }
        };
        let (rs, es) = (mint("RS256").await, mint("ES256").await);
        // Warm the key cache.
        verifier.verify(&rs).await.expect("valid");
        std::mem::forget(idp);
        (verifier, rs, es)
    });
    c.bench_function("jwt_verify_rs256", |b| {
        b.iter(|| rt.block_on(verifier.verify(black_box(&rs256))).unwrap())
    });
    c.bench_function("jwt_verify_es256", |b| {
        b.iter(|| rt.block_on(verifier.verify(black_box(&es256))).unwrap())
    });
    c.bench_function("jwt_reject_garbage", |b| {
        b.iter(|| {
            rt.block_on(verifier.verify(black_box("eyJhbGciOiJub25lIn0.e30.")))
                .unwrap_err()
        })
    });
}

fn shaping(c: &mut Criterion) {
    let product = serde_json::to_value(mock_services::data::catalog::product(42)).expect("json");
    let fields = FieldSet::new(["id", "name", "price.amount_cents", "images.url"]);
    c.bench_function("shape_pick_product", |b| {
        b.iter(|| fields.pick(black_box(product.clone())))
    });
}

fn composition(c: &mut Criterion) {
    let rt = runtime();
    c.bench_function("compose_3_parts", |b| {
        b.iter(|| {
            rt.block_on(async {
                let ctx = RequestContext::new(
                    "bench".into(),
                    TraceContext::from_headers(&HeaderMap::new()),
                    None,
                    tokio::time::Instant::now() + Duration::from_secs(5),
                );
                let ok = |v: u32| async move { Ok::<_, DownstreamError>(v) };
                tokio::try_join!(
                    ctx.required("a", ok(1)),
                    ctx.required("b", ok(2)),
                    ctx.optional("c", ok(3))
                )
                .unwrap()
            })
        })
    });
}

fn edge_parsing(c: &mut Criterion) {
    let mut headers = HeaderMap::new();
    headers.insert("x-request-id", "req-abc-123".parse().unwrap());
    headers.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    c.bench_function("request_id_and_trace", |b| {
        b.iter(|| {
            (
                bff_core::trace::request_id(black_box(&headers)),
                TraceContext::from_headers(black_box(&headers)).header_value(),
            )
        })
    });
    c.bench_function("canonical_path_check", |b| {
        b.iter(|| bff_core::hygiene::check_path(black_box("/api/products/4242/reviews")))
    });
}

criterion_group!(
    benches,
    token_verification,
    shaping,
    composition,
    edge_parsing
);
criterion_main!(benches);

//! End-to-end tests of the mock services over HTTP on ephemeral ports.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mock_services::{FaultKind, FaultRule, MockHandle, Service, ServiceConfig, spawn, spawn_all};
use serde_json::{Value, json};

async fn start(service: Service) -> MockHandle {
    start_with(service, ServiceConfig::default()).await
}

async fn start_with(service: Service, config: ServiceConfig) -> MockHandle {
    spawn(service, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config)
        .await
        .expect("spawn")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn get(url: &str) -> (u16, Value) {
    let resp = client().get(url).send().await.expect("send");
    let status = resp.status().as_u16();
    let body = resp.bytes().await.expect("body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn get_text(url: &str) -> (u16, String) {
    let resp = client().get(url).send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

mod data {
    use super::*;

    #[tokio::test]
    async fn two_spawns_serve_identical_json() {
        for (service, path) in [
            (Service::Users, "/users/5"),
            (Service::Catalog, "/products/42"),
            (Service::Orders, "/users/7/orders"),
            (Service::Reviews, "/products/3/reviews?limit=50"),
            (Service::Inventory, "/inventory/77"),
            (Service::Recommendations, "/users/9/recommendations"),
        ] {
            let (a, b) = (start(service).await, start(service).await);
            let (sa, ta) = get_text(&format!("{}{path}", a.url())).await;
            let (sb, tb) = get_text(&format!("{}{path}", b.url())).await;
            assert_eq!((sa, sb), (200, 200), "{path}");
            assert_eq!(ta, tb, "{path}");
            a.shutdown().await;
            b.shutdown().await;
        }
    }

    #[tokio::test]
    async fn unknown_ids_are_404_json() {
        let cases = [
            (
                Service::Users,
                vec!["/users/0", "/users/1001", "/users/abc", "/users/01"],
            ),
            (
                Service::Catalog,
                vec!["/products/0", "/products/5001", "/nope"],
            ),
            (
                Service::Orders,
                vec![
                    "/orders/100",
                    "/orders/1",
                    "/orders/113",
                    "/orders/x",
                    "/users/1001/orders",
                ],
            ),
            (
                Service::Reviews,
                vec!["/products/5001/reviews", "/products/0/rating"],
            ),
            (Service::Inventory, vec!["/inventory/5001"]),
            (Service::Recommendations, vec!["/users/0/recommendations"]),
        ];
        for (service, paths) in cases {
            let h = start(service).await;
            for path in paths {
                let (status, body) = get(&format!("{}{path}", h.url())).await;
                assert_eq!(status, 404, "{path}");
                assert_eq!(body, json!({"error": "not_found"}), "{path}");
            }
        }
    }

    #[tokio::test]
    async fn entities_have_expected_shape() {
        let users = start(Service::Users).await;
        let (s, u) = get(&format!("{}/users/1000", users.url())).await;
        assert_eq!(s, 200);
        assert_eq!(u["id"], "1000");
        let catalog = start(Service::Catalog).await;
        let (s, p) = get(&format!("{}/products/5000", catalog.url())).await;
        assert_eq!(s, 200);
        assert_eq!(p["images"].as_array().map(Vec::len), Some(5));
        assert_eq!(
            p["images"][0]["url"],
            "https://img.example.com/p/5000/thumbnail.jpg"
        );
        assert!(p["description"].as_str().is_some_and(|d| d.len() > 700));
        let (_, p1) = get(&format!("{}/products/1", catalog.url())).await;
        assert_eq!(p1["category"], "kitchen");
    }

    #[tokio::test]
    async fn batches_report_missing_ids() {
        let catalog = start(Service::Catalog).await;
        let (s, b) = get(&format!("{}/products?ids=1,9999,2,x", catalog.url())).await;
        assert_eq!(s, 200);
        let ids: Vec<&str> = b["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|p| p["id"].as_str())
            .collect();
        assert_eq!(ids, ["1", "2"]);
        assert_eq!(b["missing"], json!(["9999", "x"]));
        let many: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
        let (s, e) = get(&format!(
            "{}/products?ids={}",
            catalog.url(),
            many.join(",")
        ))
        .await;
        assert_eq!(s, 400);
        assert_eq!(e["error"], "bad_request");
        let (s, _) = get(&format!(
            "{}/products?ids={}",
            catalog.url(),
            many[..100].join(",")
        ))
        .await;
        assert_eq!(s, 200);

        let inventory = start(Service::Inventory).await;
        let (s, b) = get(&format!("{}/inventory?ids=3,0,5000", inventory.url())).await;
        assert_eq!(s, 200);
        assert_eq!(b["items"].as_array().map(Vec::len), Some(2));
        assert_eq!(b["missing"], json!(["0"]));
        let (s, _) = get(&format!("{}/inventory?ids=", inventory.url())).await;
        assert_eq!(s, 400);
    }

    #[tokio::test]
    async fn search_filters_and_pages() {
        let catalog = start(Service::Catalog).await;
        let (s, page) = get(&format!(
            "{}/products?category=books&page=2&page_size=7",
            catalog.url()
        ))
        .await;
        assert_eq!(s, 200);
        assert_eq!(page["total"], 500);
        assert_eq!(page["page"], 2);
        assert_eq!(page["page_size"], 7);
        let items = page["items"].as_array().expect("items");
        assert_eq!(items.len(), 7);
        assert!(items.iter().all(|p| p["category"] == "books"));
        let (_, page) = get(&format!("{}/products?q=COOKBOOK", catalog.url())).await;
        assert!(page["total"].as_u64().is_some_and(|t| t > 0));
        assert_eq!(page["page_size"], 20);
        assert!(page["items"].as_array().expect("items").iter().all(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.to_lowercase().contains("cookbook"))
        }));
        let (_, empty) = get(&format!("{}/products?category=nope", catalog.url())).await;
        assert_eq!(empty["total"], 0);
        for bad in ["page_size=101", "page_size=0", "page=0", "page=x"] {
            let (s, e) = get(&format!("{}/products?{bad}", catalog.url())).await;
            assert_eq!(s, 400, "{bad}");
            assert_eq!(e["error"], "bad_request");
        }
    }

    #[tokio::test]
    async fn orders_page_newest_first_with_cursor() {
        let orders = start(Service::Orders).await;
        let mut all = Vec::new();
        let mut url = format!("{}/users/7/orders?limit=2", orders.url());
        loop {
            let (s, page) = get(&url).await;
            assert_eq!(s, 200);
            all.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => url = format!("{}/users/7/orders?limit=2&cursor={c}", orders.url()),
                None => break,
            }
        }
        assert!((3..=12).contains(&all.len()));
        let ids: Vec<u64> = all
            .iter()
            .filter_map(|o| o["id"].as_str()?.parse().ok())
            .collect();
        let expected: Vec<u64> = (1..=all.len() as u64).rev().map(|k| 700 + k).collect();
        assert_eq!(ids, expected);
        assert!(all.iter().all(|o| o["user_id"] == "7"));

        let (_, o) = get(&format!("{}/orders/1001", orders.url())).await;
        assert_eq!(
            (o["user_id"].as_str(), o["partner_id"].as_str()),
            (Some("10"), Some("acme"))
        );
        let (_, o) = get(&format!("{}/orders/702", orders.url())).await;
        assert_eq!(o["partner_id"], "globex");
        let (_, o) = get(&format!("{}/orders/703", orders.url())).await;
        assert_eq!(o["partner_id"], Value::Null);
        let (s, _) = get(&format!("{}/users/7/orders?limit=51", orders.url())).await;
        assert_eq!(s, 400);
        let (s, _) = get(&format!("{}/users/7/orders?cursor=abc", orders.url())).await;
        assert_eq!(s, 400);
        let (s, page) = get(&format!("{}/users/7/orders?cursor=99", orders.url())).await;
        assert_eq!(s, 200);
        assert_eq!(page["items"], json!([]));
    }

    #[tokio::test]
    async fn reviews_match_rating_summary() {
        let reviews = start(Service::Reviews).await;
        for p in [1, 2, 3, 4, 5] {
            let (s, list) = get(&format!("{}/products/{p}/reviews?limit=50", reviews.url())).await;
            assert_eq!(s, 200);
            let (_, rating) = get(&format!("{}/products/{p}/rating", reviews.url())).await;
            assert_eq!(list["summary"], rating);
            let items = list["items"].as_array().expect("items");
            assert_eq!(items.len() as u64, rating["count"].as_u64().expect("count"));
        }
        let (_, list) = get(&format!("{}/products/1/reviews", reviews.url())).await;
        assert!(list["items"].as_array().is_some_and(|i| i.len() <= 10));
        let (s, _) = get(&format!("{}/products/1/reviews?limit=51", reviews.url())).await;
        assert_eq!(s, 400);
    }

    #[tokio::test]
    async fn recommendations_are_valid_products() {
        let recs = start(Service::Recommendations).await;
        let (s, r) = get(&format!("{}/users/3/recommendations?limit=50", recs.url())).await;
        assert_eq!(s, 200);
        let items = r["items"].as_array().expect("items");
        assert_eq!(items.len(), 50);
        assert!(items.iter().all(|i| {
            i["product_id"]
                .as_str()
                .and_then(|id| id.parse::<u32>().ok())
                .is_some_and(|id| (1..=5000).contains(&id))
        }));
        let (_, r5) = get(&format!("{}/users/3/recommendations?limit=5", recs.url())).await;
        assert_eq!(r5["items"].as_array().map(Vec::as_slice), Some(&items[..5]));
        let (_, r10) = get(&format!("{}/users/3/recommendations", recs.url())).await;
        assert_eq!(r10["items"].as_array().map(Vec::len), Some(10));
    }
}

mod faults {
    use super::*;

    fn rule(kind: FaultKind) -> FaultRule {
        FaultRule::new(kind)
    }

    #[tokio::test]
    async fn latency_delays() {
        let h = start_with(
            Service::Users,
            ServiceConfig {
                faults: vec![rule(FaultKind::Latency {
                    ms: 300,
                    jitter_ms: 50,
                })],
                ..Default::default()
            },
        )
        .await;
        let t = Instant::now();
        let (s, _) = get(&format!("{}/users/1", h.url())).await;
        let elapsed = t.elapsed();
        assert_eq!(s, 200);
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
            "{elapsed:?}"
        );
        // healthz is never faulted.
        let t = Instant::now();
        assert_eq!(
            get_text(&format!("{}/healthz", h.url())).await,
            (200, "ok".to_owned())
        );
        assert!(t.elapsed() < Duration::from_millis(300));
    }

    #[tokio::test]
    async fn error_is_leaky_json_with_status() {
        let h = start(Service::Catalog).await;
        h.set_faults(vec![rule(FaultKind::Error { status: 503 })]);
        let resp = client()
            .get(format!("{}/products/1", h.url()))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 503);
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["error"], "injected");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("db-7.internal"))
        );
    }

    #[tokio::test]
    async fn latency_combines_with_error() {
        let h = start(Service::Catalog).await;
        h.set_faults(vec![
            rule(FaultKind::Latency {
                ms: 200,
                jitter_ms: 0,
            }),
            rule(FaultKind::Error { status: 500 }),
        ]);
        let t = Instant::now();
        let (s, _) = get(&format!("{}/products/1", h.url())).await;
        assert_eq!(s, 500);
        assert!(t.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn reset_is_a_client_error() {
        let h = start(Service::Users).await;
        h.set_faults(vec![rule(FaultKind::Reset)]);
        let result = match client().get(format!("{}/users/1", h.url())).send().await {
            Ok(resp) => resp.bytes().await.map(|_| ()),
            Err(e) => Err(e),
        };
        assert!(result.is_err(), "reset must not yield a complete response");
    }

    #[tokio::test]
    async fn hang_times_out_and_shutdown_still_works() {
        let h = start(Service::Users).await;
        h.set_faults(vec![rule(FaultKind::Hang)]);
        let c = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .expect("client");
        let t = Instant::now();
        let err = c
            .get(format!("{}/users/1", h.url()))
            .send()
            .await
            .expect_err("must time out");
        assert!(err.is_timeout(), "{err}");
        assert!(t.elapsed() < Duration::from_secs(3));
        // A hanging request in flight must not block shutdown.
        let url = format!("{}/users/1", h.url());
        let pending =
            tokio::spawn(
                async move { client().get(url).send().await.map(|r| r.status().as_u16()) },
            );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        let addr = h.addr();
        h.shutdown().await;
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let _ = pending.await;
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "listener must be closed"
        );
    }

    #[tokio::test]
    async fn malformed_json_does_not_parse() {
        let h = start(Service::Users).await;
        h.set_faults(vec![rule(FaultKind::MalformedJson)]);
        let resp = client()
            .get(format!("{}/users/1", h.url()))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        let body = resp.bytes().await.expect("body");
        assert!(serde_json::from_slice::<Value>(&body).is_err());
    }

    #[tokio::test]
    async fn slow_drip_streams_the_real_body_slowly() {
        let h = start(Service::Users).await;
        let (_, normal) = get_text(&format!("{}/users/1", h.url())).await;
        h.set_faults(vec![rule(FaultKind::SlowDrip {
            bytes_per_chunk: 100,
            interval_ms: 60,
        })]);
        let t = Instant::now();
        let (s, dripped) = get_text(&format!("{}/users/1", h.url())).await;
        let elapsed = t.elapsed();
        assert_eq!(s, 200);
        assert_eq!(dripped, normal);
        let chunks = normal.len().div_ceil(100) as u32;
        assert!(
            elapsed >= Duration::from_millis(60) * (chunks - 1),
            "{elapsed:?} for {chunks} chunks"
        );
    }

    #[tokio::test]
    async fn oversized_is_large_valid_json() {
        let h = start(Service::Catalog).await;
        h.set_faults(vec![rule(FaultKind::Oversized { bytes: 1_000_000 })]);
        let resp = client()
            .get(format!("{}/products/1", h.url()))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 200);
        let body = resp.bytes().await.expect("body");
        assert!(body.len() >= 1_000_000);
        let v: Value = serde_json::from_slice(&body).expect("valid json");
        assert!(v["padding"].as_str().is_some_and(|p| p.len() > 900_000));
    }

    #[tokio::test]
    async fn path_prefix_scopes_and_rate_zero_never_fires() {
        let h = start(Service::Orders).await;
        h.set_faults(vec![
            rule(FaultKind::Error { status: 502 }).with_prefix("/orders"),
            rule(FaultKind::Error { status: 500 }).with_rate(0.0),
        ]);
        let (s, _) = get(&format!("{}/orders/1001", h.url())).await;
        assert_eq!(s, 502);
        for _ in 0..30 {
            let (s, _) = get(&format!("{}/users/1/orders", h.url())).await;
            assert_eq!(s, 200);
        }
        h.clear_faults();
        let (s, _) = get(&format!("{}/orders/1001", h.url())).await;
        assert_eq!(s, 200);
    }

    #[tokio::test]
    async fn faults_given_at_start_and_validated() {
        let h = start_with(
            Service::Inventory,
            ServiceConfig {
                faults: vec![rule(FaultKind::Error { status: 504 })],
                ..Default::default()
            },
        )
        .await;
        assert_eq!(get(&format!("{}/inventory/1", h.url())).await.0, 504);
        let bad = ServiceConfig {
            faults: vec![rule(FaultKind::Reset).with_rate(2.0)],
            ..Default::default()
        };
        assert!(
            spawn(
                Service::Users,
                SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                bad
            )
            .await
            .is_err()
        );
    }
}

mod admin {
    use super::*;

    #[tokio::test]
    async fn fault_admin_round_trip() {
        let h = start(Service::Reviews).await;
        let c = client();
        let url = format!("{}/admin/faults", h.url());
        let rules = json!([{"kind":"latency","ms":300,"jitter_ms":0,"path_prefix":"/products"}]);
        let resp = c.put(&url).json(&rules).send().await.expect("put");
        assert_eq!(resp.status().as_u16(), 200);
        let listed: Value = c
            .get(&url)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(
            listed,
            json!([{"kind":"latency","ms":300,"jitter_ms":0,"path_prefix":"/products","rate":1.0}])
        );
        let resp = c
            .post(&url)
            .json(&json!({"kind":"error","status":503,"rate":0.5}))
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status().as_u16(), 201);
        assert_eq!(h.faults().len(), 2);
        assert_eq!(
            h.faults()[1],
            FaultRule::new(FaultKind::Error { status: 503 }).with_rate(0.5)
        );
        for bad in [
            json!({"kind":"explode"}),
            json!({"kind":"error","status":1000}),
            json!({"kind":"hang","rate":-1}),
        ] {
            let resp = c.post(&url).json(&bad).send().await.expect("post");
            assert_eq!(resp.status().as_u16(), 400, "{bad}");
        }
        let resp = c.put(&url).body("not json").send().await.expect("put");
        assert_eq!(resp.status().as_u16(), 400);
        let resp = c.delete(&url).send().await.expect("delete");
        assert!(resp.status().is_success());
        assert!(h.faults().is_empty());
        // The admin API itself is never faulted nor recorded.
        h.set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
        let resp = c.get(&url).send().await.expect("get");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(h.received_total(), 0);
    }

    #[tokio::test]
    async fn recording_counts_routes_and_last_headers() {
        let h = start(Service::Users).await;
        let c = client();
        for id in ["1", "2", "9999"] {
            c.get(format!("{}/users/{id}", h.url()))
                .send()
                .await
                .expect("send");
        }
        c.get(format!("{}/users/3?x=1&y=2", h.url()))
            .header("x-test", "a")
            .header("X-Test", "b")
            .header("Authorization", "Bearer abc")
            .send()
            .await
            .expect("send");
        get_text(&format!("{}/healthz", h.url())).await;
        assert_eq!(h.received_total(), 4);
        assert_eq!(h.route_count("GET /users/{id}"), 4);
        assert_eq!(h.route_count("GET /nope"), 0);
        assert_eq!(h.last_header("x-test").as_deref(), Some("a, b"));
        assert_eq!(
            h.last_header("authorization").as_deref(),
            Some("Bearer abc")
        );
        assert!(h.last_headers().iter().all(|(n, _)| *n == n.to_lowercase()));
        assert_eq!(h.last_uri().as_deref(), Some("/users/3?x=1&y=2"));

        let received: Value = c
            .get(format!("{}/admin/received", h.url()))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(received["total"], 4);
        assert_eq!(received["routes"], json!({"GET /users/{id}": 4}));
        assert_eq!(received["last"]["method"], "GET");
        assert_eq!(received["last"]["uri"], "/users/3?x=1&y=2");
        assert_eq!(received["last"]["headers"]["x-test"], "a, b");

        let resp = c
            .delete(format!("{}/admin/received", h.url()))
            .send()
            .await
            .expect("delete");
        assert!(resp.status().is_success());
        assert_eq!(h.received_total(), 0);
        assert!(h.last_headers().is_empty());
    }

    #[tokio::test]
    async fn faulted_requests_are_recorded() {
        let h = start(Service::Catalog).await;
        h.set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
        get(&format!("{}/products?ids=1", h.url())).await;
        assert_eq!(h.route_count("GET /products"), 1);
    }

    #[tokio::test]
    async fn spawn_all_runs_seven_services() {
        let stack = spawn_all(Ipv4Addr::LOCALHOST.into(), None)
            .await
            .expect("spawn all");
        assert_eq!(stack.handles().count(), 7);
        for service in Service::ALL {
            assert_eq!(
                get_text(&format!("{}/healthz", stack.url(service))).await,
                (200, "ok".to_owned())
            );
        }
        let (s, _) = get(&format!("{}/users/1/orders", stack.url(Service::Orders))).await;
        assert_eq!(s, 200);
        assert_eq!(
            stack
                .handle(Service::Orders)
                .route_count("GET /users/{id}/orders"),
            1
        );
        let addr = stack.handle(Service::Users).addr();
        stack.shutdown().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[test]
    fn service_names_and_ports() {
        for (i, s) in Service::ALL.iter().enumerate() {
            assert_eq!(s.default_port(), 7000 + i as u16);
            assert_eq!(s.name().parse::<Service>(), Ok(*s));
        }
        assert!("nope".parse::<Service>().is_err());
    }
}

mod identity {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
    use mock_services::idp::Claims;

    use super::*;

    async fn jwks(h: &MockHandle) -> JwkSet {
        let resp = client()
            .get(format!("{}/.well-known/jwks.json", h.url()))
            .send()
            .await
            .expect("jwks");
        assert_eq!(
            resp.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("max-age=60")
        );
        resp.json().await.expect("jwks json")
    }

    fn kids(set: &JwkSet) -> Vec<String> {
        set.keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect()
    }

    async fn mint(h: &MockHandle, body: Value) -> (u16, Value) {
        let resp = client()
            .post(format!("{}/token", h.url()))
            .json(&body)
            .send()
            .await
            .expect("token");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    fn verify(
        token: &str,
        set: &JwkSet,
        alg: Algorithm,
        aud: &str,
    ) -> Result<Claims, jsonwebtoken::errors::Error> {
        bff_core::auth::jwt_crypto::install();
        let header = decode_header(token)?;
        let kid = header.kid.unwrap_or_default();
        let jwk = set
            .find(&kid)
            .ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
        let mut v = Validation::new(alg);
        v.set_audience(&[aud]);
        v.set_issuer(&["bff-dev-idp"]);
        v.leeway = 0;
        Ok(decode::<Claims>(token, &DecodingKey::from_jwk(jwk)?, &v)?.claims)
    }

    #[tokio::test]
    async fn mints_rs256_and_es256_verifiable_with_jwks() {
        let h = start(Service::Identity).await;
        let set = jwks(&h).await;
        assert_eq!(kids(&set), ["rsa-1", "ec-1"]);
        let json_set: Value = serde_json::to_value(&set).expect("json");
        assert!(
            json_set["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .all(|k| k["use"] == "sig" && k["alg"].is_string())
        );

        let (s, t) = mint(
            &h,
            json!({"sub":"42","aud":"bff-web","scopes":["orders:read","profile"]}),
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(t["token_type"], "Bearer");
        assert_eq!(t["expires_in"], 300);
        let token = t["access_token"].as_str().expect("token");
        assert_eq!(
            decode_header(token).expect("header").kid.as_deref(),
            Some("rsa-1")
        );
        let claims = verify(token, &set, Algorithm::RS256, "bff-web").expect("valid RS256");
        assert_eq!(claims.sub, "42");
        assert_eq!(claims.scope, "orders:read profile");
        assert_eq!(claims.scopes, ["orders:read", "profile"]);
        assert_eq!(claims.exp, Some(claims.iat + 300));
        assert_eq!(claims.nbf, claims.iat);
        assert_eq!(claims.jti.len(), 32);

        let (s, t) = mint(
            &h,
            json!({"sub":"1","aud":"bff-mobile","alg":"ES256","ttl_s":60}),
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(t["expires_in"], 60);
        let token = t["access_token"].as_str().expect("token");
        assert_eq!(
            decode_header(token).expect("header").kid.as_deref(),
            Some("ec-1")
        );
        verify(token, &set, Algorithm::ES256, "bff-mobile").expect("valid ES256");
        assert!(
            verify(token, &set, Algorithm::ES256, "bff-web").is_err(),
            "wrong audience"
        );
        assert_eq!(h.route_count("POST /token"), 2);
    }

    #[tokio::test]
    async fn test_knobs_and_bad_requests() {
        let h = start(Service::Identity).await;
        let set = jwks(&h).await;
        let (_, t) = mint(&h, json!({"sub":"1","aud":"a","time_offset_s":-3600})).await;
        let err = verify(
            t["access_token"].as_str().expect("token"),
            &set,
            Algorithm::RS256,
            "a",
        )
        .expect_err("expired");
        assert!(
            matches!(
                err.kind(),
                jsonwebtoken::errors::ErrorKind::ExpiredSignature
            ),
            "{err:?}"
        );
        let (_, t) = mint(&h, json!({"sub":"1","aud":"a","iss":"evil"})).await;
        let err = verify(
            t["access_token"].as_str().expect("token"),
            &set,
            Algorithm::RS256,
            "a",
        )
        .expect_err("iss");
        assert!(
            matches!(err.kind(), jsonwebtoken::errors::ErrorKind::InvalidIssuer),
            "{err:?}"
        );
        let (_, t) = mint(&h, json!({"sub":"1","aud":"a","omit_exp":true})).await;
        let claims: Claims =
            jsonwebtoken::dangerous::insecure_decode(t["access_token"].as_str().expect("token"))
                .expect("decode")
                .claims;
        assert_eq!(claims.exp, None);
        for bad in [
            json!({"sub":"1","aud":"a","alg":"HS256"}),
            json!({"sub":"1","aud":"a","ttl_s":86401}),
            json!({"aud":"a"}),
        ] {
            assert_eq!(mint(&h, bad.clone()).await.0, 400, "{bad}");
        }
        let resp = client()
            .post(format!("{}/token", h.url()))
            .body("{")
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 400);
    }

    #[tokio::test]
    async fn rotation_publishes_new_and_keeps_old_keys() {
        let h = start(Service::Identity).await;
        let (_, old) = mint(&h, json!({"sub":"1","aud":"a"})).await;
        let old_token = old["access_token"].as_str().expect("token").to_owned();
        let resp = client()
            .post(format!("{}/admin/rotate-keys", h.url()))
            .send()
            .await
            .expect("rotate");
        assert_eq!(resp.status().as_u16(), 200);
        let active: Value = resp.json().await.expect("json");
        assert_eq!(active, json!({"rsa":"rsa-2","ec":"ec-2","grace_s":300}));
        let set = jwks(&h).await;
        assert_eq!(kids(&set), ["rsa-2", "ec-2", "rsa-1", "ec-1"]);
        verify(&old_token, &set, Algorithm::RS256, "a").expect("old token still verifies");
        let (_, new) = mint(&h, json!({"sub":"1","aud":"a"})).await;
        let new_token = new["access_token"].as_str().expect("token");
        assert_eq!(
            decode_header(new_token).expect("header").kid.as_deref(),
            Some("rsa-2")
        );
        verify(new_token, &set, Algorithm::RS256, "a").expect("new token verifies");

        // Grace 0: the previous keys (rsa-2/ec-2) disappear at once; rsa-1/ec-1 are still in grace.
        let resp = client()
            .post(format!("{}/admin/rotate-keys", h.url()))
            .json(&json!({"grace_s": 0}))
            .send()
            .await
            .expect("rotate");
        let active: Value = resp.json().await.expect("json");
        assert_eq!(active["rsa"], "rsa-3");
        assert_eq!(kids(&jwks(&h).await), ["rsa-3", "ec-3", "rsa-1", "ec-1"]);
        // Admin routes are not recorded.
        assert_eq!(h.route_count("POST /admin/rotate-keys"), 0);
    }
}

/// The commands: carts, checkout, partner orders, reviews; replay by `Idempotency-Key`; faults and recording.
mod writes {
    use super::*;

    async fn send(
        method: reqwest::Method,
        url: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut request = client().request(method, url);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let resp = request.send().await.expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
            headers,
        )
    }

    async fn post(url: &str, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let (s, b, _) = send(reqwest::Method::POST, url, Some(body), headers).await;
        (s, b)
    }

    /// A product that is in stock (about one in ten is not).
    fn in_stock() -> &'static str {
        "42"
    }

    /// Adding to the cart, removing a line and checking out; the new order is then the user's newest, readable
    /// by id, and the cart is empty.
    #[tokio::test]
    async fn cart_checkout_and_read_back() {
        let orders = start(Service::Orders).await;
        let base = orders.url();
        let (s, cart) = get(&format!("{base}/users/7/cart")).await;
        assert_eq!((s, cart["items"].as_array().map(Vec::len)), (200, Some(0)));
        let (s, cart) = post(
            &format!("{base}/users/7/cart/items"),
            json!({"product_id": in_stock(), "quantity": 2}),
            &[],
        )
        .await;
        assert_eq!(s, 200, "{cart}");
        assert_eq!(cart["items"][0]["quantity"], 2);
        let (s, _) = post(
            &format!("{base}/users/7/cart/items"),
            json!({"product_id": "7", "quantity": 1}),
            &[],
        )
        .await;
        assert!(s == 200 || s == 409);
        let (s, cart, _) = send(
            reqwest::Method::DELETE,
            &format!("{base}/users/7/cart/items/7"),
            None,
            &[],
        )
        .await;
        assert!(s == 200 || s == 404, "{s}");
        let (s, _, _) = send(
            reqwest::Method::DELETE,
            &format!("{base}/users/7/cart/items/9"),
            None,
            &[],
        )
        .await;
        assert_eq!(s, 404, "a line not in the cart");
        let _ = cart;
        let (s, order) = post(
            &format!("{base}/users/7/orders"),
            json!({"payment_method": "card"}),
            &[],
        )
        .await;
        assert_eq!(s, 201, "{order}");
        assert_eq!(order["user_id"], "7");
        assert_eq!(order["items"][0]["product_id"], in_stock());
        let id = order["id"].as_str().expect("id").to_owned();
        let (s, read) = get(&format!("{base}/orders/{id}")).await;
        assert_eq!((s, &read["id"]), (200, &json!(id)));
        let (_, page) = get(&format!("{base}/users/7/orders?limit=2")).await;
        assert_eq!(page["items"][0]["id"], json!(id), "newest first");
        assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
        let (_, cart) = get(&format!("{base}/users/7/cart")).await;
        assert_eq!(cart["items"].as_array().map(Vec::len), Some(0));
        let (s, body) = post(
            &format!("{base}/users/7/orders"),
            json!({"payment_method": "card"}),
            &[],
        )
        .await;
        assert_eq!((s, body["error"].as_str()), (409, Some("cart_empty")));
        orders.shutdown().await;
    }

    /// Business rules answer 422/409 with a code and change nothing; malformed bodies are a 400.
    #[tokio::test]
    async fn refused_commands_change_nothing() {
        let orders = start(Service::Orders).await;
        let base = orders.url();
        let url = format!("{base}/users/3/cart/items");
        for (body, status, code) in [
            (
                json!({"product_id": "999999", "quantity": 1}),
                422,
                "unknown_product",
            ),
            (
                json!({"product_id": in_stock(), "quantity": 0}),
                422,
                "quantity_limit",
            ),
            (
                json!({"product_id": in_stock(), "quantity": 21}),
                422,
                "quantity_limit",
            ),
            (
                json!({"product_id": in_stock(), "quantity": 1, "x": 1}),
                400,
                "bad_request",
            ),
            (json!({"product_id": 42, "quantity": 1}), 400, "bad_request"),
        ] {
            let (s, b) = post(&url, body.clone(), &[]).await;
            assert_eq!((s, b["error"].as_str()), (status, Some(code)), "{body}");
        }
        let (_, cart) = get(&format!("{base}/users/3/cart")).await;
        assert_eq!(cart["version"], 0, "nothing written: {cart}");
        let (s, _) = post(&format!("{base}/users/99999/cart/items"), json!({}), &[]).await;
        assert_eq!(s, 404);
        orders.shutdown().await;
    }

    /// A repeated `Idempotency-Key` gets the first answer again (marked) and does not order twice.
    #[tokio::test]
    async fn idempotency_key_replays_the_first_answer() {
        let orders = start(Service::Orders).await;
        let base = orders.url();
        let key = [("idempotency-key", "k-1")];
        post(
            &format!("{base}/users/5/cart/items"),
            json!({"product_id": in_stock(), "quantity": 1}),
            &[],
        )
        .await;
        let url = format!("{base}/users/5/orders");
        let (s1, first, h1) = send(
            reqwest::Method::POST,
            &url,
            Some(json!({"payment_method": "paypal"})),
            &key,
        )
        .await;
        let (s2, second, h2) = send(
            reqwest::Method::POST,
            &url,
            Some(json!({"payment_method": "paypal"})),
            &key,
        )
        .await;
        assert_eq!((s1, s2), (201, 201));
        assert_eq!(first, second);
        assert!(h1.get("idempotent-replayed").is_none());
        assert_eq!(h2["idempotent-replayed"], "true");
        let (_, page) = get(&format!("{base}/users/5/orders?limit=50")).await;
        let n = page["items"]
            .as_array()
            .map(|a| a.iter().filter(|o| o["id"] == first["id"]).count());
        assert_eq!(n, Some(1), "ordered once");
        orders.shutdown().await;
    }

    /// Partner orders need the partner header, carry its id, and live in their own id range.
    #[tokio::test]
    async fn partner_orders() {
        let orders = start(Service::Orders).await;
        let url = format!("{}/orders", orders.url());
        let body =
            json!({"items": [{"product_id": in_stock(), "quantity": 3}], "external_ref": "po-1"});
        let (s, _) = post(&url, body.clone(), &[]).await;
        assert_eq!(s, 403);
        let (s, order) = post(&url, body, &[("x-bff-partner-id", "acme")]).await;
        assert_eq!(s, 201, "{order}");
        assert_eq!(order["partner_id"], "acme");
        assert_eq!(order["id"], "10000001");
        let (s, dup) = post(
            &url,
            json!({"items": [{"product_id": "42", "quantity": 1}, {"product_id": "42", "quantity": 1}]}),
            &[("x-bff-partner-id", "acme")],
        )
        .await;
        assert_eq!((s, dup["error"].as_str()), (422, Some("invalid")));
        let (s, read) = get(&format!("{}/orders/10000001", orders.url())).await;
        assert_eq!((s, &read["partner_id"]), (200, &json!("acme")));
        let received = orders.received();
        let last = received.last.expect("recorded");
        assert_eq!(last.method, "GET");
        assert_eq!(received.routes.get("POST /orders"), Some(&3));
        orders.shutdown().await;
    }

    /// A new review is the newest, counts in the rating, and a second one by the same user is refused.
    #[tokio::test]
    async fn reviews_are_created_once_per_user() {
        let reviews = start(Service::Reviews).await;
        let base = reviews.url();
        let (_, before) = get(&format!("{base}/products/3/rating")).await;
        let body = json!({"user_id": "9", "rating": 5, "title": "Great", "body": "Works well."});
        let (s, review) = post(&format!("{base}/products/3/reviews"), body.clone(), &[]).await;
        assert_eq!(s, 201, "{review}");
        let (_, after) = get(&format!("{base}/products/3/rating")).await;
        assert_eq!(after["count"], before["count"].as_u64().unwrap_or(0) + 1);
        let (_, list) = get(&format!("{base}/products/3/reviews?limit=1")).await;
        assert_eq!(list["items"][0]["id"], review["id"]);
        let (s, again) = post(&format!("{base}/products/3/reviews"), body, &[]).await;
        assert_eq!(
            (s, again["error"].as_str()),
            (409, Some("already_reviewed"))
        );
        let (s, _) = post(
            &format!("{base}/products/3/reviews"),
            json!({"user_id": "8", "rating": 6, "title": "x", "body": "y"}),
            &[],
        )
        .await;
        assert_eq!(s, 422);
        let last = reviews.received().last.expect("recorded");
        assert_eq!(last.method, "POST");
        assert!(
            last.body
                .as_deref()
                .is_some_and(|b| b.contains("\"rating\":6"))
        );
        reviews.shutdown().await;
    }

    /// Faults apply to commands like to reads: an injected 503 answers before anything is written.
    #[tokio::test]
    async fn faults_apply_to_commands() {
        let orders = start(Service::Orders).await;
        orders.add_fault(
            FaultRule::new(FaultKind::Error { status: 503 }).with_prefix("/users/4/cart"),
        );
        let (s, _) = post(
            &format!("{}/users/4/cart/items", orders.url()),
            json!({"product_id": in_stock(), "quantity": 1}),
            &[],
        )
        .await;
        assert_eq!(s, 503);
        orders.clear_faults();
        let (_, cart) = get(&format!("{}/users/4/cart", orders.url())).await;
        assert_eq!(cart["version"], 0);
        orders.shutdown().await;
    }
}

//! Hot reload over real HTTP (bff-partner, a config file in a temp directory): a new API key works without
//! a restart, a broken file changes nothing (refused, counted, the old configuration keeps serving), no
//! request fails while reloads happen under load, and a change of the file is picked up by itself.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bff_core::BffConfig;
use bff_core::reload::{Build, Reloader};
use common::*;
use mock_services::{MockStack, Service};
use tokio::net::TcpListener;

const ACME: &str = "dev-acme-key";
const GLOBEX: &str = "dev-globex-key";
const ACME_SHA: &str = "62c2fc277ab4261d4243be7b5cf49bdab2c39fed01ae2d4ce1cf9a38ec4e793c";
const GLOBEX_SHA: &str = "4763e480ccf7dc583baddba37894eb1dc1fabf79bfc9d82a4a8b00710e18f124";

/// A partner config file at the mocks with the given keys (hash, partner).
fn file(mocks: &MockStack, keys: &[(&str, &str)]) -> String {
    let mut text =
        String::from("[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n");
    for service in [Service::Catalog, Service::Inventory, Service::Orders] {
        text.push_str(&format!(
            "[downstreams.{}]\nurl = \"{}\"\n",
            service.name(),
            mocks.url(service)
        ));
    }
    for (sha, partner) in keys {
        text.push_str(&format!(
            "[[auth.api_keys]]\nkey_sha256 = \"{sha}\"\npartner_id = \"{partner}\"\ntier = \"gold\"\nscopes = [\"catalog:read\"]\n"
        ));
    }
    text
}

struct Running {
    url: String,
    admin_url: String,
    reloader: Arc<Reloader>,
    path: PathBuf,
}

async fn serve(router: bff_core::reload::Swappable) -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(bff_core::server::serve(
        listener,
        router,
        std::future::pending(),
        Duration::from_secs(1),
    ));
    url
}

async fn start(name: &str, text: &str) -> Running {
    let dir = std::env::temp_dir().join(format!("bff-reload-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("partner.toml");
    std::fs::write(&path, text).unwrap();
    let build = Build {
        defaults: bff_partner::defaults,
        app: bff_partner::app,
    };
    let config = BffConfig::load(&bff_partner::defaults(), Some(&path)).expect("valid file");
    let reloader = Arc::new(Reloader::start(build, Some(&path), config).expect("builds"));
    Running {
        url: serve(reloader.public_router()).await,
        admin_url: serve(reloader.admin_router()).await,
        reloader,
        path,
    }
}

async fn status(url: &str, key: &str) -> u16 {
    get(&format!("{url}/v1/products/42"), &[("x-api-key", key)])
        .await
        .status
}

fn reloads(body: &str, result: &str) -> u64 {
    let series = format!("bff_config_reloads_total{{result=\"{result}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
        .unwrap_or(0)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// A key added to the file works after a reload, without restart; a broken file is refused (logged,
/// counted) and the previous configuration keeps serving; the metrics continue across reloads.
#[tokio::test]
async fn new_key_works_and_broken_file_changes_nothing() {
    let mocks = mocks().await;
    let gw = start("keys", &file(&mocks, &[(ACME_SHA, "acme")])).await;
    assert_eq!(status(&gw.url, ACME).await, 200);
    assert_eq!(status(&gw.url, GLOBEX).await, 401);

    write(
        &gw.path,
        &file(&mocks, &[(ACME_SHA, "acme"), (GLOBEX_SHA, "globex")]),
    );
    gw.reloader.reload().expect("valid reload");
    assert_eq!(status(&gw.url, GLOBEX).await, 200);
    assert_eq!(status(&gw.url, ACME).await, 200);

    for broken in [
        "[auth]\nbogus_key = 1\n".to_owned(),
        "[[auth.api_keys]]\nkey_sha256 = \"nothex\"\npartner_id = \"x\"\ntier = \"t\"\n".to_owned(),
        "[server\n".to_owned(),
    ] {
        write(&gw.path, &broken);
        let e = gw.reloader.reload().unwrap_err();
        assert!(!e.is_empty());
        assert_eq!(status(&gw.url, GLOBEX).await, 200, "old config serves");
    }
    let metrics = get(&format!("{}/metrics", gw.admin_url), &[]).await.body;
    assert_eq!(reloads(&metrics, "success"), 1, "{metrics}");
    assert_eq!(reloads(&metrics, "failure"), 3, "{metrics}");
    // Requests before and after the reloads are in the same series (1 + 2 + 3 answered 200).
    assert!(
        metrics.contains(
            "bff_http_requests_total{route=\"/v1/products/{id}\",method=\"GET\",status=\"200\"} 6"
        ),
        "{metrics}"
    );
    // The admin view follows: the redacted config now lists two keys.
    let config = get(&format!("{}/config", gw.admin_url), &[]).await.json();
    assert_eq!(config["auth"]["api_keys"].as_array().unwrap().len(), 2);
}

/// Reloads under load: requests keep flowing during ten reloads and none fails.
#[tokio::test]
async fn no_request_fails_during_reloads_under_load() {
    let mocks = mocks().await;
    let text = file(&mocks, &[(ACME_SHA, "acme")]);
    let gw = start("load", &text).await;
    let url = gw.url.clone();
    let load = tokio::spawn(async move {
        let client = client();
        let mut statuses = Vec::new();
        for _ in 0..20 {
            let batch = (0..8).map(|i| {
                client
                    .get(format!("{url}/v1/products/{}", 40 + i))
                    .header("x-api-key", ACME)
                    .send()
            });
            for r in futures::future::join_all(batch).await {
                statuses.push(r.map(|r| r.status().as_u16()).unwrap_or(0));
            }
        }
        statuses
    });
    for i in 0..10 {
        write(&gw.path, &format!("{text}# reload {i}\n"));
        gw.reloader.reload().expect("valid reload");
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let statuses = load.await.unwrap();
    assert_eq!(statuses.len(), 160);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

/// A change of the config file is picked up without any signal.
#[tokio::test]
async fn file_change_is_picked_up() {
    let mocks = mocks().await;
    let gw = start("watch", &file(&mocks, &[(ACME_SHA, "acme")])).await;
    gw.reloader.watch(Duration::from_millis(50));
    assert_eq!(status(&gw.url, GLOBEX).await, 401);
    write(
        &gw.path,
        &file(&mocks, &[(ACME_SHA, "acme"), (GLOBEX_SHA, "globex")]),
    );
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while status(&gw.url, GLOBEX).await != 200 {
        assert!(
            std::time::Instant::now() < end,
            "the change was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

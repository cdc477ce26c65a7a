//! The `bff-web` binary in production mode, end to end: logs written to a pipe (no ANSI codes, JSON by
//! config, one access line per request with route, status, duration, ids and part outcomes, no credential),
//! the admin listener, the `healthcheck` subcommand, graceful drain on SIGTERM under load (readiness fails
//! first, requests in flight finish, new connections are refused, the process exits 0), and reload on SIGHUP.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mock_services::{FaultKind, FaultRule, MockStack, Service};

/// The binary, with a clean `BFF_*` environment, the downstreams at `mocks`, ephemeral ports and JSON logs.
fn gateway(mocks: &MockStack, extra: &[(&str, &str)]) -> (Child, Arc<Mutex<Vec<String>>>) {
    gateway_with_args(mocks, extra, &[])
}

/// [`gateway`] with command-line arguments.
fn gateway_with_args(
    mocks: &MockStack,
    extra: &[(&str, &str)],
    args: &[&str],
) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bff-web"));
    cmd.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("BFF_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    for service in Service::ALL {
        cmd.env(
            format!("BFF_DOWNSTREAMS__{}__URL", service.name().to_uppercase()),
            mocks.url(service),
        );
    }
    cmd.env("BFF_SERVER__LISTEN", "127.0.0.1:0")
        .env("BFF_ADMIN__LISTEN", "127.0.0.1:0")
        .env("BFF_TELEMETRY__LOG_FORMAT", "json");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bff-web starts");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr");
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    (child, lines)
}

/// Waits for the log line with `message` and returns its `field` (e.g. the bound address).
fn logged(lines: &Mutex<Vec<String>>, message: &str, field: &str) -> String {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        for line in lines.lock().unwrap().iter() {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(line)
                && json["message"] == message
                && let Some(v) = json[field].as_str()
            {
                return v.to_owned();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no `{message}` log line: {:?}", lines.lock().unwrap());
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn token(mocks: &MockStack) -> String {
    let r: serde_json::Value = client()
        .post(format!("{}/token", mocks.url(Service::Identity)))
        .json(&serde_json::json!({"sub": "7", "aud": "bff-web", "scopes": [], "ttl_s": 300}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().unwrap().to_owned()
}

/// SIGTERM under load: `/readyz` fails at once (admin port), requests in flight all finish 200, a new
/// connection is refused once the drain delay is over, and the process exits 0. The logs on the pipe are
/// JSON without ANSI codes, with one access line per request and never the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_on_sigterm_under_load_and_logs_cleanly() {
    let mocks = mock_services::spawn_all(IpAddr::V4(Ipv4Addr::LOCALHOST), None)
        .await
        .unwrap();
    let (mut child, lines) = gateway(&mocks, &[("BFF_SERVER__DRAIN_DELAY_MS", "400")]);
    let public: SocketAddr = logged(&lines, "listening", "listen").parse().unwrap();
    let admin: SocketAddr = logged(&lines, "admin listening", "listen").parse().unwrap();
    let token = token(&mocks).await;

    // The healthcheck subcommand asks the admin listener.
    let health = Command::new(env!("CARGO_BIN_EXE_bff-web"))
        .arg("healthcheck")
        .env("BFF_ADMIN__LISTEN", admin.to_string())
        .output()
        .unwrap();
    assert!(health.status.success(), "{health:?}");

    // Load: every home page takes ~900 ms (slow users service).
    mocks
        .handle(Service::Users)
        .set_faults(vec![FaultRule::new(FaultKind::Latency {
            ms: 900,
            jitter_ms: 0,
        })]);
    let http = client();
    let in_flight: Vec<_> = (0..16)
        .map(|_| {
            let request = http
                .get(format!("http://{public}/api/home"))
                .header("authorization", format!("Bearer {token}"));
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());

    // Readiness fails first, while the public listener still accepts.
    let mut not_ready = false;
    while signalled.elapsed() < Duration::from_millis(300) {
        let r = client()
            .get(format!("http://{admin}/readyz"))
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(not_ready, "readiness did not fail within 300 ms of SIGTERM");
    assert!(signalled.elapsed() < Duration::from_millis(400));

    // After the drain delay the listener is closed: new connections are refused while old requests run.
    tokio::time::sleep(Duration::from_millis(600).saturating_sub(signalled.elapsed())).await;
    assert!(
        tokio::net::TcpStream::connect(public).await.is_err(),
        "a new connection was accepted after the drain delay"
    );
    for request in in_flight {
        assert_eq!(
            request.await.unwrap().unwrap(),
            200,
            "an in-flight request failed"
        );
    }
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < end, "the gateway did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");

    let lines = lines.lock().unwrap();
    let text = lines.join("\n");
    assert!(!text.contains('\u{1b}'), "ANSI escape in piped logs");
    assert!(!text.contains(&token), "the token was logged");
    let access: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|j| j["message"] == "request completed" && j["route"] == "/api/home")
        .collect();
    assert_eq!(access.len(), 16, "{text}");
    // Durations are real: the request that made the (coalesced) 900 ms profile call took at least that long;
    // one that joined the call later (a loaded machine sends the 16 requests over some time) took less.
    let longest = access
        .iter()
        .map(|l| l["duration_ms"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(longest >= 900.0, "{text}");
    for line in &access {
        assert_eq!(line["status"], 200);
        assert!(line["duration_ms"].as_f64().unwrap() > 0.0, "{line}");
        assert_eq!(line["request_id"].as_str().unwrap().len(), 36, "{line}");
        assert_eq!(line["trace_id"].as_str().unwrap().len(), 32, "{line}");
        let parts = line["parts"].as_str().unwrap();
        assert!(parts.contains("profile=ok:"), "{parts}");
        assert!(parts.contains("recommendations=ok:"), "{parts}");
    }
    assert!(text.contains("draining"), "{text}");
}

/// SIGHUP reloads the config file of the running binary: the new setting (`Server-Timing` on) applies
/// without a restart, and the reload is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_file() {
    let mocks = mock_services::spawn_all(IpAddr::V4(Ipv4Addr::LOCALHOST), None)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("bff-web-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("web.toml");
    std::fs::write(&path, "[telemetry]\nserver_timing = false\n").unwrap();
    let config = path.to_str().unwrap().to_owned();
    let (mut child, lines) = gateway_with_args(&mocks, &[], &["--config", &config]);
    let public: SocketAddr = logged(&lines, "listening", "listen").parse().unwrap();
    let healthz = || async {
        client()
            .get(format!("http://{public}/healthz"))
            .send()
            .await
            .unwrap()
    };
    assert!(healthz().await.headers().get("server-timing").is_none());
    std::fs::write(&path, "[telemetry]\nserver_timing = true\n").unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let end = Instant::now() + Duration::from_secs(10);
    while healthz().await.headers().get("server-timing").is_none() {
        assert!(Instant::now() < end, "not reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The log lines arrive through a reader thread that may lag the reload itself: wait for them.
    let logged_both = |text: &str| {
        text.contains("SIGHUP: reloading the configuration")
            && text.contains("configuration reloaded")
    };
    let logs_by = Instant::now() + Duration::from_secs(10);
    let mut text = lines.lock().unwrap().join("\n");
    while !logged_both(&text) && Instant::now() < logs_by {
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = lines.lock().unwrap().join("\n");
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(logged_both(&text), "{text}");
}

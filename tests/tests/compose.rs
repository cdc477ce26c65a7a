//! docker-compose.yml cannot run here (no Docker engine), so this validates it against the real binaries and
//! configuration: it parses, every gateway's command is a real binary, its environment is a valid
//! configuration of that gateway, its downstreams point at the mocks service on ports that service publishes,
//! and its published port is the one it listens on.

use std::collections::BTreeMap;

use bff_core::BffConfig;
use figment::Jail;
use serde_yaml_ng::Value;

fn compose() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docker-compose.yml"
    ))
    .unwrap();
    let mut value: Value = serde_yaml_ng::from_str(&text).expect("docker-compose.yml parses");
    value.apply_merge().expect("merge keys resolve");
    value
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Host ports published by a service (`"host:container"` entries).
fn published(service: &Value) -> Vec<u16> {
    strings(&service["ports"])
        .iter()
        .filter_map(|p| p.split(':').next().and_then(|h| h.parse().ok()))
        .collect()
}

/// Every gateway service of the compose file is a valid, consistently wired configuration of that gateway.
#[test]
fn compose_file_matches_binaries_and_config() {
    let doc = compose();
    let services = doc["services"].as_mapping().expect("services");
    let names: Vec<&str> = services.keys().filter_map(|k| k.as_str()).collect();
    for expected in ["mocks", "bff-web", "bff-mobile", "bff-partner"] {
        assert!(names.contains(&expected), "service {expected} missing");
    }
    let mocks = &doc["services"]["mocks"];
    assert_eq!(strings(&mocks["command"])[0], "mock-services");
    let mock_ports = published(mocks);
    for (_, port) in shared_schemas::services::DEFAULT_PORTS {
        assert!(mock_ports.contains(port), "mocks publish {port}");
    }
    type Defaults = fn() -> BffConfig;
    let gateways: [(&str, Defaults); 3] = [
        ("bff-web", bff_web::defaults),
        ("bff-mobile", bff_mobile::defaults),
        ("bff-partner", bff_partner::defaults),
    ];
    for (name, defaults) in gateways {
        let service = &doc["services"][name];
        let command = strings(&service["command"]);
        assert_eq!(command[0], name, "{name} runs its own binary");
        let crate_manifest = format!("{}/../{name}/Cargo.toml", env!("CARGO_MANIFEST_DIR"));
        assert!(
            std::path::Path::new(&crate_manifest).exists(),
            "{name} is a workspace crate"
        );
        let env: BTreeMap<String, String> = service["environment"]
            .as_mapping()
            .expect("environment map")
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().unwrap().to_owned(),
                    v.as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let config = load_with_env(defaults, &env);
        assert!(
            published(service).contains(&config.server.listen.port()),
            "{name} publishes its listen port"
        );
        assert!(
            config.server.listen.ip().is_unspecified(),
            "{name} listens on all interfaces in a container"
        );
        for (downstream, d) in &config.downstreams {
            let url = url_host_port(&d.url);
            assert_eq!(
                url.0, "mocks",
                "{name}: downstream {downstream} points at the mocks service"
            );
            assert!(
                mock_ports.contains(&url.1),
                "{name}: {downstream} port is published by mocks"
            );
        }
        let depends = strings(&service["depends_on"]);
        assert!(
            depends.contains(&"mocks".to_owned()),
            "{name} depends on mocks"
        );
    }
}

#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error by design.
fn load_with_env(defaults: fn() -> BffConfig, env: &BTreeMap<String, String>) -> BffConfig {
    let mut out = None;
    Jail::expect_with(|jail| {
        jail.clear_env();
        for (k, v) in env {
            jail.set_env(k, v);
        }
        out = Some(BffConfig::load(&defaults(), None).map_err(|e| e.to_string())?);
        Ok(())
    });
    out.expect("config")
}

fn url_host_port(url: &str) -> (String, u16) {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, port) = rest.split_once(':').expect("host:port");
    (
        host.to_owned(),
        port.trim_end_matches('/').parse().expect("port"),
    )
}

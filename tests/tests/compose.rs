//! docker-compose.yml cannot run here (no Docker engine), so this validates it against the real binaries and
//! configuration: it parses, every gateway's command is a real binary, its environment is a valid
//! configuration of that gateway, its downstreams point at the mocks service on ports that service publishes,
//! its published port is the one it listens on, and two instances of one gateway share rate limits through
//! the redis service.

use std::collections::BTreeMap;

use bff_core::BffConfig;
use bff_core::ratelimit::StoreKind;
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
    let binaries: [(&str, Defaults); 3] = [
        ("bff-web", bff_web::defaults),
        ("bff-mobile", bff_mobile::defaults),
        ("bff-partner", bff_partner::defaults),
    ];
    // Every service running a gateway binary (a gateway may run as several instances).
    let mut redis_instances: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut host_ports = Vec::new();
    for (service_name, service) in services {
        let service_name = service_name.as_str().unwrap();
        let command = strings(&service["command"]);
        let Some((name, defaults)) = binaries
            .iter()
            .find(|(b, _)| command.first().map(String::as_str) == Some(*b))
        else {
            continue;
        };
        assert!(
            service_name.starts_with(name),
            "{service_name} runs {name}: its name says which gateway it is"
        );
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
        let config = load_with_env(*defaults, &env);
        let port = config.server.listen.port();
        assert!(
            published(service).contains(&port),
            "{service_name} publishes its listen port"
        );
        assert!(
            !host_ports.contains(&port),
            "{service_name}: port {port} published twice"
        );
        host_ports.push(port);
        assert!(
            config.server.listen.ip().is_unspecified(),
            "{service_name} listens on all interfaces in a container"
        );
        for (downstream, d) in &config.downstreams {
            let url = url_host_port(&d.url);
            assert_eq!(
                url.0, "mocks",
                "{service_name}: downstream {downstream} points at the mocks service"
            );
            assert!(
                mock_ports.contains(&url.1),
                "{service_name}: {downstream} port is published by mocks"
            );
        }
        let depends = strings(&service["depends_on"]);
        assert!(
            depends.contains(&"mocks".to_owned()),
            "{service_name} depends on mocks"
        );
        if config.rate_limit.store == StoreKind::Redis {
            let url = config.rate_limit.redis.url.clone();
            let host = url_host_port(&url.replace("redis://", "http://")).0;
            assert!(
                names.contains(&host.as_str()),
                "{service_name}: redis host {host} is a service"
            );
            assert!(depends.contains(&host), "{service_name} depends on {host}");
            redis_instances
                .entry((url, config.rate_limit.redis.key_prefix.clone()))
                .or_default()
                .push(service_name.to_owned());
        }
    }
    for expected in ["redis", "bff-partner-2"] {
        assert!(names.contains(&expected), "service {expected} missing");
    }
    assert!(
        redis_instances
            .values()
            .any(|instances| instances.len() >= 2),
        "two instances of one gateway share rate limits in Redis: {redis_instances:?}"
    );
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

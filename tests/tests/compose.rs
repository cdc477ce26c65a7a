//! docker-compose.yml cannot run here (no Docker engine), so this validates it against the real binaries and
//! configuration: it parses, every gateway's command is a real binary, its environment is a valid
//! configuration of that gateway, its downstreams point at the mocks service on ports that service publishes,
//! its published port is the one it listens on, and two instances of one gateway share rate limits through
//! the redis service. Also: the image is built once (one `build:`, the other users never pull it), every
//! service has a healthcheck and waits for its dependencies to be healthy, dev-only services (mocks with
//! the token-minting IdP and fault injection, Redis, admin listeners, Prometheus) are published on
//! 127.0.0.1 only, Prometheus scrapes every gateway's admin listener, and every gateway exports its traces
//! over OTLP/HTTP to the trace backend service (Jaeger with its OTLP receiver on, UI on loopback).

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

/// (host address, host port, container port) of every port a service publishes (`"[ip:]host:container"`).
fn publishings(service: &Value) -> Vec<(String, u16, u16)> {
    strings(&service["ports"])
        .iter()
        .map(|p| {
            let parts: Vec<&str> = p.split(':').collect();
            let (ip, host, container) = match parts.as_slice() {
                [host, container] => ("0.0.0.0", *host, *container),
                [ip, host, container] => (*ip, *host, *container),
                _ => panic!("unexpected port entry {p}"),
            };
            (
                ip.to_owned(),
                host.parse().expect("host port"),
                container.parse().expect("container port"),
            )
        })
        .collect()
}

/// Host ports published by a service.
fn published(service: &Value) -> Vec<u16> {
    publishings(service).iter().map(|(_, h, _)| *h).collect()
}

/// The services `service` waits for; each must be awaited healthy.
fn depends_on(name: &str, service: &Value) -> Vec<String> {
    let Some(map) = service["depends_on"].as_mapping() else {
        assert!(
            service["depends_on"].is_null(),
            "{name}: depends_on is a map with conditions"
        );
        return Vec::new();
    };
    map.iter()
        .map(|(k, v)| {
            assert_eq!(
                v["condition"].as_str(),
                Some("service_healthy"),
                "{name} waits for {k:?} to be healthy"
            );
            k.as_str().unwrap().to_owned()
        })
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
    let binaries: &[(&str, Defaults)] = &[
        ("bff-web", bff_web::defaults),
        ("bff-mobile", bff_mobile::defaults),
        ("bff-partner", bff_partner::defaults),
        ("bff-tv", bff_tv::defaults),
        // new-gateway: gateways above this line
    ];
    // Every service running a gateway binary (a gateway may run as several instances).
    let mut redis_instances: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut host_ports = Vec::new();
    let mut admin_targets = Vec::new();
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
        // Traces go to the trace backend's OTLP/HTTP receiver, which that service enables and exposes.
        let endpoint = config
            .telemetry
            .otlp
            .endpoint
            .clone()
            .unwrap_or_else(|| panic!("{service_name} exports traces"));
        let (otlp_host, otlp_port) = url_host_port(&endpoint);
        assert_eq!(otlp_port, 4318, "{service_name}: the OTLP/HTTP port");
        let backend = &doc["services"][otlp_host.as_str()];
        assert!(
            backend["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("jaegertracing/all-in-one:")),
            "{service_name}: traces go to the Jaeger service, not to {otlp_host}"
        );
        assert_eq!(
            backend["environment"]["COLLECTOR_OTLP_ENABLED"].as_str(),
            Some("true"),
            "the trace backend receives OTLP"
        );
        assert!(config.telemetry.otlp.sample_ratio > 0.0);
        assert_eq!(config.telemetry.otlp.service_name, *name);
        let depends = depends_on(service_name, service);
        // The admin listener: published on loopback only, at the port the gateway listens on.
        let admin = config.admin.listen.port();
        assert!(
            config.admin.listen.ip().is_unspecified(),
            "{service_name}: admin reachable by Prometheus"
        );
        assert!(
            publishings(service)
                .iter()
                .any(|(ip, host, container)| ip == "127.0.0.1"
                    && *host == admin
                    && *container == admin),
            "{service_name} publishes its admin port {admin} on 127.0.0.1"
        );
        admin_targets.push(format!("{service_name}:{admin}"));
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
    for expected in ["redis", "bff-partner-2", "prometheus", "jaeger"] {
        assert!(names.contains(&expected), "service {expected} missing");
    }
    // The Jaeger UI is published, on loopback (checked with the other dev-only services below).
    assert!(published(&doc["services"]["jaeger"]).contains(&16686));
    // Prometheus scrapes every gateway's admin listener.
    let prometheus: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/prometheus/prometheus.yml"
        ))
        .unwrap(),
    )
    .unwrap();
    let scraped: Vec<String> = prometheus["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|j| j["static_configs"].as_sequence().unwrap().iter())
        .flat_map(|c| strings(&c["targets"]))
        .collect();
    for target in &admin_targets {
        assert!(
            scraped.contains(target),
            "Prometheus scrapes {target}: {scraped:?}"
        );
    }
    // Built once; every service has a healthcheck; dev-only services publish on loopback only.
    let mut builds = 0;
    for (name, service) in services {
        let name = name.as_str().unwrap();
        if !service["build"].is_null() {
            builds += 1;
        } else if service["image"] == "bff:dev" {
            assert_eq!(
                service["pull_policy"], "never",
                "{name} uses the image built once"
            );
        }
        assert!(
            !service["healthcheck"]["test"].is_null(),
            "{name} has a healthcheck"
        );
        depends_on(name, service);
        if !name.starts_with("bff-") {
            for (ip, host, _) in publishings(service) {
                assert_eq!(
                    ip, "127.0.0.1",
                    "dev-only {name} publishes {host} on loopback only"
                );
            }
        }
        let healthcheck = strings(&service["healthcheck"]["test"]).join(" ");
        assert!(
            !healthcheck.contains("curl"),
            "{name}: no curl in the image"
        );
    }
    assert_eq!(builds, 1, "the image is built once");
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

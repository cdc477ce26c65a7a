//! The deployment artefacts, checked offline with tools nobody here wrote:
//! - `deploy/k8s`: every resource file validated against the Kubernetes schemas (`kubernetes-validate
//!   --strict`, PyPI); every kustomization's references resolve (resources, patches and their targets);
//!   each overlay rendered with `kubectl kustomize` and validated too when a kubectl is installed; the
//!   gateway container is hardened (probes on the admin port, preStop, resources, non-root, read-only root
//!   filesystem) and its environment is a valid configuration of every gateway;
//! - `deploy/prometheus`: alert rules by `promtool check rules` and their unit tests by `promtool test rules`,
//!   the scrape config by `promtool check config`; every Grafana dashboard query parses as PromQL;
//! - the Dockerfile: dependency-caching layer, the release build guided by the checked-in profile (PGO),
//!   non-root user, healthcheck without curl; `.dockerignore`.
//!
//! `.ci/run` installs promtool (Debian `prometheus`) and kubernetes-validate (PyPI); outside CI a missing
//! tool skips its check with a note.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bff_core::BffConfig;
use figment::Jail;
use serde_yaml_ng::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .collect()
}

/// Runs `program args`; `None` when the program is missing outside CI (skipped with a note).
fn run(program: &str, args: &[&str], dir: &Path) -> Option<std::process::Output> {
    match Command::new(program).args(args).current_dir(dir).output() {
        Ok(out) => Some(out),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("{program} not available ({e}); check skipped outside CI");
            None
        }
        Err(e) => panic!("{program} is required in CI: {e}"),
    }
}

fn assert_ok(what: &str, out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// (kind, name) of every resource a kustomization directory yields, resolving bases recursively.
fn resources(dir: &Path) -> Vec<(String, String)> {
    let k = &yaml_docs(&dir.join("kustomization.yaml"))[0];
    let mut out = Vec::new();
    for entry in str_list(&k["resources"]) {
        let path = dir.join(&entry);
        assert!(path.exists(), "{}: resource {entry} missing", dir.display());
        if path.is_dir() {
            assert!(
                path.join("kustomization.yaml").exists(),
                "{entry} is a kustomization"
            );
            out.extend(resources(&path));
        } else {
            for doc in yaml_docs(&path) {
                out.push((
                    doc["kind"].as_str().expect("kind").to_owned(),
                    doc["metadata"]["name"].as_str().expect("name").to_owned(),
                ));
            }
        }
    }
    out
}

fn k8s() -> PathBuf {
    repo().join("deploy/k8s")
}

/// Every kustomization resolves: resources exist, each overlay patches a resource of its base by kind and
/// name, and there is one overlay per gateway running that gateway's binary.
#[test]
fn kustomizations_resolve() {
    let base = resources(&k8s().join("base"));
    for kind in [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ] {
        assert!(
            base.iter().any(|(k, n)| k == kind && n == "gateway"),
            "base has {kind} gateway"
        );
    }
    assert!(base.contains(&("Deployment".into(), "redis".into())));
    assert!(base.contains(&("Service".into(), "redis".into())));
    for gw in ["web", "mobile", "partner"] {
        let dir = k8s().join("overlays").join(gw);
        let k = &yaml_docs(&dir.join("kustomization.yaml"))[0];
        assert_eq!(k["namePrefix"].as_str(), Some(format!("{gw}-").as_str()));
        let yielded = resources(&dir);
        for patch in k["patches"].as_sequence().expect("patches") {
            let path = dir.join(patch["path"].as_str().expect("patch path"));
            let doc = &yaml_docs(&path)[0];
            let target = (
                doc["kind"].as_str().unwrap().to_owned(),
                doc["metadata"]["name"].as_str().unwrap().to_owned(),
            );
            assert!(
                yielded.contains(&target),
                "{gw}: patch target {target:?} exists"
            );
            let container = &doc["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(str_list(&container["command"]), vec![format!("bff-{gw}")]);
            let redis = container["env"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|e| e["name"] == "BFF_RATE_LIMIT__REDIS__URL")
                .expect("redis url");
            assert_eq!(
                redis["value"].as_str(),
                Some(format!("redis://{gw}-redis:6379").as_str()),
                "{gw}: the redis service after namePrefix"
            );
        }
    }
}

/// The gateway container is production-shaped, and its environment is a valid configuration of each
/// gateway whose listen and admin ports are the container's ports.
#[test]
fn gateway_deployment_is_hardened_and_configured() {
    let doc = &yaml_docs(&k8s().join("base/deployment.yaml"))[0];
    let pod = &doc["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true));
    let c = &pod["containers"][0];
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"],
        Value::Bool(true)
    );
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"],
        Value::Bool(false)
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "admin");
    assert!(c["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64() > Some(0));
    for r in ["requests", "limits"] {
        assert!(c["resources"][r]["cpu"].as_str().is_some(), "{r}.cpu");
        assert!(c["resources"][r]["memory"].as_str().is_some(), "{r}.memory");
    }
    let port = |name: &str| {
        c["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_u64())
            .expect("port") as u16
    };
    let env: BTreeMap<String, String> = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    type Defaults = fn() -> BffConfig;
    let gateways: [(&str, Defaults); 3] = [
        ("web", bff_web::defaults),
        ("mobile", bff_mobile::defaults),
        ("partner", bff_partner::defaults),
    ];
    for (gw, defaults) in gateways {
        let config = load_with_env(defaults, &env);
        assert_eq!(config.server.listen.port(), port("http"), "{gw}");
        assert_eq!(config.admin.listen.port(), port("admin"), "{gw}");
        assert!(
            config.admin.listen.ip().is_unspecified(),
            "{gw}: probes reach the admin port"
        );
        assert_eq!(
            config.rate_limit.store,
            bff_core::ratelimit::StoreKind::Redis
        );
        // Draining fits in the pod's grace period.
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .unwrap();
        assert!(
            pre_stop * 1000 + config.server.drain_delay_ms + config.server.shutdown_grace_s * 1000
                < grace * 1000,
            "{gw}: preStop + drain delay + shutdown grace < terminationGracePeriodSeconds"
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

/// Every resource file validates against the Kubernetes schemas (strict: no unknown fields), and so does
/// each rendered overlay when a kubectl with kustomize is installed.
#[test]
fn manifests_validate_against_kubernetes_schemas() {
    let base = k8s().join("base");
    let mut files: Vec<String> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let mut args = vec!["--strict", "--quiet"];
    args.extend(files.iter().map(String::as_str));
    let Some(out) = run("kubernetes-validate", &args, &base) else {
        return;
    };
    assert_ok("kubernetes-validate base", &out);
    for gw in ["web", "mobile", "partner"] {
        let overlay = format!("overlays/{gw}");
        let rendered = match Command::new("kubectl")
            .args(["kustomize", &overlay])
            .current_dir(k8s())
            .output()
        {
            Ok(out) if out.status.success() => out.stdout,
            _ => {
                eprintln!(
                    "kubectl kustomize not available; {gw} overlay checked by reference only"
                );
                continue;
            }
        };
        let text = String::from_utf8(rendered).unwrap();
        assert!(text.contains(&format!("name: {gw}-gateway")));
        assert!(text.contains(&format!("- bff-{gw}")));
        let path = std::env::temp_dir().join(format!("bff-k8s-{gw}-{}.yaml", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let out = run(
            "kubernetes-validate",
            &["--strict", "--quiet", path.to_str().unwrap()],
            &k8s(),
        )
        .expect("kubernetes-validate ran above");
        let _ = std::fs::remove_file(&path);
        assert_ok(&format!("kubernetes-validate {gw} overlay"), &out);
    }
}

/// The alert rules and the Prometheus config pass promtool, the rules' unit tests pass, and every query of
/// the Grafana dashboard parses as PromQL (checked as recording rules).
#[test]
fn prometheus_rules_and_dashboard_pass_promtool() {
    let dir = repo().join("deploy/prometheus");
    let Some(out) = run("promtool", &["check", "rules", "alerts.yml"], &dir) else {
        return;
    };
    assert_ok("promtool check rules", &out);
    let out = run("promtool", &["test", "rules", "alerts_test.yml"], &dir).unwrap();
    assert_ok("promtool test rules", &out);
    let out = run(
        "promtool",
        &["check", "config", "--syntax-only", "prometheus.yml"],
        &dir,
    )
    .unwrap();
    assert_ok("promtool check config", &out);

    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/bff-dashboard.json")).unwrap(),
    )
    .expect("dashboard is JSON");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut n = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"]
                .as_str()
                .expect("expr")
                .replace("$__rate_interval", "5m");
            n += 1;
            rules.push_str(&format!(
                "      - record: dashboard:panel_{n}\n        expr: {}\n",
                serde_json::to_string(&expr).unwrap()
            ));
        }
    }
    assert!(n >= 10, "{n} queries");
    for family in [
        "bff_http_requests_total",
        "bff_http_request_duration_seconds_bucket",
        "bff_part_outcomes_total",
        "bff_circuit_state",
        "bff_downstream_requests_total",
    ] {
        assert!(rules.contains(family), "the dashboard shows {family}");
    }
    let path = std::env::temp_dir().join(format!("bff-dashboard-{}.yml", std::process::id()));
    std::fs::write(&path, rules).unwrap();
    let out = run(
        "promtool",
        &["check", "rules", path.to_str().unwrap()],
        &dir,
    )
    .unwrap();
    let _ = std::fs::remove_file(&path);
    assert_ok("dashboard queries", &out);
}

/// The Dockerfile builds dependencies in their own layer before copying the sources, guides the release build
/// by the checked-in profile, runs as a non-root user, and checks health with the binary itself;
/// `.dockerignore` keeps VCS data and build output out.
#[test]
fn dockerfile_caches_dependencies_and_runs_unprivileged() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("Dockerfile has `{needle}`"))
    };
    let lock = pos("COPY Cargo.toml Cargo.lock");
    let sources = pos("COPY . .");
    let deps_build = lines
        .iter()
        .position(|l| l.contains("cargo build --release --locked -p"))
        .expect("a dependency build");
    assert!(
        lock < deps_build && deps_build < sources,
        "dependency layer before sources"
    );
    assert!(pos("USER 10001") > sources);
    // The release build is guided by the checked-in profile (bench/pgo), dependencies included.
    let profile = "bff-web/pgo/bff-web.profdata";
    let copied = pos(&format!("COPY {profile} "));
    let flags = pos("ENV RUSTFLAGS=");
    assert!(
        lines[flags].contains(&format!("-Cprofile-use=/src/{profile}")),
        "RUSTFLAGS use the profile: {}",
        lines[flags]
    );
    assert!(
        copied < flags && flags < deps_build,
        "the profile is in place before the dependency layer"
    );
    let bytes = std::fs::read(repo().join(profile)).unwrap();
    assert_eq!(
        bytes.get(..8),
        Some(&b"\xfflprofi\x81"[..]),
        "{profile} is an indexed LLVM profile (llvm-profdata merge), not a Git LFS pointer or text"
    );
    let health = pos("HEALTHCHECK");
    assert!(lines[health].contains("healthcheck"));
    assert!(
        !lines
            .iter()
            .any(|l| !l.starts_with('#') && l.contains("curl")),
        "no curl in the image"
    );
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    for needed in [".git", "target"] {
        assert!(
            ignore.lines().any(|l| l.trim() == needed),
            "{needed} ignored"
        );
    }
}

//! The `bff-web` binary's command line: `--help`, `check` with good and bad configurations.

use std::process::Command;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bff-web"));
    // The test must not inherit BFF_* variables of the environment it runs in.
    for (key, _) in std::env::vars() {
        if key.starts_with("BFF_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bff-web-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `--help` documents the commands and the config layering.
#[test]
fn help() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("check") && text.contains("--config") && text.contains("BFF_"));
}

/// `check` accepts the built-in defaults and a valid file.
#[test]
fn check_accepts_valid_config() {
    let out = bin().arg("check").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
    let file = write(
        "ok.toml",
        "[server]\nlisten = \"127.0.0.1:9999\"\n[downstreams.users]\nurl = \"http://users:7001\"\n",
    );
    let out = bin()
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `check` names the offending key of a bad file or environment variable and exits 2.
#[test]
fn check_names_bad_keys() {
    let cases = [
        (
            "unknown.toml",
            "[server]\nlisten_addr = \"x\"\n",
            "listen_addr",
        ),
        (
            "type.toml",
            "[server]\nrequest_timeout_ms = \"soon\"\n",
            "request_timeout_ms",
        ),
        (
            "url.toml",
            "[downstreams.users]\nurl = \"not a url\"\n",
            "downstreams.users.url",
        ),
        ("syntax.toml", "[server\n", "syntax.toml"),
    ];
    for (name, text, needle) in cases {
        let file = write(name, text);
        let out = bin()
            .args(["check", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{name}: {err}");
    }
    let out = bin()
        .arg("check")
        .env("BFF_AUTH__JWT__LEEWAY_S", "9000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.jwt.leeway_s"));
    let out = bin()
        .arg("check")
        .env("BFF_DOWNSTREAMS__NOPE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin().arg("--frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `check` reads the TLS files as the server would: a missing, non-PEM or mismatched certificate/key (edge or
/// downstream) names its key and exits 2; a good pair passes, also when given through the environment.
#[test]
fn check_names_bad_tls_files() {
    use mock_services::certs::{CertSpec, TestCa};
    let dir = std::env::temp_dir().join(format!("bff-web-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = TestCa::new("cli test CA").unwrap();
    let (cert, key) = ca
        .issue(&CertSpec::server())
        .unwrap()
        .write(&dir, "server")
        .unwrap();
    let (_, other_key) = ca
        .issue(&CertSpec::server())
        .unwrap()
        .write(&dir, "other")
        .unwrap();
    let garbage = write("garbage.pem", "not PEM at all");
    let missing = dir.join("missing.pem");
    let edge = |c: &std::path::Path, k: &std::path::Path| {
        format!(
            "[server.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            c.display().to_string(),
            k.display().to_string()
        )
    };
    let cases = [
        (edge(&missing, &key), "server.tls.cert_file"),
        (edge(&garbage, &key), "server.tls.cert_file"),
        (edge(&cert, &garbage), "server.tls.key_file"),
        (edge(&cert, &other_key), "server.tls.key_file"),
        (
            format!(
                "[downstreams.users]\nurl = \"https://users:7443\"\n[downstreams.users.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
                cert.display().to_string(),
                other_key.display().to_string()
            ),
            "downstreams.users.tls.key_file",
        ),
        (
            format!(
                "[downstreams.users]\nurl = \"https://users:7443\"\n[downstreams.users.tls]\nca_file = {:?}\n",
                missing.display().to_string()
            ),
            "downstreams.users.tls.ca_file",
        ),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let file = write(&format!("tls-{i}.toml"), text);
        let out = bin()
            .args(["check", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{needle}: {err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
    let out = bin()
        .arg("check")
        .env("BFF_SERVER__TLS__CERT_FILE", &cert)
        .env("BFF_SERVER__TLS__KEY_FILE", &key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

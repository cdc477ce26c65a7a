//! The `mock-services` binary over HTTPS: `--tls-cert`, `--tls-key` and `--client-ca` (client certificates
//! required), with certificates generated here.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use mock_services::certs::{CertSpec, TestCa};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client trusting `ca_pem`, presenting `client` (cert PEM, key PEM) when given.
fn connector(ca_pem: &str, client: Option<(&str, &str)>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// `GET /users/1` over a fresh TLS connection; the answer's text, or the error.
async fn get_user(connector: &tokio_rustls::TlsConnector, addr: &str) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(b"GET /users/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The binary serves HTTPS with the given certificate and, with `--client-ca`, refuses clients without a
/// certificate of that CA.
#[tokio::test]
async fn binary_serves_https_and_requires_client_certificates() {
    let dir = std::env::temp_dir().join(format!("mock-tls-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = TestCa::new("mock CLI CA").unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let (cert, key) = ca
        .issue(&CertSpec::server())
        .unwrap()
        .write(&dir, "server")
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-services"))
        .args(["--only", "users", "--port", "users=0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--client-ca")
        .arg(&ca_file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let result = async {
        assert!(url.starts_with("https://127.0.0.1:"), "{line}");
        let addr = url.trim_start_matches("https://");
        let client = ca.issue(&CertSpec::client("tester", &[])).unwrap();
        let with = connector(&ca.cert_pem(), Some((&client.cert_pem, &client.key_pem)));
        let answer = get_user(&with, addr).await.expect("mTLS request");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let without = connector(&ca.cert_pem(), None);
        let refused = get_user(&without, addr).await;
        assert!(
            !matches!(&refused, Ok(a) if a.contains("HTTP/1.1 200")),
            "no answer without a client certificate: {refused:?}"
        );
    };
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(result)).await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    // Mismatched flags are a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_mock-services"))
        .args(["--tls-cert", "x.pem"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

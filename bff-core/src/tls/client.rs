//! The rustls client configuration of a downstream: the platform's trust roots (read once, with
//! rustls-native-certs) plus the downstream's optional extra CA bundle, TLS 1.3 and 1.2 only, SNI and hostname
//! verification always on, and an optional reloadable client certificate. (ALPN is set by the connector.)

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;

use super::config::DownstreamTlsConfig;
use super::reload::{CertSource, ClientCert};
use crate::config::error::ConfigError;

/// The platform's trust roots, read once per process (reading them takes milliseconds).
fn platform_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "a platform trust root could not be read");
        }
        if found.certs.is_empty() {
            tracing::warn!(
                "no platform trust roots found; only downstreams with a `tls.ca_file` can be verified"
            );
        }
        found.certs
    })
}

/// The client TLS configuration of the downstream section `section` (`downstreams.<name>.tls`).
pub(crate) fn client_config(
    section: &str,
    tls: &DownstreamTlsConfig,
) -> Result<ClientConfig, ConfigError> {
    let mut roots = RootCertStore::empty();
    let (_, _) = roots.add_parsable_certificates(platform_roots().iter().cloned());
    if let Some(path) = &tls.ca_file {
        let key = format!("{section}.ca_file");
        for cert in super::pem::certs(&key, path)? {
            roots.add(cert).map_err(|e| ConfigError::Invalid {
                key: key.clone(),
                reason: format!("{}: not a usable CA certificate ({e})", path.display()),
            })?;
        }
    }
    let builder = ClientConfig::builder_with_provider(super::provider())
        .with_protocol_versions(super::VERSIONS)
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots);
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let source = CertSource::load(section, cert.clone(), key.clone())?;
            source.watch(Duration::from_millis(
                tls.reload_interval_ms.unwrap_or(5_000),
            ));
            builder.with_client_cert_resolver(Arc::new(ClientCert(source)))
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(config)
}

//! Reading PEM files into rustls types, every error naming the configuration key of the file.

use std::path::Path;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::error::ConfigError;

fn invalid(key: &str, path: &Path, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: format!("{}: {reason}", path.display()),
    }
}

/// The certificates of the PEM file `path` (configured as `key`); at least one.
pub(crate) fn certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| invalid(key, path, e))?;
    certs_from(key, path, &bytes)
}

fn certs_from(
    key: &str,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, path, format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(invalid(key, path, "contains no PEM certificate"));
    }
    Ok(certs)
}

/// The certificate chain in `cert_bytes` (from `cert_path`, configured as `cert_key`) with the private key in
/// `key_bytes` (from `key_path`, configured as `key_key`), checked to belong together.
pub(crate) fn certified_key_from(
    (cert_key, cert_path, cert_bytes): (&str, &Path, &[u8]),
    (key_key, key_path, key_bytes): (&str, &Path, &[u8]),
) -> Result<Arc<CertifiedKey>, ConfigError> {
    let chain = certs_from(cert_key, cert_path, cert_bytes)?;
    let der = PrivateKeyDer::from_pem_slice(key_bytes).map_err(|e| {
        invalid(
            key_key,
            key_path,
            format!("no usable PEM private key ({e})"),
        )
    })?;
    let provider = super::provider();
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| invalid(key_key, key_path, format!("unsupported private key ({e})")))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| {
        invalid(
            key_key,
            key_path,
            format!(
                "does not match the certificate in {} ({cert_key})",
                cert_path.display()
            ),
        )
    })?;
    Ok(Arc::new(certified))
}

//! Development and test certificates, generated at run time (never committed): a CA issuing server and
//! client certificates, and self-signed certificates, with chosen names and validity.

use std::io;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

pub use rcgen::date_time_ymd;

/// A point in time, for [`CertSpec`] validity.
pub type OffsetDateTime = ::time::OffsetDateTime;

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8), PEM.
    pub key_pem: String,
}

/// What to put in a certificate.
#[derive(Debug, Clone)]
pub struct CertSpec {
    /// Subject common name.
    pub common_name: String,
    /// Subject alternative names: DNS names, or IP addresses (recognised as such).
    pub alt_names: Vec<String>,
    /// Usable as a TLS server certificate.
    pub server: bool,
    /// Usable as a TLS client certificate.
    pub client: bool,
    /// Start of validity (default 2000-01-01).
    pub not_before: OffsetDateTime,
    /// End of validity (default 2999-12-31).
    pub not_after: OffsetDateTime,
}

impl CertSpec {
    /// A server certificate for `127.0.0.1` and `localhost`.
    pub fn server() -> Self {
        Self {
            common_name: "localhost".into(),
            alt_names: vec!["localhost".into(), "127.0.0.1".into()],
            server: true,
            client: false,
            not_before: date_time_ymd(2000, 1, 1),
            not_after: date_time_ymd(2999, 12, 31),
        }
    }

    /// A client certificate with common name `cn` and the subject alternative names `sans`.
    pub fn client(cn: &str, sans: &[&str]) -> Self {
        Self {
            common_name: cn.into(),
            alt_names: sans.iter().map(|s| (*s).to_owned()).collect(),
            server: false,
            client: true,
            ..Self::server()
        }
    }

    fn params(&self) -> Result<CertificateParams, rcgen::Error> {
        let mut params = CertificateParams::new(self.alt_names.clone())?;
        params
            .distinguished_name
            .push(DnType::CommonName, self.common_name.clone());
        params.not_before = self.not_before;
        params.not_after = self.not_after;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if self.server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if self.client {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        Ok(params)
    }

    /// A self-signed certificate (trusted by no one unless named explicitly).
    pub fn self_signed(&self) -> Result<Issued, rcgen::Error> {
        let key = KeyPair::generate()?;
        let cert = self.params()?.self_signed(&key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A certificate authority generated in memory.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new CA whose certificate has the common name `name`.
    pub fn new(name: &str) -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self { issuer })
    }

    /// The CA certificate, PEM (what a trust store or `ca_file` holds).
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate signed by this CA.
    pub fn issue(&self, spec: &CertSpec) -> Result<Issued, rcgen::Error> {
        let key = KeyPair::generate()?;
        let cert = spec.params()?.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl Issued {
    /// Writes `<stem>.crt` and `<stem>.key` into `dir` (the key readable by the owner only) and returns
    /// their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> io::Result<(PathBuf, PathBuf)> {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem)?;
        write_private(&key, self.key_pem.as_bytes())?;
        Ok((cert, key))
    }

    /// TLS settings for a mock service serving this certificate; with `client_ca_pem`, client certificates
    /// issued by it are required.
    pub fn mock_tls(&self, client_ca_pem: Option<&str>) -> crate::MockTls {
        crate::MockTls {
            cert_pem: self.cert_pem.clone().into_bytes(),
            key_pem: self.key_pem.clone().into_bytes(),
            client_ca_pem: client_ca_pem.map(|p| p.as_bytes().to_vec()),
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(bytes)
    }
    #[cfg(not(unix))]
    std::fs::write(path, bytes)
}

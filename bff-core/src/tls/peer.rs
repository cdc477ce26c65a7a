//! The names of a verified client certificate (subject common name, subject alternative names), read once
//! per TLS connection and attached to every request of that connection as an extension.

use rustls_pki_types::CertificateDer;
use x509_cert::Certificate;
use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// `id-at-commonName`.
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
/// `id-ce-subjectAltName`.
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");

/// The client certificate a TLS connection presented, verified against `server.tls.client_ca_file` during the
/// handshake. Present in a request's extensions only for such connections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientCertificate {
    /// The subject's common name (`CN`), if any.
    pub common_name: Option<String>,
    /// Subject alternative names: DNS names, e-mail addresses and URIs as written, IP addresses in their
    /// usual text form.
    pub alt_names: Vec<String>,
}

impl ClientCertificate {
    /// The names of the DER certificate `der`, or `None` when it does not parse.
    pub fn from_der(der: &CertificateDer<'_>) -> Option<Self> {
        let cert = Certificate::from_der(der.as_ref()).ok()?;
        let tbs = &cert.tbs_certificate;
        let common_name = tbs
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .find(|atv| atv.oid == COMMON_NAME)
            .and_then(|atv| {
                let bytes = atv.value.to_der().ok()?;
                Utf8StringRef::from_der(&bytes)
                    .map(|s| s.as_str().to_owned())
                    .or_else(|_| {
                        PrintableStringRef::from_der(&bytes).map(|s| s.as_str().to_owned())
                    })
                    .or_else(|_| Ia5StringRef::from_der(&bytes).map(|s| s.as_str().to_owned()))
                    .ok()
            });
        let mut alt_names = Vec::new();
        for ext in tbs.extensions.iter().flatten() {
            if ext.extn_id != SUBJECT_ALT_NAME {
                continue;
            }
            let Ok(san) = SubjectAltName::from_der(ext.extn_value.as_bytes()) else {
                continue;
            };
            for name in san.0 {
                match name {
                    GeneralName::DnsName(s)
                    | GeneralName::Rfc822Name(s)
                    | GeneralName::UniformResourceIdentifier(s) => alt_names.push(s.to_string()),
                    GeneralName::IpAddress(ip) => {
                        let b = ip.as_bytes();
                        let addr = match b.len() {
                            4 => <[u8; 4]>::try_from(b).ok().map(std::net::IpAddr::from),
                            16 => <[u8; 16]>::try_from(b).ok().map(std::net::IpAddr::from),
                            _ => None,
                        };
                        alt_names.extend(addr.map(|a| a.to_string()));
                    }
                    _ => {}
                }
            }
        }
        Some(Self {
            common_name,
            alt_names,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mock_services::certs::{CertSpec, TestCa};
    use rustls_pki_types::pem::PemObject;

    /// The CN and every kind of SAN are read from a real certificate; garbage is `None`.
    #[test]
    fn reads_common_name_and_alt_names() {
        let ca = TestCa::new("peer test CA").unwrap();
        let issued = ca
            .issue(&CertSpec::client(
                "acme-client",
                &["acme.partners.example", "10.1.2.3"],
            ))
            .unwrap();
        let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
        let cert = ClientCertificate::from_der(&der).unwrap();
        assert_eq!(cert.common_name.as_deref(), Some("acme-client"));
        assert_eq!(cert.alt_names, ["acme.partners.example", "10.1.2.3"]);
        assert!(
            ClientCertificate::from_der(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).is_none()
        );
    }
}

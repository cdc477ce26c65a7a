//! The names of a verified client certificate (subject common name, subject alternative names), read once
//! per TLS connection and attached to every request of that connection as an extension. The certificate was
//! already parsed and verified by rustls-webpki in the handshake; this reads two fields with a small DER walker
//! instead of a full X.509 crate (which cost more cold-build time than the rest of TLS support).

use rustls_pki_types::CertificateDer;

/// DER encoding of the OID `id-at-commonName` (2.5.4.3).
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// DER encoding of the OID `id-ce-subjectAltName` (2.5.29.17).
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

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

/// Reads one DER element off the front of `input`: its tag and contents.
fn element<'a>(input: &mut &'a [u8]) -> Option<(u8, &'a [u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    *input = rest;
    Some((tag, contents))
}

/// Reads an element that must have `tag`.
fn expect<'a>(input: &mut &'a [u8], tag: u8) -> Option<&'a [u8]> {
    element(input).and_then(|(t, c)| (t == tag).then_some(c))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;

/// The common name in a `Name` (SEQUENCE OF SET OF AttributeTypeAndValue).
fn common_name(mut name: &[u8]) -> Option<String> {
    while !name.is_empty() {
        let mut rdn = expect(&mut name, SET)?;
        while !rdn.is_empty() {
            let mut atv = expect(&mut rdn, SEQUENCE)?;
            let oid = expect(&mut atv, OID)?;
            let (tag, value) = element(&mut atv)?;
            // UTF8String, PrintableString, IA5String.
            if oid == COMMON_NAME && matches!(tag, 0x0c | 0x13 | 0x16) {
                return std::str::from_utf8(value).ok().map(str::to_owned);
            }
        }
    }
    None
}

/// The names in a `SubjectAltName` extension value (SEQUENCE OF GeneralName).
fn alt_names(value: &[u8], out: &mut Vec<String>) -> Option<()> {
    let mut input = value;
    let mut names = expect(&mut input, SEQUENCE)?;
    while !names.is_empty() {
        let (tag, name) = element(&mut names)?;
        match tag {
            // [1] rfc822Name, [2] dNSName, [6] uniformResourceIdentifier (IA5String, implicit).
            0x81 | 0x82 | 0x86 => out.extend(std::str::from_utf8(name).ok().map(str::to_owned)),
            // [7] iPAddress.
            0x87 => {
                let addr = match name.len() {
                    4 => <[u8; 4]>::try_from(name).ok().map(std::net::IpAddr::from),
                    16 => <[u8; 16]>::try_from(name).ok().map(std::net::IpAddr::from),
                    _ => None,
                };
                out.extend(addr.map(|a| a.to_string()));
            }
            _ => {}
        }
    }
    Some(())
}

impl ClientCertificate {
    /// The names of the DER certificate `der`, or `None` when it does not parse.
    pub fn from_der(der: &CertificateDer<'_>) -> Option<Self> {
        let mut input = der.as_ref();
        let mut cert = expect(&mut input, SEQUENCE)?;
        let mut tbs = expect(&mut cert, SEQUENCE)?;
        if tbs.first() == Some(&0xa0) {
            element(&mut tbs)?; // [0] version
        }
        element(&mut tbs)?; // serialNumber
        element(&mut tbs)?; // signature algorithm
        element(&mut tbs)?; // issuer
        element(&mut tbs)?; // validity
        let subject = expect(&mut tbs, SEQUENCE)?;
        element(&mut tbs)?; // subjectPublicKeyInfo
        let mut names = Vec::new();
        while !tbs.is_empty() {
            let (tag, contents) = element(&mut tbs)?;
            if tag != 0xa3 {
                continue; // issuerUniqueID, subjectUniqueID
            }
            let mut wrapper = contents;
            let mut extensions = expect(&mut wrapper, SEQUENCE)?;
            while !extensions.is_empty() {
                let mut extension = expect(&mut extensions, SEQUENCE)?;
                let oid = expect(&mut extension, OID)?;
                let (mut tag, mut value) = element(&mut extension)?;
                if tag == 0x01 {
                    (tag, value) = element(&mut extension)?; // critical
                }
                if oid == SUBJECT_ALT_NAME && tag == OCTET_STRING {
                    alt_names(value, &mut names)?;
                }
            }
        }
        Some(Self {
            common_name: common_name(subject),
            alt_names: names,
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
        // Every truncation and every single-byte corruption parses or fails, never panics.
        let bytes = der.as_ref().to_vec();
        for len in 0..bytes.len() {
            let _ = ClientCertificate::from_der(&CertificateDer::from(bytes[..len].to_vec()));
        }
        for i in 0..bytes.len() {
            let mut corrupt = bytes.clone();
            corrupt[i] ^= 0xff;
            let _ = ClientCertificate::from_der(&CertificateDer::from(corrupt));
        }
    }
}

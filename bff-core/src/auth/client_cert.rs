//! Partner authentication by client certificate (mTLS): the certificate was verified against
//! `server.tls.client_ca_file` during the TLS handshake; here its subject common name or one of its subject
//! alternative names is mapped to a configured partner (`[[auth.client_certs]]`).

use super::config::ClientCertConfig;
use super::identity::{Identity, Partner};
use crate::tls::ClientCertificate;

/// The configured certificate-to-partner mappings.
#[derive(Debug)]
pub struct ClientCerts {
    entries: Vec<(Name, Identity)>,
}

#[derive(Debug)]
enum Name {
    /// Exact subject common name.
    Subject(String),
    /// Exact subject alternative name.
    San(String),
}

impl ClientCerts {
    /// Mappings from validated config (each entry names exactly one of `subject` / `san`).
    pub fn new(entries: &[ClientCertConfig]) -> Self {
        let entries = entries
            .iter()
            .filter_map(|c| {
                let name = match (&c.subject, &c.san) {
                    (Some(s), None) => Name::Subject(s.clone()),
                    (None, Some(s)) => Name::San(s.clone()),
                    _ => return None,
                };
                let identity = Identity {
                    subject: c.partner_id.clone(),
                    client: "partner".into(),
                    scopes: c.scopes.clone(),
                    partner: Some(Partner {
                        id: c.partner_id.clone(),
                        tier: c.tier.clone(),
                    }),
                    expires_at: None,
                };
                Some((name, identity))
            })
            .collect();
        Self { entries }
    }

    /// The partner of the verified certificate `cert`: the first entry whose name it carries.
    pub fn verify(&self, cert: &ClientCertificate) -> Option<Identity> {
        self.entries
            .iter()
            .find(|(name, _)| match name {
                Name::Subject(cn) => cert.common_name.as_deref() == Some(cn.as_str()),
                Name::San(san) => cert.alt_names.iter().any(|n| n == san),
            })
            .map(|(_, identity)| identity.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate matches by exact CN or exact SAN; anything else matches no partner.
    #[test]
    fn maps_names_to_partners() {
        let certs = ClientCerts::new(&[
            ClientCertConfig {
                subject: Some("acme-client".into()),
                san: None,
                partner_id: "acme".into(),
                tier: "gold".into(),
                scopes: vec!["orders:read".into()],
            },
            ClientCertConfig {
                subject: None,
                san: Some("globex.partners.example".into()),
                partner_id: "globex".into(),
                tier: "silver".into(),
                scopes: vec![],
            },
        ]);
        let by_cn = ClientCertificate {
            common_name: Some("acme-client".into()),
            alt_names: vec![],
        };
        assert_eq!(certs.verify(&by_cn).unwrap().subject, "acme");
        let by_san = ClientCertificate {
            common_name: Some("whatever".into()),
            alt_names: vec!["globex.partners.example".into()],
        };
        let globex = certs.verify(&by_san).unwrap();
        assert_eq!(globex.partner.unwrap().tier, "silver");
        let unknown = ClientCertificate {
            common_name: Some("ACME-client".into()),
            alt_names: vec!["acme-client".into()],
        };
        assert!(certs.verify(&unknown).is_none());
    }
}

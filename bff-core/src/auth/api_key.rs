//! API keys: stored as SHA-256 hashes, compared in constant time against every configured key.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::config::ApiKeyConfig;
use super::identity::{Identity, Partner};

/// Longest key accepted; anything longer is rejected before hashing.
const MAX_KEY_LEN: usize = 256;

/// The configured keys.
#[derive(Debug)]
pub struct ApiKeys {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    hash: [u8; 32],
    identity: Identity,
}

/// Lower-case hex SHA-256 of `key`: what the config stores.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl ApiKeys {
    /// Keys from validated config (entries with a malformed hash are skipped; validation rejects them first).
    pub fn new(keys: &[ApiKeyConfig]) -> Self {
        let entries = keys
            .iter()
            .filter_map(|k| {
                Some(Entry {
                    hash: decode_hex(&k.key_sha256)?,
                    identity: Identity {
                        subject: k.partner_id.clone(),
                        client: "partner".into(),
                        scopes: k.scopes.clone(),
                        partner: Some(Partner {
                            id: k.partner_id.clone(),
                            tier: k.tier.clone(),
                        }),
                        expires_at: None,
                    },
                })
            })
            .collect();
        Self { entries }
    }

    /// The identity of `presented`, if it is a configured key. Every entry is compared (no early exit), each
    /// in constant time.
    pub fn verify(&self, presented: &str) -> Option<Identity> {
        if presented.is_empty() || presented.len() > MAX_KEY_LEN {
            return None;
        }
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.hash.ct_eq(&hash)) {
                found = Some(&entry.identity);
            }
        }
        found.cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The right key yields its partner; a wrong, empty or oversized key yields nothing.
    #[test]
    fn verifies_only_configured_keys() {
        let keys = ApiKeys::new(&[ApiKeyConfig {
            key_sha256: hash_key("secret-1"),
            partner_id: "acme".into(),
            tier: "gold".into(),
            scopes: vec!["catalog:read".into()],
        }]);
        let id = keys.verify("secret-1").expect("known key");
        assert_eq!(id.partner.unwrap().tier, "gold");
        assert!(keys.verify("secret-2").is_none());
        assert!(keys.verify("").is_none());
        assert!(keys.verify(&"x".repeat(300)).is_none());
    }
}

//! jsonwebtoken's signing and verification over ring, the crypto library rustls already builds, instead of a
//! second crypto stack (RustCrypto's rsa, p256, p384, ed25519-dalek, hmac): one implementation to trust, about
//! 30 fewer crates to build, and ring's faster RSA and ECDSA verification.
//!
//! [`install`] makes it jsonwebtoken's process-wide provider; everything in bff-core that signs or verifies a
//! token calls it first, and so must any other code of the process that calls jsonwebtoken directly before
//! bff-core did (the mock identity provider, tests that mint tokens). RSA keys are accepted from 2048 to 8192
//! bits (ring's bounds; smaller RSA keys are refused as too weak).

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{Error as SignatureError, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::{digest, hmac, signature as sig};

/// The ring-backed provider; [`install`] makes it the process default.
pub static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory,
    verifier_factory,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key,
        rsa_pub_components_from_public_key,
        ec_pub_components_from_private_key,
        ed_pub_components_from_private_key,
        compute_digest,
    },
};

/// Makes [`PROVIDER`] jsonwebtoken's process-wide provider. Idempotent; if another provider was installed
/// first, that one stays.
pub fn install() {
    let _ = PROVIDER.install_default();
}

/// A private key parsed for one algorithm.
enum SigningKey {
    Hmac(hmac::Key),
    Rsa(sig::RsaKeyPair, &'static dyn sig::RsaEncoding),
    Ecdsa(sig::EcdsaKeyPair),
    Ed25519(sig::Ed25519KeyPair),
}

/// Signs with one key and algorithm.
struct RingSigner {
    algorithm: Algorithm,
    key: SigningKey,
}

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, SignatureError> {
        let rng = SystemRandom::new();
        match &self.key {
            SigningKey::Hmac(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
            SigningKey::Rsa(pair, encoding) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(*encoding, &rng, message, &mut signature)
                    .map_err(|_| SignatureError::new())?;
                Ok(signature)
            }
            SigningKey::Ecdsa(pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignatureError::new()),
            SigningKey::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// Verifies with one public key (or HMAC secret) and algorithm.
struct RingVerifier {
    algorithm: Algorithm,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> std::result::Result<(), SignatureError> {
        let verified = match (self.key.kind(), self.algorithm) {
            (
                DecodingKeyKind::SecretOrDer(secret),
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512,
            ) => {
                let key = hmac::Key::new(hmac_algorithm(self.algorithm), secret);
                hmac::verify(&key, message, signature)
            }
            (DecodingKeyKind::SecretOrDer(der), _) => {
                let algorithm =
                    verification_algorithm(self.algorithm).ok_or_else(SignatureError::new)?;
                sig::UnparsedPublicKey::new(algorithm, der).verify(message, signature)
            }
            (DecodingKeyKind::RsaModulusExponent { n, e }, algorithm) => {
                let params = rsa_parameters(algorithm).ok_or_else(SignatureError::new)?;
                sig::RsaPublicKeyComponents { n, e }.verify(params, message, signature)
            }
        };
        verified.map_err(|_| SignatureError::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn signer_factory(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if key.family() != algorithm.family() {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let der = key.as_bytes();
    let key = match algorithm.family() {
        AlgorithmFamily::Hmac => SigningKey::Hmac(hmac::Key::new(hmac_algorithm(*algorithm), der)),
        AlgorithmFamily::Rsa => {
            let encoding = rsa_encoding(*algorithm).ok_or(ErrorKind::InvalidAlgorithm)?;
            let pair = sig::RsaKeyPair::from_der(der)
                .map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
            SigningKey::Rsa(pair, encoding)
        }
        AlgorithmFamily::Ec => {
            let signing = ecdsa_signing(*algorithm).ok_or(ErrorKind::InvalidAlgorithm)?;
            let pair = sig::EcdsaKeyPair::from_pkcs8(signing, der, &SystemRandom::new())
                .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
            SigningKey::Ecdsa(pair)
        }
        AlgorithmFamily::Ed => SigningKey::Ed25519(
            sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map_err(|_| ErrorKind::InvalidEddsaKey)?,
        ),
    };
    Ok(Box::new(RingSigner {
        algorithm: *algorithm,
        key,
    }))
}

fn verifier_factory(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if key.family() != algorithm.family() {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingVerifier {
        algorithm: *algorithm,
        key: key.clone(),
    }))
}

fn hmac_algorithm(algorithm: Algorithm) -> hmac::Algorithm {
    match algorithm {
        Algorithm::HS384 => hmac::HMAC_SHA384,
        Algorithm::HS512 => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    }
}

fn rsa_encoding(algorithm: Algorithm) -> Option<&'static dyn sig::RsaEncoding> {
    Some(match algorithm {
        Algorithm::RS256 => &sig::RSA_PKCS1_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_SHA512,
        _ => return None,
    })
}

fn rsa_parameters(algorithm: Algorithm) -> Option<&'static sig::RsaParameters> {
    Some(match algorithm {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn ecdsa_signing(algorithm: Algorithm) -> Option<&'static sig::EcdsaSigningAlgorithm> {
    match algorithm {
        Algorithm::ES256 => Some(&sig::ECDSA_P256_SHA256_FIXED_SIGNING),
        Algorithm::ES384 => Some(&sig::ECDSA_P384_SHA384_FIXED_SIGNING),
        _ => None,
    }
}

/// The verification algorithm of a public key given as DER (RSA `RSAPublicKey`), an uncompressed EC point, or
/// the 32 bytes of an Ed25519 key.
fn verification_algorithm(algorithm: Algorithm) -> Option<&'static dyn sig::VerificationAlgorithm> {
    if let Some(params) = rsa_parameters(algorithm) {
        return Some(params);
    }
    match algorithm {
        Algorithm::ES256 => Some(&sig::ECDSA_P256_SHA256_FIXED),
        Algorithm::ES384 => Some(&sig::ECDSA_P384_SHA384_FIXED),
        Algorithm::EdDSA => Some(&sig::ED25519),
        _ => None,
    }
}

fn rsa_pub_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let pair =
        sig::RsaKeyPair::from_der(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
    let components: sig::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
    Ok((components.n, components.e))
}

/// `(n, e)` of a DER `RSAPublicKey` (`SEQUENCE { modulus INTEGER, publicExponent INTEGER }`), leading zero
/// bytes stripped. ring verifies with such a key but has no accessor for its parts, hence this strict reader.
fn rsa_pub_components_from_public_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let invalid = || ErrorKind::InvalidRsaKey("not a DER RSAPublicKey".to_owned());
    let (body, rest) = der_element(der, 0x30).ok_or_else(invalid)?;
    let (n, body) = der_element(body, 0x02).ok_or_else(invalid)?;
    let (e, body) = der_element(body, 0x02).ok_or_else(invalid)?;
    if !rest.is_empty() || !body.is_empty() || n.is_empty() || e.is_empty() || n[0] & 0x80 != 0 {
        return Err(invalid().into());
    }
    let strip = |v: &[u8]| v[v.iter().position(|&b| b != 0).unwrap_or(v.len())..].to_vec();
    Ok((strip(n), strip(e)))
}

/// One DER element with tag `tag` at the start of `input`: its contents and what follows it.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, input) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len, mut input) = input.split_first()?;
    let len = if len < 0x80 {
        usize::from(len)
    } else {
        let count = usize::from(len & 0x7f);
        if count == 0 || count > 4 || input.len() < count {
            return None;
        }
        let (bytes, rest) = input.split_at(count);
        input = rest;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    (input.len() >= len).then(|| input.split_at(len))
}

fn ec_pub_components_from_private_key(
    der: &[u8],
    algorithm: Algorithm,
) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    let (signing, curve, size) = match algorithm {
        Algorithm::ES256 => (
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            EllipticCurve::P256,
            32,
        ),
        Algorithm::ES384 => (
            &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            EllipticCurve::P384,
            48,
        ),
        _ => return Err(ErrorKind::InvalidEcdsaKey.into()),
    };
    let pair = sig::EcdsaKeyPair::from_pkcs8(signing, der, &SystemRandom::new())
        .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    use sig::KeyPair as _;
    match pair.public_key().as_ref().split_first() {
        Some((4, point)) if point.len() == 2 * size => {
            let (x, y) = point.split_at(size);
            Ok((curve, x.to_vec(), y.to_vec()))
        }
        _ => Err(ErrorKind::InvalidEcdsaKey.into()),
    }
}

fn ed_pub_components_from_private_key(der: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>> {
    if *curve != EllipticCurve::Ed25519 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    use sig::KeyPair as _;
    let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
        .map_err(|_| ErrorKind::InvalidEddsaKey)?;
    Ok(pair.public_key().as_ref().to_vec())
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(ErrorKind::UnsupportedAlgorithm.into()),
    };
    Ok(digest::digest(algorithm, data).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{Header, Validation, decode, encode};
    use serde_json::{Value, json};

    const RSA: &[u8] = include_bytes!("../../../mock-services/keys/rsa-1.pem");
    const EC: &[u8] = include_bytes!("../../../mock-services/keys/ec-1.pem");

    fn claims() -> Value {
        json!({"sub": "u-1", "exp": jsonwebtoken::get_current_timestamp() + 600})
    }

    /// Signs with `key`, then verifies with the public key taken from the JWK of `key` (as a JWKS would
    /// publish it): the whole round trip runs on ring.
    fn round_trip(algorithm: Algorithm, key: &EncodingKey) {
        install();
        let token = encode(&Header::new(algorithm), &claims(), key).unwrap();
        let jwk = Jwk::from_encoding_key(key, algorithm).unwrap();
        let public = DecodingKey::from_jwk(&jwk).unwrap();
        let data = decode::<Value>(&token, &public, &Validation::new(algorithm)).unwrap();
        assert_eq!(data.claims["sub"], "u-1", "{algorithm:?}");
        // One flipped signature bit is refused.
        let mut tampered = token.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let err = decode::<Value>(&tampered, &public, &Validation::new(algorithm)).unwrap_err();
        assert_eq!(*err.kind(), ErrorKind::InvalidSignature, "{algorithm:?}");
    }

    #[test]
    fn rsa_pkcs1_and_pss_sign_and_verify() {
        let key = EncodingKey::from_rsa_pem(RSA).unwrap();
        for algorithm in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ] {
            round_trip(algorithm, &key);
        }
    }

    #[test]
    fn ecdsa_p256_signs_and_verifies() {
        round_trip(Algorithm::ES256, &EncodingKey::from_ec_pem(EC).unwrap());
    }

    #[test]
    fn hmac_signs_and_verifies_and_a_wrong_secret_fails() {
        install();
        for algorithm in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let token = encode(
                &Header::new(algorithm),
                &claims(),
                &EncodingKey::from_secret(b"s3cret"),
            )
            .unwrap();
            let ok = decode::<Value>(
                &token,
                &DecodingKey::from_secret(b"s3cret"),
                &Validation::new(algorithm),
            );
            assert_eq!(ok.unwrap().claims["sub"], "u-1");
            let bad = decode::<Value>(
                &token,
                &DecodingKey::from_secret(b"other"),
                &Validation::new(algorithm),
            );
            assert_eq!(*bad.unwrap_err().kind(), ErrorKind::InvalidSignature);
        }
    }

    #[test]
    fn a_key_of_another_family_is_refused() {
        let rsa = EncodingKey::from_rsa_pem(RSA).unwrap();
        let signer = (PROVIDER.signer_factory)(&Algorithm::ES256, &rsa);
        assert!(matches!(signer, Err(e) if *e.kind() == ErrorKind::InvalidKeyFormat));
        let secret = DecodingKey::from_secret(b"s3cret");
        let verifier = (PROVIDER.verifier_factory)(&Algorithm::RS256, &secret);
        assert!(matches!(verifier, Err(e) if *e.kind() == ErrorKind::InvalidKeyFormat));
    }

    #[test]
    fn rsa_public_key_der_gives_the_same_components_as_the_private_key() {
        let key = EncodingKey::from_rsa_pem(RSA).unwrap();
        let (n, e) = rsa_pub_components_from_private_key(key.as_bytes()).unwrap();
        // Build the DER RSAPublicKey by hand (long-form lengths, a leading zero on n) and read it back.
        let int = |v: &[u8]| {
            let mut body = vec![0u8];
            body.extend_from_slice(v);
            der(0x02, &body)
        };
        let mut seq = int(&n);
        seq.extend(int(&e));
        let public = der(0x30, &seq);
        assert_eq!(rsa_pub_components_from_public_key(&public).unwrap(), (n, e));
        assert!(rsa_pub_components_from_public_key(&public[..public.len() - 1]).is_err());
        assert!(rsa_pub_components_from_public_key(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(rsa_pub_components_from_public_key(b"").is_err());
    }

    fn der(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match body.len() {
            len @ 0..=0x7f => out.push(len as u8),
            len @ 0x80..=0xff => out.extend([0x81, len as u8]),
            len => out.extend([0x82, (len >> 8) as u8, len as u8]),
        }
        out.extend_from_slice(body);
        out
    }
}

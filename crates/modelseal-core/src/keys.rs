//! Key files: Ed25519 PKCS#8 private keys (optionally passphrase-encrypted) and SPKI
//! public keys, in PEM. Other algorithms are recognised so errors can name them.

use std::fmt;

use ed25519_dalek::Signer as _;
use pkcs8::der::{Decode, SecretDocument, pem::LineEnding};
use pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, ObjectIdentifier};
use sha2::Digest as _;
use zeroize::Zeroizing;

const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// A signature algorithm, as key files and messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// Ed25519 (RFC 8032).
    Ed25519,
    /// ECDSA over NIST P-256.
    EcdsaP256,
    /// ECDSA over NIST P-384.
    EcdsaP384,
    /// ECDSA over NIST P-521.
    EcdsaP521,
    /// ECDSA whose curve is not known yet (a SEC1 key before it is decoded).
    Ecdsa,
    /// RSA of any size.
    Rsa,
    /// Anything else, by OID.
    Other(String),
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ed25519 => f.write_str("ed25519"),
            Self::EcdsaP256 => f.write_str("ecdsa-p256"),
            Self::EcdsaP384 => f.write_str("ecdsa-p384"),
            Self::EcdsaP521 => f.write_str("ecdsa-p521"),
            Self::Ecdsa => f.write_str("ecdsa"),
            Self::Rsa => f.write_str("rsa"),
            Self::Other(oid) => write!(f, "unknown algorithm (OID {oid})"),
        }
    }
}

fn algorithm_of(oid: ObjectIdentifier, curve: Option<ObjectIdentifier>) -> KeyAlgorithm {
    match (oid, curve) {
        (OID_ED25519, _) => KeyAlgorithm::Ed25519,
        (OID_EC_PUBLIC_KEY, Some(OID_P256)) => KeyAlgorithm::EcdsaP256,
        (OID_EC_PUBLIC_KEY, Some(OID_P384)) => KeyAlgorithm::EcdsaP384,
        (OID_EC_PUBLIC_KEY, Some(OID_P521)) => KeyAlgorithm::EcdsaP521,
        (OID_EC_PUBLIC_KEY, Some(other)) => KeyAlgorithm::Other(format!("ecdsa curve {other}")),
        (OID_RSA, _) => KeyAlgorithm::Rsa,
        (other, _) => KeyAlgorithm::Other(other.to_string()),
    }
}

/// Why a key could not be loaded or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not PEM, or PEM with broken base64.
    #[error("not a PEM key file: {0}")]
    NotPem(String),
    /// PEM, but not the kind of key expected here.
    #[error("found a PEM {found:?} block; expected {expected}")]
    UnexpectedLabel {
        /// The label read.
        found: String,
        /// What was wanted.
        expected: &'static str,
    },
    /// The DER inside did not parse.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which structure.
        what: &'static str,
        /// The decoder's words.
        detail: String,
    },
    /// A well-formed key of an algorithm this operation does not support.
    #[error("{found} keys are not supported here; modelseal signs natively with ed25519")]
    UnsupportedAlgorithm {
        /// The algorithm found.
        found: KeyAlgorithm,
    },
    /// The private key is encrypted and no passphrase was given.
    #[error("private key is encrypted and needs a passphrase")]
    PassphraseRequired,
    /// The passphrase did not decrypt the key.
    #[error("wrong passphrase, or a corrupt encrypted key")]
    WrongPassphrase,
    /// Encoding a key failed (should not happen with valid keys).
    #[error("cannot encode key: {0}")]
    Encode(String),
    /// The system random source failed.
    #[error("system random number generator failed: {0}")]
    Random(String),
}

fn malformed(what: &'static str) -> impl FnOnce(pkcs8::der::Error) -> KeyError {
    move |e| KeyError::Malformed {
        what,
        detail: e.to_string(),
    }
}

/// The SHA-256 of a public key's SubjectPublicKeyInfo DER, in lowercase hex. It is the
/// `publicKey.hint` modelseal writes into bundles and the name keys have in messages.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyFingerprint(String);

impl KeyFingerprint {
    /// The full hex form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", &self.0)
    }
}

impl fmt::Debug for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFingerprint({})", self.0)
    }
}

/// A public key that can check signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    key: ed25519_dalek::VerifyingKey,
    spki_der: Vec<u8>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VerifyingKey({} {})",
            self.algorithm(),
            self.fingerprint()
        )
    }
}

impl VerifyingKey {
    /// Reads an SPKI `PUBLIC KEY` PEM.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, doc) =
            pkcs8::Document::from_pem(pem).map_err(|e| KeyError::NotPem(e.to_string()))?;
        if label != "PUBLIC KEY" {
            return Err(KeyError::UnexpectedLabel {
                found: label.to_owned(),
                expected: "a \"PUBLIC KEY\" (SubjectPublicKeyInfo)",
            });
        }
        Self::from_spki_der(doc.as_bytes())
    }

    /// Reads SubjectPublicKeyInfo DER.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let spki =
            pkcs8::SubjectPublicKeyInfoRef::from_der(der).map_err(malformed("public key"))?;
        let curve = spki
            .algorithm
            .parameters
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        let algorithm = algorithm_of(spki.algorithm.oid, curve);
        if algorithm != KeyAlgorithm::Ed25519 {
            return Err(KeyError::UnsupportedAlgorithm { found: algorithm });
        }
        let key = ed25519_dalek::VerifyingKey::try_from(spki).map_err(|e| KeyError::Malformed {
            what: "ed25519 public key",
            detail: e.to_string(),
        })?;
        Ok(Self {
            key,
            spki_der: der.to_vec(),
        })
    }

    /// SPKI PEM text.
    pub fn to_pem(&self) -> String {
        pkcs8::Document::try_from(self.spki_der.as_slice())
            .and_then(|d| d.to_pem("PUBLIC KEY", LineEnding::LF))
            .expect("DER that parsed as SPKI re-encodes as PEM")
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        KeyAlgorithm::Ed25519
    }

    /// SHA-256 of the SPKI DER.
    pub fn fingerprint(&self) -> KeyFingerprint {
        KeyFingerprint(hex::encode(sha2::Sha256::digest(&self.spki_der)))
    }

    /// Checks `signature` over `message` (Ed25519 in its strict form: no malleable or
    /// small-order encodings).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.key.verify_strict(message, &signature).is_ok()
    }
}

/// A private key that signs.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.verifying_key().fingerprint())
    }
}

/// What kind of private key a PEM holds, before any passphrase is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrivateKeyForm {
    /// `PRIVATE KEY`: plain PKCS#8.
    Plain,
    /// `ENCRYPTED PRIVATE KEY`: PKCS#8 under PBES2.
    Encrypted,
}

impl SigningKey {
    /// A fresh Ed25519 key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// Tells whether a PEM holds an encrypted key (so the caller knows to ask for a
    /// passphrase) without decoding it.
    pub fn pem_form(pem: &str) -> Result<PrivateKeyForm, KeyError> {
        let (label, _) =
            SecretDocument::from_pem(pem).map_err(|e| KeyError::NotPem(e.to_string()))?;
        match label {
            "PRIVATE KEY" => Ok(PrivateKeyForm::Plain),
            "ENCRYPTED PRIVATE KEY" => Ok(PrivateKeyForm::Encrypted),
            other => Err(unexpected_private_label(other)),
        }
    }

    /// Reads a PKCS#8 private key PEM, decrypting it with `passphrase` when it is an
    /// `ENCRYPTED PRIVATE KEY`.
    pub fn from_pem(pem: &str, passphrase: Option<&[u8]>) -> Result<Self, KeyError> {
        let (label, doc) =
            SecretDocument::from_pem(pem).map_err(|e| KeyError::NotPem(e.to_string()))?;
        let plain = match label {
            "PRIVATE KEY" => doc,
            "ENCRYPTED PRIVATE KEY" => {
                let passphrase = passphrase.ok_or(KeyError::PassphraseRequired)?;
                let encrypted = pkcs8::EncryptedPrivateKeyInfoRef::from_der(doc.as_bytes())
                    .map_err(malformed("encrypted private key"))?;
                encrypted
                    .decrypt(passphrase)
                    .map_err(|_| KeyError::WrongPassphrase)?
            }
            other => return Err(unexpected_private_label(other)),
        };
        Self::from_pkcs8_der(plain.as_bytes())
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = pkcs8::PrivateKeyInfoRef::from_der(der).map_err(malformed("private key"))?;
        let curve = info
            .algorithm
            .parameters
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        let algorithm = algorithm_of(info.algorithm.oid, curve);
        if algorithm != KeyAlgorithm::Ed25519 {
            return Err(KeyError::UnsupportedAlgorithm { found: algorithm });
        }
        let key =
            ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(|e| KeyError::Malformed {
                what: "ed25519 private key",
                detail: e.to_string(),
            })?;
        Ok(Self { key })
    }

    /// PKCS#8 PEM, encrypted (PBES2: scrypt and AES-256-CBC) when a passphrase is given.
    pub fn to_pem(&self, passphrase: Option<&[u8]>) -> Result<Zeroizing<String>, KeyError> {
        let der = self
            .key
            .to_pkcs8_der()
            .map_err(|e| KeyError::Encode(e.to_string()))?;
        let pem = match passphrase {
            None => der.to_pem("PRIVATE KEY", LineEnding::LF),
            Some(passphrase) => {
                let info = pkcs8::PrivateKeyInfoRef::from_der(der.as_bytes())
                    .map_err(|e| KeyError::Encode(e.to_string()))?;
                let encrypted = info
                    .encrypt(passphrase)
                    .map_err(|e| KeyError::Encode(e.to_string()))?;
                encrypted.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
            }
        };
        pem.map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        let key = self.key.verifying_key();
        let spki_der = key
            .to_public_key_der()
            .expect("an ed25519 public key always encodes")
            .into_vec();
        VerifyingKey { key, spki_der }
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message).to_bytes().to_vec()
    }
}

fn unexpected_private_label(found: &str) -> KeyError {
    if found == "EC PRIVATE KEY" {
        return KeyError::UnsupportedAlgorithm {
            found: KeyAlgorithm::Ecdsa,
        };
    }
    KeyError::UnexpectedLabel {
        found: found.to_owned(),
        expected: "a PKCS#8 \"PRIVATE KEY\" or \"ENCRYPTED PRIVATE KEY\"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_plain_and_encrypted() {
        let key = SigningKey::generate().unwrap();
        let public = key.verifying_key();
        let plain = key.to_pem(None).unwrap();
        assert!(plain.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(SigningKey::pem_form(&plain).unwrap(), PrivateKeyForm::Plain);
        let again = SigningKey::from_pem(&plain, None).unwrap();
        assert_eq!(again.verifying_key(), public);

        let locked = key.to_pem(Some(b"correct horse")).unwrap();
        assert_eq!(
            SigningKey::pem_form(&locked).unwrap(),
            PrivateKeyForm::Encrypted
        );
        assert!(matches!(
            SigningKey::from_pem(&locked, None),
            Err(KeyError::PassphraseRequired)
        ));
        assert!(matches!(
            SigningKey::from_pem(&locked, Some(b"wrong")),
            Err(KeyError::WrongPassphrase)
        ));
        let unlocked = SigningKey::from_pem(&locked, Some(b"correct horse")).unwrap();
        assert_eq!(unlocked.verifying_key(), public);

        let pem = public.to_pem();
        assert_eq!(VerifyingKey::from_pem(&pem).unwrap(), public);
    }

    #[test]
    fn signatures_check_and_fail() {
        let key = SigningKey::generate().unwrap();
        let sig = key.sign(b"message");
        assert!(key.verifying_key().verify(b"message", &sig));
        assert!(!key.verifying_key().verify(b"messagf", &sig));
        assert!(!key.verifying_key().verify(b"message", &sig[1..]));
        let other = SigningKey::generate().unwrap();
        assert!(!other.verifying_key().verify(b"message", &sig));
    }

    #[test]
    fn fingerprint_is_sha256_of_spki() {
        let key = SigningKey::generate().unwrap().verifying_key();
        assert_eq!(
            key.fingerprint().as_str(),
            hex::encode(sha2::Sha256::digest(&key.spki_der))
        );
        assert_eq!(key.spki_der.len(), 44);
    }

    #[test]
    fn wrong_inputs_are_named() {
        assert!(matches!(
            VerifyingKey::from_pem("hello"),
            Err(KeyError::NotPem(_))
        ));
        let private = SigningKey::generate().unwrap().to_pem(None).unwrap();
        assert!(matches!(
            VerifyingKey::from_pem(&private),
            Err(KeyError::UnexpectedLabel { .. })
        ));
        let public = SigningKey::generate().unwrap().verifying_key().to_pem();
        assert!(matches!(
            SigningKey::from_pem(&public, None),
            Err(KeyError::UnexpectedLabel { .. })
        ));
    }
}

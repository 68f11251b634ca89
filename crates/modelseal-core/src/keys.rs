//! Key files: Ed25519, ECDSA and ML-DSA-65 PKCS#8 private keys (optionally
//! passphrase-encrypted) and SPKI public keys, in PEM. Other algorithms are recognised so
//! errors can name them.

use std::fmt;

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
/// id-ml-dsa-65 (NIST CSOR, FIPS 204; RFC 9881 for X.509): no parameters.
const OID_ML_DSA_65: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.18");
/// An ML-DSA-65 public key (FIPS 204 table 2).
#[cfg(feature = "ml-dsa")]
const ML_DSA_65_PUBLIC_KEY_LEN: usize = 1952;
/// An ML-DSA-65 signature (FIPS 204 table 2).
pub const ML_DSA_65_SIGNATURE_LEN: usize = 3309;

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
    /// ML-DSA-65 (FIPS 204), pure mode with an empty context: post-quantum.
    MlDsa65,
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
            Self::MlDsa65 => f.write_str("ml-dsa-65"),
            Self::Rsa => f.write_str("rsa"),
            Self::Other(oid) => write!(f, "unknown algorithm (OID {oid})"),
        }
    }
}

fn algorithm_of(oid: ObjectIdentifier, curve: Option<ObjectIdentifier>) -> KeyAlgorithm {
    match (oid, curve) {
        (OID_ED25519, _) => KeyAlgorithm::Ed25519,
        (OID_ML_DSA_65, _) => KeyAlgorithm::MlDsa65,
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
    #[error("{found} keys are not supported; use ed25519, ecdsa-p256/p384/p521 or ml-dsa-65")]
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
    /// A certificate file did not parse.
    #[error("malformed certificate: {0}")]
    Certificate(String),
    /// The signing certificate is for another key.
    #[error("the signing certificate's public key is not the private key's")]
    CertificateKeyMismatch,
    /// The system random source failed.
    #[error("system random number generator failed: {0}")]
    Random(String),
    /// A device or key service holding the key could not sign: the message names the
    /// device and the object, never a PIN or credential.
    #[error("{0}")]
    Device(String),
}

/// A private key that signs, wherever it is kept: in memory ([`SigningKey`]), or in a
/// device or service that never lets it out (a PKCS#11 token, a TPM, a cloud KMS). Bundles
/// name the public half, so verification does not depend on where the key lives.
pub trait KeySigner: Send + Sync {
    /// The public key; its fingerprint names the signer.
    fn verifying_key(&self) -> VerifyingKey;
    /// Signs `message` as [`SigningKey::sign`] does: Ed25519 (64 bytes), or ECDSA over
    /// the curve's hash, DER-encoded.
    fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, KeyError>;
    /// Where the key is, for messages and reports: `file`, `pkcs11`, `tpm`, `awskms`.
    fn location(&self) -> &'static str {
        "file"
    }
}

impl KeySigner for SigningKey {
    fn verifying_key(&self) -> VerifyingKey {
        SigningKey::verifying_key(self)
    }
    fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        Ok(self.sign(message))
    }
}

/// Signs with `signer` and checks the signature with its public key before anyone sees
/// it: a device that answers with another key's signature, or bytes that are not a
/// signature, is caught here and not at the first verifier.
pub fn sign_checked(signer: &dyn KeySigner, message: &[u8]) -> Result<Vec<u8>, KeyError> {
    let signature = signer.sign_message(message)?;
    if !signer.verifying_key().verify(message, &signature) {
        return Err(KeyError::Device(format!(
            "the {} key's signature does not verify with its own public key",
            signer.location()
        )));
    }
    Ok(signature)
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
    key: PublicKey,
    spki_der: Vec<u8>,
}

#[derive(Clone, PartialEq, Eq)]
enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
    #[cfg(feature = "ml-dsa")]
    /// The raw FIPS 204 public key (1952 bytes).
    MlDsa65(Vec<u8>),
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

fn curve_of(parameters: Option<pkcs8::der::asn1::AnyRef<'_>>) -> Option<ObjectIdentifier> {
    parameters.and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
}

/// An ML-DSA key met by a build without the `ml-dsa` feature.
#[cfg(not(feature = "ml-dsa"))]
fn no_ml_dsa() -> KeyError {
    KeyError::Malformed {
        what: "ml-dsa-65 key",
        detail: "this build has no ML-DSA (the modelseal-core `ml-dsa` cargo feature)".into(),
    }
}

fn bad_key(what: &'static str) -> impl FnOnce(String) -> KeyError {
    move |detail| KeyError::Malformed { what, detail }
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

    /// Reads SubjectPublicKeyInfo DER (Ed25519, or ECDSA on P-256, P-384 or P-521).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        use pkcs8::DecodePublicKey;
        let spki =
            pkcs8::SubjectPublicKeyInfoRef::from_der(der).map_err(malformed("public key"))?;
        let algorithm = algorithm_of(spki.algorithm.oid, curve_of(spki.algorithm.parameters));
        let e = |e: pkcs8::spki::Error| e.to_string();
        let key = match algorithm {
            KeyAlgorithm::Ed25519 => ed25519_dalek::VerifyingKey::try_from(spki)
                .map(PublicKey::Ed25519)
                .map_err(|e| bad_key("ed25519 public key")(e.to_string()))?,
            KeyAlgorithm::EcdsaP256 => p256::ecdsa::VerifyingKey::from_public_key_der(der)
                .map(PublicKey::P256)
                .map_err(|x| bad_key("ecdsa-p256 public key")(e(x)))?,
            KeyAlgorithm::EcdsaP384 => p384::ecdsa::VerifyingKey::from_public_key_der(der)
                .map(PublicKey::P384)
                .map_err(|x| bad_key("ecdsa-p384 public key")(e(x)))?,
            KeyAlgorithm::EcdsaP521 => p521::ecdsa::VerifyingKey::from_public_key_der(der)
                .map(PublicKey::P521)
                .map_err(|x| bad_key("ecdsa-p521 public key")(e(x)))?,
            #[cfg(feature = "ml-dsa")]
            KeyAlgorithm::MlDsa65 => PublicKey::MlDsa65(ml_dsa_65_public_key(&spki)?),
            #[cfg(not(feature = "ml-dsa"))]
            KeyAlgorithm::MlDsa65 => return Err(no_ml_dsa()),
            found => return Err(KeyError::UnsupportedAlgorithm { found }),
        };
        Ok(Self {
            key,
            spki_der: der.to_vec(),
        })
    }

    /// SPKI PEM text, 64-column base64 with LF line ends (the form OpenSSL and Python's
    /// `cryptography` write, which matters for [`Self::pem_hint`]).
    pub fn to_pem(&self) -> String {
        pkcs8::Document::try_from(self.spki_der.as_slice())
            .and_then(|d| d.to_pem("PUBLIC KEY", LineEnding::LF))
            .expect("DER that parsed as SPKI re-encodes as PEM")
    }

    /// SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self.key {
            PublicKey::Ed25519(_) => KeyAlgorithm::Ed25519,
            PublicKey::P256(_) => KeyAlgorithm::EcdsaP256,
            PublicKey::P384(_) => KeyAlgorithm::EcdsaP384,
            PublicKey::P521(_) => KeyAlgorithm::EcdsaP521,
            #[cfg(feature = "ml-dsa")]
            PublicKey::MlDsa65(_) => KeyAlgorithm::MlDsa65,
        }
    }

    /// Whether `other` is the same public key, whatever its encoding (an EC point
    /// compressed or not has two SPKI forms, and two fingerprints).
    pub fn same_key(&self, other: &VerifyingKey) -> bool {
        self.key == other.key
    }

    /// SHA-256 of the SPKI DER: modelseal's name for a key.
    pub fn fingerprint(&self) -> KeyFingerprint {
        KeyFingerprint(hex::encode(sha2::Sha256::digest(&self.spki_der)))
    }

    /// SHA-256 of the SPKI PEM text: the `publicKey.hint` the OpenSSF model-signing tool
    /// writes into its bundles.
    pub fn pem_hint(&self) -> String {
        hex::encode(sha2::Sha256::digest(self.to_pem().as_bytes()))
    }

    /// True when `hint` names this key in either form.
    pub fn matches_hint(&self, hint: &str) -> bool {
        hint == self.fingerprint().as_str() || hint == self.pem_hint()
    }

    /// Checks `signature` over `message`. Ed25519 signatures are 64 raw bytes, checked
    /// in the strict form (no malleable or small-order encodings); ECDSA signatures are
    /// DER, over SHA-256 (P-256), SHA-384 (P-384) or SHA-512 (P-521) of the message;
    /// ML-DSA-65 signatures are the 3309 bytes of FIPS 204, over the message itself
    /// (pure ML-DSA, empty context).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use ecdsa::signature::Verifier;
        match &self.key {
            PublicKey::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify_strict(message, &sig).is_ok()),
            PublicKey::P256(key) => p256::ecdsa::Signature::from_der(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            PublicKey::P384(key) => p384::ecdsa::Signature::from_der(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            PublicKey::P521(key) => p521::ecdsa::Signature::from_der(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            #[cfg(feature = "ml-dsa")]
            PublicKey::MlDsa65(raw) => {
                signature.len() == ML_DSA_65_SIGNATURE_LEN
                    && aws_lc_rs::signature::UnparsedPublicKey::new(
                        &aws_lc_rs::signature::ML_DSA_65,
                        raw,
                    )
                    .verify(message, signature)
                    .is_ok()
            }
        }
    }
}

/// The raw key of an ML-DSA-65 SubjectPublicKeyInfo, after the checks RFC 9881 asks of
/// one: no algorithm parameters, and a key of exactly the FIPS 204 length.
#[cfg(feature = "ml-dsa")]
fn ml_dsa_65_public_key(spki: &pkcs8::SubjectPublicKeyInfoRef<'_>) -> Result<Vec<u8>, KeyError> {
    let bad = |detail: String| bad_key("ml-dsa-65 public key")(detail);
    if spki.algorithm.parameters.is_some() {
        return Err(bad(
            "the algorithm identifier has parameters; ML-DSA has none".into(),
        ));
    }
    let raw = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| bad("the key's bit string is not whole bytes".into()))?;
    if raw.len() != ML_DSA_65_PUBLIC_KEY_LEN {
        return Err(bad(format!(
            "{} bytes; an ML-DSA-65 public key is {ML_DSA_65_PUBLIC_KEY_LEN}",
            raw.len()
        )));
    }
    Ok(raw.to_vec())
}

impl VerifyingKey {
    /// Checks an ECDSA signature made over SHA-256 of `message` whatever the curve: how
    /// model-signing 0.2 signed, and how model-signing 1.x checks such signatures. Only
    /// the legacy OMS path uses this; Ed25519 keys never match.
    pub fn verify_ecdsa_sha256(&self, message: &[u8], signature: &[u8]) -> bool {
        use ecdsa::signature::hazmat::PrehashVerifier;
        let prehash = sha2::Sha256::digest(message);
        match &self.key {
            PublicKey::Ed25519(_) => false,
            PublicKey::P256(key) => p256::ecdsa::Signature::from_der(signature)
                .is_ok_and(|sig| key.verify_prehash(&prehash, &sig).is_ok()),
            PublicKey::P384(key) => p384::ecdsa::Signature::from_der(signature)
                .is_ok_and(|sig| key.verify_prehash(&prehash, &sig).is_ok()),
            PublicKey::P521(key) => p521::ecdsa::Signature::from_der(signature)
                .is_ok_and(|sig| key.verify_prehash(&prehash, &sig).is_ok()),
            #[cfg(feature = "ml-dsa")]
            PublicKey::MlDsa65(_) => false,
        }
    }
}

/// A private key that signs.
pub struct SigningKey {
    key: PrivateKey,
}

enum PrivateKey {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
    #[cfg(feature = "ml-dsa")]
    /// AWS-LC's key pair; it keeps the FIPS 204 seed, which is what PKCS#8 holds.
    MlDsa65(Box<aws_lc_rs::signature::PqdsaKeyPair>),
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
    /// `PRIVATE KEY` (plain PKCS#8) or `EC PRIVATE KEY` (SEC1).
    Plain,
    /// `ENCRYPTED PRIVATE KEY`: PKCS#8 under PBES2.
    Encrypted,
}

/// Random bytes that form a valid ECDSA scalar for a curve whose order is just below
/// 2^(8·len), retrying the rare draw at or above the order.
fn random_scalar<K>(
    len: usize,
    top_mask: u8,
    parse: impl Fn(&[u8]) -> Option<K>,
) -> Result<K, KeyError> {
    let mut bytes = Zeroizing::new(vec![0u8; len]);
    loop {
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        bytes[0] &= top_mask;
        if let Some(key) = parse(&bytes) {
            return Ok(key);
        }
    }
}

impl SigningKey {
    /// A fresh key of `algorithm` from the operating system's random source.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, KeyError> {
        let key = match algorithm {
            KeyAlgorithm::Ed25519 => {
                let mut seed = Zeroizing::new([0u8; 32]);
                getrandom::fill(seed.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
                PrivateKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
            KeyAlgorithm::EcdsaP256 => PrivateKey::P256(random_scalar(32, 0xff, |b| {
                p256::ecdsa::SigningKey::from_slice(b).ok()
            })?),
            KeyAlgorithm::EcdsaP384 => PrivateKey::P384(random_scalar(48, 0xff, |b| {
                p384::ecdsa::SigningKey::from_slice(b).ok()
            })?),
            // P-521 scalars are 66 bytes of which the top 7 bits are zero.
            KeyAlgorithm::EcdsaP521 => PrivateKey::P521(random_scalar(66, 0x01, |b| {
                p521::ecdsa::SigningKey::from_slice(b).ok()
            })?),
            #[cfg(feature = "ml-dsa")]
            KeyAlgorithm::MlDsa65 => PrivateKey::MlDsa65(Box::new(
                aws_lc_rs::signature::PqdsaKeyPair::generate(
                    &aws_lc_rs::signature::ML_DSA_65_SIGNING,
                )
                .map_err(|_| KeyError::Random("ML-DSA-65 key generation failed".into()))?,
            )),
            #[cfg(not(feature = "ml-dsa"))]
            KeyAlgorithm::MlDsa65 => return Err(no_ml_dsa()),
            found => return Err(KeyError::UnsupportedAlgorithm { found }),
        };
        Ok(Self { key })
    }

    /// Tells whether a PEM holds an encrypted key (so the caller knows to ask for a
    /// passphrase) without decoding it.
    pub fn pem_form(pem: &str) -> Result<PrivateKeyForm, KeyError> {
        let (label, _) =
            SecretDocument::from_pem(pem).map_err(|e| KeyError::NotPem(e.to_string()))?;
        match label {
            "PRIVATE KEY" | "EC PRIVATE KEY" => Ok(PrivateKeyForm::Plain),
            "ENCRYPTED PRIVATE KEY" => Ok(PrivateKeyForm::Encrypted),
            other => Err(unexpected_private_label(other)),
        }
    }

    /// Reads a private key PEM: PKCS#8 (`PRIVATE KEY`), PKCS#8 encrypted with
    /// `passphrase` (`ENCRYPTED PRIVATE KEY`), or SEC1 (`EC PRIVATE KEY`).
    pub fn from_pem(pem: &str, passphrase: Option<&[u8]>) -> Result<Self, KeyError> {
        let (label, doc) =
            SecretDocument::from_pem(pem).map_err(|e| KeyError::NotPem(e.to_string()))?;
        let plain = match label {
            "PRIVATE KEY" => doc,
            "EC PRIVATE KEY" => return Self::from_sec1_der(doc.as_bytes()),
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
        let algorithm = algorithm_of(info.algorithm.oid, curve_of(info.algorithm.parameters));
        let e = |e: pkcs8::Error| e.to_string();
        let key = match algorithm {
            KeyAlgorithm::Ed25519 => ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .map(PrivateKey::Ed25519)
                .map_err(|x| bad_key("ed25519 private key")(e(x)))?,
            KeyAlgorithm::EcdsaP256 => p256::ecdsa::SigningKey::from_pkcs8_der(der)
                .map(PrivateKey::P256)
                .map_err(|x| bad_key("ecdsa-p256 private key")(e(x)))?,
            KeyAlgorithm::EcdsaP384 => p384::ecdsa::SigningKey::from_pkcs8_der(der)
                .map(PrivateKey::P384)
                .map_err(|x| bad_key("ecdsa-p384 private key")(e(x)))?,
            KeyAlgorithm::EcdsaP521 => p521::ecdsa::SigningKey::from_pkcs8_der(der)
                .map(PrivateKey::P521)
                .map_err(|x| bad_key("ecdsa-p521 private key")(e(x)))?,
            #[cfg(feature = "ml-dsa")]
            KeyAlgorithm::MlDsa65 => {
                if info.algorithm.parameters.is_some() {
                    return Err(bad_key("ml-dsa-65 private key")(
                        "the algorithm identifier has parameters; ML-DSA has none".into(),
                    ));
                }
                // AWS-LC reads every RFC 9881 form (seed, expanded key, or both, which it
                // checks agree) and refuses anything else.
                aws_lc_rs::signature::PqdsaKeyPair::from_pkcs8(
                    &aws_lc_rs::signature::ML_DSA_65_SIGNING,
                    der,
                )
                .map(|k| PrivateKey::MlDsa65(Box::new(k)))
                .map_err(|_| {
                    bad_key("ml-dsa-65 private key")(
                        "neither a 32-byte seed nor an expanded key that FIPS 204 accepts, or the two disagree".into(),
                    )
                })?
            }
            #[cfg(not(feature = "ml-dsa"))]
            KeyAlgorithm::MlDsa65 => return Err(no_ml_dsa()),
            found => return Err(KeyError::UnsupportedAlgorithm { found }),
        };
        Ok(Self { key })
    }

    fn from_sec1_der(der: &[u8]) -> Result<Self, KeyError> {
        let parsed = sec1::EcPrivateKey::try_from(der)
            .map_err(|e| bad_key("SEC1 private key")(e.to_string()))?;
        let curve = parsed
            .parameters
            .and_then(|p| p.named_curve())
            .ok_or_else(|| bad_key("SEC1 private key")("no named curve".into()))?;
        let e = |e: ecdsa::Error| e.to_string();
        let secret = parsed.private_key;
        let key = match algorithm_of(OID_EC_PUBLIC_KEY, Some(curve)) {
            KeyAlgorithm::EcdsaP256 => p256::ecdsa::SigningKey::from_slice(secret)
                .map(PrivateKey::P256)
                .map_err(|x| bad_key("ecdsa-p256 private key")(e(x)))?,
            KeyAlgorithm::EcdsaP384 => p384::ecdsa::SigningKey::from_slice(secret)
                .map(PrivateKey::P384)
                .map_err(|x| bad_key("ecdsa-p384 private key")(e(x)))?,
            KeyAlgorithm::EcdsaP521 => p521::ecdsa::SigningKey::from_slice(secret)
                .map(PrivateKey::P521)
                .map_err(|x| bad_key("ecdsa-p521 private key")(e(x)))?,
            found => return Err(KeyError::UnsupportedAlgorithm { found }),
        };
        // The public key the file carries is the one OpenSSL reports (and hands out with
        // `pkey -pubout`): it must be the one the private key makes, or the key
        // published would not verify what this key signs.
        if let Some(embedded) = parsed.public_key {
            let matches = match &key {
                PrivateKey::P256(k) => p256::ecdsa::VerifyingKey::from_sec1_bytes(embedded)
                    .is_ok_and(|p| p == *k.verifying_key()),
                PrivateKey::P384(k) => p384::ecdsa::VerifyingKey::from_sec1_bytes(embedded)
                    .is_ok_and(|p| p == *k.verifying_key()),
                PrivateKey::P521(k) => p521::ecdsa::VerifyingKey::from_sec1_bytes(embedded)
                    .is_ok_and(|p| p == p521::ecdsa::VerifyingKey::from(k)),
                PrivateKey::Ed25519(_) => false,
                #[cfg(feature = "ml-dsa")]
                PrivateKey::MlDsa65(_) => false,
            };
            if !matches {
                return Err(bad_key("SEC1 private key")(
                    "the public key it carries is not the one its private key makes".into(),
                ));
            }
        }
        Ok(Self { key })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.verifying_key().algorithm()
    }

    /// PKCS#8 PEM, encrypted (PBES2: scrypt and AES-256-CBC) when a passphrase is given.
    pub fn to_pem(&self, passphrase: Option<&[u8]>) -> Result<Zeroizing<String>, KeyError> {
        let der = match &self.key {
            // RFC 8410 (PKCS#8 v1, no public key attached): what OpenSSL 3.0 and Python
            // `cryptography` read. Keys written as v2 by earlier releases still load.
            PrivateKey::Ed25519(k) => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: k.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_der(),
            PrivateKey::P256(k) => k.to_pkcs8_der(),
            PrivateKey::P384(k) => k.to_pkcs8_der(),
            PrivateKey::P521(k) => k.to_pkcs8_der(),
            // The seed form (RFC 9881 `seed [0]`): what OpenSSL 3.5 and pyca/cryptography
            // write by default, and all a key needs.
            #[cfg(feature = "ml-dsa")]
            PrivateKey::MlDsa65(k) => {
                let document = k
                    .to_pkcs8v1()
                    .map_err(|_| KeyError::Encode("ML-DSA-65 key has no seed".into()))?;
                SecretDocument::try_from(document.as_ref()).map_err(pkcs8::Error::from)
            }
        }
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
        let (key, der) = match &self.key {
            PrivateKey::Ed25519(k) => {
                let public = k.verifying_key();
                (PublicKey::Ed25519(public), public.to_public_key_der())
            }
            PrivateKey::P256(k) => (
                PublicKey::P256(*k.verifying_key()),
                k.verifying_key().to_public_key_der(),
            ),
            PrivateKey::P384(k) => (
                PublicKey::P384(*k.verifying_key()),
                k.verifying_key().to_public_key_der(),
            ),
            PrivateKey::P521(k) => (
                PublicKey::P521(*k.verifying_key()),
                k.verifying_key().to_public_key_der(),
            ),
            #[cfg(feature = "ml-dsa")]
            PrivateKey::MlDsa65(k) => {
                use aws_lc_rs::signature::KeyPair as _;
                let raw = k.public_key().as_ref().to_vec();
                let spki = ml_dsa_65_spki(&raw);
                return VerifyingKey {
                    key: PublicKey::MlDsa65(raw),
                    spki_der: spki,
                };
            }
        };
        let spki_der = der.expect("a valid public key always encodes").into_vec();
        VerifyingKey { key, spki_der }
    }

    /// Signs `message`: Ed25519 (64 bytes), or deterministic ECDSA (RFC 6979) over the
    /// curve's hash, DER-encoded.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        use ecdsa::signature::Signer;
        match &self.key {
            PrivateKey::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            PrivateKey::P256(k) => Signer::<p256::ecdsa::Signature>::sign(k, message)
                .to_der()
                .as_bytes()
                .to_vec(),
            PrivateKey::P384(k) => Signer::<p384::ecdsa::Signature>::sign(k, message)
                .to_der()
                .as_bytes()
                .to_vec(),
            PrivateKey::P521(k) => Signer::<p521::ecdsa::Signature>::sign(k, message)
                .to_der()
                .as_bytes()
                .to_vec(),
            #[cfg(feature = "ml-dsa")]
            PrivateKey::MlDsa65(k) => {
                // Hedged signing (FIPS 204's default): fresh randomness with the key's own.
                let mut signature = vec![0u8; ML_DSA_65_SIGNATURE_LEN];
                let written = k
                    .sign(message, &mut signature)
                    .expect("ML-DSA-65 signing into a buffer of the signature's size");
                signature.truncate(written);
                signature
            }
        }
    }
}

/// SubjectPublicKeyInfo DER of a raw ML-DSA-65 public key: the algorithm identifier
/// without parameters (RFC 9881), then the key as the bit string.
#[cfg(feature = "ml-dsa")]
fn ml_dsa_65_spki(raw: &[u8]) -> Vec<u8> {
    use pkcs8::der::Encode;
    pkcs8::SubjectPublicKeyInfoRef {
        algorithm: pkcs8::AlgorithmIdentifierRef {
            oid: OID_ML_DSA_65,
            parameters: None,
        },
        subject_public_key: pkcs8::der::asn1::BitStringRef::from_bytes(raw)
            .expect("whole bytes always form a bit string"),
    }
    .to_der()
    .expect("an SPKI of a fixed-size key always encodes")
}

/// Reads every certificate of a PEM file into DER; a file with none is an error. Each
/// block must hold exactly one DER certificate: bytes after it, which OpenSSL ignores and
/// pyca/cryptography refuses, are refused, as is text after the last block.
pub fn certificates_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, KeyError> {
    use pkcs8::der::Decode;
    const END: &str = "-----END CERTIFICATE-----";
    let bad = |e: String| KeyError::Certificate(e);
    let mut certs = Vec::new();
    let mut rest = pem;
    while let Some(at) = rest.find(END) {
        let (block, after) = rest.split_at(at + END.len());
        let (label, der) =
            pkcs8::der::pem::decode_vec(block.as_bytes()).map_err(|e| bad(e.to_string()))?;
        if label != "CERTIFICATE" {
            return Err(bad(format!(
                "PEM block {} is a {label:?}, not a \"CERTIFICATE\"",
                certs.len() + 1
            )));
        }
        x509_cert::Certificate::from_der(&der)
            .map_err(|e| bad(format!("PEM block {}: {e}", certs.len() + 1)))?;
        certs.push(der);
        rest = after;
    }
    if certs.is_empty() {
        return Err(bad("no certificate in the PEM file".into()));
    }
    if !rest.trim().is_empty() {
        return Err(bad("text after the last certificate in the PEM file".into()));
    }
    Ok(certs)
}

/// Reads the signing certificate and its chain (PEM, any number of certificates per
/// file) into DER, leaf first, after checking that the leaf certifies `key`.
pub fn certificate_chain(
    leaf_pem: &str,
    chain_pems: &[String],
    key: &dyn KeySigner,
) -> Result<Vec<Vec<u8>>, KeyError> {
    certificate_chain_from_der(certificates_from_pem(leaf_pem)?, chain_pems, key)
}

/// As [`certificate_chain`], with the leaf (and any certificates after it) already DER,
/// as a token holds it.
pub fn certificate_chain_from_der(
    leading: Vec<Vec<u8>>,
    chain_pems: &[String],
    key: &dyn KeySigner,
) -> Result<Vec<Vec<u8>>, KeyError> {
    use pkcs8::der::{Decode, Encode};
    let mut certs = leading;
    for pem in chain_pems {
        certs.extend(certificates_from_pem(pem)?);
    }
    let leaf = certs
        .first()
        .ok_or_else(|| KeyError::Certificate("no certificate".into()))?;
    let leaf =
        x509_cert::Certificate::from_der(leaf).map_err(|e| KeyError::Certificate(e.to_string()))?;
    let leaf_spki = leaf
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| KeyError::Certificate(e.to_string()))?;
    if leaf_spki != key.verifying_key().spki_der() {
        return Err(KeyError::CertificateKeyMismatch);
    }
    Ok(certs)
}

fn unexpected_private_label(found: &str) -> KeyError {
    KeyError::UnexpectedLabel {
        found: found.to_owned(),
        expected: "a PKCS#8 \"PRIVATE KEY\", \"ENCRYPTED PRIVATE KEY\" or SEC1 \"EC PRIVATE KEY\"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_block_must_hold_one_certificate_and_nothing_after_it() {
        use base64::Engine as _;
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/certs/chains/root.pem"
        );
        let pem = std::fs::read_to_string(path).unwrap();
        let der = certificates_from_pem(&pem).unwrap().remove(0);
        let block = |der: &[u8]| {
            let body = base64::engine::general_purpose::STANDARD.encode(der);
            let lines: Vec<&str> = body
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            )
        };
        assert_eq!(
            certificates_from_pem(&block(&der)).unwrap(),
            vec![der.clone()]
        );
        // OpenSSL reads the certificate and ignores what follows; pyca/cryptography
        // refuses the file. Found by tests/formats/test_cert_differential.py.
        let trailing = [der.as_slice(), &[0, 0]].concat();
        let err = certificates_from_pem(&block(&trailing)).unwrap_err();
        assert!(err.to_string().contains("PEM block 1"), "{err}");
        // Two blocks, text before and between: both read, in order.
        let two = format!("a comment\n{}\nbetween\n{}", block(&der), block(&der));
        assert_eq!(certificates_from_pem(&two).unwrap().len(), 2);
        let err = certificates_from_pem(&format!("{}trailing text\n", block(&der))).unwrap_err();
        assert!(
            err.to_string().contains("after the last certificate"),
            "{err}"
        );
        let err =
            certificates_from_pem(&block(&der).replace("CERTIFICATE", "PUBLIC KEY")).unwrap_err();
        assert!(err.to_string().contains("no certificate"), "{err}");
    }

    #[test]
    fn round_trip_plain_and_encrypted() {
        let key = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
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
        let key = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let sig = key.sign(b"message");
        assert!(key.verifying_key().verify(b"message", &sig));
        assert!(!key.verifying_key().verify(b"messagf", &sig));
        assert!(!key.verifying_key().verify(b"message", &sig[1..]));
        let other = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
        assert!(!other.verifying_key().verify(b"message", &sig));
    }

    #[test]
    fn fingerprint_is_sha256_of_spki() {
        let key = SigningKey::generate(KeyAlgorithm::Ed25519)
            .unwrap()
            .verifying_key();
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
        let private = SigningKey::generate(KeyAlgorithm::Ed25519)
            .unwrap()
            .to_pem(None)
            .unwrap();
        assert!(matches!(
            VerifyingKey::from_pem(&private),
            Err(KeyError::UnexpectedLabel { .. })
        ));
        let public = SigningKey::generate(KeyAlgorithm::Ed25519)
            .unwrap()
            .verifying_key()
            .to_pem();
        assert!(matches!(
            SigningKey::from_pem(&public, None),
            Err(KeyError::UnexpectedLabel { .. })
        ));
    }
}

#[cfg(test)]
mod ecdsa_tests {
    use super::*;

    fn testdata(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/keys")
            .join(name);
        std::fs::read_to_string(path).unwrap()
    }

    /// Keys and a signature made by pyca/cryptography 50 (OpenSSL 3.5's ML-DSA), an
    /// implementation independent of AWS-LC: each side reads the other's encodings.
    #[cfg(feature = "ml-dsa")]
    #[test]
    fn ml_dsa_65_keys_and_signatures_from_pyca_cryptography() {
        let public = VerifyingKey::from_pem(&testdata("mldsa65-pyca.pub")).unwrap();
        assert_eq!(public.algorithm(), KeyAlgorithm::MlDsa65);
        let signature = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../testdata/keys/mldsa65-pyca.sig"),
        )
        .unwrap();
        assert!(public.verify(b"modelseal test message", &signature));
        assert!(!public.verify(b"modelseal test messagf", &signature));
        // A signature cut or padded is refused before it reaches AWS-LC.
        assert!(!public.verify(b"modelseal test message", &signature[..3308]));
        let mut padded = signature.clone();
        padded.push(0);
        assert!(!public.verify(b"modelseal test message", &padded));
        for (file, passphrase) in [
            ("mldsa65-pyca.pem", None),
            ("mldsa65-pyca-encrypted.pem", Some(&b"correct horse"[..])),
        ] {
            let private = SigningKey::from_pem(&testdata(file), passphrase).unwrap();
            assert_eq!(private.verifying_key(), public, "{file}");
            // The seed form written back is byte for byte the one pyca wrote.
            if passphrase.is_none() {
                assert_eq!(*private.to_pem(None).unwrap(), testdata(file));
            }
            assert!(public.verify(b"m", &private.sign(b"m")));
        }
    }

    /// An ML-DSA key is not read as another algorithm's, and a malformed one is named.
    #[cfg(feature = "ml-dsa")]
    #[test]
    fn ml_dsa_65_encodings_are_strict() {
        use pkcs8::der::Encode;
        let public = SigningKey::generate(KeyAlgorithm::MlDsa65)
            .unwrap()
            .verifying_key();
        let spki = pkcs8::SubjectPublicKeyInfoRef::from_der(public.spki_der()).unwrap();
        let raw = spki.subject_public_key.as_bytes().unwrap();
        let encode = |oid: ObjectIdentifier, key: &[u8], params: bool| {
            let null = pkcs8::der::asn1::AnyRef::from(pkcs8::der::asn1::Null);
            pkcs8::SubjectPublicKeyInfoRef {
                algorithm: pkcs8::AlgorithmIdentifierRef {
                    oid,
                    parameters: params.then_some(null),
                },
                subject_public_key: pkcs8::der::asn1::BitStringRef::from_bytes(key).unwrap(),
            }
            .to_der()
            .unwrap()
        };
        let short = encode(OID_ML_DSA_65, &raw[..1951], false);
        assert!(
            VerifyingKey::from_spki_der(&short)
                .unwrap_err()
                .to_string()
                .contains("1951 bytes")
        );
        let with_params = encode(OID_ML_DSA_65, raw, true);
        assert!(
            VerifyingKey::from_spki_der(&with_params)
                .unwrap_err()
                .to_string()
                .contains("parameters")
        );
        // ML-DSA-44 and -87 are other algorithms, not this one under another size.
        let mldsa87 = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.19");
        assert!(matches!(
            VerifyingKey::from_spki_der(&encode(mldsa87, raw, false)),
            Err(KeyError::UnsupportedAlgorithm { .. })
        ));
        // The ML-DSA key's bytes under the Ed25519 OID are not a key.
        assert!(VerifyingKey::from_spki_der(&encode(OID_ED25519, raw, false)).is_err());
    }

    #[test]
    fn every_algorithm_generates_signs_and_round_trips() {
        for algorithm in [
            KeyAlgorithm::Ed25519,
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::EcdsaP521,
            #[cfg(feature = "ml-dsa")]
            KeyAlgorithm::MlDsa65,
        ] {
            let key = SigningKey::generate(algorithm.clone()).unwrap();
            assert_eq!(key.algorithm(), algorithm);
            let public = key.verifying_key();
            let sig = key.sign(b"payload");
            assert!(public.verify(b"payload", &sig), "{algorithm}");
            assert!(!public.verify(b"payloae", &sig), "{algorithm}");
            let again = SigningKey::from_pem(&key.to_pem(None).unwrap(), None).unwrap();
            assert_eq!(again.verifying_key(), public);
            assert_eq!(VerifyingKey::from_pem(&public.to_pem()).unwrap(), public);
        }
    }

    #[test]
    fn openssl_made_keys_load_in_every_form() {
        // SEC1 "EC PRIVATE KEY" and PKCS#8, as openssl writes them.
        for (private, public, algorithm) in [
            (
                "ec-p256.priv.pem",
                "ec-p256.pub.pem",
                KeyAlgorithm::EcdsaP256,
            ),
            (
                "ec-p256-pkcs8.priv.pem",
                "ec-p256-pkcs8.pub.pem",
                KeyAlgorithm::EcdsaP256,
            ),
            (
                "ec-p384.priv.pem",
                "ec-p384.pub.pem",
                KeyAlgorithm::EcdsaP384,
            ),
        ] {
            let key = SigningKey::from_pem(&testdata(private), None).unwrap();
            let public_file = public;
            let public = VerifyingKey::from_pem(&testdata(public_file)).unwrap();
            assert_eq!(key.verifying_key(), public, "{private}");
            assert_eq!(public.algorithm(), algorithm);
            // Our PEM re-encoding is byte-identical to openssl's, so the OMS hint matches.
            assert_eq!(public.to_pem(), testdata(public_file));
        }
        let p256 = VerifyingKey::from_pem(&testdata("ec-p256-pkcs8.pub.pem")).unwrap();
        // From model-signing 1.1.1's bundle made with this key (sigs/key-p256-pkcs8.sig).
        assert_eq!(
            p256.pem_hint(),
            "86600d9436eef7aa7199af671b49a8fde540f5af09c19a1ad93a6001e15f5522"
        );
        assert!(p256.matches_hint(&p256.pem_hint()));
        assert!(p256.matches_hint(p256.fingerprint().as_str()));
    }

    #[test]
    fn rsa_is_refused_by_name() {
        let err = VerifyingKey::from_pem(&testdata("rsa2048.pub.pem")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rsa keys are not supported; use ed25519, ecdsa-p256/p384/p521 or ml-dsa-65"
        );
    }
}

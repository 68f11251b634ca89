//! X.509 certificate chains for certificate-signed (OMS) bundles: path building from the
//! leaf through the bundle's intermediates to a trusted root, checked as RFC 5280 asks
//! (signatures, names, CA constraints, path length, validity, critical extensions), with
//! the leaf's usage checked as model-signing checks it (`spec/oms.md` §5).
//!
//! This is written here rather than taken from `rustls-webpki` because webpki refuses
//! two things real OMS chains contain: a leaf that is itself marked CA, and (with the
//! code-signing usage required) intermediates without an extended key usage.

use der::{Decode, Encode};
use modelseal_core::VerifyingKey;
use sha2::Digest as _;
use x509_cert::Certificate;
use x509_cert::der;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use x509_cert::spki::ObjectIdentifier;

/// id-kp-codeSigning.
const EKU_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
/// anyExtendedKeyUsage (RFC 5280 §4.2.1.12).
const EKU_ANY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");
/// Longest chain accepted, leaf and root included.
const MAX_DEPTH: usize = 8;
/// The most issuer signatures one path search may check. A real chain needs one per
/// level; certificates crafted to look like each other's issuers would otherwise make
/// the depth-first search try every ordering of them.
pub const MAX_SIGNATURE_CHECKS: usize = 64;

/// Name constraints (RFC 5280 §4.2.1.10): OpenSSL enforces them even when not marked
/// critical, and modelseal does not evaluate them, so a certificate carrying them is
/// refused rather than read more loosely than OpenSSL reads it.
const NAME_CONSTRAINTS: &str = "2.5.29.30";

/// Extensions whose criticality we honour; any other critical extension is refused.
const KNOWN_EXTENSIONS: &[&str] = &[
    "2.5.29.15", // key usage
    "2.5.29.19", // basic constraints
    "2.5.29.37", // extended key usage
    "2.5.29.17", // subject alternative name
    "2.5.29.14", // subject key identifier
    "2.5.29.35", // authority key identifier
];

/// Why a certificate chain was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The bundle carries no certificate.
    #[error("bundle carries no certificate")]
    Missing,
    /// A certificate or root does not parse.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// The path search used up its signature budget ([`MAX_SIGNATURE_CHECKS`]).
    #[error(
        "gave up building a path after {MAX_SIGNATURE_CHECKS} signature checks: the bundle carries too many candidate issuers"
    )]
    PathBudget,
    /// No chain from the leaf to a trusted root.
    #[error("certificate {subject:?} does not chain to a trusted root: no valid issuer {issuer:?}")]
    NoPath {
        /// The last certificate reached.
        subject: String,
        /// The issuer it names.
        issuer: String,
    },
    /// A certificate in the chain was not valid at the time checked.
    #[error(
        "certificate {subject:?} was not valid at {at} (valid {not_before} to {not_after}, Unix seconds)"
    )]
    Expired {
        /// The certificate.
        subject: String,
        /// The time checked.
        at: u64,
        /// Its validity window.
        not_before: u64,
        /// Its validity window.
        not_after: u64,
    },
    /// An issuing certificate that is not a CA, may not sign certificates, or whose
    /// path length constraint is exceeded.
    #[error("certificate {0:?} may not issue certificates here")]
    NotCa(String),
    /// A critical extension this verifier does not understand.
    #[error("certificate {subject:?} has an unknown critical extension {oid}")]
    UnknownCritical {
        /// The certificate.
        subject: String,
        /// The extension.
        oid: String,
    },
    /// The leaf allows neither digital signatures (key usage) nor code signing
    /// (extended key usage).
    #[error(
        "signing certificate {0:?} is not for signing: no digitalSignature key usage and no codeSigning extended key usage"
    )]
    Usage(String),
    /// The leaf's key is of an algorithm modelseal cannot verify.
    #[error("signing certificate key is unusable")]
    Key(#[from] modelseal_core::KeyError),
}

/// A leaf certificate that chains to a trusted root.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedCertificate {
    /// The leaf's public key, which must have made the signature.
    pub key: VerifyingKey,
    /// The leaf's subject, RFC 4514 form.
    pub subject: String,
    /// Start of the leaf's validity, Unix seconds.
    pub not_before: u64,
    /// End of the leaf's validity, Unix seconds.
    pub not_after: u64,
}

/// When a chain must have been valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidityTime {
    /// At this instant (Unix seconds): a trusted signing time, or now.
    At(u64),
    /// At the moment the leaf became valid: model-signing's lenient rule, for bundles
    /// without a trusted timestamp when the caller asks for it. A chain that has since
    /// expired still verifies, but one whose CA was not yet valid when the leaf was
    /// issued does not. Without a timestamp nothing says when the signature was made, so
    /// the default is [`ValidityTime::At`] the current time (OMS v1.0 §8.2).
    LeafIssuance,
}

fn parse(der_bytes: &[u8]) -> Result<Certificate, CertificateError> {
    Certificate::from_der(der_bytes).map_err(|e| CertificateError::Malformed(e.to_string()))
}

fn subject(cert: &Certificate) -> String {
    cert.tbs_certificate().subject().to_string()
}

fn validity(cert: &Certificate) -> (u64, u64) {
    let v = cert.tbs_certificate().validity();
    (
        v.not_before.to_unix_duration().as_secs(),
        v.not_after.to_unix_duration().as_secs(),
    )
}

/// Validates `chain` (leaf first, then intermediates in any order) up to one of `roots`
/// (DER) at `time`, and returns the leaf's key.
pub fn verify_chain(
    chain: &[Vec<u8>],
    roots: &[Vec<u8>],
    time: ValidityTime,
) -> Result<VerifiedCertificate, CertificateError> {
    let (leaf_der, rest) = chain.split_first().ok_or(CertificateError::Missing)?;
    let leaf = parse(leaf_der)?;
    let intermediates = rest
        .iter()
        .map(|d| parse(d))
        .collect::<Result<Vec<_>, _>>()?;
    let roots = roots
        .iter()
        .map(|d| parse(d))
        .collect::<Result<Vec<_>, _>>()?;
    let (not_before, not_after) = validity(&leaf);
    let at = match time {
        ValidityTime::At(t) => t,
        ValidityTime::LeafIssuance => not_before,
    };
    check_leaf_usage(&leaf)?;
    if intermediates.is_empty() && roots.iter().any(|root| root == &leaf) {
        // A certificate named as trusted is trusted as itself (as OpenSSL and
        // model-signing do): a self-signed signing certificate given directly as the
        // root. It is not an issuer here, so the CA checks do not apply; validity does.
        // Only when the bundle carries nothing else: OpenSSL then builds through the
        // carried certificates first and refuses the chain if one of them is no CA.
        check_common(&leaf, at)?;
    } else {
        let mut path = vec![&leaf];
        let mut budget = MAX_SIGNATURE_CHECKS;
        build_path(&mut path, &intermediates, &roots, at, &mut budget)?;
    }
    let spki = leaf
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| CertificateError::Malformed(e.to_string()))?;
    Ok(VerifiedCertificate {
        key: VerifyingKey::from_spki_der(&spki)?,
        subject: subject(&leaf),
        not_before,
        not_after,
    })
}

/// The public key of a DER certificate (no chain check: callers have verified it).
pub fn leaf_key(der_bytes: &[u8]) -> Result<VerifyingKey, CertificateError> {
    let cert = parse(der_bytes)?;
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| CertificateError::Malformed(e.to_string()))?;
    Ok(VerifyingKey::from_spki_der(&spki)?)
}

/// Depth-first search from `path`'s last certificate: a trusted root that issued it ends
/// the search; otherwise each unused intermediate that issued it is tried in turn.
fn build_path<'a>(
    path: &mut Vec<&'a Certificate>,
    intermediates: &'a [Certificate],
    roots: &'a [Certificate],
    at: u64,
    budget: &mut usize,
) -> Result<(), CertificateError> {
    let current = *path.last().expect("the path starts with the leaf");

    check_common(current, at)?;
    if path.len() > MAX_DEPTH {
        return Err(no_path(current));
    }
    let issuer_name = current.tbs_certificate().issuer();
    for root in roots {
        if root.tbs_certificate().subject() == issuer_name
            && issued(current, root, budget)?
            && check_issuer(root, path.len() - 1, at).is_ok()
        {
            return Ok(());
        }
    }
    let mut last_error = no_path(current);
    for candidate in intermediates {
        if path.iter().any(|c| std::ptr::eq(*c, candidate))
            || candidate.tbs_certificate().subject() != issuer_name
        {
            continue;
        }
        if !issued(current, candidate, budget)? {
            continue;
        }
        if let Err(e) = check_issuer(candidate, path.len() - 1, at) {
            last_error = e;
            continue;
        }
        path.push(candidate);
        match build_path(path, intermediates, roots, at, budget) {
            Ok(()) => return Ok(()),
            Err(CertificateError::PathBudget) => return Err(CertificateError::PathBudget),
            Err(e) => {
                last_error = e;
                path.pop();
            }
        }
    }
    Err(last_error)
}

/// [`issued_by`], charged to the path search's budget before the signature is checked.
fn issued(
    cert: &Certificate,
    issuer: &Certificate,
    budget: &mut usize,
) -> Result<bool, CertificateError> {
    *budget = budget.checked_sub(1).ok_or(CertificateError::PathBudget)?;
    Ok(issued_by(cert, issuer))
}

fn no_path(cert: &Certificate) -> CertificateError {
    CertificateError::NoPath {
        subject: subject(cert),
        issuer: cert.tbs_certificate().issuer().to_string(),
    }
}

/// Validity and critical extensions, for every certificate in the path.
fn check_common(cert: &Certificate, at: u64) -> Result<(), CertificateError> {
    let (not_before, not_after) = validity(cert);
    // RFC 5280 counts the notAfter second as valid; OpenSSL (model-signing's checker)
    // does not, so neither do we.
    if at < not_before || at >= not_after {
        return Err(CertificateError::Expired {
            subject: subject(cert),
            at,
            not_before,
            not_after,
        });
    }
    for ext in cert.tbs_certificate().extensions().into_iter().flatten() {
        let oid = ext.extn_id.to_string();
        if oid == NAME_CONSTRAINTS || (ext.critical && !KNOWN_EXTENSIONS.contains(&oid.as_str())) {
            return Err(CertificateError::UnknownCritical {
                subject: subject(cert),
                oid,
            });
        }
    }
    Ok(())
}

/// An issuer must be a CA allowed to sign certificates, valid at `at`, whose path length
/// constraint admits the `below` intermediate CA certificates between it and the leaf.
fn check_issuer(issuer: &Certificate, below: usize, at: u64) -> Result<(), CertificateError> {
    check_common(issuer, at)?;
    let tbs = issuer.tbs_certificate();
    let constraints = tbs
        .get_extension::<BasicConstraints>()
        .map_err(|e| CertificateError::Malformed(e.to_string()))?;
    let Some((_, constraints)) = constraints.filter(|(_, c)| c.ca) else {
        return Err(CertificateError::NotCa(subject(issuer)));
    };
    // `below` counts the path's certificates under this issuer; all but the leaf are
    // intermediate CAs, and pathLenConstraint bounds how many may follow.
    if let Some(max) = constraints.path_len_constraint {
        if below > usize::from(max) {
            return Err(CertificateError::NotCa(subject(issuer)));
        }
    }
    // A key usage that does not parse restricts nothing we can read: refused, not
    // waved through.
    let usage = tbs
        .get_extension::<KeyUsage>()
        .map_err(|e| CertificateError::Malformed(e.to_string()))?;
    if let Some((_, usage)) = usage {
        if !usage.key_cert_sign() {
            return Err(CertificateError::NotCa(subject(issuer)));
        }
    }
    // An extended key usage on a CA bounds what it may issue for (as Go and the Web PKI
    // read it): a CA for TLS servers only does not make model signers.
    let extended = tbs
        .get_extension::<ExtendedKeyUsage>()
        .map_err(|e| CertificateError::Malformed(e.to_string()))?;
    if let Some((_, eku)) = extended {
        if !eku.0.contains(&EKU_CODE_SIGNING) && !eku.0.contains(&EKU_ANY) {
            return Err(CertificateError::Usage(subject(issuer)));
        }
    }
    Ok(())
}

/// The leaf must be meant for signing code: each usage extension it carries restricts it
/// (RFC 5280 §4.2.1.3, §4.2.1.12): a key usage must include digitalSignature, an
/// extended key usage must include codeSigning (or anyExtendedKeyUsage), and it needs
/// at least one of the two (model-signing's rule). A TLS server certificate from the
/// same CA (serverAuth only) cannot sign models. An extension that does not parse is
/// refused.
fn check_leaf_usage(leaf: &Certificate) -> Result<(), CertificateError> {
    let tbs = leaf.tbs_certificate();
    let malformed = |e: x509_cert::der::Error| CertificateError::Malformed(e.to_string());
    let usage = tbs.get_extension::<KeyUsage>().map_err(malformed)?;
    let extended = tbs.get_extension::<ExtendedKeyUsage>().map_err(malformed)?;
    let usage_ok = usage.as_ref().is_none_or(|(_, ku)| ku.digital_signature());
    let extended_ok = extended
        .as_ref()
        .is_none_or(|(_, eku)| eku.0.contains(&EKU_CODE_SIGNING) || eku.0.contains(&EKU_ANY));
    if usage_ok && extended_ok && (usage.is_some() || extended.is_some()) {
        Ok(())
    } else {
        Err(CertificateError::Usage(subject(leaf)))
    }
}

/// Whether `issuer`'s key made `cert`'s signature. The algorithm named inside the signed
/// part must be the one named outside it (RFC 5280 §4.1.1.2), as OpenSSL requires:
/// otherwise the outer name, which nothing signs, would choose how the signature is read.
fn issued_by(cert: &Certificate, issuer: &Certificate) -> bool {
    if cert.tbs_certificate().signature() != cert.signature_algorithm() {
        return false;
    }
    let Ok(tbs) = cert.tbs_certificate().to_der() else {
        return false;
    };
    let Some(signature) = cert.signature().as_bytes() else {
        return false;
    };
    let spki = issuer.tbs_certificate().subject_public_key_info();
    let algorithm = cert.signature_algorithm().oid.to_string();
    verify_signature(spki, &algorithm, &tbs, signature)
}

fn verify_signature(
    spki: &x509_cert::spki::SubjectPublicKeyInfoOwned,
    algorithm: &str,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let Ok(spki_der) = spki.to_der() else {
        return false;
    };
    match algorithm {
        // ecdsa-with-SHA256/384/512: the issuer's curve decides the key type.
        "1.2.840.10045.4.3.2" => {
            ecdsa_prehashed(&spki_der, &sha2::Sha256::digest(message), signature)
        }
        "1.2.840.10045.4.3.3" => {
            ecdsa_prehashed(&spki_der, &sha2::Sha384::digest(message), signature)
        }
        "1.2.840.10045.4.3.4" => {
            ecdsa_prehashed(&spki_der, &sha2::Sha512::digest(message), signature)
        }
        // Ed25519
        "1.3.101.112" => {
            VerifyingKey::from_spki_der(&spki_der).is_ok_and(|k| k.verify(message, signature))
        }
        // sha256/384/512WithRSAEncryption (PKCS #1 v1.5)
        "1.2.840.113549.1.1.11" => rsa_pkcs1::<sha2::Sha256>(&spki_der, message, signature),
        "1.2.840.113549.1.1.12" => rsa_pkcs1::<sha2::Sha384>(&spki_der, message, signature),
        "1.2.840.113549.1.1.13" => rsa_pkcs1::<sha2::Sha512>(&spki_der, message, signature),
        _ => false,
    }
}

fn ecdsa_prehashed(spki_der: &[u8], prehash: &[u8], signature: &[u8]) -> bool {
    use ecdsa::signature::hazmat::PrehashVerifier;
    use x509_cert::spki::DecodePublicKey;
    if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(spki_der) {
        return p256::ecdsa::DerSignature::from_bytes(signature)
            .is_ok_and(|s| key.verify_prehash(prehash, &s).is_ok());
    }
    if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_der(spki_der) {
        return p384::ecdsa::DerSignature::from_bytes(signature)
            .is_ok_and(|s| key.verify_prehash(prehash, &s).is_ok());
    }
    if let Ok(key) = p521::ecdsa::VerifyingKey::from_public_key_der(spki_der) {
        return p521::ecdsa::DerSignature::from_bytes(signature)
            .is_ok_and(|s| key.verify_prehash(prehash, &s).is_ok());
    }
    false
}

fn rsa_pkcs1<D>(spki_der: &[u8], message: &[u8], signature: &[u8]) -> bool
where
    D: sha2::Digest + rsa::pkcs8::AssociatedOid,
{
    use rsa::signature::Verifier;
    use x509_cert::spki::DecodePublicKey;
    let Ok(key) = rsa::PublicKey::from_public_key_der(spki_der) else {
        return false;
    };
    let Ok(signature) = rsa::pkcs1v15::Signature::try_from(signature) else {
        return false;
    };
    rsa::pkcs1v15::VerifyingKey::<D>::new(key)
        .verify(message, &signature)
        .is_ok()
}

//! Sigstore bundle v0.3 JSON (`application/vnd.dev.sigstore.bundle.v0.3+json`) holding a
//! DSSE envelope: the file a signature lives in (`spec/bundle.md`).

use std::io::Read;
use std::path::Path;

use crate::dsse::Envelope;

/// The media type modelseal writes.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The older spelling of the same version, still accepted on input.
const BUNDLE_MEDIA_TYPE_ALT: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";

/// Largest bundle file read, in bytes. A manifest entry costs about 150 bytes of base64,
/// so this admits models of some 400,000 files while bounding memory for hostile input.
pub const MAX_BUNDLE_BYTES: u64 = 64 << 20;

/// A Sigstore bundle with a DSSE envelope.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bundle {
    /// The bundle format version.
    pub media_type: String,
    /// How to find the signer's key.
    pub verification_material: VerificationMaterial,
    /// The signed statement. Bundles with a `messageSignature` instead are not model
    /// signatures and fail to parse, with serde naming the missing field.
    pub dsse_envelope: Envelope,
}

/// The part of a bundle that identifies the signer. Exactly one of `public_key`,
/// `certificate` and `x509_certificate_chain` is set in a well-formed bundle.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerificationMaterial {
    /// A key known to the verifier out of band, named by an optional hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKeyIdentifier>,
    /// A single X.509 certificate (Sigstore keyless).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<X509Certificate>,
    /// An X.509 chain, leaf first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_certificate_chain: Option<X509CertificateChain>,
    /// Transparency log entries (empty for key-signed bundles).
    #[serde(default)]
    pub tlog_entries: Vec<serde_json::Value>,
    /// RFC 3161 timestamps, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_verification_data: Option<serde_json::Value>,
}

/// One DER certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X509Certificate {
    /// The certificate's DER bytes.
    #[serde(rename = "rawBytes", with = "crate::dsse::base64_bytes")]
    pub raw_bytes: Vec<u8>,
}

/// `x509CertificateChain` verification material: the leaf first, then intermediates.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X509CertificateChain {
    /// The certificates.
    #[serde(default)]
    pub certificates: Vec<X509Certificate>,
}

/// `publicKey` verification material.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
// Not `deny_unknown_fields`: model-signing's historical key bundles carry `rawBytes`
// here; the hint is unauthenticated and only ever a hint.
pub struct PublicKeyIdentifier {
    /// Unauthenticated hint; modelseal writes the key's SHA-256 SPKI fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// Why bytes are not a bundle modelseal can read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The file could not be read.
    #[error("cannot read the bundle")]
    Io(#[source] std::io::Error),
    /// Larger than [`MAX_BUNDLE_BYTES`].
    #[error("bundle is larger than the {MAX_BUNDLE_BYTES}-byte limit")]
    TooLarge,
    /// Not JSON, too deeply nested, or not of the bundle's shape.
    #[error("not a valid Sigstore bundle")]
    Json(#[source] serde_json::Error),
    /// A media type other than bundle v0.3.
    #[error("unsupported bundle media type {0:?}; expected {BUNDLE_MEDIA_TYPE}")]
    MediaType(String),
}

impl Bundle {
    /// Parses bundle JSON. serde_json's recursion limit (128) bounds nesting.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() as u64 > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge);
        }
        let bundle: Bundle = serde_json::from_slice(bytes).map_err(BundleError::Json)?;
        if bundle.media_type != BUNDLE_MEDIA_TYPE && bundle.media_type != BUNDLE_MEDIA_TYPE_ALT {
            return Err(BundleError::MediaType(bundle.media_type));
        }
        Ok(bundle)
    }

    /// Reads and parses a bundle file, refusing oversized files before reading them whole.
    pub fn read(path: &Path) -> Result<Self, BundleError> {
        let file = crate::open::open_regular(path).map_err(BundleError::Io)?;
        let mut bytes = Vec::new();
        file.take(MAX_BUNDLE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(BundleError::Io)?;
        Self::from_json(&bytes)
    }

    /// Pretty JSON with a final newline, as written to disk.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a bundle always serializes");
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(media_type: &str) -> String {
        format!(
            r#"{{"mediaType":"{media_type}","verificationMaterial":{{"publicKey":{{}}}},
            "dsseEnvelope":{{"payload":"e30=","payloadType":"t","signatures":[]}}}}"#
        )
    }

    #[test]
    fn a_fifo_in_place_of_the_bundle_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("model.sig");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let (done, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(Bundle::read(&fifo).is_err()).unwrap());
        let refused = wait
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("Bundle::read blocked on a FIFO");
        assert!(refused);
    }

    #[test]
    fn parses_and_round_trips() {
        let bundle = Bundle::from_json(minimal(BUNDLE_MEDIA_TYPE).as_bytes()).unwrap();
        assert_eq!(bundle.dsse_envelope.payload, b"{}");
        assert_eq!(Bundle::from_json(&bundle.to_json()).unwrap(), bundle);
        assert!(Bundle::from_json(minimal(BUNDLE_MEDIA_TYPE_ALT).as_bytes()).is_ok());
    }

    /// The parser's words, under "not a valid Sigstore bundle".
    fn cause(err: &BundleError) -> String {
        std::error::Error::source(err)
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    #[test]
    fn refuses_other_media_types_and_shapes() {
        let v01 = "application/vnd.dev.sigstore.bundle+json;version=0.1";
        assert!(matches!(
            Bundle::from_json(minimal(v01).as_bytes()),
            Err(BundleError::MediaType(m)) if m == v01
        ));
        let err = Bundle::from_json(br#"{"mediaType":"x"}"#).unwrap_err();
        assert!(
            cause(&err).contains("missing field `verificationMaterial`"),
            "{err}"
        );
        // Deep nesting in a field that is decoded hits the recursion limit; an unknown
        // field is refused by name before its value is read (sigstore-python refuses
        // unknown fields too), so it cannot exhaust the stack either.
        let nest = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let deep = format!(r#"{{"verificationMaterial":{{"tlogEntries":[{nest}]}}}}"#);
        let err = Bundle::from_json(deep.as_bytes()).unwrap_err();
        assert!(cause(&err).contains("recursion limit exceeded"), "{err}");
        let skipped = format!(r#"{{"verificationMaterial":{{"unknownField":{nest}}}}}"#);
        let err = Bundle::from_json(skipped.as_bytes()).unwrap_err();
        assert!(
            cause(&err).contains("unknown field `unknownField`"),
            "{err}"
        );
    }
}

//! TPM 2.0 key files: the `TSS2 PRIVATE KEY` PEM that tpm2-tools (`tpm2_encodeobject`),
//! the OpenSSL tpm2 provider and tpm2-tss-engine write. The file holds no secret the TPM
//! does not guard: the private part is wrapped by its parent key inside the TPM. Parsing
//! needs no TSS, so it is built and fuzzed without the `tpm` feature.
//!
//! ```text
//! TPMKey ::= SEQUENCE {
//!     type        OBJECT IDENTIFIER,            -- 2.23.133.10.1.3: a loadable key
//!     emptyAuth   [0] EXPLICIT BOOLEAN OPTIONAL,
//!     policy      [1] EXPLICIT SEQUENCE OF TPMPolicy OPTIONAL,
//!     secret      [2] EXPLICIT OCTET STRING OPTIONAL,
//!     authPolicy  [3] EXPLICIT SEQUENCE OF TPMAuthPolicy OPTIONAL,
//!     description [4] EXPLICIT UTF8String OPTIONAL,
//!     rsaParent   [5] EXPLICIT BOOLEAN OPTIONAL,
//!     parent      INTEGER,                      -- a handle
//!     pubkey      OCTET STRING,                 -- TPM2B_PUBLIC
//!     privkey     OCTET STRING }                -- TPM2B_PRIVATE
//! ```

use der::asn1::{ObjectIdentifier, OctetString, Utf8StringRef};
use der::{Any, Decode, Sequence};

/// The PEM label of a TPM key file.
pub const PEM_LABEL: &str = "TSS2 PRIVATE KEY";
/// The owner hierarchy: the parent is the primary made from the standard ECC template.
pub const OWNER: u32 = 0x4000_0001;
/// A key file larger than this is not one (TPM2B_PUBLIC and TPM2B_PRIVATE are small).
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

const LOADABLE_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.10.1.3");
const IMPORTABLE_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.10.1.4");
const SEALED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.10.1.5");

#[derive(Sequence)]
struct TpmKeyAsn1<'a> {
    key_type: ObjectIdentifier,
    // BOOLEANs are read as BER: tpm2-tools writes TRUE as 0x01, which DER forbids.
    #[asn1(context_specific = "0", optional = "true")]
    empty_auth: Option<Any>,
    #[asn1(context_specific = "1", optional = "true")]
    policy: Option<Any>,
    #[asn1(context_specific = "2", optional = "true")]
    secret: Option<OctetString>,
    #[asn1(context_specific = "3", optional = "true")]
    auth_policy: Option<Any>,
    #[asn1(context_specific = "4", optional = "true")]
    description: Option<Utf8StringRef<'a>>,
    #[asn1(context_specific = "5", optional = "true")]
    rsa_parent: Option<Any>,
    parent: u32,
    pubkey: OctetString,
    privkey: OctetString,
}

/// A loadable TPM key as its file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tss2Key {
    /// The parent: a persistent handle (0x81……) or [`OWNER`].
    pub parent: u32,
    /// The key's TPMT_PUBLIC (the TPM2B_PUBLIC's contents).
    pub public: Vec<u8>,
    /// The key's wrapped private part (the TPM2B_PRIVATE's contents).
    pub private: Vec<u8>,
    /// Whether the file says the key has no authorization value.
    pub empty_auth: Option<bool>,
}

impl Tss2Key {
    /// Whether `bytes` look like a TPM key file (and must not be read as a PEM key).
    pub fn is_key_file(bytes: &[u8]) -> bool {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]);
        text.trim_start()
            .starts_with(&format!("-----BEGIN {PEM_LABEL}-----"))
    }

    /// Reads the PEM text of a TPM key file.
    pub fn from_pem(text: &[u8]) -> Result<Self, String> {
        let (label, der) =
            der::pem::decode_vec(text).map_err(|e| format!("not a PEM file ({e})"))?;
        if label != PEM_LABEL {
            return Err(format!("a PEM {label:?} block, not {PEM_LABEL:?}"));
        }
        Self::from_der(&der)
    }

    /// Reads the DER of a TPM key.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let key = TpmKeyAsn1::from_der(der).map_err(|e| format!("malformed TPM key ({e})"))?;
        if key.key_type == IMPORTABLE_KEY {
            return Err(
                "an importable key (it must first be imported under its parent, e.g. tpm2_import)"
                    .into(),
            );
        }
        if key.key_type == SEALED_DATA {
            return Err("sealed data, not a key".into());
        }
        if key.key_type != LOADABLE_KEY {
            return Err(format!(
                "type {} is not a loadable key (2.23.133.10.1.3)",
                key.key_type
            ));
        }
        if key.policy.is_some() || key.auth_policy.is_some() || key.secret.is_some() {
            return Err(
                "the key is bound to a TPM policy, which modelseal cannot satisfy; use a key with an authorization value or none"
                    .into(),
            );
        }
        let empty_auth = key.empty_auth.as_ref().map(ber_boolean).transpose()?;
        if key.rsa_parent.as_ref().map(ber_boolean).transpose()? == Some(true) {
            return Err("the key's parent is an RSA key; modelseal loads keys under ECC or persistent parents".into());
        }
        let persistent = key.parent >> 24 == 0x81;
        if !persistent && key.parent != OWNER {
            return Err(format!(
                "parent 0x{:08x} is neither a persistent handle (0x81……) nor the owner hierarchy (0x40000001)",
                key.parent
            ));
        }
        Ok(Self {
            parent: key.parent,
            public: sized(key.pubkey.as_bytes(), "TPM2B_PUBLIC")?,
            private: sized(key.privkey.as_bytes(), "TPM2B_PRIVATE")?,
            empty_auth,
        })
    }
}

/// A BOOLEAN as BER reads it: one byte, zero for FALSE and anything else for TRUE.
fn ber_boolean(value: &Any) -> Result<bool, String> {
    use der::Tagged as _;
    match (value.tag(), value.value()) {
        (der::Tag::Boolean, [byte]) => Ok(*byte != 0),
        _ => Err("malformed TPM key (a flag is not a BOOLEAN)".into()),
    }
}

/// The contents of a TPM2B: a big-endian u16 size, then exactly that many bytes.
fn sized(bytes: &[u8], what: &str) -> Result<Vec<u8>, String> {
    match bytes {
        [high, low, rest @ ..] if usize::from(u16::from_be_bytes([*high, *low])) == rest.len() => {
            if rest.is_empty() {
                Err(format!("the {what} is empty"))
            } else {
                Ok(rest.to_vec())
            }
        }
        _ => Err(format!("the {what} size does not match its bytes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What tpm2-tools 5.4 `tpm2_encodeobject -C 0x81000001 -p` wrote for a P-384 key
    /// made by `tpm2_create -G ecc384:ecdsa-sha384 -p …` in swtpm (the private part only
    /// opens in that TPM). Its emptyAuth is TRUE (as 0x01) although the key has an
    /// authorization value: tpm2-tools 5.4 writes the flag inverted, so modelseal does
    /// not rely on it.
    const TPM2_TOOLS_P384: &str = "\
-----BEGIN TSS2 PRIVATE KEY-----
MIIBIwYGZ4EFCgEDoAMBAQECBQCBAAABBHoAeAAjAAsABAByAAAAEAAYAAwABAAQ
ADDKqW6izh/clR672tRKAvyOFmetWjEptOqsdKaxNLQXlDoKY1xM1f+aO5uRHv7u
73gAMEW9BBBUGfkL7jOyppkReQL1NGV6WC7PLrdof8fuDO3JkzjyW3a4YMbczaiK
8nLM7gSBkACOACADYVqDrL/iw2D28LXZlxtlmc6Npt7nJI2k/jWfoU2BiwAQJyPS
a1E0bXR2/WyIeBV1ykObWRxWjI928Q8r+awq925/vXiCRyfiKlTpZ9Db5o0T3Qzb
7eGyq0bmCdZAslR7GFL9zNDYQLQy7teQM8q3FvMw9qR0qshhA8FREi8Fa4d7Wp9s
0B4NlIGwqw==
-----END TSS2 PRIVATE KEY-----
";

    #[test]
    fn a_tpm2_tools_key_file_is_read() {
        let key = Tss2Key::from_pem(TPM2_TOOLS_P384.as_bytes()).unwrap();
        assert_eq!(key.parent, 0x8100_0001);
        assert_eq!(key.empty_auth, Some(true));
        assert_eq!(key.public.len(), 0x78);
        assert_eq!(key.private.len(), 0x8e);
        // TPMT_PUBLIC starts with the type (ECC, 0x0023) and the name algorithm (SHA-256).
        assert_eq!(&key.public[..4], &[0x00, 0x23, 0x00, 0x0b]);
        assert!(Tss2Key::is_key_file(TPM2_TOOLS_P384.as_bytes()));
    }

    #[test]
    fn other_kinds_and_broken_files_are_refused() {
        let der = der::pem::decode_vec(TPM2_TOOLS_P384.as_bytes()).unwrap().1;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                replace(
                    &der,
                    &[6, 6, 0x67, 0x81, 5, 10, 1, 3],
                    &[6, 6, 0x67, 0x81, 5, 10, 1, 4],
                ),
                "importable",
            ),
            (
                replace(
                    &der,
                    &[6, 6, 0x67, 0x81, 5, 10, 1, 3],
                    &[6, 6, 0x67, 0x81, 5, 10, 1, 5],
                ),
                "sealed",
            ),
            (
                replace(&der, &[2, 5, 0, 0x81, 0, 0, 1], &[2, 5, 0, 0x80, 0, 0, 1]),
                "neither a persistent",
            ),
            (
                replace(&der, &[4, 0x7a, 0, 0x78], &[4, 0x7a, 0, 0x77]),
                "TPM2B_PUBLIC size",
            ),
            (der[..der.len() - 1].to_vec(), "malformed"),
        ];
        for (bytes, expected) in cases {
            let error = Tss2Key::from_der(&bytes).unwrap_err();
            assert!(error.contains(expected), "{expected}: {error}");
        }
        let other = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(Tss2Key::from_pem(other.as_bytes()).is_err());
        assert!(!Tss2Key::is_key_file(other.as_bytes()));
    }

    fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = haystack
            .windows(from.len())
            .position(|w| w == from)
            .expect("pattern present");
        let mut out = haystack.to_vec();
        out[at..at + from.len()].copy_from_slice(to);
        out
    }
}

//! Signing keys that never leave their device. A key is named as the command line names
//! it: a PEM file path (read by the CLI), an RFC 7512 `pkcs11:` URI, a TPM 2.0 key
//! `tpm:handle=0x81……` (with the `tpm` feature) or an AWS KMS key `awskms://…` in cosign's
//! syntax (with the `kms` feature). Whatever holds the key, the result is a [`KeySigner`]
//! whose public key names the signer in the bundle, so verification does not change.

#[cfg(feature = "kms")]
pub mod awskms;
pub mod awskms_name;
pub mod pkcs11;
mod spki;
#[cfg(feature = "tpm")]
pub mod tpm;
pub mod tss2_key;
pub mod uri;

use modelseal_core::{KeyError, KeySigner};

pub use awskms_name::AwsKmsKeyName;
pub use pkcs11::Pkcs11Signer;
pub use uri::{Pkcs11Uri, UriError};

/// Whether `name` names a key in a device or key service (and must not be read as a file).
pub fn is_device_key(name: &str) -> bool {
    Pkcs11Uri::is_pkcs11(name) || is_tpm_name(name) || awskms_name::is_awskms(name)
}

/// Whether `text` starts with the ASCII `scheme`, in any case. Compared as bytes: a key
/// path may hold any character at any byte, and slicing the text there could split one.
pub(crate) fn has_scheme(text: &str, scheme: &str) -> bool {
    text.as_bytes()
        .get(..scheme.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(scheme.as_bytes()))
}

fn is_tpm_name(name: &str) -> bool {
    has_scheme(name, "tpm:")
}

/// Opens the device key `name` names.
pub fn open(name: &str) -> Result<Box<dyn KeySigner>, KeyError> {
    if is_tpm_name(name) {
        return open_tpm(name);
    }
    if awskms_name::is_awskms(name) {
        let parsed = AwsKmsKeyName::parse(name)
            .map_err(|e| KeyError::Device(format!("AWS KMS key name: {e}")))?;
        return open_awskms(&parsed);
    }
    let uri = Pkcs11Uri::parse(name).map_err(|e| KeyError::Device(format!("PKCS#11 URI: {e}")))?;
    Ok(Box::new(Pkcs11Signer::open(&uri)?))
}

/// Whether the file at `path` is a TPM key file (`TSS2 PRIVATE KEY` PEM), which names a
/// key to load into the TPM rather than a key to read.
pub fn is_tpm_key_file(path: &std::path::Path) -> bool {
    use std::io::Read as _;
    let mut start = [0u8; 256];
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let read = file.take(256).read(&mut start).unwrap_or(0);
    tss2_key::Tss2Key::is_key_file(&start[..read])
}

/// Opens a TPM key file, with the TPM named by the environment's TCTI (as `tpm:file=PATH`
/// does).
pub fn open_tpm_key_file(path: &std::path::Path) -> Result<Box<dyn KeySigner>, KeyError> {
    open_tpm_name(TpmName::File(path))
}

// Without the `tpm` feature the names are refused unread.
#[cfg_attr(not(feature = "tpm"), allow(dead_code))]
enum TpmName<'a> {
    Text(&'a str),
    File(&'a std::path::Path),
}

fn open_tpm(name: &str) -> Result<Box<dyn KeySigner>, KeyError> {
    open_tpm_name(TpmName::Text(name))
}

#[cfg(feature = "tpm")]
fn open_tpm_name(name: TpmName) -> Result<Box<dyn KeySigner>, KeyError> {
    let parsed = match name {
        TpmName::Text(text) => tpm::TpmKeyName::parse(text)
            .map_err(|e| KeyError::Device(format!("TPM key name: {e}")))?,
        TpmName::File(path) => tpm::TpmKeyName {
            key: tpm::TpmKey::File(path.to_owned()),
            tcti: None,
        },
    };
    Ok(Box::new(tpm::TpmSigner::open(&parsed)?))
}

#[cfg(not(feature = "tpm"))]
fn open_tpm_name(_: TpmName) -> Result<Box<dyn KeySigner>, KeyError> {
    Err(KeyError::Device(
        "this modelseal was built without TPM support; build it with `--features modelseal-cli/tpm` (needs libtss2-dev)".into(),
    ))
}

#[cfg(feature = "kms")]
fn open_awskms(name: &AwsKmsKeyName) -> Result<Box<dyn KeySigner>, KeyError> {
    Ok(Box::new(awskms::AwsKmsSigner::open(name)?))
}

#[cfg(not(feature = "kms"))]
fn open_awskms(_: &AwsKmsKeyName) -> Result<Box<dyn KeySigner>, KeyError> {
    Err(KeyError::Device(
        "this modelseal was built without AWS KMS support; build it with `--features modelseal-cli/kms`".into(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_with_multibyte_characters_where_a_scheme_would_end_are_files() {
        // Found by the device_names fuzzer: a key path with a character across byte 7
        // (or 4, or 9) made the scheme check slice inside it and panic.
        for name in [
            "s:s:/a\u{462}150b",
            "abcdef\u{e9}.pem",
            "ab\u{e9}\u{e9}x",
            "awskms:\u{e9}/",
        ] {
            assert!(!super::is_device_key(name), "{name}");
        }
        assert!(super::is_device_key("PKCS11:object=k"));
        assert!(super::is_device_key("Tpm:handle=0x81000001"));
        assert!(super::is_device_key("AWSKMS:///alias/a"));
    }
}

//! Signing keys that never leave their device. A key is named as the command line names
//! it: a PEM file path (read by the CLI), or an RFC 7512 `pkcs11:` URI (here). Whatever
//! holds the key, the result is a [`KeySigner`] whose public key names the signer in the
//! bundle, so verification does not change.

pub mod pkcs11;
mod spki;
pub mod uri;

use modelseal_core::{KeyError, KeySigner};

pub use pkcs11::Pkcs11Signer;
pub use uri::{Pkcs11Uri, UriError};

/// Whether `name` names a key in a device (and must not be read as a file).
pub fn is_device_key(name: &str) -> bool {
    Pkcs11Uri::is_pkcs11(name)
}

/// Opens the device key `name` names.
pub fn open(name: &str) -> Result<Box<dyn KeySigner>, KeyError> {
    let uri = Pkcs11Uri::parse(name).map_err(|e| KeyError::Device(format!("PKCS#11 URI: {e}")))?;
    Ok(Box::new(Pkcs11Signer::open(&uri)?))
}

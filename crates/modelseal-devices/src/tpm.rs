//! A signing key in a TPM 2.0, by persistent handle, through the TSS (tpm2-tss's ESAPI via
//! `tss-esapi`). modelseal hashes; the TPM signs the digest with ECDSA and returns `r` and
//! `s`, which are DER-encoded like any file-key signature.
//!
//! Names: `tpm:handle=0x81000010` with an optional `?tcti=…` (else the TCTI comes from
//! `TPM2TOOLS_TCTI`, `TCTI` or `TEST_TCTI`, as tpm2-tools read it). A key with an
//! authorization value reads it from `MODELSEAL_TPM_AUTH`, never from the command line.

use std::str::FromStr;
use std::sync::Mutex;

use modelseal_core::{KeyAlgorithm, KeyError, KeySigner, VerifyingKey};
use sha2::Digest as _;
use tss_esapi::Context;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::{KeyHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::algorithm::PublicAlgorithm;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::structures::{
    Auth, Digest, EccPoint, HashScheme, HashcheckTicket, Private, Public, PublicBuilder,
    PublicEccParametersBuilder, Signature, SignatureScheme, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use zeroize::Zeroizing;

use crate::tss2_key::Tss2Key;

/// The environment variable a key's authorization value comes from.
pub const AUTH_ENV: &str = "MODELSEAL_TPM_AUTH";

/// Whether `name` is meant as a TPM key.
fn is_tpm(name: &str) -> bool {
    crate::has_scheme(name, "tpm:")
}

/// A parsed `tpm:` key name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmKeyName {
    /// Where the key is.
    pub key: TpmKey,
    /// The TCTI configuration, when the name gives one.
    pub tcti: Option<String>,
}

/// A key in a TPM: already there, or in a key file to be loaded under its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TpmKey {
    /// A persistent handle (0x81xxxxxx).
    Handle(u32),
    /// A `TSS2 PRIVATE KEY` file (see [`crate::tss2_key`]).
    File(std::path::PathBuf),
}

impl TpmKeyName {
    /// Parses `tpm:handle=0x81000010[?tcti=…]` or `tpm:file=PATH[?tcti=…]`; unknown or
    /// repeated attributes, and both or neither of `handle` and `file`, are refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !is_tpm(text) {
            return Err("not a tpm: key name".into());
        }
        let (path, query) = text[4..].split_once('?').unwrap_or((&text[4..], ""));
        let mut handle = None;
        let mut file = None;
        let mut tcti = None;
        for (attribute, in_query) in path
            .split(';')
            .map(|a| (a, false))
            .chain(query.split('&').map(|a| (a, true)))
            .filter(|(a, _)| !a.is_empty())
        {
            let (name, value) = attribute.split_once('=').ok_or_else(|| {
                format!("attribute {attribute:?} has no value (write NAME=VALUE)")
            })?;
            let slot = match (name, in_query) {
                ("handle", false) => &mut handle,
                ("file", false) => &mut file,
                ("tcti", true) => &mut tcti,
                _ => {
                    return Err(format!(
                        "attribute {name:?} is not one modelseal reads; known: handle or file, and tcti in the query"
                    ));
                }
            };
            if slot.replace(value.to_owned()).is_some() {
                return Err(format!("attribute {name:?} is given twice"));
            }
        }
        let key = match (handle, file) {
            (Some(handle), None) => TpmKey::Handle(persistent_handle(&handle)?),
            (None, Some(file)) if !file.is_empty() => TpmKey::File(file.into()),
            (None, Some(_)) => return Err("file= names no file".into()),
            (None, None) => {
                return Err(
                    "the name gives no key; write tpm:handle=0x81000001 or tpm:file=KEY.pem".into(),
                );
            }
            (Some(_), Some(_)) => return Err("give handle= or file=, not both".into()),
        };
        Ok(Self { key, tcti })
    }
}

fn persistent_handle(handle: &str) -> Result<u32, String> {
    let hex = handle
        .strip_prefix("0x")
        .or_else(|| handle.strip_prefix("0X"))
        .ok_or_else(|| format!("handle {handle:?} is not hexadecimal (0x81……)"))?;
    let value = u32::from_str_radix(hex, 16)
        .map_err(|_| format!("handle {handle:?} is not hexadecimal (0x81……)"))?;
    if value >> 24 != 0x81 {
        return Err(format!(
            "handle {handle} is not a persistent handle (0x81000000 to 0x81ffffff)"
        ));
    }
    Ok(value)
}

/// A persistent ECDSA key in a TPM.
pub struct TpmSigner {
    context: Mutex<Context>,
    key: KeyHandle,
    /// Loaded from a key file (flushed on drop), not persistent.
    transient: bool,
    public: VerifyingKey,
    described: String,
}

impl TpmSigner {
    /// Connects to the TPM, finds the persistent key or loads the key file under its
    /// parent, and reads the key's public part.
    pub fn open(name: &TpmKeyName) -> Result<Self, KeyError> {
        let described = match &name.key {
            TpmKey::Handle(handle) => format!("TPM key 0x{handle:08x}"),
            TpmKey::File(path) => format!("TPM key file {}", path.display()),
        };
        // A broken file is reported before the TPM is contacted.
        let file = match &name.key {
            TpmKey::File(path) => Some(read_key_file(path, &described)?),
            TpmKey::Handle(_) => None,
        };
        let fail = |what: &str, e: tss_esapi::Error| device(&described, what, e);
        let tcti = match &name.tcti {
            Some(conf) => TctiNameConf::from_str(conf).map_err(|_| {
                KeyError::Device(format!("{described}: tcti {conf:?} is not a TCTI configuration"))
            })?,
            None => TctiNameConf::from_environment_variable().map_err(|_| {
                KeyError::Device(format!(
                    "{described}: no TPM named; add ?tcti=device:/dev/tpmrm0 (or swtpm:host=…,port=…) or set TPM2TOOLS_TCTI"
                ))
            })?,
        };
        let mut context = Context::new(tcti).map_err(|_| {
            KeyError::Device(format!(
                "{described}: cannot reach the TPM (is it running, and is the TCTI right?)"
            ))
        })?;
        let (object, transient) = match (&name.key, file) {
            (TpmKey::File(_), Some(file)) => {
                (load_key_file(&mut context, &file, &described)?, true)
            }
            (TpmKey::Handle(handle), _) => {
                let persistent = PersistentTpmHandle::new(*handle)
                    .map_err(|e| fail("not a persistent handle", e))?;
                let object = context
                    .tr_from_tpm_public(TpmHandle::Persistent(persistent))
                    .map_err(|e| fail("cannot load the key", e))?;
                (object, false)
            }
            (TpmKey::File(_), None) => unreachable!("the file was read above"),
        };
        // A loaded key occupies one of the TPM's few object slots until flushed: Drop
        // flushes it, and so does a failure here.
        let public = match authorize_and_read(&mut context, object, &described) {
            Ok(public) => public,
            Err(e) => {
                if transient {
                    let _ = context.flush_context(object);
                }
                return Err(e);
            }
        };
        Ok(Self {
            context: Mutex::new(context),
            key: KeyHandle::from(object),
            transient,
            public,
            described,
        })
    }
}

/// Sets the key's authorization value from [`AUTH_ENV`] and reads its public key.
fn authorize_and_read(
    context: &mut Context,
    object: tss_esapi::handles::ObjectHandle,
    described: &str,
) -> Result<VerifyingKey, KeyError> {
    let fail = |what: &str, e: tss_esapi::Error| device(described, what, e);
    if let Ok(auth) = std::env::var(AUTH_ENV) {
        let auth = Zeroizing::new(auth);
        let value = Auth::try_from(auth.as_bytes().to_vec()).map_err(|_| {
            KeyError::Device(format!(
                "{described}: {AUTH_ENV} is too long for a TPM authorization value"
            ))
        })?;
        context
            .tr_set_auth(object, value)
            .map_err(|e| fail("cannot set the key's authorization", e))?;
    }
    let (public, _, _) = context
        .read_public(KeyHandle::from(object))
        .map_err(|e| fail("cannot read the public key", e))?;
    verifying_key(&public, described)
}

impl Drop for TpmSigner {
    fn drop(&mut self) {
        if self.transient
            && let Ok(context) = self.context.get_mut()
        {
            let _ = context.flush_context(self.key.into());
        }
    }
}

fn read_key_file(path: &std::path::Path, described: &str) -> Result<Tss2Key, KeyError> {
    use std::io::Read as _;
    let cannot = |why: String| KeyError::Device(format!("{described}: {why}"));
    let file = std::fs::File::open(path)
        .map_err(|e| cannot(format!("cannot read it ({})", reason(&e))))?;
    let mut bytes = Vec::new();
    file.take(crate::tss2_key::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| cannot(format!("cannot read it ({})", reason(&e))))?;
    if bytes.len() as u64 > crate::tss2_key::MAX_FILE_BYTES {
        return Err(cannot("too large to be a TPM key file".into()));
    }
    Tss2Key::from_pem(&bytes).map_err(|why| cannot(format!("not a usable TPM key file: {why}")))
}

fn reason(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file",
        std::io::ErrorKind::PermissionDenied => "permission denied",
        _ => "read error",
    }
}

/// Loads the key file's key under its parent: a persistent key, or the owner hierarchy's
/// primary made from tpm2-tools' default ECC template (what `tpm2_createprimary -C o -G
/// ecc` makes and `tpm2_encodeobject` records as parent 0x40000001).
fn load_key_file(
    context: &mut Context,
    file: &Tss2Key,
    described: &str,
) -> Result<tss_esapi::handles::ObjectHandle, KeyError> {
    let fail = |what: &str, e: tss_esapi::Error| device(described, what, e);
    let malformed =
        |what: &str| KeyError::Device(format!("{described}: not a usable TPM key file: {what}"));
    let public = Public::unmarshall(&file.public)
        .map_err(|_| malformed("the public part does not parse"))?;
    // The TSS reads a prefix; the whole field must be that structure and nothing more.
    if public.marshall().ok().as_deref() != Some(&file.public[..]) {
        return Err(malformed("the public part has bytes after its structure"));
    }
    let private = Private::try_from(file.private.clone())
        .map_err(|_| malformed("the private part is too large"))?;
    let (parent, made) = if file.parent == crate::tss2_key::OWNER {
        let template = owner_primary_template()
            .map_err(|e| fail("cannot describe the owner's primary key", e))?;
        let primary = context
            .execute_with_nullauth_session(|ctx| {
                ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
            })
            .map_err(|e| {
                fail(
                    "cannot make the owner hierarchy's ECC primary key (the key's parent)",
                    e,
                )
            })?;
        (primary.key_handle, true)
    } else {
        let handle = PersistentTpmHandle::new(file.parent)
            .map_err(|e| fail("the parent is not a persistent handle", e))?;
        let object = context
            .tr_from_tpm_public(TpmHandle::Persistent(handle))
            .map_err(|e| {
                fail(
                    &format!("cannot find the key's parent 0x{:08x}", file.parent),
                    e,
                )
            })?;
        (KeyHandle::from(object), false)
    };
    let loaded = context.execute_with_nullauth_session(|ctx| ctx.load(parent, private, public));
    if made {
        let _ = context.flush_context(parent.into());
    }
    let loaded = loaded.map_err(|e| {
        fail(
            "cannot load the key under its parent (was the file made in this TPM, under this parent?)",
            e,
        )
    })?;
    Ok(loaded.into())
}

/// tpm2-tools' default ECC primary: NIST P-256, AES-128-CFB, a restricted decryption
/// (storage) key with fixedtpm, fixedparent, sensitivedataorigin and userwithauth, SHA-256
/// names, no policy and an empty unique field.
fn owner_primary_template() -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

fn verifying_key(public: &Public, described: &str) -> Result<VerifyingKey, KeyError> {
    let Public::Ecc {
        parameters, unique, ..
    } = public
    else {
        return Err(KeyError::Device(format!(
            "{described} is not an ECC key; modelseal signs with ECDSA P-256 and P-384 in a TPM"
        )));
    };
    let (curve_oid, size) = match parameters.ecc_curve() {
        EccCurve::NistP256 => ("1.2.840.10045.3.1.7", 32),
        EccCurve::NistP384 => ("1.3.132.0.34", 48),
        EccCurve::NistP521 => ("1.3.132.0.35", 66),
        _ => {
            return Err(KeyError::Device(format!(
                "{described}: the key's curve is not P-256, P-384 or P-521"
            )));
        }
    };
    // The TPM gives x and y without leading zeros; the SEC1 point pads each to the size.
    let pad = |v: &[u8]| -> Option<Vec<u8>> {
        (v.len() <= size).then(|| {
            let mut out = vec![0u8; size - v.len()];
            out.extend_from_slice(v);
            out
        })
    };
    let (Some(x), Some(y)) = (pad(unique.x().value()), pad(unique.y().value())) else {
        return Err(KeyError::Device(format!(
            "{described}: the public point is malformed"
        )));
    };
    let mut point = vec![0x04];
    point.extend(x);
    point.extend(y);
    let spki = crate::spki::from_curve_point(curve_oid, &point)
        .ok_or_else(|| KeyError::Device(format!("{described}: the public point is malformed")))?;
    VerifyingKey::from_spki_der(&spki)
        .map_err(|e| KeyError::Device(format!("{described}: the public key does not parse ({e})")))
}

impl KeySigner for TpmSigner {
    fn verifying_key(&self) -> VerifyingKey {
        self.public.clone()
    }

    fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let (digest, hashing) = match self.public.algorithm() {
            KeyAlgorithm::EcdsaP256 => (
                sha2::Sha256::digest(message).to_vec(),
                HashingAlgorithm::Sha256,
            ),
            KeyAlgorithm::EcdsaP384 => (
                sha2::Sha384::digest(message).to_vec(),
                HashingAlgorithm::Sha384,
            ),
            KeyAlgorithm::EcdsaP521 => (
                sha2::Sha512::digest(message).to_vec(),
                HashingAlgorithm::Sha512,
            ),
            other => return Err(KeyError::UnsupportedAlgorithm { found: other }),
        };
        let fail = |what: &str, e: tss_esapi::Error| device(&self.described, what, e);
        let digest = Digest::try_from(digest).map_err(|e| fail("cannot sign", e))?;
        let validation = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
            tag: TPM2_ST_HASHCHECK,
            hierarchy: TPM2_RH_NULL,
            digest: Default::default(),
        })
        .map_err(|e| fail("cannot sign", e))?;
        let mut context = self
            .context
            .lock()
            .map_err(|_| KeyError::Device(format!("{}: TPM context unusable", self.described)))?;
        let key = self.key;
        let signature = context
            .execute_with_nullauth_session(|ctx| {
                ctx.sign(
                    key,
                    digest,
                    SignatureScheme::EcDsa {
                        hash_scheme: HashScheme::new(hashing),
                    },
                    validation,
                )
            })
            .map_err(|e| fail("cannot sign", e))?;
        let Signature::EcDsa(ecc) = signature else {
            return Err(KeyError::Device(format!(
                "{}: the TPM answered with a signature that is not ECDSA",
                self.described
            )));
        };
        crate::pkcs11::der_from_r_s(
            &self.public.algorithm(),
            ecc.signature_r().value(),
            ecc.signature_s().value(),
            &self.described,
        )
    }

    fn location(&self) -> &'static str {
        "tpm"
    }
}

fn device(described: &str, what: &str, error: tss_esapi::Error) -> KeyError {
    use tss_esapi::constants::response_code::Tss2ResponseCodeKind as Kind;
    let why = match &error {
        tss_esapi::Error::Tss2Error(rc) => match rc.kind() {
            Some(Kind::AuthFail) | Some(Kind::BadAuth) => {
                format!("wrong authorization value (set {AUTH_ENV})")
            }
            Some(Kind::Lockout) => "the TPM is in dictionary-attack lockout".to_owned(),
            Some(Kind::Handle) => "no key at this handle".to_owned(),
            Some(Kind::Attributes) | Some(Kind::Scheme) | Some(Kind::Key) => {
                "the key cannot sign this way (not an unrestricted ECDSA signing key)".to_owned()
            }
            _ => {
                let text = rc.to_string();
                format!("the TPM says: {}", text.lines().next().unwrap_or(&text))
            }
        },
        tss_esapi::Error::WrapperError(_) => "the TSS refused the request".to_owned(),
    };
    KeyError::Device(format!("{described}: {what}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_strictly() {
        assert_eq!(
            TpmKeyName::parse("tpm:handle=0x81000010?tcti=swtpm:host=127.0.0.1,port=2321"),
            Ok(TpmKeyName {
                key: TpmKey::Handle(0x8100_0010),
                tcti: Some("swtpm:host=127.0.0.1,port=2321".into())
            })
        );
        assert_eq!(
            TpmKeyName::parse("tpm:file=/etc/keys/release.pem"),
            Ok(TpmKeyName {
                key: TpmKey::File("/etc/keys/release.pem".into()),
                tcti: None
            })
        );
        for bad in [
            "tpm:handle=0x81000010;handle=0x81000011",
            "tpm:handle=0x40000001",
            "tpm:handle=81000010",
            "tpm:handle=0x81000010;pin=1",
            "tpm:handle=0x81000010?tcti=a&tcti=b",
            "tpm:",
            "tpm:file=",
            "tpm:file=a.pem;handle=0x81000010",
            "tpm:file=a.pem;file=b.pem",
        ] {
            assert!(TpmKeyName::parse(bad).is_err(), "{bad}");
        }
    }
}

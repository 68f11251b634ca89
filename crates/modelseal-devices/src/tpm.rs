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
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::{KeyHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::structures::{
    Auth, Digest, HashScheme, HashcheckTicket, Public, Signature, SignatureScheme,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use zeroize::Zeroizing;

/// The environment variable a key's authorization value comes from.
pub const AUTH_ENV: &str = "MODELSEAL_TPM_AUTH";

/// Whether `name` is meant as a TPM key.
fn is_tpm(name: &str) -> bool {
    name.len() >= 4 && name[..4].eq_ignore_ascii_case("tpm:")
}

/// A parsed `tpm:` key name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmKeyName {
    /// The persistent handle (0x81xxxxxx).
    pub handle: u32,
    /// The TCTI configuration, when the name gives one.
    pub tcti: Option<String>,
}

impl TpmKeyName {
    /// Parses `tpm:handle=0x81000010[?tcti=…]`; unknown or repeated attributes are refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !is_tpm(text) {
            return Err("not a tpm: key name".into());
        }
        let (path, query) = text[4..].split_once('?').unwrap_or((&text[4..], ""));
        let mut handle = None;
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
                ("tcti", true) => &mut tcti,
                _ => {
                    return Err(format!(
                        "attribute {name:?} is not one modelseal reads; known: handle, and tcti in the query"
                    ));
                }
            };
            if slot.replace(value.to_owned()).is_some() {
                return Err(format!("attribute {name:?} is given twice"));
            }
        }
        let handle = handle.ok_or("the name gives no handle; write tpm:handle=0x81000001")?;
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
        Ok(Self {
            handle: value,
            tcti,
        })
    }
}

/// A persistent ECDSA key in a TPM.
pub struct TpmSigner {
    context: Mutex<Context>,
    key: KeyHandle,
    public: VerifyingKey,
    described: String,
}

impl TpmSigner {
    /// Connects to the TPM, loads the persistent key and reads its public part.
    pub fn open(name: &TpmKeyName) -> Result<Self, KeyError> {
        let described = format!("TPM key 0x{:08x}", name.handle);
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
        let persistent = PersistentTpmHandle::new(name.handle)
            .map_err(|e| fail("not a persistent handle", e))?;
        let object = context
            .tr_from_tpm_public(TpmHandle::Persistent(persistent))
            .map_err(|e| fail("cannot load the key", e))?;
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
        let key = KeyHandle::from(object);
        let (public, _, _) = context
            .read_public(key)
            .map_err(|e| fail("cannot read the public key", e))?;
        let public = verifying_key(&public, &described)?;
        Ok(Self {
            context: Mutex::new(context),
            key,
            public,
            described,
        })
    }
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
                handle: 0x8100_0010,
                tcti: Some("swtpm:host=127.0.0.1,port=2321".into())
            })
        );
        for bad in [
            "tpm:handle=0x81000010;handle=0x81000011",
            "tpm:handle=0x40000001",
            "tpm:handle=81000010",
            "tpm:handle=0x81000010;pin=1",
            "tpm:handle=0x81000010?tcti=a&tcti=b",
            "tpm:",
        ] {
            assert!(TpmKeyName::parse(bad).is_err(), "{bad}");
        }
    }
}

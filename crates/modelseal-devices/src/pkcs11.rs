//! A private key on a PKCS#11 token. The token signs; modelseal hashes (ECDSA: the
//! curve's hash, then CKM_ECDSA over the digest; Ed25519: CKM_EDDSA over the message) and
//! turns the token's raw `r || s` into DER, so bundles look exactly like file-key bundles.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use modelseal_core::{KeyAlgorithm, KeyError, KeySigner, VerifyingKey};
use sha2::Digest as _;
use zeroize::Zeroizing;

use crate::uri::{ObjectType, Pkcs11Uri};

/// The environment variable a PIN may come from (never the command line).
pub const PIN_ENV: &str = "MODELSEAL_PKCS11_PIN";
/// The module to load when the URI names none.
pub const MODULE_ENV: &str = "MODELSEAL_PKCS11_MODULE";
/// A PIN file larger than this is not a PIN.
const MAX_PIN_BYTES: u64 = 1024;

/// A signing key on a PKCS#11 token, logged in and ready.
pub struct Pkcs11Signer {
    session: Mutex<Session>,
    key: ObjectHandle,
    public: VerifyingKey,
    /// `key "label" on PKCS#11 token "name"`, for messages.
    described: String,
}

impl Pkcs11Signer {
    /// Loads the module, finds the one token and the one private key the URI names, logs
    /// in with the PIN from `pin-source` or [`PIN_ENV`], and reads the public key.
    pub fn open(uri: &Pkcs11Uri) -> Result<Self, KeyError> {
        let token_name = token_name(uri);
        let described = format!("{} on {token_name}", uri.key_name());
        if uri.object_type == Some(ObjectType::Cert) {
            return Err(KeyError::Device(format!(
                "{described}: the URI says type=cert; a signing key is type=private (or no type)"
            )));
        }
        let pin = read_pin(uri, &token_name)?;
        let session = open_session(uri, &token_name, &described, Some(&pin))?;
        let key = find_one(
            &session,
            uri,
            vec![Attribute::Class(ObjectClass::PRIVATE_KEY)],
            &described,
            &Sought {
                one: "private key",
                many: "private keys",
                searching: "the key",
                lister: "pkcs11-tool --list-objects",
            },
        )?;
        let public = public_key(&session, key, &described)?;
        Ok(Self {
            session: Mutex::new(session),
            key,
            public,
            described,
        })
    }

    /// How messages name this key.
    pub fn describe(&self) -> &str {
        &self.described
    }
}

impl KeySigner for Pkcs11Signer {
    fn verifying_key(&self) -> VerifyingKey {
        self.public.clone()
    }

    fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let session = self
            .session
            .lock()
            .map_err(|_| KeyError::Device(format!("{}: session unusable", self.described)))?;
        let sign = |mechanism: &Mechanism, data: &[u8]| {
            session
                .sign(mechanism, self.key, data)
                .map_err(|e| device(&self.described, "cannot sign", e))
        };
        match self.public.algorithm() {
            KeyAlgorithm::Ed25519 => sign(
                &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                message,
            ),
            algorithm @ (KeyAlgorithm::EcdsaP256
            | KeyAlgorithm::EcdsaP384
            | KeyAlgorithm::EcdsaP521) => {
                let digest = match algorithm {
                    KeyAlgorithm::EcdsaP256 => sha2::Sha256::digest(message).to_vec(),
                    KeyAlgorithm::EcdsaP384 => sha2::Sha384::digest(message).to_vec(),
                    _ => sha2::Sha512::digest(message).to_vec(),
                };
                let raw = sign(&Mechanism::Ecdsa, &digest)?;
                der_signature(&algorithm, &raw, &self.described)
            }
            other => Err(KeyError::UnsupportedAlgorithm { found: other }),
        }
    }

    fn location(&self) -> &'static str {
        "pkcs11"
    }
}

/// The token's raw `r || s` as the DER signature Sigstore bundles carry.
fn der_signature(
    algorithm: &KeyAlgorithm,
    raw: &[u8],
    described: &str,
) -> Result<Vec<u8>, KeyError> {
    let (r, s) = raw.split_at(raw.len() / 2);
    der_from_r_s(algorithm, r, s, described)
}

/// ECDSA `r` and `s` (big-endian, possibly without leading zeros) as a DER signature.
pub(crate) fn der_from_r_s(
    algorithm: &KeyAlgorithm,
    r: &[u8],
    s: &[u8],
    described: &str,
) -> Result<Vec<u8>, KeyError> {
    let size = match algorithm {
        KeyAlgorithm::EcdsaP256 => 32,
        KeyAlgorithm::EcdsaP384 => 48,
        _ => 66,
    };
    let refused = || {
        KeyError::Device(format!(
            "{described}: the device returned {} bytes, not an ECDSA signature",
            r.len() + s.len()
        ))
    };
    if r.len() > size || s.len() > size || r.is_empty() || s.is_empty() {
        return Err(refused());
    }
    let mut fixed = vec![0u8; 2 * size];
    fixed[size - r.len()..size].copy_from_slice(r);
    fixed[2 * size - s.len()..].copy_from_slice(s);
    let der = match algorithm {
        KeyAlgorithm::EcdsaP256 => {
            p256::ecdsa::Signature::from_slice(&fixed).map(|s| s.to_der().as_bytes().to_vec())
        }
        KeyAlgorithm::EcdsaP384 => {
            p384::ecdsa::Signature::from_slice(&fixed).map(|s| s.to_der().as_bytes().to_vec())
        }
        _ => p521::ecdsa::Signature::from_slice(&fixed).map(|s| s.to_der().as_bytes().to_vec()),
    };
    der.map_err(|_| refused())
}

/// Reads the X.509 certificate (DER) the URI names: the one CKO_CERTIFICATE object with its
/// `object` label and/or `id`, so `--certificate` can take the key's own URI. Certificates
/// are usually public objects; the session logs in only when a PIN is at hand.
pub fn read_certificate(uri: &Pkcs11Uri) -> Result<Vec<u8>, KeyError> {
    let token_name = token_name(uri);
    let described = format!(
        "{} on {token_name}",
        uri.key_name().replacen("key", "certificate", 1)
    );
    if uri.object_type == Some(ObjectType::Private) {
        return Err(KeyError::Device(format!(
            "{described}: the URI says type=private; a certificate is type=cert (or no type)"
        )));
    }
    let pin = match (&uri.pin_source, std::env::var(PIN_ENV)) {
        (Some(path), _) => Some(read_pin_file(path, &token_name)?),
        (None, Ok(pin)) => Some(Zeroizing::new(pin)),
        (None, Err(_)) => None,
    };
    let session = open_session(uri, &token_name, &described, pin.as_ref())?;
    let fail = |what: &str, e: CkError| device(&described, what, e);
    let certificate = find_one(
        &session,
        uri,
        vec![
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
        ],
        &described,
        &Sought {
            one: "X.509 certificate",
            many: "certificates",
            searching: "the certificate",
            lister: "pkcs11-tool --list-objects --type cert",
        },
    )?;
    let value = session
        .get_attributes(certificate, &[AttributeType::Value])
        .map_err(|e| fail("cannot read the certificate", e))?;
    match value.as_slice() {
        [Attribute::Value(der)] if !der.is_empty() => Ok(der.clone()),
        _ => Err(KeyError::Device(format!(
            "{described}: the certificate object has no value"
        ))),
    }
}

/// How messages speak of the object a URI names.
struct Sought {
    one: &'static str,
    many: &'static str,
    searching: &'static str,
    lister: &'static str,
}

/// The one object matching `template` and the URI's `object` label and `id`; none, or
/// several, is an error naming how to list them.
fn find_one(
    session: &Session,
    uri: &Pkcs11Uri,
    mut template: Vec<Attribute>,
    described: &str,
    sought: &Sought,
) -> Result<ObjectHandle, KeyError> {
    if let Some(label) = &uri.object {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    let found = session.find_objects(&template).map_err(|e| {
        device(
            described,
            &format!("cannot search for {}", sought.searching),
            e,
        )
    })?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(KeyError::Device(format!(
            "{described}: no such {} (check object= or id=; `{}` lists them)",
            sought.one, sought.lister
        ))),
        more => Err(KeyError::Device(format!(
            "{described}: {} {} match; add id= or object= so the URI names one",
            more.len(),
            sought.many
        ))),
    }
}

fn token_name(uri: &Pkcs11Uri) -> String {
    uri.token
        .as_deref()
        .map(|t| format!("PKCS#11 token {t:?}"))
        .unwrap_or_else(|| "PKCS#11 token".to_owned())
}

/// Loads the module, finds the one matching token and opens a read-only session on it,
/// logged in as the user when a PIN is given.
fn open_session(
    uri: &Pkcs11Uri,
    token_name: &str,
    described: &str,
    pin: Option<&Zeroizing<String>>,
) -> Result<Session, KeyError> {
    let module = module_path(uri)?;
    let fail = |what: &str, e: CkError| device(described, what, e);
    let pkcs11 = Pkcs11::new(&module).map_err(|_| {
        KeyError::Device(format!(
            "cannot load the PKCS#11 module {} (is it installed, and a PKCS#11 library?)",
            module.display()
        ))
    })?;
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(fail("cannot initialise the module", e)),
    }
    let slot = find_slot(&pkcs11, uri, token_name)?;
    let session = pkcs11
        .open_ro_session(slot)
        .map_err(|e| fail("cannot open a session", e))?;
    if let Some(pin) = pin {
        session
            .login(UserType::User, Some(&AuthPin::new(pin.as_str().into())))
            .or_else(|e| match e {
                CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _) => Ok(()),
                e => Err(e),
            })
            .map_err(|e| fail("cannot log in", e))?;
    }
    Ok(session)
}

fn module_path(uri: &Pkcs11Uri) -> Result<PathBuf, KeyError> {
    if let Some(path) = &uri.module_path {
        return Ok(path.clone());
    }
    std::env::var_os(MODULE_ENV).map(PathBuf::from).ok_or_else(|| {
        KeyError::Device(format!(
            "the pkcs11: URI names no module; add ?module-path=/path/to/module.so or set {MODULE_ENV}"
        ))
    })
}

/// The one slot whose token matches every token attribute of the URI.
fn find_slot(pkcs11: &Pkcs11, uri: &Pkcs11Uri, token_name: &str) -> Result<Slot, KeyError> {
    let slots = pkcs11
        .get_slots_with_token()
        .map_err(|e| device(token_name, "cannot list slots", e))?;
    let mut found = Vec::new();
    for slot in slots {
        if uri.slot_id.is_some_and(|id| slot.id() != id) {
            continue;
        }
        let Ok(info) = pkcs11.get_token_info(slot) else {
            continue;
        };
        let matches = |want: &Option<String>, have: &str| {
            want.as_deref()
                .is_none_or(|w| w.trim_end() == have.trim_end())
        };
        if matches(&uri.token, info.label())
            && matches(&uri.serial, info.serial_number())
            && matches(&uri.manufacturer, info.manufacturer_id())
            && matches(&uri.model, info.model())
        {
            found.push(slot);
        }
    }
    match found.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(KeyError::Device(format!(
            "{token_name} not found (no slot holds a token with that label; `pkcs11-tool --list-token-slots` lists them)"
        ))),
        more => Err(KeyError::Device(format!(
            "{} tokens match the URI; add token=, serial= or slot-id= so it names one",
            more.len()
        ))),
    }
}

fn read_pin(uri: &Pkcs11Uri, token_name: &str) -> Result<Zeroizing<String>, KeyError> {
    if let Some(path) = &uri.pin_source {
        return read_pin_file(path, token_name);
    }
    if let Ok(pin) = std::env::var(PIN_ENV) {
        return Ok(Zeroizing::new(pin));
    }
    Err(KeyError::Device(format!(
        "{token_name} needs a PIN: set {PIN_ENV}, or add ?pin-source=file:PATH to the URI"
    )))
}

fn read_pin_file(path: &Path, token_name: &str) -> Result<Zeroizing<String>, KeyError> {
    use std::io::Read as _;
    let cannot = |why: String| {
        KeyError::Device(format!(
            "cannot read the PIN for {token_name} from {}: {why}",
            path.display()
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| cannot(io_reason(&e)))?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_PIN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| cannot(io_reason(&e)))?;
    if bytes.len() as u64 > MAX_PIN_BYTES {
        return Err(cannot("the file is too large to be a PIN".into()));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| cannot("not UTF-8 text".into()))?;
    // A trailing newline is how `echo` writes a PIN file; it is not part of the PIN.
    Ok(Zeroizing::new(
        text.strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(text)
            .to_owned(),
    ))
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => "read error".into(),
    }
}

/// The key's public half, from the public-key object with the same CKA_ID (or label),
/// as SubjectPublicKeyInfo: so the fingerprint and the bundle's hint are the device key's.
fn public_key(
    session: &Session,
    private: ObjectHandle,
    described: &str,
) -> Result<VerifyingKey, KeyError> {
    let attributes = session
        .get_attributes(private, &[AttributeType::KeyType, AttributeType::Id])
        .map_err(|e| device(described, "cannot read the key's attributes", e))?;
    let mut key_type = None;
    let mut id = None;
    for attribute in attributes {
        match attribute {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::Id(i) => id = Some(i),
            _ => {}
        }
    }
    if key_type != Some(KeyType::EC) && key_type != Some(KeyType::EC_EDWARDS) {
        return Err(KeyError::Device(format!(
            "{described} is not an EC or Ed25519 key; modelseal signs with ECDSA P-256/P-384/P-521 and Ed25519"
        )));
    }
    let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
    if let Some(id) = id.filter(|i| !i.is_empty()) {
        template.push(Attribute::Id(id));
    } else if let Ok(label) = session.get_attributes(private, &[AttributeType::Label]) {
        template.extend(label);
    }
    let publics = session
        .find_objects(&template)
        .map_err(|e| device(described, "cannot search for the public key", e))?;
    let [public] = publics.as_slice() else {
        return Err(KeyError::Device(format!(
            "{described}: the token holds {} public keys with the private key's id; modelseal needs exactly one to name the signer",
            publics.len()
        )));
    };
    let values = session
        .get_attributes(*public, &[AttributeType::EcParams, AttributeType::EcPoint])
        .map_err(|e| device(described, "cannot read the public key", e))?;
    let (mut params, mut point) = (None, None);
    for value in values {
        match value {
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    let (Some(params), Some(point)) = (params, point) else {
        return Err(KeyError::Device(format!(
            "{described}: the public key has no curve or point"
        )));
    };
    let spki = crate::spki::from_ec_attributes(&params, &point).ok_or_else(|| {
        KeyError::Device(format!(
            "{described}: the public key's curve is not P-256, P-384, P-521 or Ed25519"
        ))
    })?;
    VerifyingKey::from_spki_der(&spki)
        .map_err(|e| KeyError::Device(format!("{described}: the public key does not parse ({e})")))
}

/// A token error as a sentence naming the key and token; common return values get
/// words a user can act on, the rest the module's own code name.
fn device(described: &str, what: &str, error: CkError) -> KeyError {
    let why = match &error {
        CkError::Pkcs11(rv, _) => match rv {
            RvError::PinIncorrect => "wrong PIN".to_owned(),
            RvError::PinLocked => "the PIN is locked (too many wrong tries)".to_owned(),
            RvError::PinExpired => "the PIN has expired".to_owned(),
            RvError::PinLenRange | RvError::PinInvalid => {
                "the PIN is not valid for this token".to_owned()
            }
            RvError::TokenNotPresent | RvError::DeviceRemoved => "the token was removed".to_owned(),
            RvError::SessionClosed | RvError::SessionHandleInvalid => {
                "the session was closed (the token was removed or reset)".to_owned()
            }
            RvError::DeviceError | RvError::DeviceMemory => "the device failed".to_owned(),
            RvError::UserNotLoggedIn => "not logged in".to_owned(),
            RvError::MechanismInvalid => {
                "the token cannot sign with this key's algorithm".to_owned()
            }
            RvError::KeyFunctionNotPermitted => {
                "the key is not allowed to sign (CKA_SIGN is false)".to_owned()
            }
            other => {
                let text = other.to_string();
                let first = text
                    .split(". ")
                    .next()
                    .unwrap_or(&text)
                    .trim_end_matches('.');
                format!("the module says: {first}")
            }
        },
        CkError::LibraryLoading(_) => "the module could not be loaded".to_owned(),
        _ => "the module answered something modelseal cannot read".to_owned(),
    };
    KeyError::Device(format!("{described}: {what}: {why}"))
}

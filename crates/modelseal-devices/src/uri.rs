//! RFC 7512 `pkcs11:` URIs, as far as a signing key needs them: which token, which key,
//! which module, and where the PIN comes from. Parsing is strict: an attribute we do not
//! know, or one given twice, is an error, because a URI we read more loosely than the
//! user meant could select another key.

use std::path::PathBuf;

use percent_encoding::percent_decode_str;

/// A parsed `pkcs11:` URI naming one private key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token`: the token label.
    pub token: Option<String>,
    /// `serial`: the token serial number.
    pub serial: Option<String>,
    /// `manufacturer`: the token manufacturer.
    pub manufacturer: Option<String>,
    /// `model`: the token model.
    pub model: Option<String>,
    /// `slot-id`: the slot number.
    pub slot_id: Option<u64>,
    /// `object`: the key's label (CKA_LABEL).
    pub object: Option<String>,
    /// `id`: the key's CKA_ID bytes.
    pub id: Option<Vec<u8>>,
    /// `module-path`: the PKCS#11 module to load.
    pub module_path: Option<PathBuf>,
    /// `pin-source`: a file holding the PIN (`file:PATH` or a path).
    pub pin_source: Option<PathBuf>,
    /// `type`: which kind of object the URI names, when it says.
    pub object_type: Option<ObjectType>,
}

/// The `type` attribute values modelseal reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    /// `type=private`: a private key (what `--key` needs).
    Private,
    /// `type=cert`: an X.509 certificate (what `--certificate` can name).
    Cert,
}

/// Why a `pkcs11:` URI was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UriError {
    /// Not a `pkcs11:` URI at all.
    #[error("not a pkcs11: URI")]
    NotPkcs11,
    /// An attribute without `=`.
    #[error("attribute {0:?} has no value (write NAME=VALUE)")]
    NoValue(String),
    /// An attribute RFC 7512 defines that a signing key cannot use, or an unknown one.
    #[error(
        "attribute {0:?} is not one modelseal reads; known: token, serial, manufacturer, model, slot-id, object, id, type, module-path, pin-source"
    )]
    Unknown(String),
    /// The same attribute twice.
    #[error("attribute {0:?} is given twice")]
    Duplicate(String),
    /// A value whose percent-encoding is broken or not UTF-8 where text is needed.
    #[error("attribute {0:?} is not valid percent-encoded UTF-8")]
    Encoding(String),
    /// `slot-id` that is not a number.
    #[error("slot-id {0:?} is not a number")]
    SlotId(String),
    /// `type` other than `private` or `cert`.
    #[error("type={0} is neither private (a signing key) nor cert (its certificate)")]
    Type(String),
    /// A PIN inside the URI would land in shell history, process lists and logs.
    #[error(
        "pin-value puts the PIN on the command line; use pin-source=file:PATH or the MODELSEAL_PKCS11_PIN environment variable"
    )]
    PinValue,
    /// `pin-source` that is not a local file.
    #[error("pin-source {0:?} is not a local file (file:PATH or PATH)")]
    PinSource(String),
    /// Neither `object` nor `id`: any key on the token would do, which is never meant.
    #[error("the URI names no key; add object=LABEL or id=%XX..")]
    NoKey,
}

impl Pkcs11Uri {
    /// Whether `text` is meant as a PKCS#11 URI (and should be parsed as one, not read as
    /// a file name).
    pub fn is_pkcs11(text: &str) -> bool {
        crate::has_scheme(text, "pkcs11:")
    }

    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, UriError> {
        if !Self::is_pkcs11(text) {
            return Err(UriError::NotPkcs11);
        }
        let rest = &text[7..];
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, q),
            None => (rest, ""),
        };
        let mut uri = Pkcs11Uri::default();
        let mut seen = Vec::new();
        let pairs = path
            .split(';')
            .map(|a| (a, false))
            .chain(query.split('&').map(|a| (a, true)));
        for (attribute, in_query) in pairs {
            if attribute.is_empty() {
                continue;
            }
            let (name, value) = attribute
                .split_once('=')
                .ok_or_else(|| UriError::NoValue(attribute.to_owned()))?;
            let name = name.to_ascii_lowercase();
            if seen.contains(&name) {
                return Err(UriError::Duplicate(name));
            }
            seen.push(name.clone());
            let bytes = || percent_decode_str(value).collect::<Vec<u8>>();
            let text =
                || String::from_utf8(bytes()).map_err(|_| UriError::Encoding(name.to_owned()));
            // RFC 7512 puts key and token attributes in the path, module and PIN in the
            // query; a name in the wrong half is read as unknown.
            match (name.as_str(), in_query) {
                ("token", false) => uri.token = Some(text()?),
                ("serial", false) => uri.serial = Some(text()?),
                ("manufacturer", false) => uri.manufacturer = Some(text()?),
                ("model", false) => uri.model = Some(text()?),
                ("object", false) => uri.object = Some(text()?),
                ("id", false) => uri.id = Some(bytes()),
                ("slot-id", false) => {
                    let v = text()?;
                    uri.slot_id = Some(v.parse().map_err(|_| UriError::SlotId(v.clone()))?);
                }
                ("type", false) => {
                    uri.object_type = Some(match text()?.as_str() {
                        "private" => ObjectType::Private,
                        "cert" => ObjectType::Cert,
                        other => return Err(UriError::Type(other.to_owned())),
                    });
                }
                ("module-path", true) => uri.module_path = Some(PathBuf::from(text()?)),
                ("pin-value", true) => return Err(UriError::PinValue),
                ("pin-source", true) => {
                    let v = text()?;
                    let path = v.strip_prefix("file:").unwrap_or(&v);
                    if path.is_empty() || path.contains("://") || path.starts_with("|") {
                        return Err(UriError::PinSource(v.clone()));
                    }
                    uri.pin_source = Some(PathBuf::from(path));
                }
                _ => return Err(UriError::Unknown(name)),
            }
        }
        if uri.object.is_none() && uri.id.is_none() {
            return Err(UriError::NoKey);
        }
        Ok(uri)
    }

    /// How messages name the key: its label, or its id in hex.
    pub fn key_name(&self) -> String {
        match (&self.object, &self.id) {
            (Some(label), _) => format!("key {label:?}"),
            (None, Some(id)) => format!("key id {}", hex(id)),
            (None, None) => "key".to_owned(),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_model_signing_and_p11tool_write() {
        let uri = Pkcs11Uri::parse(
            "pkcs11:token=release%20keys;object=model-signer;id=%01%02;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
        )
        .unwrap();
        assert_eq!(uri.token.as_deref(), Some("release keys"));
        assert_eq!(uri.object.as_deref(), Some("model-signer"));
        assert_eq!(uri.id.as_deref(), Some(&[1u8, 2][..]));
        assert_eq!(
            uri.module_path.as_deref(),
            Some(std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(
            uri.pin_source.as_deref(),
            Some(std::path::Path::new("/run/pin"))
        );
        assert_eq!(uri.key_name(), "key \"model-signer\"");
        assert_eq!(uri.object_type, Some(ObjectType::Private));
        let cert = Pkcs11Uri::parse("pkcs11:object=model-signer;type=cert").unwrap();
        assert_eq!(cert.object_type, Some(ObjectType::Cert));
    }

    #[test]
    fn refuses_what_could_select_another_key_or_leak_the_pin() {
        let cases = [
            ("pkcs11:token=a;object=k?pin-value=1234", UriError::PinValue),
            (
                "pkcs11:token=a;object=k;object=j",
                UriError::Duplicate("object".into()),
            ),
            (
                "pkcs11:token=a;OBJECT=k;object=j",
                UriError::Duplicate("object".into()),
            ),
            ("pkcs11:token=a", UriError::NoKey),
            (
                "pkcs11:token=a;object=k;label=x",
                UriError::Unknown("label".into()),
            ),
            ("pkcs11:object=k?token=b", UriError::Unknown("token".into())),
            (
                "pkcs11:object=k;type=public",
                UriError::Type("public".into()),
            ),
            (
                "pkcs11:object=k;type=secret-key",
                UriError::Type("secret-key".into()),
            ),
            ("pkcs11:object", UriError::NoValue("object".into())),
            ("pkcs11:object=%ff", UriError::Encoding("object".into())),
            (
                "pkcs11:object=k?pin-source=https://x/pin",
                UriError::PinSource("https://x/pin".into()),
            ),
            ("pkcs11:slot-id=x;object=k", UriError::SlotId("x".into())),
            ("/path/key.pem", UriError::NotPkcs11),
        ];
        for (text, expected) in cases {
            assert_eq!(Pkcs11Uri::parse(text), Err(expected), "{text}");
        }
    }
}

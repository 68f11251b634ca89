//! Key files as users have them: recognised by format before they are parsed, so a key
//! in another format, a certificate, or the other half of a pair is named as what it is,
//! with the command that converts it, instead of a PEM parser's complaint.

use std::path::Path;

use anyhow::{Context, Result};

/// Which half of a key pair a command needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Wanted {
    Public,
    Private,
}

/// A key file that is not what the command reads, said in words.
#[derive(Debug)]
pub struct KeyFileError {
    pub message: String,
    pub hint: String,
}

impl std::fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for KeyFileError {}

/// Reads a key file and returns its text when it holds a PEM block of the wanted half;
/// otherwise an error naming the format found.
pub(super) fn read(path: &Path, wanted: Wanted) -> Result<zeroize::Zeroizing<String>> {
    let what = match wanted {
        Wanted::Public => "public key",
        Wanted::Private => "private key",
    };
    let bytes = zeroize::Zeroizing::new(
        modelseal_core::open::read_regular(path)
            .with_context(|| format!("cannot read {what} {}", path.display()))?,
    );
    if let Some((found, hint)) = foreign(&bytes, wanted, path) {
        return Err(KeyFileError {
            message: format!("{what} {} is {found}", path.display()),
            hint,
        }
        .into());
    }
    // `foreign` let only UTF-8 text through.
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| KeyFileError {
        message: format!("{what} {} is not text", path.display()),
        hint: "modelseal reads keys as PEM text".into(),
    })?;
    Ok(zeroize::Zeroizing::new(text))
}

/// What the file is when it is not a PEM key of the wanted half, and what to do.
fn foreign(bytes: &[u8], wanted: Wanted, path: &Path) -> Option<(&'static str, String)> {
    let shown = path.display();
    let pubin = if wanted == Wanted::Public {
        " -pubin"
    } else {
        ""
    };
    let trimmed = bytes.trim_ascii_start();
    if trimmed.is_empty() {
        return Some((
            "empty",
            "make a key pair with `modelseal keygen --out PATH`".into(),
        ));
    }
    let printable = trimmed
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    if trimmed[0] == 0x30 && !printable {
        return Some((
            "DER (binary), not PEM",
            format!("convert it: openssl pkey{pubin} -inform DER -in {shown} -out KEY.pem"),
        ));
    }
    let Ok(text) = std::str::from_utf8(trimmed) else {
        return Some((
            "not a text file (nor DER)",
            "modelseal reads keys as PEM text, as `modelseal keygen` writes them".into(),
        ));
    };
    if text.starts_with('{') {
        let jwk = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .is_some_and(|v| v.get("kty").is_some() || v.get("keys").is_some());
        return Some(if jwk {
            (
                "a JSON Web Key (JWK), not PEM",
                "export the key as PEM (SubjectPublicKeyInfo for a public key, PKCS#8 for a private one)".into(),
            )
        } else {
            (
                "JSON, not a key (a signature bundle?)",
                "pass the key as PEM; a bundle goes to --signature".into(),
            )
        });
    }
    for prefix in [
        "ssh-ed25519 ",
        "ecdsa-sha2-nistp",
        "ssh-rsa ",
        "sk-ssh-",
        "sk-ecdsa-",
    ] {
        if text.starts_with(prefix) {
            return Some((
                "an OpenSSH public key, not PEM",
                format!("convert it: ssh-keygen -e -m PKCS8 -f {shown} > KEY.pub"),
            ));
        }
    }
    // RFC 7468 lets explanatory text come before the block (GnuTLS's certtool writes some).
    let label = text
        .find("-----BEGIN ")
        .and_then(|at| text[at + "-----BEGIN ".len()..].split_once("-----"))
        .map(|(label, _)| label);
    let hint_public = format!(
        "give the public key: KEY.pub from `modelseal keygen`, or `openssl pkey -in {shown} -pubout`"
    );
    match (label, wanted) {
        (None, _) => Some((
            "not a PEM key file",
            "modelseal reads PEM keys (SubjectPublicKeyInfo or PKCS#8), as `modelseal keygen` writes them".into(),
        )),
        (Some("OPENSSH PRIVATE KEY"), Wanted::Private) => Some((
            "an OpenSSH private key, not PKCS#8",
            format!("convert a copy (in place): ssh-keygen -p -m PKCS8 -f COPY_OF_{shown}"),
        )),
        (Some("OPENSSH PRIVATE KEY"), Wanted::Public) => Some((
            "an OpenSSH private key, and a public key is needed",
            format!("convert the public half: ssh-keygen -e -m PKCS8 -f {shown}.pub > KEY.pub"),
        )),
        (Some("RSA PRIVATE KEY" | "RSA PUBLIC KEY" | "DSA PRIVATE KEY"), _) => Some((
            "an RSA or DSA key",
            "modelseal signs with ed25519 or ECDSA keys: make one with `modelseal keygen --out PATH`".into(),
        )),
        (Some("CERTIFICATE"), Wanted::Public) => Some((
            "a certificate, not a public key",
            format!("extract its key (openssl x509 -in {shown} -pubkey -noout), or pass a CA certificate with --certificate-root"),
        )),
        (Some("CERTIFICATE"), Wanted::Private) => Some((
            "a certificate, not a private key",
            "pass the private key with --key and the certificate with --certificate".into(),
        )),
        (
            Some("PRIVATE KEY" | "EC PRIVATE KEY" | "ENCRYPTED PRIVATE KEY"),
            Wanted::Public,
        ) => Some(("a private key, and verifying needs the public key", hint_public)),
        (Some("PUBLIC KEY"), Wanted::Private) => Some((
            "a public key, and signing needs the private key",
            "pass the private key (PATH, not PATH.pub, from `modelseal keygen`)".into(),
        )),
        _ => None,
    }
}

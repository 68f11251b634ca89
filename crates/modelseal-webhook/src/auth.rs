//! The registry endpoint's bearer token. Registries and CI jobs can send a fixed
//! `Authorization` header far more easily than present a client certificate, and the
//! API server never calls `/v1/admit`, so a token file (mounted from a Secret, rotated
//! by replacing the file) is what `/v1/admit` requires. Tokens are compared by their
//! SHA-256 in constant time, so neither their content nor their length leaks.

use std::path::Path;
use std::sync::RwLock;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Shortest token accepted, bytes.
pub const MIN_TOKEN_BYTES: usize = 16;

/// The token in force (its SHA-256), or none: `/v1/admit` is then off.
#[derive(Default)]
pub struct Token {
    digest: RwLock<Option<[u8; 32]>>,
}

impl Token {
    /// Reads the token file (surrounding whitespace ignored).
    pub fn read(path: &Path) -> Result<[u8; 32], String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("admit token {}: {e}", path.display()))?;
        let token = text.trim();
        if token.len() < MIN_TOKEN_BYTES {
            return Err(format!(
                "admit token {}: shorter than {MIN_TOKEN_BYTES} bytes",
                path.display()
            ));
        }
        Ok(Sha256::digest(token.as_bytes()).into())
    }

    /// Puts a token digest in force.
    pub fn set(&self, digest: Option<[u8; 32]>) {
        *self.digest.write().unwrap_or_else(|p| p.into_inner()) = digest;
    }

    /// Whether any token is configured.
    pub fn configured(&self) -> bool {
        self.digest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Whether an `Authorization` header value carries the token.
    pub fn admits(&self, header: Option<&[u8]>) -> bool {
        let Some(expected) = *self.digest.read().unwrap_or_else(|p| p.into_inner()) else {
            return false;
        };
        let Some(given) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given).into();
        given.ct_eq(&expected).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_admitted() {
        let token = Token::default();
        assert!(
            !token.admits(Some(b"Bearer anything")),
            "no token: nothing admitted"
        );
        token.set(Some(Sha256::digest(b"0123456789abcdef").into()));
        assert!(token.admits(Some(b"Bearer 0123456789abcdef")));
        for wrong in [
            &b"Bearer 0123456789abcde"[..],
            b"Bearer 0123456789abcdefg",
            b"bearer 0123456789abcdef",
            b"0123456789abcdef",
            b"Basic 0123456789abcdef",
        ] {
            assert!(
                !token.admits(Some(wrong)),
                "{}",
                String::from_utf8_lossy(wrong)
            );
        }
        assert!(!token.admits(None));
    }
}

//! The BLAKE3 digest newtype used for file hashes and Merkle roots.

use std::fmt;
use std::str::FromStr;

/// A 32-byte BLAKE3 output: a file's hash, a Merkle leaf or node, or a manifest root.
///
/// Displayed and parsed as 64 lowercase hex characters, the form `b3sum` prints.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Blake3Digest([u8; 32]);

impl Blake3Digest {
    /// Wraps raw digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first and last four hex digits, for messages (`9f2c…41ab`).
    pub fn short(&self) -> String {
        let hex = self.to_hex();
        format!("{}…{}", &hex[..4], &hex[60..])
    }
}

impl From<blake3::Hash> for Blake3Digest {
    fn from(hash: blake3::Hash) -> Self {
        Self(*hash.as_bytes())
    }
}

/// The reason a string is not a BLAKE3 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 lowercase hex characters, found {found:?}")]
pub struct ParseDigestError {
    found: String,
}

impl FromStr for Blake3Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only the canonical lowercase form is accepted, so one digest has one spelling.
        let canonical = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let mut out = [0u8; 32];
        if !canonical || hex::decode_to_slice(s, &mut out).is_err() {
            let found = s.chars().take(80).collect();
            return Err(ParseDigestError { found });
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Blake3Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Blake3Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blake3Digest({})", self.to_hex())
    }
}

impl serde::Serialize for Blake3Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Blake3Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let d = Blake3Digest::from(blake3::hash(b"abc"));
        assert_eq!(
            d.to_hex(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_eq!(d.to_hex().parse::<Blake3Digest>().unwrap(), d);
        assert_eq!(d.short(), "6437…9d85");
    }

    #[test]
    fn rejects_non_canonical_hex() {
        let upper = "6437B3AC38465133FFB63B75273A8DB548C558465D79DB03FD359C6CD5BD9D85";
        assert!(upper.parse::<Blake3Digest>().is_err());
        assert!("6437".parse::<Blake3Digest>().is_err());
        let err = "zz".repeat(32).parse::<Blake3Digest>().unwrap_err();
        assert_eq!(err.found, "zz".repeat(32));
    }
}

//! Digest types: [`Blake3Digest`] for file hashes and Merkle roots, and
//! [`ArtifactDigest`], the one type every boundary (command line, policy, store,
//! provenance, annotations) parses an artifact's identity into.

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

/// The algorithm of an [`ArtifactDigest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DigestAlgorithm {
    /// A native manifest's BLAKE3 Merkle root.
    Blake3,
    /// An OMS subject digest (SHA-256 over the resource digests), or an image digest.
    Sha256,
}

impl DigestAlgorithm {
    /// The name used in digest maps and in the text form: `blake3` or `sha256`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Blake3 => "blake3",
            Self::Sha256 => "sha256",
        }
    }

    /// The algorithm with this exact (lowercase) name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "blake3" => Some(Self::Blake3),
            "sha256" => Some(Self::Sha256),
            _ => None,
        }
    }
}

/// An artifact's identity: algorithm and 32 digest bytes. Its one text form is
/// `ALGORITHM:HEX` with 64 lowercase hex digits; nothing else parses, so two spellings
/// can never name one artifact, and comparisons are of bytes, not strings.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactDigest {
    algorithm: DigestAlgorithm,
    bytes: [u8; 32],
}

impl ArtifactDigest {
    /// A digest from its parts.
    pub const fn new(algorithm: DigestAlgorithm, bytes: [u8; 32]) -> Self {
        Self { algorithm, bytes }
    }

    /// A BLAKE3 manifest root.
    pub const fn blake3(root: &Blake3Digest) -> Self {
        Self::new(DigestAlgorithm::Blake3, *root.as_bytes())
    }

    /// From a digest-map entry of an in-toto resource descriptor (`"blake3": "HEX"`):
    /// a known algorithm name and canonical hex, or an error saying which is wrong.
    pub fn from_entry(algorithm: &str, hex: &str) -> Result<Self, ParseArtifactDigestError> {
        let algorithm = DigestAlgorithm::from_name(algorithm).ok_or_else(|| {
            ParseArtifactDigestError::Algorithm(algorithm.chars().take(40).collect())
        })?;
        Ok(Self::new(algorithm, canonical_hex(hex)?))
    }

    /// The algorithm.
    pub const fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Lowercase hex of the bytes, without the algorithm.
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    /// The digest as a BLAKE3 root, when it is one.
    pub fn as_blake3(&self) -> Option<Blake3Digest> {
        (self.algorithm == DigestAlgorithm::Blake3).then_some(Blake3Digest(self.bytes))
    }
}

/// Why a text is not an [`ArtifactDigest`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseArtifactDigestError {
    /// No `ALGORITHM:` prefix.
    #[error("expected ALGORITHM:HEX (blake3:… or sha256:…), found {0:?}")]
    Form(String),
    /// An algorithm other than `blake3` or `sha256` (names are lowercase).
    #[error("unknown digest algorithm {0:?}; expected blake3 or sha256")]
    Algorithm(String),
    /// Not 64 lowercase hex digits.
    #[error("expected 64 lowercase hex digits, found {0:?}")]
    Hex(String),
}

fn canonical_hex(hex: &str) -> Result<[u8; 32], ParseArtifactDigestError> {
    let canonical = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let mut out = [0u8; 32];
    if !canonical || hex::decode_to_slice(hex, &mut out).is_err() {
        return Err(ParseArtifactDigestError::Hex(
            hex.chars().take(80).collect(),
        ));
    }
    Ok(out)
}

impl FromStr for ArtifactDigest {
    type Err = ParseArtifactDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| ParseArtifactDigestError::Form(s.chars().take(80).collect()))?;
        Self::from_entry(algorithm, hex)
    }
}

impl fmt::Display for ArtifactDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.to_hex())
    }
}

impl fmt::Debug for ArtifactDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArtifactDigest({self})")
    }
}

impl serde::Serialize for ArtifactDigest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ArtifactDigest {
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

    #[test]
    fn artifact_digests_have_one_spelling() {
        let hex = "ab".repeat(32);
        let d: ArtifactDigest = format!("blake3:{hex}").parse().unwrap();
        assert_eq!(d.to_string(), format!("blake3:{hex}"));
        assert_eq!(d.algorithm(), DigestAlgorithm::Blake3);
        assert_eq!(d.as_blake3().unwrap().to_hex(), hex);
        let s: ArtifactDigest = format!("sha256:{hex}").parse().unwrap();
        assert_ne!(d, s, "same bytes, other algorithm: another artifact");
        assert!(s.as_blake3().is_none());
        for bad in [
            format!("BLAKE3:{hex}"),
            format!("blake3:{}", hex.to_ascii_uppercase()),
            format!("blake3:blake3:{hex}"),
            format!("blake3:{}", &hex[..62]),
            format!("blake3: {hex}"),
            format!("md5:{hex}"),
            hex.clone(),
            String::new(),
        ] {
            assert!(bad.parse::<ArtifactDigest>().is_err(), "{bad:?} parsed");
        }
        assert!(matches!(
            ArtifactDigest::from_entry("sha512", &hex),
            Err(ParseArtifactDigestError::Algorithm(_))
        ));
    }
}

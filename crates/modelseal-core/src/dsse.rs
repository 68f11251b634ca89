//! DSSE envelopes and their pre-authentication encoding (PAE).

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// A DSSE envelope: a typed payload and its signatures.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    /// The signed bytes.
    #[serde(with = "base64_bytes")]
    pub payload: Vec<u8>,
    /// What the payload is, bound into the signature.
    pub payload_type: String,
    /// One entry per signer.
    pub signatures: Vec<Signature>,
}

/// One DSSE signature.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Signature bytes over the PAE.
    #[serde(with = "base64_bytes")]
    pub sig: Vec<u8>,
    /// Unauthenticated key hint; modelseal writes `""` as OMS does. Older tools write
    /// null or leave it out; absent stays absent when re-written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
}

/// `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in
/// ASCII decimal: the bytes a DSSE signature actually covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// The pre-authentication encoding of model-signing 0.2, which its 1.x releases still
/// accept: `DSSEV1` (capital V), the in-toto type, the payload length, then the payload
/// as Python prints a `bytes` value (`b'...'`). Kept only to verify those old bundles.
pub fn pae_legacy_oms(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEV1 28 application/vnd.in-toto+json {} ", payload.len()).into_bytes();
    out.extend_from_slice(&python_bytes_repr(payload));
    out
}

/// `repr(bytes)` of CPython: single quotes unless the data holds `'` and no `"`; `\t`,
/// `\n`, `\r`, `\\` and the quote escaped; other bytes outside 0x20..0x7f as `\xhh`.
fn python_bytes_repr(data: &[u8]) -> Vec<u8> {
    let quote = if data.contains(&b'\'') && !data.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = vec![b'b', quote];
    for &byte in data {
        match byte {
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b if b == quote => out.extend_from_slice(&[b'\\', b]),
            0x20..=0x7e => out.push(byte),
            _ => out.extend_from_slice(format!("\\x{byte:02x}").as_bytes()),
        }
    }
    out.push(quote);
    out
}

/// Base64 as Sigstore bundles carry it: standard alphabet, padded on output; on input
/// DSSE allows the URL-safe alphabet too, and padding may be absent.
pub(crate) mod base64_bytes {
    use super::*;

    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

    pub(crate) fn encode(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
        STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE.decode(text))
            .ok()
    }

    pub(crate) fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        decode(&text).ok_or_else(|| serde::de::Error::custom("expected base64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // DSSE protocol.md, "Test vectors": type http://example.com/HelloWorld, body "hello world".
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn python_repr_matches_cpython() {
        // Expected values printed by CPython 3.11 `repr(bytes)`.
        assert_eq!(python_bytes_repr(b"{\n  \"a\": 1}"), br#"b'{\n  "a": 1}'"#);
        assert_eq!(python_bytes_repr(b"it's"), br#"b"it's""#);
        assert_eq!(python_bytes_repr(b"'\""), br#"b'\'"'"#);
        assert_eq!(
            python_bytes_repr(b"\t\r\\\x00\x7f\xff"),
            br#"b'\t\r\\\x00\x7f\xff'"#
        );
        assert_eq!(
            pae_legacy_oms(b"{}"),
            b"DSSEV1 28 application/vnd.in-toto+json 2 b'{}'"
        );
    }

    #[test]
    fn base64_accepts_both_alphabets_and_missing_padding() {
        assert_eq!(base64_bytes::decode("+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(base64_bytes::decode("-_8").unwrap(), [0xfb, 0xff]);
        assert!(base64_bytes::decode("*").is_none());
        assert_eq!(base64_bytes::encode(&[0xfb, 0xff]), "+/8=");
    }
}

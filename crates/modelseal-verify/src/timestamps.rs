//! Trusted signing time for key- and certificate-signed bundles: the RFC 3161
//! timestamps a bundle carries (`verificationMaterial.timestampVerificationData`),
//! verified against the timestamp authorities the caller trusts. Each must be signed by
//! one of those authorities, inside its validity window, over this bundle's signature
//! bytes. The checks are `sigstore-tsa`'s (the same pinned release as keyless
//! verification); this module picks the tokens and the authorities.

use base64::Engine as _;
use modelseal_core::Bundle;
use sigstore_verify::tsa::verify_timestamp_for_authority;
use sigstore_verify::types::{SignatureBytes, TimestampToken, TsaAuthority};

/// More timestamps than any signer asks for are refused rather than each checked.
pub const MAX_TIMESTAMPS: usize = 8;

/// Why a bundle's timestamps were refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// `timestampVerificationData` is not the Sigstore shape.
    #[error("timestamp verification data is malformed: {0}")]
    Malformed(String),
    /// More than [`MAX_TIMESTAMPS`].
    #[error("bundle carries {0} timestamps; at most {MAX_TIMESTAMPS} are checked")]
    TooMany(usize),
    /// No trusted authority vouches for this token over this signature.
    #[error(
        "RFC 3161 timestamp {index} is not from a trusted timestamp authority, or does not cover this signature (a trust root naming its authority may be missing)"
    )]
    Untrusted {
        /// Which token (0-based).
        index: usize,
        /// What the last authority tried reported.
        #[source]
        source: sigstore_verify::tsa::Error,
    },
}

/// The RFC 3161 tokens a bundle carries, DER.
pub fn tokens(bundle: &Bundle) -> Result<Vec<Vec<u8>>, TimestampError> {
    let Some(data) = &bundle.verification_material.timestamp_verification_data else {
        return Ok(Vec::new());
    };
    let malformed = |why: &str| TimestampError::Malformed(why.to_owned());
    let list = match data.get("rfc3161Timestamps") {
        None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
        Some(serde_json::Value::Array(list)) => list,
        Some(_) => return Err(malformed("rfc3161Timestamps is not a list")),
    };
    if list.len() > MAX_TIMESTAMPS {
        return Err(TimestampError::TooMany(list.len()));
    }
    list.iter()
        .map(|entry| {
            let text = entry
                .get("signedTimestamp")
                .and_then(|v| v.as_str())
                .ok_or_else(|| malformed("a timestamp has no signedTimestamp"))?;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| malformed("signedTimestamp is not base64"))
        })
        .collect()
}

/// The signing time the bundle's timestamps prove, Unix seconds: the earliest of them,
/// once every one has verified. `None` when the bundle has no timestamps, or when no
/// authority is trusted (then nothing in them can be believed, and they are not used).
pub fn signing_time(
    bundle: &Bundle,
    signature: &[u8],
    authorities: &[TsaAuthority],
) -> Result<Option<u64>, TimestampError> {
    let tokens = tokens(bundle)?;
    if tokens.is_empty() || authorities.is_empty() {
        return Ok(None);
    }
    let signature = SignatureBytes::new(signature.to_vec());
    let mut earliest: Option<u64> = None;
    for (index, der) in tokens.into_iter().enumerate() {
        let token = TimestampToken::new(der);
        let mut last = None;
        let mut time = None;
        for authority in authorities {
            match verify_timestamp_for_authority(&token, &signature, authority) {
                Ok(t) => {
                    time = Some(u64::try_from(t.as_second()).unwrap_or(0));
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(time) = time else {
            return Err(TimestampError::Untrusted {
                index,
                source: last.expect("at least one authority was tried"),
            });
        };
        earliest = Some(earliest.map_or(time, |e| e.min(time)));
    }
    Ok(earliest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundle_with(data: Option<serde_json::Value>) -> Bundle {
        let mut bundle: Bundle = serde_json::from_value(json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": "x"}},
            "dsseEnvelope": {"payload": "e30=", "payloadType": "application/vnd.in-toto+json",
                             "signatures": [{"sig": "AAAA", "keyid": ""}]}
        }))
        .unwrap();
        bundle.verification_material.timestamp_verification_data = data;
        bundle
    }

    #[test]
    fn the_list_is_read_strictly_and_bounded() {
        assert!(tokens(&bundle_with(None)).unwrap().is_empty());
        assert!(tokens(&bundle_with(Some(json!({})))).unwrap().is_empty());
        let one = json!({"signedTimestamp": "AAEC"});
        let got = tokens(&bundle_with(Some(
            json!({"rfc3161Timestamps": [one.clone()]}),
        )))
        .unwrap();
        assert_eq!(got, vec![vec![0, 1, 2]]);
        for (data, want) in [
            (json!({"rfc3161Timestamps": "x"}), "not a list"),
            (json!({"rfc3161Timestamps": [{}]}), "no signedTimestamp"),
            (
                json!({"rfc3161Timestamps": [{"signedTimestamp": "!!"}]}),
                "not base64",
            ),
        ] {
            let err = tokens(&bundle_with(Some(data))).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        }
        let nine = json!({"rfc3161Timestamps": vec![one; MAX_TIMESTAMPS + 1]});
        assert!(matches!(
            tokens(&bundle_with(Some(nine))),
            Err(TimestampError::TooMany(9))
        ));
    }

    #[test]
    fn without_a_trusted_authority_nothing_is_believed_and_junk_is_refused() {
        let junk = json!({"rfc3161Timestamps": [{"signedTimestamp": "AAEC"}]});
        let bundle = bundle_with(Some(junk));
        // No authority: the token cannot be believed, so there is no signing time.
        assert_eq!(signing_time(&bundle, b"sig", &[]).unwrap(), None);
        // With one, a token that is not a timestamp of it is a refusal.
        let authorities = crate::keyless::timestamp_authorities(None).unwrap();
        assert!(!authorities.is_empty());
        let err = signing_time(&bundle, b"sig", &authorities).unwrap_err();
        assert!(
            matches!(err, TimestampError::Untrusted { index: 0, .. }),
            "{err}"
        );
    }
}

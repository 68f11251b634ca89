//! SubjectPublicKeyInfo from a token's EC attributes (CKA_EC_PARAMS, CKA_EC_POINT).

use spki::der::asn1::{BitString, ObjectIdentifier, OctetString};
use spki::der::{Any, Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const CURVES: [ObjectIdentifier; 3] = [
    ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7"),
    ObjectIdentifier::new_unwrap("1.3.132.0.34"),
    ObjectIdentifier::new_unwrap("1.3.132.0.35"),
];
/// PKCS#11 3.0 lets Edwards curves be named by a PrintableString.
const EDWARDS25519_NAME: &[u8] = b"edwards25519";

/// The SPKI DER of the key `params` and `point` describe, or `None` for a curve modelseal
/// does not sign with. `point` is a DER OCTET STRING (as PKCS#11 says) or, as some
/// modules write it, the bare point.
pub fn from_ec_attributes(params: &[u8], point: &[u8]) -> Option<Vec<u8>> {
    let point = match OctetString::from_der(point) {
        Ok(octets) => octets.as_bytes().to_vec(),
        Err(_) => point.to_vec(),
    };
    let algorithm = match ObjectIdentifier::from_der(params) {
        Ok(oid) if oid == ED25519 => AlgorithmIdentifierOwned {
            oid: ED25519,
            parameters: None,
        },
        Ok(curve) if CURVES.contains(&curve) => AlgorithmIdentifierOwned {
            oid: EC_PUBLIC_KEY,
            parameters: Some(Any::encode_from(&curve).ok()?),
        },
        Ok(_) => return None,
        Err(_) => {
            let name = spki::der::asn1::PrintableStringRef::from_der(params).ok()?;
            if name.as_bytes() != EDWARDS25519_NAME {
                return None;
            }
            AlgorithmIdentifierOwned {
                oid: ED25519,
                parameters: None,
            }
        }
    };
    SubjectPublicKeyInfoOwned {
        algorithm,
        subject_public_key: BitString::from_bytes(&point).ok()?,
    }
    .to_der()
    .ok()
}

/// The SPKI DER of an EC key given by its curve OID (dotted) and SEC1 point.
#[cfg(feature = "tpm")]
pub fn from_curve_point(curve: &str, point: &[u8]) -> Option<Vec<u8>> {
    let curve = ObjectIdentifier::new(curve).ok()?;
    from_ec_attributes(&curve.to_der().ok()?, point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_p256_point_becomes_the_keys_spki() {
        let key = modelseal_core::SigningKey::generate(modelseal_core::KeyAlgorithm::EcdsaP256)
            .unwrap()
            .verifying_key();
        let spki = SubjectPublicKeyInfoOwned::from_der(key.spki_der()).unwrap();
        let point = spki.subject_public_key.raw_bytes();
        let params = CURVES[0].to_der().unwrap();
        let wrapped = OctetString::new(point).unwrap().to_der().unwrap();
        assert_eq!(
            from_ec_attributes(&params, &wrapped).unwrap(),
            key.spki_der()
        );
        assert_eq!(from_ec_attributes(&params, point).unwrap(), key.spki_der());
    }

    #[test]
    fn ed25519_by_oid_or_by_name() {
        let key = modelseal_core::SigningKey::generate(modelseal_core::KeyAlgorithm::Ed25519)
            .unwrap()
            .verifying_key();
        let spki = SubjectPublicKeyInfoOwned::from_der(key.spki_der()).unwrap();
        let point = OctetString::new(spki.subject_public_key.raw_bytes())
            .unwrap()
            .to_der()
            .unwrap();
        let by_oid = ED25519.to_der().unwrap();
        let by_name = spki::der::asn1::PrintableStringRef::new("edwards25519")
            .unwrap()
            .to_der()
            .unwrap();
        assert_eq!(from_ec_attributes(&by_oid, &point).unwrap(), key.spki_der());
        assert_eq!(
            from_ec_attributes(&by_name, &point).unwrap(),
            key.spki_der()
        );
        let other = ObjectIdentifier::new_unwrap("1.3.101.113")
            .to_der()
            .unwrap();
        assert_eq!(from_ec_attributes(&other, &point), None);
    }
}

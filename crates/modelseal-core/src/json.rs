//! Refusing JSON that its readers would read differently.
//!
//! serde reads object keys exactly and (into a `Value`) keeps the last of two equal keys;
//! Go's `encoding/json`, which container runtimes and registries use, matches a struct
//! field by the first key equal under case folding and lets a later one win; Python's
//! `json` keeps the last. A document with two keys one reader takes for the same field
//! and another does not (`"layers"` and `"Layers"`, or `"digest"` twice) can show each
//! reader different content. [`check_keys`] refuses such documents before anything is
//! read from them.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

/// How keys are compared for ambiguity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRule {
    /// Two keys of one object may not be equal (Python's and serde's readers).
    Exact,
    /// Two keys of one object may not be equal under ASCII case folding, and no key may be
    /// non-ASCII (Go's readers fold Unicode too: `K` U+212A matches `k`). Also, a key
    /// that equals one of `known` only under folding is refused: Go would take it for
    /// that field while serde ignores it.
    GoFolding {
        /// The field names the format defines, spelled as the format spells them.
        known: &'static [&'static str],
    },
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AmbiguousJson(String);

/// Checks every object in `bytes` (to serde_json's nesting limit) against `rule`.
pub fn check_keys(bytes: &[u8], rule: KeyRule) -> Result<(), AmbiguousJson> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.deserialize_any(Audit { rule })
        .and_then(|()| de.end())
        .map_err(|e| AmbiguousJson(e.to_string()))
}

#[derive(Clone, Copy)]
struct Audit {
    rule: KeyRule,
}

impl<'de> de::DeserializeSeed<'de> for Audit {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Audit {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let compared = match self.rule {
                KeyRule::Exact => key.clone(),
                KeyRule::GoFolding { known } => {
                    if !key.is_ascii() {
                        return Err(de::Error::custom(format!(
                            "key {key:?} is not ASCII (readers fold such keys differently)"
                        )));
                    }
                    if let Some(field) = known
                        .iter()
                        .find(|f| f.eq_ignore_ascii_case(&key) && **f != key)
                    {
                        return Err(de::Error::custom(format!(
                            "key {key:?} differs from the field {field:?} only in case \
                             (Go's reader takes it for that field, serde's ignores it)"
                        )));
                    }
                    key.to_ascii_lowercase()
                }
            };
            if !seen.insert(compared) {
                return Err(de::Error::custom(format!(
                    "key {key:?} appears twice in one object{}",
                    match self.rule {
                        KeyRule::Exact => "",
                        KeyRule::GoFolding { .. } => " (compared ignoring case)",
                    }
                )));
            }
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["layers", "digest", "mediaType"];

    #[test]
    fn exact_refuses_only_equal_keys() {
        assert!(check_keys(br#"{"a":1,"A":2,"b":{"c":[{"d":1}]}}"#, KeyRule::Exact).is_ok());
        let e = check_keys(br#"{"b":{"c":[{"d":1,"d":2}]}}"#, KeyRule::Exact).unwrap_err();
        assert!(e.to_string().contains("\"d\" appears twice"), "{e}");
    }

    #[test]
    fn go_folding_refuses_case_variants_and_non_ascii() {
        let rule = KeyRule::GoFolding { known: KNOWN };
        assert!(check_keys(br#"{"layers":[{"digest":"x","other":1}]}"#, rule).is_ok());
        for doc in [
            r#"{"layers":[],"LAYERS":[]}"#,
            r#"{"Layers":[]}"#,
            r#"{"layers":[{"Digest":"x"}]}"#,
            r#"{"x":{"mediatype":"a"}}"#,
            r#"{"a":1,"A":1}"#,
            "{\"\u{212a}ey\":1}",
        ] {
            assert!(check_keys(doc.as_bytes(), rule).is_err(), "{doc}");
        }
    }

    #[test]
    fn trailing_data_and_bad_json_are_refused() {
        assert!(check_keys(b"{} {}", KeyRule::Exact).is_err());
        assert!(check_keys(b"{\"a\":", KeyRule::Exact).is_err());
    }
}

//! The top level of a JSON document already known to be valid: its value without the whitespace around it,
//! and its members' keys decoded. Where each member is was found by the validation every aggregated body
//! passes when it arrives ([`super::valid::check`]): the merge reads members from those ranges instead of
//! scanning the document a second time (that scan was 8 % of a 3-way flatten's instructions,
//! bench/notes.md).

use std::borrow::Cow;

/// JSON's insignificant whitespace.
pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The index of the first non-whitespace byte at or after `i`.
pub(super) fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while json.get(i).copied().is_some_and(is_ws) {
        i += 1;
    }
    i
}

/// The document's value without the whitespace around it (what `serde_json::value::RawValue` holds).
pub(super) fn value(json: &[u8]) -> &[u8] {
    let start = skip_ws(json, 0);
    let mut end = json.len();
    while end > start && is_ws(json[end - 1]) {
        end -= 1;
    }
    &json[start..end]
}

/// A member's key as written (quotes included), decoded, with the text to write it again when that is
/// the key as written: a key without a backslash is its own text between the quotes, borrowed, and
/// serde_json would write it as it was (it escapes only quotes, backslashes and control characters, none of
/// which a valid key holds unescaped). A key with one is decoded by serde_json. `None`: not a JSON string.
pub(super) fn key(written: &[u8]) -> Option<(Cow<'_, str>, Option<&[u8]>)> {
    let inner = written
        .strip_prefix(b"\"")
        .and_then(|k| k.strip_suffix(b"\""));
    if let Some(Ok(text)) = inner
        .filter(|k| !k.contains(&b'\\'))
        .map(std::str::from_utf8)
    {
        return Some((Cow::Borrowed(text), Some(written)));
    }
    let text = serde_json::from_slice::<String>(written).ok()?;
    Some((Cow::Owned(text), None))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::value::RawValue;

    use super::*;
    use crate::aggregate::valid::{MemberSpan, check};

    /// The members the validation found, keys decoded; `None` when the document is not an object (or not
    /// JSON).
    fn by_scan(json: &str) -> Option<Vec<(String, String)>> {
        let members = check(json.as_bytes())??;
        Some(
            members
                .into_iter()
                .map(|MemberSpan { key, value }| {
                    (
                        serde_json::from_slice::<String>(&json.as_bytes()[key]).unwrap(),
                        json[value].to_owned(),
                    )
                })
                .collect(),
        )
    }

    /// The raw values serde_json reads for each key (exact text, last one wins like a map).
    fn raw_by_serde(json: &str) -> Option<BTreeMap<String, String>> {
        let map: BTreeMap<String, &RawValue> = serde_json::from_str(json).ok()?;
        Some(
            map.into_iter()
                .map(|(k, v)| (k, v.get().to_owned()))
                .collect(),
        )
    }

    #[test]
    fn finds_members_as_written() {
        let json = " {\"a\" : 1 ,\"b\":\"x\\\"}{[\",\n\"c\":{\"d\":[1,{\"e\":\"]\"}],\"f\":null} ,\"g\":[] ,\"h\":-1.5e3,\"\\u0041\":true}\n";
        let got: BTreeMap<String, String> = by_scan(json).unwrap().into_iter().collect();
        assert_eq!(Some(got), raw_by_serde(json));
        assert_eq!(by_scan("{}"), Some(vec![]));
        assert_eq!(by_scan(" { } "), Some(vec![]));
        for not_object in ["[1,2]", "\"s\"", "1", "null", " true ", "[{\"a\":1}]"] {
            assert_eq!(check(not_object.as_bytes()), Some(None), "{not_object}");
        }
        // Duplicate keys are all kept, in order (the merge keeps the last).
        assert_eq!(
            by_scan(r#"{"a":1,"b":{"a":3},"a":2}"#),
            Some(vec![
                ("a".into(), "1".into()),
                ("b".into(), r#"{"a":3}"#.into()),
                ("a".into(), "2".into())
            ])
        );
        assert_eq!(check(br#"{"a":1,}"#), None);
        assert_eq!(value(b" \n[1, 2] \t"), b"[1, 2]");
        assert_eq!(value(b"{}"), b"{}");
    }

    /// Arbitrary JSON documents: the scan agrees with serde_json on every object's members, and on the
    /// value of any document.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            ".*".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map(".*", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn agrees_with_serde(doc in json_value(), pretty in any::<bool>()) {
            let json = if pretty {
                serde_json::to_string_pretty(&doc).unwrap()
            } else {
                serde_json::to_string(&doc).unwrap()
            };
            // Generated objects have unique keys in serde_json's (sorted) order, so a map compares in order.
            let serde = raw_by_serde(&json).map(|m| m.into_iter().collect::<Vec<_>>());
            prop_assert_eq!(by_scan(&json), serde);
            let raw: &RawValue = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(value(json.as_bytes()), raw.get().as_bytes());
        }

        /// Any key, written by serde_json or with one character escaped as `\uXXXX`: decoded to its text,
        /// and when kept as written, written exactly as serde_json writes that text.
        #[test]
        fn keys_decode_as_serde_reads_them(text in ".*", escape in any::<prop::sample::Index>()) {
            let plain = serde_json::to_vec(&text).unwrap();
            let (decoded, spelled) = key(&plain).unwrap();
            prop_assert_eq!(&*decoded, text.as_str());
            if let Some(spelled) = spelled {
                prop_assert_eq!(spelled, &plain[..]);
            }
            prop_assert_eq!(spelled.is_some(), !plain.contains(&b'\\'));
            let chars = text.chars().count();
            if chars > 0 {
                let (at, c) = text.char_indices().nth(escape.index(chars)).unwrap();
                let escaped: String =
                    c.encode_utf16(&mut [0; 2]).iter().map(|u| format!("\\u{u:04x}")).collect();
                // The rest as serde_json writes it (it may need escapes of its own), one character escaped.
                let before = serde_json::to_string(&text[..at]).unwrap();
                let after = serde_json::to_string(&text[at + c.len_utf8()..]).unwrap();
                let written = format!("{}{escaped}{}", &before[..before.len() - 1], &after[1..]);
                let (decoded, spelled) = key(written.as_bytes()).unwrap();
                prop_assert_eq!(&*decoded, text.as_str());
                prop_assert_eq!(spelled, None);
            }
        }
    }
}

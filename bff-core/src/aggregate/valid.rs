//! Whether a part's body is one JSON text, decided in one pass that builds nothing: the check every
//! aggregated answer passes when it arrives ("only valid JSON counts as an answer").
//!
//! It accepts exactly what `serde_json::from_slice::<&RawValue>` accepts (a proptest and JSONTestSuite's
//! parsing files, in tests/data, hold it to that):
//! RFC 8259 JSON with surrounding whitespace, nesting of any depth, duplicate keys, escapes checked for
//! form only (`\u` with four hex digits, lone surrogates included), and valid UTF-8. serde_json spent ~7
//! instructions per byte on it, an eighth of a 3-way aggregation (bench/notes.md); strings, most of a
//! typical body, are scanned here eight bytes at a time, and past their first sixteen bytes with `memchr2`
//! and a check the compiler vectorises. serde_json still writes the log line's reason for a body refused
//! here.

use std::ops::Range;

use super::members::skip_ws;

/// `b` repeated in every byte of a word.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

const HIGH: u64 = splat(0x80);

/// The high bit of each byte of `w` below `n` (`n` ≤ 0x80) is set, and possibly of bytes above the first
/// such byte: the lowest set bit always marks a true one.
const fn below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(splat(n)) & !w & HIGH
}

/// As [`below`], for bytes equal to `b`.
const fn equal(w: u64, b: u8) -> u64 {
    below(w ^ splat(b), 1)
}

/// The kinds of the containers open around the scan, innermost last (a bit each: object or array), of any
/// depth without allocating for the first 64 levels.
#[derive(Default)]
struct Nesting {
    word: u64,
    in_word: u32,
    spilled: Vec<u64>,
}

impl Nesting {
    fn push(&mut self, object: bool) {
        if self.in_word == u64::BITS {
            self.spilled.push(self.word);
            (self.word, self.in_word) = (0, 0);
        }
        self.word = self.word << 1 | u64::from(object);
        self.in_word += 1;
    }

    /// The innermost container's kind (`true`: object), closed; `None` at the top level.
    fn pop(&mut self) -> Option<bool> {
        if self.in_word == 0 {
            self.word = self.spilled.pop()?;
            self.in_word = u64::BITS;
        }
        let object = self.word & 1 == 1;
        self.word >>= 1;
        self.in_word -= 1;
        Some(object)
    }

    /// Whether exactly one container is open (the document's own).
    fn is_top(&self) -> bool {
        self.in_word == 1 && self.spilled.is_empty()
    }

    fn innermost_is_object(&self) -> Option<bool> {
        if self.in_word == 0 {
            return self.spilled.last().map(|w| w & 1 == 1);
        }
        Some(self.word & 1 == 1)
    }
}

/// Where a member of a document's top-level object is: its key (quotes included) and its value, as ranges of
/// the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MemberSpan {
    /// The key, with its quotes.
    pub(super) key: Range<usize>,
    /// The value, without the whitespace around it.
    pub(super) value: Range<usize>,
}

/// Whether `json` is one JSON text.
#[cfg(test)]
pub(super) fn is_json(json: &[u8]) -> bool {
    check(json).is_some()
}

/// `None` when `json` is not one JSON text; else, when it is an object, its members in order (duplicates
/// included), found by the same pass (the merge then reads them without scanning the document again).
pub(super) fn check(json: &[u8]) -> Option<Option<Vec<MemberSpan>>> {
    let mut members = Vec::new();
    scan(json, &mut members)?;
    Some((json.get(skip_ws(json, 0)) == Some(&b'{')).then_some(members))
}

/// The scan: `None` at the first byte that cannot continue a JSON text. The members of a top-level object
/// are pushed to `members` as they end.
fn scan(json: &[u8], members: &mut Vec<MemberSpan>) -> Option<()> {
    let mut nesting = Nesting::default();
    let mut i = skip_ws(json, 0);
    // The top-level member being scanned: its key, and where its value starts.
    let mut member = (0..0, 0);
    loop {
        // A value starts at `i`.
        match *json.get(i)? {
            b'"' => i = string_end(json, i + 1)?,
            open @ (b'{' | b'[') => {
                let object = open == b'{';
                i = skip_ws(json, i + 1);
                if json.get(i) == Some(if object { &b'}' } else { &b']' }) {
                    // Empty: the container is a whole value.
                    i += 1;
                } else {
                    nesting.push(object);
                    if object {
                        let (key_end, value) = member_value(json, i)?;
                        if nesting.is_top() {
                            member = (i..key_end, value);
                        }
                        i = value;
                    }
                    continue;
                }
            }
            b't' => i = literal(json, i, b"true")?,
            b'f' => i = literal(json, i, b"false")?,
            b'n' => i = literal(json, i, b"null")?,
            b'-' | b'0'..=b'9' => i = number_end(json, i)?,
            _ => return None,
        }
        // A value ended before `i`: a comma, or the end of its containers.
        loop {
            let end = i;
            i = skip_ws(json, i);
            let Some(object) = nesting.innermost_is_object() else {
                // The top level: nothing may follow.
                return (i == json.len()).then_some(());
            };
            let top = object && nesting.is_top();
            if top && matches!(json.get(i), Some(b',' | b'}')) {
                members.push(MemberSpan {
                    key: member.0.clone(),
                    value: member.1..end,
                });
            }
            match *json.get(i)? {
                b',' if object => {
                    let key = skip_ws(json, i + 1);
                    let (key_end, value) = member_value(json, key)?;
                    if top {
                        member = (key..key_end, value);
                    }
                    i = value;
                    break;
                }
                b',' => {
                    i = skip_ws(json, i + 1);
                    break;
                }
                b'}' if object => {}
                b']' if !object => {}
                _ => return None,
            }
            nesting.pop();
            i += 1;
        }
    }
}

/// The end of the key of the object member whose key starts at `i` (its opening quote), and the start of its
/// value, past the colon.
fn member_value(json: &[u8], i: usize) -> Option<(usize, usize)> {
    if json.get(i) != Some(&b'"') {
        return None;
    }
    let key_end = string_end(json, i + 1)?;
    let i = skip_ws(json, key_end);
    (json.get(i) == Some(&b':')).then(|| (key_end, skip_ws(json, i + 1)))
}

/// The index just past `word` spelled at `i`.
fn literal(json: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    let end = i + word.len();
    (json.get(i..end)? == word).then_some(end)
}

/// The index just past the number starting at `i`: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn number_end(json: &[u8], mut i: usize) -> Option<usize> {
    let digit = |i: usize| json.get(i).is_some_and(u8::is_ascii_digit);
    if json[i] == b'-' {
        i += 1;
    }
    match *json.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => {
            while digit(i) {
                i += 1;
            }
        }
        _ => return None,
    }
    if json.get(i) == Some(&b'.') {
        i += 1;
        if !digit(i) {
            return None;
        }
        while digit(i) {
            i += 1;
        }
    }
    if matches!(json.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(json.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digit(i) {
            return None;
        }
        while digit(i) {
            i += 1;
        }
    }
    Some(i)
}

/// The index just past the string whose content starts at `i` (after its opening quote): no control
/// character, escapes of JSON's form, UTF-8.
///
/// Most strings of a body (keys, short values) end within the eight bytes after their opening quote: one
/// word tells, inline at the call (measured on the benchmark's bodies: −13 % of this module's instructions
/// in a build without the PGO profile, unchanged in the profile-guided one, which already inlined the
/// word scan; bench/notes.md). Any other string, and the last few bytes of a document, take
/// [`string_end_long`].
#[inline(always)]
fn string_end(json: &[u8], i: usize) -> Option<usize> {
    if let Some(chunk) = json.get(i..i + 8) {
        let special = special(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        // No special byte: `at` is 8, past the chunk.
        let at = (special.trailing_zeros() / 8) as usize;
        if chunk.get(at) == Some(&b'"') {
            return Some(i + at + 1);
        }
    }
    string_end_long(json, i)
}

/// As [`string_end`], for any string: a word at a time, then `memchr2` past the first sixteen bytes.
#[inline(never)]
fn string_end_long(json: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = ordinary_end(json, i);
        match *json.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => {
                i += 1;
                match *json.get(i)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 1,
                    b'u' => {
                        let hex = json.get(i + 1..i + 5)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        i += 5;
                    }
                    _ => return None,
                }
            }
            0..0x20 => return None,
            0x80.. => {
                // A run of non-ASCII bytes is whole UTF-8 characters (an ASCII byte never continues one).
                let run = json[i..]
                    .iter()
                    .position(u8::is_ascii)
                    .map_or(json.len(), |n| i + n);
                std::str::from_utf8(&json[i..run]).ok()?;
                i = run;
            }
            // A quote, backslash, control or non-ASCII byte stopped the word scan, or fewer than eight
            // bytes remain: one byte at a time.
            _ => i += 1,
        }
    }
}

/// The special bytes of `w` (a quote, backslash, control character or non-ASCII byte), as [`below`] marks
/// them: the lowest set bit marks the first.
const fn special(w: u64) -> u64 {
    equal(w, b'"') | equal(w, b'\\') | below(w, 0x20) | (w & HIGH)
}

/// Where the run of ordinary string content (printable ASCII other than a quote or backslash) starting at
/// `i` ends: at a quote, backslash, control character or non-ASCII byte, or short of one when fewer than
/// eight bytes remain (the caller then goes on one byte at a time).
///
/// Short strings (most keys and values) end within the first two words, scanned eight bytes at a time.
/// Past them the string is long: `memchr2` finds its next quote or backslash, and one pass over the bytes
/// before it, which the compiler turns into vector instructions, checks that all are printable ASCII
/// (about a third of an instruction per byte, against two and a half a word at a time). A run that is not
/// is scanned again a word at a time.
fn ordinary_end(json: &[u8], i: usize) -> usize {
    let end = word_scan(json, i, 16);
    if end < i + 16 {
        // A special byte, or the last few bytes.
        return end;
    }
    let rest = &json[end..];
    match memchr::memchr2(b'"', b'\\', rest) {
        // A signed byte below 0x20 is a control character or a non-ASCII byte.
        Some(stop)
            if !rest[..stop]
                .iter()
                .fold(false, |any, &b| any | ((b as i8) < 0x20)) =>
        {
            end + stop
        }
        _ => word_scan(json, end, usize::MAX),
    }
}

/// As [`ordinary_end`], eight bytes at a time, over at most `limit` bytes (rounded up to a word).
fn word_scan(json: &[u8], mut i: usize, limit: usize) -> usize {
    let stop = i.saturating_add(limit);
    while i < stop
        && let Some(chunk) = json.get(i..i + 8)
    {
        let special = special(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::value::RawValue;

    fn serde_accepts(json: &[u8]) -> bool {
        serde_json::from_slice::<&RawValue>(json).is_ok()
    }

    /// Strings of 0..=12 bytes, plain and with a special sequence (an escaped quote, an `\n` or `\u` escape, a
    /// control character, a tab, a non-ASCII character, invalid UTF-8) at each position, as a key, as a value
    /// and as the whole document: the one-word path of `string_end` and the long path meet at every length.
    #[test]
    fn short_strings_end_where_serde_says_at_every_length_and_stop() {
        let specials: &[&[u8]] = &[
            b"\\\"",
            b"\\n",
            b"\x01",
            b"\t",
            "é".as_bytes(),
            b"\xc3",
            b"\\u00e9",
        ];
        for len in 0..=12 {
            let plain = vec![b'k'; len];
            let mut bodies = vec![plain.clone()];
            for special in specials {
                for at in 0..=len {
                    let mut body = plain.clone();
                    body.splice(at..at, special.iter().copied());
                    bodies.push(body);
                }
            }
            for body in bodies {
                let string = [&b"\""[..], &body, b"\""].concat();
                for doc in [
                    string.clone(),
                    [&b"{"[..], &string, b":1}"].concat(),
                    [&b"{\"k\":"[..], &string, b"}"].concat(),
                    [&b"["[..], &string, b",", &string, b"]"].concat(),
                ] {
                    assert_eq!(
                        is_json(&doc),
                        serde_accepts(&doc),
                        "{}",
                        String::from_utf8_lossy(&doc)
                    );
                }
            }
        }
    }

    /// Documents at the edges of the grammar, each judged as serde_json judges it.
    #[test]
    fn agrees_with_serde_on_the_edges() {
        let cases: &[&[u8]] = &[
            b"",
            b" ",
            b"{}",
            b" {} ",
            b"[]",
            b"[ ]",
            b"{ }",
            b"[1,]",
            b"[,1]",
            b"{\"a\":1,}",
            b"{,}",
            b"{\"a\"}",
            b"{\"a\":}",
            b"{1:2}",
            b"{\"a\" : 1 , \"b\" : [true,false,null]}",
            b"[1 2]",
            b"1 2",
            b"0",
            b"-0",
            b"01",
            b"-",
            b"1.",
            b"1.5",
            b".5",
            b"1e",
            b"1e+",
            b"1E-7",
            b"1e5x",
            b"-01",
            b"2.5e+10",
            b"truex",
            b"tru",
            b"nul",
            b"nulll",
            b"\"",
            b"\"\\\"",
            b"\"\\u12\"",
            b"\"\\u12G4\"",
            b"\"\\uD800\"",
            b"\"\\uDC00\\uD800\"",
            b"\"\\x\"",
            b"\"\\/\"",
            b"\"a\tb\"",
            b"\"\x7f\"",
            "\"é\"".as_bytes(),
            b"\"\xc3\"",
            b"\"\xff\"",
            b"\"\xe2\x82\xac\"",
            b"\"\xed\xa0\x80\"",
            b"\"\xf0\x9f\x98\x80\"",
            b"\"\xc0\xaf\"",
            b"\xef\xbb\xbf{}",
            b"{}\n",
            b"{}\x00",
            b"\x0c1",
            b"[[[[]]]]",
            b"[[[]]",
            b"[]]",
            b"{\"a\":{\"b\":[{}]}}",
            b"{\"a\":{\"b\":[{]}}",
            b"\"0123456789abcdef\"",
            b"\"0123456789abcde\\\"\"",
            b"\"0123456789\x01abcdef\"",
            b"\"01234567\"x",
            b"[\"a\",\"b\"",
            b"{\"a\":1}}",
        ];
        for json in cases {
            assert_eq!(
                is_json(json),
                serde_accepts(json),
                "{:?}",
                String::from_utf8_lossy(json)
            );
        }
        // Deeper than a word of nesting bits, and than serde_json's recursion limit (which `RawValue`
        // does not apply): accepted, and refused when one bracket is missing or mismatched.
        for depth in [63, 64, 65, 129, 300] {
            let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            assert!(is_json(deep.as_bytes()) && serde_accepts(deep.as_bytes()));
            let short = &deep[..deep.len() - 1];
            assert!(!is_json(short.as_bytes()) && !serde_accepts(short.as_bytes()));
            let mixed = format!("{}{}", "[{\"k\":".repeat(depth), "}]".repeat(depth));
            let mixed = mixed.replacen("{\"k\":}", "{\"k\":0}", 1);
            assert_eq!(is_json(mixed.as_bytes()), serde_accepts(mixed.as_bytes()));
        }
    }

    /// Files of JSONTestSuite's `test_parsing` whose verdict serde_json does not share (`y_`: must be
    /// accepted, `n_`: must be refused); `is_json` follows serde_json on them too. None with serde_json
    /// 1.0.154: it accepts all 95 `y_` files and refuses all 188 `n_` ones. A new disagreement, or one
    /// listed here that serde_json comes to share, fails [`agrees_with_json_test_suite`].
    const SERDE_DIFFERS_FROM_SUITE: &[&str] = &[];

    /// Every file of JSONTestSuite's `test_parsing` (vendored in `tests/data/JSONTestSuite`, see its
    /// README.md): judged as serde_json judges it, and as the suite requires (`y_` accepted, `n_` refused;
    /// `i_`, left to implementations, only as serde_json) but for [`SERDE_DIFFERS_FROM_SUITE`].
    #[test]
    fn agrees_with_json_test_suite() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/JSONTestSuite/test_parsing");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names.len(),
            318,
            "JSONTestSuite's test_parsing has 318 files"
        );
        for name in SERDE_DIFFERS_FROM_SUITE {
            assert!(names.iter().any(|n| n == name), "{name}: not in the suite");
        }
        let (mut not_serde, mut not_suite) = (Vec::new(), Vec::new());
        for name in &names {
            let json = std::fs::read(dir.join(name)).unwrap();
            let (ours, serde) = (is_json(&json), serde_accepts(&json));
            if ours != serde {
                not_serde.push(format!("{name} (is_json {ours}, serde_json {serde})"));
            }
            let suite = match &name[..2] {
                "y_" => true,
                "n_" => false,
                "i_" => continue,
                _ => panic!("{name}: neither y_, n_ nor i_"),
            };
            let excepted = SERDE_DIFFERS_FROM_SUITE.contains(&name.as_str());
            if (ours != suite) != excepted || (serde != suite) != excepted {
                not_suite.push(format!(
                    "{name} (is_json {ours}, serde_json {serde}, excepted {excepted})"
                ));
            }
        }
        assert!(
            not_serde.is_empty() && not_suite.is_empty(),
            "judged otherwise than serde_json: {not_serde:#?}\njudged otherwise than the suite (or an \
             exception no longer needed): {not_suite:#?}"
        );
    }

    /// Any JSON value (strings of any characters, escapes, numbers of every form), compact and pretty.
    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".*", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Every document serde_json writes is accepted, and every change to it is judged as serde_json
        /// judges it: bytes replaced, inserted or removed, the document cut short.
        #[test]
        fn agrees_with_serde(
            value in any_json(),
            pretty: bool,
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>()), 0..4),
        ) {
            let mut json = if pretty {
                serde_json::to_vec_pretty(&value).unwrap()
            } else {
                serde_json::to_vec(&value).unwrap()
            };
            prop_assert!(is_json(&json));
            // Replacement bytes drawn mostly from JSON's own, where a change is most likely to stay valid.
            const NEAR: &[u8] = b"{}[],:\"\\ 0123456789-+.eEtruefalsn/bu\t\n\x01\x7f\xc3\xa9";
            for (at, how, byte) in edits {
                let byte = if byte < 200 { NEAR[byte as usize % NEAR.len()] } else { byte };
                let at = at.index(json.len() + 1);
                match how {
                    0 if at < json.len() => json[at] = byte,
                    1 => json.insert(at, byte),
                    2 if at < json.len() => { json.remove(at); }
                    _ => json.truncate(at),
                }
                prop_assert_eq!(is_json(&json), serde_accepts(&json), "{:?}", String::from_utf8_lossy(&json));
            }
        }

        /// Long strings, which the scan crosses with `memchr2` and a vectorised check past their first 16
        /// bytes: printable ASCII with up to three pieces put anywhere (a quote, escapes good and bad,
        /// controls, DEL, UTF-8 good and broken), judged as serde_json judges them.
        #[test]
        fn agrees_with_serde_on_long_strings(
            len in 0usize..200,
            pieces in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![
                &b"\""[..], b"\\\"", b"\\\\", b"\\n", b"\\u00e9", b"\\x", b"\\u12", b"\x01", b"\x1f", b"\t",
                b"\x7f", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xc3", b"\xff", b"\xed\xa0\x80",
            ])), 0..3),
        ) {
            let mut text: Vec<u8> = (0..len).map(|n| b' ' + (n % 95) as u8).filter(|&b| b != b'"' && b != b'\\').collect();
            for (at, piece) in pieces {
                let at = at.index(text.len() + 1);
                text.splice(at..at, piece.iter().copied());
            }
            for json in [[&b"\""[..], &text, b"\""].concat(), [&b"[\""[..], &text, b"\",1]"].concat()] {
                prop_assert_eq!(is_json(&json), serde_accepts(&json), "{:?}", String::from_utf8_lossy(&json));
            }
        }

        /// Arbitrary short byte strings over JSON's alphabet.
        #[test]
        fn agrees_with_serde_on_noise(json in prop::collection::vec(
            prop::sample::select(b"{}[],:\" \\0123456789-.eEtrufalsn\xc3\xa9\x01".to_vec()), 0..24)
        ) {
            prop_assert_eq!(is_json(&json), serde_accepts(&json), "{:?}", String::from_utf8_lossy(&json));
        }
    }
}

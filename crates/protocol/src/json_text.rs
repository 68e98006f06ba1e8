//! A string field carried in its JSON form, so that a server relaying it neither
//! unescapes it when reading nor escapes it again when writing.
//!
//! `customInfo` is relayed to every other participant unchanged and can be several KB;
//! decoding it into a `String` and encoding it back cost the server about a tenth of its
//! CPU per relayed signal (docs/benchmarks.md). As a [`JsonText`] it is read once (the
//! parser checks that it is a well-formed JSON string) and written by copying.

use std::fmt;

use serde::de::{Error as _, Unexpected};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A JSON string kept as written, quotes and escapes included. Two texts are equal when
/// their JSON forms are (`"A"` and `"\u0041"` are different texts).
#[derive(Clone)]
pub struct JsonText(Box<RawValue>);

impl JsonText {
    /// The JSON form of `s`.
    pub fn new(s: &str) -> JsonText {
        JsonText(serde_json::value::to_raw_value(s).expect("a string always serializes"))
    }

    /// The JSON form, quotes included.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// An upper bound of the decoded string's length in bytes: every escape is at least
    /// as long as the UTF-8 it stands for, so this is the JSON form without its quotes.
    pub fn max_len(&self) -> usize {
        self.0.get().len().saturating_sub(2)
    }

    /// The string itself, escapes decoded. A lone UTF-16 surrogate (`"\ud800"`, valid
    /// JSON but not Unicode) becomes U+FFFD.
    pub fn text(&self) -> String {
        serde_json::from_str::<String>(self.0.get()).unwrap_or_else(|_| decode_lossy(self.0.get()))
    }
}

/// Decodes a JSON string literal that serde refused for a lone surrogate.
fn decode_lossy(json: &str) -> String {
    let inner = json
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(json);
    let mut out = String::with_capacity(inner.len());
    let mut units: Vec<u16> = Vec::new();
    let mut chars = inner.chars();
    let flush = |units: &mut Vec<u16>, out: &mut String| {
        out.extend(char::decode_utf16(units.drain(..)).map(|r| r.unwrap_or('\u{fffd}')));
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            flush(&mut units, &mut out);
            out.push(c);
            continue;
        }
        let simple = match chars.next() {
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                units.push(u16::from_str_radix(&hex, 16).unwrap_or(0xfffd));
                continue;
            }
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some(other) => other,
            None => break,
        };
        flush(&mut units, &mut out);
        out.push(simple);
    }
    flush(&mut units, &mut out);
    out
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl Eq for JsonText {}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.json())
    }
}

/// The decoded string.
impl fmt::Display for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl From<&str> for JsonText {
    fn from(s: &str) -> Self {
        JsonText::new(s)
    }
}

impl From<String> for JsonText {
    fn from(s: String) -> Self {
        JsonText::new(&s)
    }
}

impl From<&String> for JsonText {
    fn from(s: &String) -> Self {
        JsonText::new(s)
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        if raw.get().starts_with('"') {
            Ok(JsonText(raw))
        } else {
            Err(D::Error::invalid_type(
                Unexpected::Other(raw.get().chars().take(20).collect::<String>().as_str()),
                &"a string",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_is_kept_as_written_and_decoded_on_demand() {
        let t: JsonText = serde_json::from_str(r#""say \"hi\" \u0041\n""#).unwrap();
        assert_eq!(t.json(), r#""say \"hi\" \u0041\n""#);
        assert_eq!(t.text(), "say \"hi\" A\n");
        assert!(t.max_len() >= t.text().len());
        assert_eq!(serde_json::to_string(&t).unwrap(), t.json());
    }

    #[test]
    fn a_value_that_is_not_a_string_is_refused() {
        for bad in ["5", "{\"a\":1}", "[\"x\"]", "null", "true"] {
            let e = serde_json::from_str::<JsonText>(bad).expect_err(bad);
            assert!(e.to_string().contains("expected a string"), "{bad}: {e}");
        }
    }

    #[test]
    fn malformed_strings_are_refused_by_the_parser() {
        // A raw control character, a bad escape, a short \u escape.
        for bad in ["\"a\u{1}b\"", r#""\q""#, r#""\u12""#] {
            assert!(serde_json::from_str::<JsonText>(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_lone_surrogate_decodes_to_the_replacement_character() {
        let t: JsonText = serde_json::from_str(r#""a\ud800b\ud83d\ude00""#).unwrap();
        assert_eq!(t.text(), "a\u{fffd}b😀");
    }

    #[test]
    fn new_round_trips_through_the_wire() {
        let t = JsonText::new("tab\tquote\"é");
        let back: JsonText = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back.text(), "tab\tquote\"é");
        assert_eq!(back, t);
    }
}

//! A light JSON tree for the decoder: strings and keys borrow from the body when they have no
//! escapes, objects are vectors in document order (duplicate keys: the last one wins, as with
//! `serde_json::Value`). Parsing into it costs about half of parsing into `serde_json::Value`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON number as serde_json reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    I64(i64),
    U64(u64),
    F64(f64),
}

impl Number {
    pub(crate) fn as_i64(self) -> Option<i64> {
        match self {
            Number::I64(i) => Some(i),
            Number::U64(u) => i64::try_from(u).ok(),
            Number::F64(_) => None,
        }
    }

    pub(crate) fn as_u64(self) -> Option<u64> {
        match self {
            Number::I64(i) => u64::try_from(i).ok(),
            Number::U64(u) => Some(u),
            Number::F64(_) => None,
        }
    }

    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Number::I64(i) => i as f64,
            Number::U64(u) => u as f64,
            Number::F64(f) => f,
        }
    }
}

/// A parsed JSON value borrowing from the body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl Json<'_> {
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    pub(crate) fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    pub(crate) fn is_array(&self) -> bool {
        matches!(self, Json::Array(_))
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(Number::I64(i)))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(Number::U64(u)))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Self::Value, E> {
        Ok(Json::Number(Number::F64(f)))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        /// Above this many keys, duplicates are found through an index instead of a scan.
        const SCAN_LIMIT: usize = 16;
        let mut entries: Vec<(Cow<'de, str>, Json<'de>)> = Vec::new();
        let mut index: Option<HashMap<Cow<'de, str>, usize>> = None;
        while let Some(Key(key)) = map.next_key()? {
            let value: Json<'de> = map.next_value()?;
            let existing = match &mut index {
                Some(index) => index.get(&key).copied(),
                None => entries.iter().position(|(k, _)| *k == key),
            };
            match existing {
                // Duplicate key: the last one wins.
                Some(at) => entries[at].1 = value,
                None => {
                    if let Some(index) = &mut index {
                        index.insert(key.clone(), entries.len());
                    }
                    entries.push((key, value));
                    if index.is_none() && entries.len() > SCAN_LIMIT {
                        index = Some(
                            entries
                                .iter()
                                .enumerate()
                                .map(|(i, (k, _))| (k.clone(), i))
                                .collect(),
                        );
                    }
                }
            }
        }
        Ok(Json::Object(entries))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }

            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(s)))
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }

            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Json<'_> {
        serde_json::from_str(s).expect("valid JSON")
    }

    #[test]
    fn parses_every_kind_and_borrows() {
        let j = parse(r#"{"a": [null, true, -1, 18446744073709551615, 1.5, "x\n", "y"], "b": {}}"#);
        let Json::Object(entries) = j else {
            panic!("object")
        };
        assert!(matches!(entries[0].0, Cow::Borrowed("a")));
        let Json::Array(items) = &entries[0].1 else {
            panic!("array")
        };
        assert_eq!(
            items[..5],
            [
                Json::Null,
                Json::Bool(true),
                Json::Number(Number::I64(-1)),
                Json::Number(Number::U64(u64::MAX)),
                Json::Number(Number::F64(1.5)),
            ]
        );
        assert!(matches!(&items[5], Json::String(Cow::Owned(s)) if s == "x\n"));
        assert!(matches!(&items[6], Json::String(Cow::Borrowed("y"))));
        assert_eq!(entries[1], (Cow::Borrowed("b"), Json::Object(Vec::new())));
    }

    #[test]
    fn duplicate_keys_last_wins() {
        assert_eq!(
            parse(r#"{"a": 1, "b": 2, "a": 3}"#),
            Json::Object(vec![
                ("a".into(), Json::Number(Number::U64(3))),
                ("b".into(), Json::Number(Number::U64(2))),
            ])
        );
        let many: Vec<String> = (0..40).map(|i| format!("\"k{}\": {i}", i % 20)).collect();
        let body = format!("{{{}}}", many.join(","));
        let Json::Object(entries) = parse(&body) else {
            panic!("object")
        };
        assert_eq!(entries.len(), 20);
        assert_eq!(entries[3], ("k3".into(), Json::Number(Number::U64(23))));
    }

    #[test]
    fn numbers_convert() {
        assert_eq!(Number::U64(5).as_i64(), Some(5));
        assert_eq!(Number::U64(u64::MAX).as_i64(), None);
        assert_eq!(Number::I64(-1).as_u64(), None);
        assert_eq!(Number::F64(1.0).as_i64(), None);
        assert_eq!(Number::I64(2).as_f64(), 2.0);
    }
}

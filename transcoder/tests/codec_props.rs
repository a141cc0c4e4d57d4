//! Property tests of the codec: arbitrary bytes, arbitrary JSON and arbitrary text never make it
//! panic, and whatever decodes re-encodes to a fixed point. CI runs these briefly
//! (`PROPTEST_CASES` raises the case count for a longer fuzzing session).

mod support;

use proptest::prelude::*;
use prost_reflect::{DynamicMessage, ReflectMessage as _};
use serde_json::Value as Json;
use support::new;
use transcoder::codec::{JsonMarshaler, Marshaler, Selector, bind_value};

/// Field names of the test messages (JSON and proto), plus a few that exist nowhere.
const NAMES: &[&str] = &[
    "fDouble",
    "fFloat",
    "fInt32",
    "fInt64",
    "fUint32",
    "fUint64",
    "fSint32",
    "fSint64",
    "fFixed32",
    "fFixed64",
    "fSfixed32",
    "fSfixed64",
    "fBool",
    "fString",
    "fBytes",
    "color",
    "optInt32",
    "optString",
    "optBool",
    "optColor",
    "inner",
    "inners",
    "tags",
    "ids",
    "colors",
    "counts",
    "innerById",
    "byFlag",
    "createdAt",
    "ttl",
    "wInt64",
    "wString",
    "wBool",
    "wDouble",
    "wBytes",
    "attributes",
    "anyValue",
    "listValue",
    "empty",
    "updateMask",
    "any",
    "history",
    "choiceText",
    "choiceNumber",
    "choiceInner",
    "id",
    "name",
    "child",
    "numbers",
    "f_int64",
    "inner_by_id",
    "next",
    "children",
    "value",
    "things",
    "title",
    "price",
    "unknown",
    "",
];

/// Text values that hit the interesting parsers.
const TEXTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "1.5",
    "1e3",
    "NaN",
    "Infinity",
    "-Infinity",
    "true",
    "false",
    "dark_red",
    "COLOR_LIGHT_BLUE",
    "2024-01-31T12:00:00Z",
    "1.5s",
    "-0.001s",
    "AQI=",
    "-_8",
    "18446744073709551616",
    "-9223372036854775809",
    "",
    " ",
    "null",
    "{}",
    "[]",
];

fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        any::<f64>().prop_map(Json::from),
        prop::sample::select(TEXTS).prop_map(Json::from),
        ".{0,12}".prop_map(Json::String),
    ];
    leaf.prop_recursive(8, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(NAMES).prop_map(str::to_owned),
                        "[a-z0-9]{0,6}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|entries| Json::Object(entries.into_iter().collect())),
        ]
    })
}

fn arb_message_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(
        &[
            "Everything",
            "ListThingsResponse",
            "Product",
            "Node",
            "Inner",
        ][..],
    )
}

/// Decodes, and when that worked checks that encode -> decode -> encode is a fixed point.
fn check_decode(name: &str, body: &[u8]) -> Result<(), TestCaseError> {
    let mut msg = new(name);
    if JsonMarshaler.decode(body, &mut msg, None).is_ok() {
        let mut first = Vec::new();
        JsonMarshaler.encode_message(&msg, None, &mut first);
        let mut again: DynamicMessage = new(name);
        let redecoded = JsonMarshaler.decode(&first, &mut again, None);
        prop_assert!(
            redecoded.is_ok(),
            "re-decoding {} failed: {:?}",
            String::from_utf8_lossy(&first),
            redecoded
        );
        let mut second = Vec::new();
        JsonMarshaler.encode_message(&again, None, &mut second);
        prop_assert_eq!(
            String::from_utf8_lossy(&first),
            String::from_utf8_lossy(&second)
        );
        // The selector never produces invalid JSON either.
        let mut selected = Vec::new();
        JsonMarshaler.encode_message(&msg, Some(&Selector::parse("title,fInt64")), &mut selected);
        prop_assert!(serde_json::from_slice::<Json>(&selected).is_ok());
    }
    Ok(())
}

/// A message of `name` (`google.protobuf.*`) with its fields 1 and 2 set to `a` and `b`.
fn wkt_pair(name: &str, a: prost_reflect::Value, b: prost_reflect::Value) -> prost_reflect::Value {
    let desc = support::pool()
        .get_message_by_name(&format!("google.protobuf.{name}"))
        .expect("well-known type");
    let mut msg = DynamicMessage::new(desc);
    msg.set_field_by_number(1, a);
    msg.set_field_by_number(2, b);
    prost_reflect::Value::Message(msg)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn arbitrary_bytes_never_panic(name in arb_message_name(), body in prop::collection::vec(any::<u8>(), 0..256)) {
        check_decode(name, &body)?;
    }

    #[test]
    fn arbitrary_json_never_panics(name in arb_message_name(), body in arb_json()) {
        check_decode(name, body.to_string().as_bytes())?;
    }

    #[test]
    fn arbitrary_json_under_known_fields_never_panics(
        name in arb_message_name(),
        entries in prop::collection::vec((prop::sample::select(NAMES), arb_json()), 0..8),
    ) {
        let body: serde_json::Map<String, Json> =
            entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        check_decode(name, Json::Object(body).to_string().as_bytes())?;
    }

    #[test]
    fn arbitrary_text_binds_never_panic(
        name in arb_message_name(),
        path in prop_oneof![
            prop::sample::select(NAMES).prop_map(str::to_owned),
            (prop::sample::select(NAMES), prop::sample::select(NAMES)).prop_map(|(a, b)| format!("{a}.{b}")),
            ".{0,16}",
        ],
        raw in prop_oneof![prop::sample::select(TEXTS).prop_map(str::to_owned), ".{0,24}"],
    ) {
        let mut msg = new(name);
        let before = msg.clone();
        match bind_value(&mut msg, &path, &raw) {
            Ok(true) => {
                let mut out = Vec::new();
                JsonMarshaler.encode_message(&msg, None, &mut out);
                prop_assert!(serde_json::from_slice::<Json>(&out).is_ok());
            }
            Ok(false) | Err(_) => prop_assert_eq!(msg, before),
        }
    }

    #[test]
    fn arbitrary_values_always_encode_to_valid_json(
        seconds in any::<i64>(),
        nanos in any::<i32>(),
        double in any::<f64>(),
        float in any::<f32>(),
        int in any::<i64>(),
        text in ".{0,16}",
        bytes in prop::collection::vec(any::<u8>(), 0..16),
        color in any::<i32>(),
    ) {
        use prost_reflect::Value;
        let mut msg = new("Everything");
        let mut set = |name: &str, value: Value| {
            let field = msg.descriptor().get_field_by_name(name).expect("field");
            msg.set_field(&field, value);
        };
        set("created_at", wkt_pair("Timestamp", Value::I64(seconds), Value::I32(nanos)));
        set("ttl", wkt_pair("Duration", Value::I64(seconds), Value::I32(nanos)));
        set("f_double", Value::F64(double));
        set("f_float", Value::F32(float));
        set("f_int64", Value::I64(int));
        set("f_string", Value::String(text));
        set("f_bytes", Value::Bytes(bytes.into()));
        set("color", Value::EnumNumber(color));
        let mut out = Vec::new();
        JsonMarshaler.encode_message(&msg, None, &mut out);
        let parsed = serde_json::from_slice::<Json>(&out);
        prop_assert!(parsed.is_ok(), "invalid JSON: {}", String::from_utf8_lossy(&out));

        // What was written reads back to the same JSON, except for enum numbers the descriptor
        // does not know (rejected in requests) and out-of-range times (written as null).
        if (0..=2).contains(&color) {
            let mut back = new("Everything");
            let decoded = JsonMarshaler.decode(&out, &mut back, None);
            prop_assert!(decoded.is_ok(), "{:?} reading {}", decoded, String::from_utf8_lossy(&out));
            let mut again = Vec::new();
            JsonMarshaler.encode_message(&back, None, &mut again);
            let mut expected = parsed.unwrap_or_default();
            if let Some(obj) = expected.as_object_mut() {
                obj.retain(|_, v| !v.is_null());
            }
            let actual = serde_json::from_slice::<Json>(&again).unwrap_or_default();
            // NaN compares unequal as a number but equal as the "NaN" string both sides hold.
            prop_assert_eq!(actual, expected);
        }
    }
}

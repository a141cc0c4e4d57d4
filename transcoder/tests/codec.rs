//! The codec against its own test proto (tests/proto/codec/v1/codec_test.proto): the JSON shape
//! of responses, the selector, body decoding with its errors, and text binding.

mod support;

use prost_reflect::{DynamicMessage, MapKey, ReflectMessage as _, Value};
use serde_json::{Value as Json, json};
use support::{desc, new, pool};
use transcoder::codec::{
    CodecError, JsonMarshaler, Marshaler, Selector, bind_value, enum_value_json_name,
    is_unset_enum_value,
};

// ---------------------------------------------------------------------------------------------
// helpers

fn encode(msg: &DynamicMessage) -> String {
    let mut out = Vec::new();
    JsonMarshaler.encode_message(msg, None, &mut out);
    String::from_utf8(out).expect("encoder writes UTF-8")
}

fn encode_json(msg: &DynamicMessage) -> Json {
    let s = encode(msg);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("encoder wrote invalid JSON {s}: {e}"))
}

fn encode_select(msg: &DynamicMessage, select: &str) -> Json {
    let mut out = Vec::new();
    JsonMarshaler.encode_message(msg, Some(&Selector::parse(select)), &mut out);
    serde_json::from_slice(&out).expect("valid JSON")
}

fn encode_field(msg: &DynamicMessage, field: &str, select: Option<&str>) -> Json {
    let fd = msg.descriptor().get_field_by_name(field).expect("field");
    let sel = select.map(Selector::parse);
    let mut out = Vec::new();
    JsonMarshaler.encode_field(msg, &fd, sel.as_ref(), &mut out);
    serde_json::from_slice(&out).expect("valid JSON")
}

fn decode(name: &str, body: &str) -> Result<DynamicMessage, CodecError> {
    let mut msg = new(name);
    JsonMarshaler.decode(body.as_bytes(), &mut msg, None)?;
    Ok(msg)
}

fn decode_ok(name: &str, body: Json) -> DynamicMessage {
    decode(name, &body.to_string()).unwrap_or_else(|e| panic!("decode {body}: {e:?}"))
}

/// The error of decoding `body` into `name`, as (field, message).
fn decode_err(name: &str, body: &str) -> (Option<String>, String) {
    match decode(name, body) {
        Ok(msg) => panic!("decoding {body} should fail, got {}", encode(&msg)),
        Err(e) => (e.field, e.message),
    }
}

fn field_err(name: &str, body: Json) -> (String, String) {
    let (field, message) = decode_err(name, &body.to_string());
    (field.expect("a field-level error"), message)
}

fn set(msg: &mut DynamicMessage, field: &str, value: Value) {
    let fd = msg
        .descriptor()
        .get_field_by_name(field)
        .unwrap_or_else(|| panic!("no field {field}"));
    msg.set_field(&fd, value);
}

fn sub(name: &str, fields: &[(&str, Value)]) -> Value {
    let mut m = new(name);
    for (f, v) in fields {
        set(&mut m, f, v.clone());
    }
    Value::Message(m)
}

fn wkt(name: &str, fields: &[(u32, Value)]) -> Value {
    let d = pool()
        .get_message_by_name(&format!("google.protobuf.{name}"))
        .expect("wkt");
    let mut m = DynamicMessage::new(d);
    for (n, v) in fields {
        m.set_field_by_number(*n, v.clone());
    }
    Value::Message(m)
}

fn thing(id: i64, title: &str) -> Value {
    sub(
        "Thing",
        &[
            ("id", Value::I64(id)),
            ("title", Value::String(title.into())),
            ("price", Value::F64(9.5)),
            ("stock", Value::I32(3)),
        ],
    )
}

/// An Everything with every field set to something other than its default.
fn everything() -> DynamicMessage {
    let mut m = new("Everything");
    set(&mut m, "f_double", Value::F64(1199.99));
    set(&mut m, "f_float", Value::F32(0.1));
    set(&mut m, "f_int32", Value::I32(-7));
    set(&mut m, "f_int64", Value::I64(i64::MAX));
    set(&mut m, "f_uint32", Value::U32(u32::MAX));
    set(&mut m, "f_uint64", Value::U64(u64::MAX));
    set(&mut m, "f_sint32", Value::I32(i32::MIN));
    set(&mut m, "f_sint64", Value::I64(i64::MIN));
    set(&mut m, "f_fixed32", Value::U32(5));
    set(&mut m, "f_fixed64", Value::U64(6));
    set(&mut m, "f_sfixed32", Value::I32(-5));
    set(&mut m, "f_sfixed64", Value::I64(-6));
    set(&mut m, "f_bool", Value::Bool(true));
    set(
        &mut m,
        "f_string",
        Value::String("quote \" slash \\ nl \n ctl \u{1} é ✓".into()),
    );
    set(
        &mut m,
        "f_bytes",
        Value::Bytes(vec![0xfb, 0xff, 0x00].into()),
    );
    set(&mut m, "color", Value::EnumNumber(1));
    set(&mut m, "opt_int32", Value::I32(0));
    set(&mut m, "opt_string", Value::String(String::new()));
    set(&mut m, "opt_bool", Value::Bool(false));
    set(&mut m, "opt_color", Value::EnumNumber(2));
    set(
        &mut m,
        "inner",
        sub(
            "Inner",
            &[
                ("id", Value::I64(1)),
                ("name", Value::String("a".into())),
                ("child", sub("Inner", &[("id", Value::I64(2))])),
                ("numbers", Value::List(vec![Value::I32(1), Value::I32(2)])),
            ],
        ),
    );
    set(
        &mut m,
        "inners",
        Value::List(vec![
            sub("Inner", &[("id", Value::I64(3))]),
            sub("Inner", &[("id", Value::I64(4))]),
        ]),
    );
    set(
        &mut m,
        "tags",
        Value::List(vec![Value::String("x".into()), Value::String("y".into())]),
    );
    set(
        &mut m,
        "ids",
        Value::List(vec![Value::I64(1), Value::I64(-2)]),
    );
    set(
        &mut m,
        "colors",
        Value::List(vec![Value::EnumNumber(2), Value::EnumNumber(1)]),
    );
    set(
        &mut m,
        "counts",
        Value::Map(
            [
                (MapKey::String("b".into()), Value::I64(2)),
                (MapKey::String("a".into()), Value::I64(1)),
            ]
            .into(),
        ),
    );
    set(
        &mut m,
        "inner_by_id",
        Value::Map([(MapKey::I32(7), sub("Inner", &[("id", Value::I64(7))]))].into()),
    );
    set(
        &mut m,
        "by_flag",
        Value::Map([(MapKey::Bool(true), Value::String("yes".into()))].into()),
    );
    set(
        &mut m,
        "created_at",
        wkt(
            "Timestamp",
            &[(1, Value::I64(1_700_000_000)), (2, Value::I32(0))],
        ),
    );
    set(
        &mut m,
        "ttl",
        wkt(
            "Duration",
            &[(1, Value::I64(1)), (2, Value::I32(500_000_000))],
        ),
    );
    set(&mut m, "w_int64", wkt("Int64Value", &[(1, Value::I64(0))]));
    set(
        &mut m,
        "w_string",
        wkt("StringValue", &[(1, Value::String("s".into()))]),
    );
    set(
        &mut m,
        "w_bool",
        wkt("BoolValue", &[(1, Value::Bool(false))]),
    );
    set(
        &mut m,
        "w_double",
        wkt("DoubleValue", &[(1, Value::F64(2.5))]),
    );
    set(
        &mut m,
        "w_bytes",
        wkt("BytesValue", &[(1, Value::Bytes(vec![1, 2].into()))]),
    );
    let attrs = decode_ok(
        "Everything",
        json!({"attributes": {"a": 1, "b": [true, null, "s", {"c": 1.5}]}}),
    );
    set(
        &mut m,
        "attributes",
        attrs.get_field_by_name("attributes").unwrap().into_owned(),
    );
    set(
        &mut m,
        "any_value",
        wkt("Value", &[(3, Value::String("v".into()))]),
    );
    set(
        &mut m,
        "list_value",
        wkt(
            "ListValue",
            &[(1, Value::List(vec![wkt("Value", &[(2, Value::F64(1.0))])]))],
        ),
    );
    set(&mut m, "empty", wkt("Empty", &[]));
    set(
        &mut m,
        "update_mask",
        wkt(
            "FieldMask",
            &[(
                1,
                Value::List(vec![
                    Value::String("f_string".into()),
                    Value::String("inner.child_name".into()),
                ]),
            )],
        ),
    );
    set(
        &mut m,
        "history",
        Value::List(vec![wkt("Timestamp", &[(1, Value::I64(0))])]),
    );
    set(&mut m, "choice_number", Value::I64(0));
    m
}

// ---------------------------------------------------------------------------------------------
// encoding: the contract's shape

#[test]
fn defaults_are_emitted_and_unset_presence_fields_omitted() {
    let out = encode(&new("Thing"));
    assert_eq!(
        out,
        r#"{"id":0,"title":"","price":0,"stock":0,"isDefault":false,"images":[],"reviews":[]}"#
    );
    let v = encode_json(&new("Everything"));
    let obj = v.as_object().unwrap();
    for present in [
        "fDouble",
        "fFloat",
        "fInt64",
        "fUint64",
        "fBool",
        "fString",
        "fBytes",
        "tags",
        "counts",
        "innerById",
        "byFlag",
        "history",
    ] {
        assert!(obj.contains_key(present), "{present} missing in {v}");
    }
    for absent in [
        "color",
        "optInt32",
        "optString",
        "optBool",
        "optColor",
        "inner",
        "createdAt",
        "ttl",
        "wInt64",
        "attributes",
        "anyValue",
        "empty",
        "updateMask",
        "any",
        "choiceText",
        "choiceNumber",
        "choiceInner",
    ] {
        assert!(!obj.contains_key(absent), "{absent} present in {v}");
    }
    assert_eq!(v["fBytes"], "");
    assert_eq!(v["counts"], json!({}));
}

#[test]
fn everything_encodes_in_the_contract_shape() {
    let v = encode_json(&everything());
    assert_eq!(v["fDouble"], json!(1199.99));
    assert_eq!(v["fInt64"], json!(i64::MAX), "int64 as a JSON number");
    assert_eq!(v["fUint64"], json!(u64::MAX));
    assert_eq!(v["fSint64"], json!(i64::MIN));
    assert_eq!(v["fUint32"], json!(u32::MAX));
    assert_eq!(v["fString"], "quote \" slash \\ nl \n ctl \u{1} é ✓");
    assert_eq!(v["fBytes"], "+/8A", "standard base64");
    assert_eq!(v["color"], "dark_red");
    assert_eq!(v["optInt32"], 0, "set optional zero is present");
    assert_eq!(v["optString"], "");
    assert_eq!(v["optBool"], false);
    assert_eq!(v["optColor"], "light_blue");
    assert_eq!(v["inner"]["child"]["id"], 2);
    assert_eq!(v["inner"]["child"]["numbers"], json!([]));
    assert_eq!(v["inners"][1]["id"], 4);
    assert_eq!(v["ids"], json!([1, -2]));
    assert_eq!(v["colors"], json!(["light_blue", "dark_red"]));
    assert_eq!(v["counts"], json!({"a": 1, "b": 2}));
    assert_eq!(v["innerById"]["7"]["id"], 7);
    assert_eq!(v["byFlag"], json!({"true": "yes"}));
    assert_eq!(v["createdAt"], "2023-11-14T22:13:20Z");
    assert_eq!(v["ttl"], "1.5s");
    assert_eq!(v["wInt64"], 0);
    assert_eq!(v["wString"], "s");
    assert_eq!(v["wBool"], false);
    assert_eq!(v["wDouble"], 2.5);
    assert_eq!(v["wBytes"], "AQI=");
    assert_eq!(
        v["attributes"],
        json!({"a": 1, "b": [true, null, "s", {"c": 1.5}]})
    );
    assert_eq!(v["anyValue"], "v");
    assert_eq!(v["listValue"], json!([1]));
    assert_eq!(v["empty"], json!({}));
    assert_eq!(v["updateMask"], "fString,inner.childName");
    assert_eq!(v["history"], json!(["1970-01-01T00:00:00Z"]));
    assert_eq!(
        v["choiceNumber"], 0,
        "a set oneof member is present even at zero"
    );
    assert!(v.get("choiceText").is_none());
}

#[test]
fn exact_text_of_numbers_and_strings() {
    let out = encode(&everything());
    assert!(out.contains(r#""fDouble":1199.99,"#), "{out}");
    assert!(
        out.contains(r#""fFloat":0.1,"#),
        "f32 in its shortest form: {out}"
    );
    assert!(out.contains(r#""fInt64":9223372036854775807,"#), "{out}");
    assert!(
        out.contains(r#""fString":"quote \" slash \\ nl \n ctl \u0001 é ✓""#),
        "{out}"
    );
    assert!(
        out.contains(r#""counts":{"a":1,"b":2}"#),
        "map keys sorted: {out}"
    );
    let mut m = new("Thing");
    set(&mut m, "price", Value::F64(100.0));
    assert!(encode(&m).contains(r#""price":100,"#));
    set(&mut m, "price", Value::F64(1e21));
    assert!(encode(&m).contains(r#""price":1e21,"#));
}

#[test]
fn non_finite_floats_are_strings() {
    let mut m = new("Everything");
    set(&mut m, "f_double", Value::F64(f64::NAN));
    set(&mut m, "f_float", Value::F32(f32::INFINITY));
    set(
        &mut m,
        "w_double",
        wkt("DoubleValue", &[(1, Value::F64(f64::NEG_INFINITY))]),
    );
    let v = encode_json(&m);
    assert_eq!(v["fDouble"], "NaN");
    assert_eq!(v["fFloat"], "Infinity");
    assert_eq!(v["wDouble"], "-Infinity");
    let back = decode("Everything", &v.to_string()).unwrap();
    assert!(
        back.get_field_by_name("f_double")
            .unwrap()
            .as_f64()
            .unwrap()
            .is_nan()
    );
    assert_eq!(
        back.get_field_by_name("f_float").unwrap().as_f32(),
        Some(f32::INFINITY)
    );
}

#[test]
fn enums_zero_is_omitted_and_unknown_numbers_are_kept() {
    let mut m = new("Everything");
    set(&mut m, "opt_color", Value::EnumNumber(0));
    set(&mut m, "color", Value::EnumNumber(99));
    set(&mut m, "colors", Value::List(vec![Value::EnumNumber(0)]));
    let v = encode_json(&m);
    assert!(
        v.get("optColor").is_none(),
        "enum 0 omitted even when set: {v}"
    );
    assert_eq!(v["color"], 99, "unknown numbers as numbers");
    assert_eq!(v["colors"], json!(["unspecified"]));
}

#[test]
fn timestamps_and_durations() {
    let mut m = new("Everything");
    set(
        &mut m,
        "created_at",
        wkt(
            "Timestamp",
            &[(1, Value::I64(1)), (2, Value::I32(120_000_000))],
        ),
    );
    set(
        &mut m,
        "ttl",
        wkt("Duration", &[(1, Value::I64(-2)), (2, Value::I32(-50_000))]),
    );
    let v = encode_json(&m);
    assert_eq!(v["createdAt"], "1970-01-01T00:00:01.120Z");
    assert_eq!(v["ttl"], "-2.00005s");
    // Out of range values have no JSON form: null, never a panic.
    set(
        &mut m,
        "created_at",
        wkt("Timestamp", &[(1, Value::I64(i64::MAX))]),
    );
    set(
        &mut m,
        "ttl",
        wkt("Duration", &[(1, Value::I64(1)), (2, Value::I32(-1))]),
    );
    let v = encode_json(&m);
    assert_eq!(v["createdAt"], Json::Null);
    assert_eq!(v["ttl"], Json::Null);
}

#[test]
fn any_is_encoded_best_effort() {
    let mut packed = new("Inner");
    set(&mut packed, "id", Value::I64(5));
    let bytes = prost::Message::encode_to_vec(&packed);
    let mut m = new("Everything");
    set(
        &mut m,
        "any",
        wkt(
            "Any",
            &[
                (
                    1,
                    Value::String("type.googleapis.com/codec.v1.Inner".into()),
                ),
                (2, Value::Bytes(bytes.clone().into())),
            ],
        ),
    );
    let v = encode_json(&m);
    assert_eq!(v["any"]["@type"], "type.googleapis.com/codec.v1.Inner");
    assert_eq!(v["any"]["id"], 5);
    set(
        &mut m,
        "any",
        wkt(
            "Any",
            &[
                (
                    1,
                    Value::String("type.googleapis.com/nowhere.Unknown".into()),
                ),
                (2, Value::Bytes(vec![1].into())),
            ],
        ),
    );
    assert_eq!(
        encode_json(&m)["any"],
        json!({"@type": "type.googleapis.com/nowhere.Unknown", "value": "AQ=="})
    );
}

#[test]
fn encoding_is_deterministic() {
    let a = encode(&everything());
    for _ in 0..5 {
        assert_eq!(encode(&everything()), a);
    }
}

// ---------------------------------------------------------------------------------------------
// the selector

#[test]
fn selector_keeps_selected_fields_and_id_on_single_objects() {
    let Value::Message(t) = thing(7, "Phone") else {
        unreachable!()
    };
    assert_eq!(
        encode_select(&t, "title"),
        json!({"id": 7, "title": "Phone"})
    );
    assert_eq!(
        encode_select(&t, " price , is_default,nope"),
        json!({"id": 7, "price": 9.5, "isDefault": false}),
        "proto names, spaces and unknown names"
    );
    assert_eq!(
        encode_select(&t, ",").as_object().unwrap().len(),
        7,
        "empty selects all"
    );
}

#[test]
fn selector_applies_to_items_of_list_responses() {
    let mut list = new("ListThingsResponse");
    set(
        &mut list,
        "things",
        Value::List(vec![thing(1, "a"), thing(2, "b")]),
    );
    set(&mut list, "total", Value::I64(2));
    assert_eq!(
        encode_select(&list, "title"),
        json!({"things": [{"id": 1, "title": "a"}, {"id": 2, "title": "b"}], "total": 2, "skip": 0, "limit": 0})
    );
}

#[test]
fn selector_on_an_object_with_line_items_is_top_level() {
    let mut order = new("Order");
    set(&mut order, "id", Value::String("o-1".into()));
    set(
        &mut order,
        "items",
        Value::List(vec![sub("Review", &[("rating", Value::I32(5))])]),
    );
    assert_eq!(
        encode_select(&order, "total"),
        json!({"id": "o-1", "total": 0})
    );
}

#[test]
fn encode_field_writes_the_bare_field() {
    let mut list = new("ListThingsResponse");
    set(&mut list, "things", Value::List(vec![thing(1, "a")]));
    set(&mut list, "total", Value::I64(1));
    assert_eq!(
        encode_field(&list, "things", Some("title")),
        json!([{"id": 1, "title": "a"}])
    );
    assert_eq!(encode_field(&list, "total", None), json!(1));
    let mut m = new("Everything");
    set(
        &mut m,
        "inner",
        sub(
            "Inner",
            &[("id", Value::I64(3)), ("name", Value::String("n".into()))],
        ),
    );
    assert_eq!(
        encode_field(&m, "inner", Some("name")),
        json!({"id": 3, "name": "n"})
    );
    assert_eq!(encode_field(&m, "inner", None)["numbers"], json!([]));
    assert_eq!(encode_field(&m, "tags", None), json!([]));
    assert_eq!(encode_field(&m, "counts", None), json!({}));
    assert_eq!(
        encode_field(&new("Everything"), "inner", None),
        json!({"id": 0, "name": "", "numbers": []}),
        "an unset message field is its default object"
    );
}

// ---------------------------------------------------------------------------------------------
// decoding

#[test]
fn round_trip_of_everything() {
    let original = everything();
    let text = encode(&original);
    let back = decode("Everything", &text).unwrap_or_else(|e| panic!("{e:?} in {text}"));
    assert_eq!(encode(&back), text);
    // DynamicMessage's `==` tells "set to the default" from "absent" (and its Debug output
    // recurses through descriptors): compare canonical forms, field by field.
    let canonical = |m: &DynamicMessage| {
        DynamicMessage::decode(m.descriptor(), prost::Message::encode_to_vec(m).as_slice())
            .expect("wire round trip")
    };
    let (original, back) = (canonical(&original), canonical(&back));
    for field in desc("Everything").fields() {
        assert!(
            original.get_field(&field) == back.get_field(&field),
            "{} differs after the round trip",
            field.name()
        );
    }
}

#[test]
fn decode_accepts_json_and_proto_names_and_numeric_strings() {
    let m = decode_ok(
        "Everything",
        json!({"fInt64": "-12", "f_uint64": "18446744073709551615", "fInt32": 1e3,
               "fDouble": "1.5", "fFloat": 2, "color": "COLOR_LIGHT_BLUE", "colors": ["dark_red", 2, "Dark_Red"],
               "f_bytes": "-_8", "wInt64": "5", "wString": "x", "ttl": "0.5s",
               "createdAt": "2024-01-31T12:00:00.25+01:00", "updateMask": "fString,inner.childName"}),
    );
    let get = |f: &str| m.get_field_by_name(f).unwrap().into_owned();
    assert_eq!(get("f_int64"), Value::I64(-12));
    assert_eq!(get("f_uint64"), Value::U64(u64::MAX));
    assert_eq!(get("f_int32"), Value::I32(1000));
    assert_eq!(get("f_double"), Value::F64(1.5));
    assert_eq!(get("f_float"), Value::F32(2.0));
    assert_eq!(get("color"), Value::EnumNumber(2));
    assert_eq!(
        get("colors"),
        Value::List(vec![
            Value::EnumNumber(1),
            Value::EnumNumber(2),
            Value::EnumNumber(1)
        ])
    );
    assert_eq!(get("f_bytes"), Value::Bytes(vec![0xfb, 0xff].into()));
    let v = encode_json(&m);
    assert_eq!(v["wInt64"], 5);
    assert_eq!(v["ttl"], "0.5s");
    assert_eq!(v["createdAt"], "2024-01-31T11:00:00.250Z");
    assert_eq!(v["updateMask"], "fString,inner.childName");
    assert_eq!(
        get("update_mask")
            .as_message()
            .unwrap()
            .get_field_by_number(1)
            .unwrap()
            .into_owned(),
        Value::List(vec![
            Value::String("f_string".into()),
            Value::String("inner.child_name".into())
        ])
    );
}

#[test]
fn null_leaves_fields_unset() {
    let m = decode_ok(
        "Everything",
        json!({"fInt64": null, "inner": null, "tags": null, "optInt32": null, "color": null, "wInt64": null}),
    );
    assert_eq!(m, new("Everything"));
    // ...but is a value of its own in a google.protobuf.Value field.
    let m = decode_ok("Everything", json!({"anyValue": null}));
    assert_eq!(encode_json(&m)["anyValue"], Json::Null);
    assert!(m.has_field_by_name("any_value"));
}

#[test]
fn decode_merges_into_existing_content() {
    let mut m = new("Everything");
    set(&mut m, "f_string", Value::String("kept".into()));
    set(&mut m, "tags", Value::List(vec![Value::String("a".into())]));
    JsonMarshaler
        .decode(
            br#"{"fInt32": 4, "tags": ["b"], "inner": {"id": 1}}"#,
            &mut m,
            None,
        )
        .unwrap();
    JsonMarshaler
        .decode(br#"{"inner": {"name": "n"}}"#, &mut m, None)
        .unwrap();
    let v = encode_json(&m);
    assert_eq!(v["fString"], "kept");
    assert_eq!(v["fInt32"], 4);
    assert_eq!(v["tags"], json!(["a", "b"]));
    assert_eq!(v["inner"]["id"], 1);
    assert_eq!(v["inner"]["name"], "n");
}

#[test]
fn decode_into_a_field() {
    let fd = |name: &str| desc("Everything").get_field_by_name(name).unwrap();
    let mut m = new("Everything");
    JsonMarshaler
        .decode(br#"{"id": 3, "name": "x"}"#, &mut m, Some(&fd("inner")))
        .unwrap();
    JsonMarshaler
        .decode(br#"[{"id": 4}, {"id": 5}]"#, &mut m, Some(&fd("inners")))
        .unwrap();
    JsonMarshaler
        .decode(br#""hi""#, &mut m, Some(&fd("f_string")))
        .unwrap();
    JsonMarshaler
        .decode(br#"{"a": 1}"#, &mut m, Some(&fd("counts")))
        .unwrap();
    JsonMarshaler
        .decode(
            br#""2024-01-01T00:00:00Z""#,
            &mut m,
            Some(&fd("created_at")),
        )
        .unwrap();
    let v = encode_json(&m);
    assert_eq!(v["inner"]["id"], 3);
    assert_eq!(
        v["inners"],
        json!([{"id": 4, "name": "", "numbers": []}, {"id": 5, "name": "", "numbers": []}])
    );
    assert_eq!(v["fString"], "hi");
    assert_eq!(v["counts"], json!({"a": 1}));
    assert_eq!(v["createdAt"], "2024-01-01T00:00:00Z");

    let err = JsonMarshaler
        .decode(br#"{"id": 4}"#, &mut m, Some(&fd("inners")))
        .unwrap_err();
    assert_eq!(
        err,
        CodecError {
            field: None,
            message: "request body must be a JSON array".into()
        }
    );
    let err = JsonMarshaler
        .decode(b"[1]", &mut m, Some(&fd("inner")))
        .unwrap_err();
    assert_eq!(
        err,
        CodecError {
            field: None,
            message: "request body must be an object".into()
        }
    );
    let err = JsonMarshaler
        .decode(br#"[{"idd": 4}]"#, &mut m, Some(&fd("inners")))
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("[0].idd"));
    let err = JsonMarshaler
        .decode(b"1", &mut m, Some(&fd("f_string")))
        .unwrap_err();
    assert_eq!(
        err,
        CodecError {
            field: None,
            message: "request body must be a string".into()
        }
    );
}

#[test]
fn unknown_fields_are_named_by_full_path() {
    assert_eq!(
        field_err("Everything", json!({"fooBar": 1})),
        ("fooBar".into(), "unknown field".into())
    );
    assert_eq!(
        field_err("Everything", json!({"inner": {"child": {"nope": 1}}})).0,
        "inner.child.nope"
    );
    assert_eq!(
        field_err("Everything", json!({"inners": [{}, {"x": 1}]})).0,
        "inners[1].x"
    );
    assert_eq!(
        field_err("Everything", json!({"innerById": {"3": {"y": 1}}})).0,
        "innerById.3.y"
    );
    assert_eq!(
        field_err("Everything", json!({"empty": {"z": 1}})).0,
        "empty.z"
    );
}

#[test]
fn type_mismatches_name_the_field_and_the_expected_type() {
    let cases = [
        (json!({"fInt64": "abc"}), "fInt64", "must be an integer"),
        (json!({"fInt64": true}), "fInt64", "must be an integer"),
        (json!({"fInt64": 1.5}), "fInt64", "must be an integer"),
        (
            json!({"fInt32": 2_147_483_648_i64}),
            "fInt32",
            "must be an integer between -2147483648 and 2147483647",
        ),
        (
            json!({"fUint64": -1}),
            "fUint64",
            "must be an integer between 0 and 18446744073709551615",
        ),
        (
            json!({"fUint64": 1e20}),
            "fUint64",
            "must be an integer between 0 and 18446744073709551615",
        ),
        (
            json!({"fInt64": "9223372036854775808"}),
            "fInt64",
            "must be an integer between -9223372036854775808 and 9223372036854775807",
        ),
        (json!({"fDouble": "x"}), "fDouble", "must be a number"),
        (json!({"fDouble": [1]}), "fDouble", "must be a number"),
        (
            json!({"fFloat": 1e300}),
            "fFloat",
            "must be a number within the range of a 32-bit float",
        ),
        (json!({"fString": 1}), "fString", "must be a string"),
        (json!({"fBool": "true"}), "fBool", "must be a boolean"),
        (json!({"fBytes": "***"}), "fBytes", "must be base64"),
        (json!({"fBytes": 1}), "fBytes", "must be a base64 string"),
        (json!({"tags": "a"}), "tags", "must be an array"),
        (json!({"tags": [1]}), "tags[0]", "must be a string"),
        (json!({"tags": ["a", null]}), "tags[1]", "must not be null"),
        (json!({"inner": 1}), "inner", "must be an object"),
        (
            json!({"inner": {"numbers": [1, "x"]}}),
            "inner.numbers[1]",
            "must be an integer",
        ),
        (
            json!({"inners": [{"id": {}}]}),
            "inners[0].id",
            "must be an integer",
        ),
        (json!({"counts": []}), "counts", "must be an object"),
        (
            json!({"counts": {"a": "b"}}),
            "counts.a",
            "must be an integer",
        ),
        (
            json!({"counts": {"a": null}}),
            "counts.a",
            "must not be null",
        ),
        (
            json!({"innerById": {"x": {}}}),
            "innerById.x",
            "must be an integer map key",
        ),
        (
            json!({"byFlag": {"yes": "x"}}),
            "byFlag.yes",
            "must be true or false",
        ),
        (
            json!({"color": "green"}),
            "color",
            "must be one of: \"dark_red\", \"light_blue\"",
        ),
        (
            json!({"color": 7}),
            "color",
            "must be one of: \"dark_red\", \"light_blue\"",
        ),
        (
            json!({"colors": [true]}),
            "colors[0]",
            "must be one of: \"dark_red\", \"light_blue\"",
        ),
        (
            json!({"createdAt": "yesterday"}),
            "createdAt",
            "must be an RFC 3339 timestamp, e.g. \"2024-01-31T12:00:00Z\"",
        ),
        (json!({"createdAt": 5}), "createdAt", "must be a string"),
        (
            json!({"ttl": "5m"}),
            "ttl",
            "must be a duration in seconds, e.g. \"1.5s\"",
        ),
        (json!({"wInt64": "x"}), "wInt64", "must be an integer"),
        (json!({"wBool": 1}), "wBool", "must be a boolean"),
        (
            json!({"attributes": [1]}),
            "attributes",
            "must be an object",
        ),
        (json!({"listValue": {}}), "listValue", "must be an array"),
        (
            json!({"any": {"@type": "x"}}),
            "any",
            "google.protobuf.Any is not supported in requests",
        ),
        (
            json!({"choiceText": "a", "choiceNumber": 1}),
            "choiceText",
            "cannot be set together with choiceNumber (only one of them may be set)",
        ),
    ];
    for (body, field, message) in cases {
        assert_eq!(
            field_err("Everything", body.clone()),
            (field.to_owned(), message.to_owned()),
            "body {body}"
        );
    }
}

#[test]
fn oneof_with_one_member_null_is_fine() {
    let m = decode_ok("Everything", json!({"choiceText": null, "choiceNumber": 3}));
    assert_eq!(encode_json(&m)["choiceNumber"], 3);
}

#[test]
fn malformed_json_reports_the_position() {
    assert_eq!(
        decode_err("Everything", r#"{"fInt64": }"#),
        (
            None,
            "malformed JSON at line 1 column 12: expected value".into()
        )
    );
    let (field, message) = decode_err("Everything", "{\n  \"a\": 1,\n");
    assert_eq!(field, None);
    assert!(
        message.starts_with("malformed JSON at line 3 column 0: EOF"),
        "{message}"
    );
    assert_eq!(
        decode_err("Everything", ""),
        (
            None,
            "malformed JSON at line 1 column 0: EOF while parsing a value".into()
        )
    );
    assert!(
        decode_err("Everything", "{} x")
            .1
            .starts_with("malformed JSON at line 1 column 4: trailing characters")
    );
}

#[test]
fn top_level_body_must_be_an_object() {
    for body in ["[]", "1", "\"x\"", "null", "true"] {
        assert_eq!(
            decode_err("Everything", body),
            (None, "request body must be a JSON object".into()),
            "{body}"
        );
    }
}

#[test]
fn deep_nesting_is_capped() {
    let mut body = String::new();
    for _ in 0..70 {
        body.push_str(r#"{"next":"#);
    }
    body.push_str("{}");
    for _ in 0..70 {
        body.push('}');
    }
    let (field, message) = decode_err("Node", &body);
    assert_eq!(message, "nested too deeply (more than 64 levels)");
    assert!(field.unwrap().starts_with("next.next.next"));

    let mut body = String::new();
    for _ in 0..40 {
        body.push_str(r#"{"next":"#);
    }
    body.push_str(r#"{"value": 1}"#);
    for _ in 0..40 {
        body.push('}');
    }
    assert!(decode("Node", &body).is_ok(), "40 levels are fine");

    let deep_struct = format!(
        r#"{{"attributes": {{"a": {}1{}}}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    assert_eq!(
        decode_err("Everything", &deep_struct).1,
        "nested too deeply (more than 64 levels)"
    );
    // Beyond serde_json's own limit (128): a malformed-JSON error, not a stack overflow.
    let very_deep = "[".repeat(10_000);
    assert!(
        decode_err("Everything", &very_deep)
            .1
            .starts_with("malformed JSON")
    );
}

#[test]
fn struct_value_and_list_value_hold_arbitrary_json() {
    let body = json!({"attributes": {"n": null, "x": {"y": [1, "two", false, {}]}},
                      "anyValue": [1, {"a": null}], "listValue": [null, 1.5, "s"]});
    let m = decode_ok("Everything", body.clone());
    let v = encode_json(&m);
    for key in ["attributes", "anyValue", "listValue"] {
        assert_eq!(v[key], body[key], "{key}");
    }
}

// ---------------------------------------------------------------------------------------------
// binding text values

fn bind(msg: &mut DynamicMessage, path: &str, raw: &str) -> Result<bool, CodecError> {
    bind_value(msg, path, raw)
}

#[test]
fn bind_values_by_type() {
    let mut m = new("Everything");
    assert_eq!(bind(&mut m, "fInt64", "-5"), Ok(true));
    assert_eq!(bind(&mut m, "f_uint32", "7"), Ok(true));
    assert_eq!(bind(&mut m, "fDouble", "1199.99"), Ok(true));
    assert_eq!(bind(&mut m, "fFloat", "NaN"), Ok(true));
    assert_eq!(bind(&mut m, "fBool", "1"), Ok(true));
    assert_eq!(bind(&mut m, "optBool", "false"), Ok(true));
    assert_eq!(bind(&mut m, "fString", " raw, 1 "), Ok(true));
    assert_eq!(bind(&mut m, "fBytes", "-_8"), Ok(true));
    assert_eq!(bind(&mut m, "color", "dark_red"), Ok(true));
    assert_eq!(bind(&mut m, "optColor", "COLOR_LIGHT_BLUE"), Ok(true));
    assert_eq!(bind(&mut m, "colors", "1"), Ok(true));
    assert_eq!(bind(&mut m, "colors", "light_blue"), Ok(true));
    assert_eq!(bind(&mut m, "createdAt", "2024-01-31T12:00:00Z"), Ok(true));
    assert_eq!(bind(&mut m, "ttl", "2s"), Ok(true));
    assert_eq!(bind(&mut m, "wInt64", "42"), Ok(true));
    assert_eq!(bind(&mut m, "wString", "s"), Ok(true));
    assert_eq!(bind(&mut m, "wBool", "true"), Ok(true));
    assert_eq!(bind(&mut m, "updateMask", "fString,inner.id"), Ok(true));
    assert_eq!(bind(&mut m, "history", "1970-01-01T00:00:00Z"), Ok(true));
    let v = encode_json(&m);
    assert_eq!(v["fInt64"], -5);
    assert_eq!(v["fUint32"], 7);
    assert_eq!(v["fDouble"], 1199.99);
    assert_eq!(v["fFloat"], "NaN");
    assert_eq!(v["fBool"], true);
    assert_eq!(v["optBool"], false);
    assert_eq!(v["fString"], " raw, 1 ");
    assert_eq!(v["fBytes"], "+/8=");
    assert_eq!(v["color"], "dark_red");
    assert_eq!(v["optColor"], "light_blue");
    assert_eq!(v["colors"], json!(["dark_red", "light_blue"]));
    assert_eq!(v["createdAt"], "2024-01-31T12:00:00Z");
    assert_eq!(v["ttl"], "2s");
    assert_eq!(v["wInt64"], 42);
    assert_eq!(v["wString"], "s");
    assert_eq!(v["wBool"], true);
    assert_eq!(v["updateMask"], "fString,inner.id");
    assert_eq!(v["history"], json!(["1970-01-01T00:00:00Z"]));
}

#[test]
fn bind_repeated_appends_and_nested_paths_resolve() {
    let mut m = new("Everything");
    assert_eq!(bind(&mut m, "ids", "1"), Ok(true));
    assert_eq!(bind(&mut m, "ids", "2"), Ok(true));
    assert_eq!(bind(&mut m, "inner.name", "x"), Ok(true));
    assert_eq!(bind(&mut m, "inner.child.id", "9"), Ok(true));
    assert_eq!(bind(&mut m, "inner.child.numbers", "3"), Ok(true));
    assert_eq!(bind(&mut m, "choiceInner.id", "4"), Ok(true));
    let v = encode_json(&m);
    assert_eq!(v["ids"], json!([1, 2]));
    assert_eq!(v["inner"]["name"], "x");
    assert_eq!(v["inner"]["child"]["id"], 9);
    assert_eq!(v["inner"]["child"]["numbers"], json!([3]));
    assert_eq!(v["choiceInner"]["id"], 4);
}

#[test]
fn bind_reports_missing_fields_without_side_effects() {
    let mut m = new("Everything");
    for path in [
        "nope",
        "inner.nope",
        "inner.child.nope",
        "fString.x",
        "inners.id",
        "",
        "inner.",
        ".",
        "createdAt.seconds",
    ] {
        assert_eq!(bind(&mut m, path, "1"), Ok(false), "{path}");
    }
    assert_eq!(m, new("Everything"), "nothing was created on the way");
}

#[test]
fn bind_errors_name_the_field() {
    let mut m = new("Everything");
    let err = |m: &mut DynamicMessage, path: &str, raw: &str| bind(m, path, raw).unwrap_err();
    assert_eq!(
        err(&mut m, "fInt64", "abc"),
        CodecError::field("fInt64", "must be an integer")
    );
    assert_eq!(
        err(&mut m, "f_int64", "1.5"),
        CodecError::field("fInt64", "must be an integer")
    );
    assert_eq!(
        err(&mut m, "inner.child.id", "x"),
        CodecError::field("inner.child.id", "must be an integer")
    );
    assert_eq!(
        err(&mut m, "fInt32", "99999999999").message,
        "must be an integer between -2147483648 and 2147483647"
    );
    assert_eq!(
        err(&mut m, "fBool", "yes"),
        CodecError::field("fBool", "must be true or false")
    );
    assert_eq!(
        err(&mut m, "fDouble", "inf"),
        CodecError::field("fDouble", "must be a number")
    );
    assert_eq!(
        err(&mut m, "color", "blue"),
        CodecError::field("color", "must be one of: \"dark_red\", \"light_blue\"")
    );
    assert_eq!(
        err(&mut m, "color", "5"),
        CodecError::field("color", "must be one of: \"dark_red\", \"light_blue\"")
    );
    assert_eq!(
        err(&mut m, "fBytes", "%%"),
        CodecError::field("fBytes", "must be base64")
    );
    assert_eq!(
        err(&mut m, "createdAt", "now").field.as_deref(),
        Some("createdAt")
    );
    assert_eq!(
        err(&mut m, "inner", "x"),
        CodecError::field("inner", "is an object and must be set in the request body")
    );
    assert_eq!(
        err(&mut m, "counts", "x"),
        CodecError::field("counts", "is a map and must be set in the request body")
    );
    assert_eq!(
        err(&mut m, "attributes", "x").field.as_deref(),
        Some("attributes")
    );
    assert_eq!(m, new("Everything"), "failed binds change nothing");
}

#[test]
fn enum_names_follow_the_rule() {
    let color = pool().get_enum_by_name("codec.v1.Color").unwrap();
    let names: Vec<_> = color
        .values()
        .map(|v| enum_value_json_name(&v).into_owned())
        .collect();
    assert_eq!(names, ["unspecified", "dark_red", "light_blue"]);
    assert!(is_unset_enum_value(&color.get_value(0).unwrap()));
    assert!(!is_unset_enum_value(&color.get_value(1).unwrap()));
}

#[test]
fn content_type_is_json() {
    assert_eq!(JsonMarshaler.content_type(), "application/json");
    let _: Box<dyn Marshaler> = Box::new(JsonMarshaler);
}

#[test]
fn duplicate_keys_last_wins() {
    let m = decode(
        "Everything",
        r#"{"tags": ["a"], "fInt32": 1, "tags": ["b"], "fInt32": 2}"#,
    )
    .unwrap();
    let v = encode_json(&m);
    assert_eq!(v["tags"], json!(["b"]));
    assert_eq!(v["fInt32"], 2);
    let m = decode("Everything", r#"{"choiceText": "a", "choiceText": "b"}"#).unwrap();
    assert_eq!(encode_json(&m)["choiceText"], "b");
}

#[test]
fn doubles_read_back_exactly() {
    // serde_json's default float parsing can be 1 ULP off on long mantissas; the codec turns on
    // its exact mode, so a written double always reads back unchanged.
    for text in [
        "9.075751725068013e18",
        "1199.99",
        "0.30000000000000004",
        "5e-324",
        "1.7976931348623157e308",
    ] {
        let m = decode("Everything", &format!(r#"{{"fDouble": {text}}}"#)).unwrap();
        assert!(
            encode(&m).contains(&format!(r#""fDouble":{text},"#)),
            "{text}: {}",
            encode(&m)
        );
    }
}

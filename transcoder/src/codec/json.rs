//! The JSON encoder: a walk over a [`DynamicMessage`] that writes the contract's JSON shape
//! straight into a `Vec<u8>` (no intermediate tree, fields in field-number order, map keys
//! sorted so that equal messages give equal bytes).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage as _, Value,
};

use super::select::Selector;
use super::text::enum_value_suffix;
use super::wkt::{self, Wkt};

/// Which fields of a message to write.
#[derive(Clone, Copy)]
enum Filter<'a> {
    /// Every field.
    All,
    /// Only the selected top-level fields, plus `id`.
    Fields(&'a Selector),
    /// Every top-level field; the items of repeated message fields get `Fields`.
    Items(&'a Selector),
}

/// Nesting guard for the encoder: messages decoded from the wire are bounded by prost's own
/// recursion limit (100), but `DynamicMessage`s built in code are not; deeper values become null.
const MAX_ENCODE_DEPTH: usize = 128;

pub(crate) fn encode_message(msg: &DynamicMessage, select: Option<&Selector>, out: &mut Vec<u8>) {
    let filter = match select.filter(|s| !s.is_empty()) {
        None => Filter::All,
        Some(sel) if is_list_response(&msg.descriptor()) => Filter::Items(sel),
        Some(sel) => Filter::Fields(sel),
    };
    write_message(msg, filter, 0, out);
}

pub(crate) fn encode_field(
    msg: &DynamicMessage,
    field: &FieldDescriptor,
    select: Option<&Selector>,
    out: &mut Vec<u8>,
) {
    let filter = match select.filter(|s| !s.is_empty()) {
        None => Filter::All,
        Some(sel) => Filter::Fields(sel),
    };
    // An unset field is written as its default (for a message, its object of default values), so
    // that the response is always the JSON type the contract promises.
    let value = msg.get_field(field);
    write_field_value(field, &value, filter, 0, out);
}

/// A list response: no `id`, at least one repeated message field, and nothing else but scalars
/// (`{products:[..], total, skip, limit}`). Well-known types count as messages here, so a
/// single object with a timestamp or an address beside its line items stays a single object.
fn is_list_response(desc: &MessageDescriptor) -> bool {
    let mut lists = 0;
    for f in desc.fields() {
        if f.json_name() == "id" || f.is_map() {
            return false;
        }
        match (f.kind(), f.is_list()) {
            (Kind::Message(_), true) => lists += 1,
            (Kind::Message(_), false) | (_, true) => return false,
            _ => {}
        }
    }
    lists > 0
}

fn write_message(msg: &DynamicMessage, filter: Filter<'_>, depth: usize, out: &mut Vec<u8>) {
    if depth > MAX_ENCODE_DEPTH {
        out.extend_from_slice(b"null");
        return;
    }
    let desc = msg.descriptor();
    if let Some(w) = Wkt::of(desc.full_name()) {
        write_wkt(msg, w, depth, out);
        return;
    }
    out.push(b'{');
    write_fields(msg, &desc, filter, depth, true, out);
    out.push(b'}');
}

/// Writes `"name":value` pairs (without braces); `first` says whether no pair precedes them.
fn write_fields(
    msg: &DynamicMessage,
    desc: &MessageDescriptor,
    filter: Filter<'_>,
    depth: usize,
    mut first: bool,
    out: &mut Vec<u8>,
) {
    for field in desc.fields() {
        if let Filter::Fields(sel) = filter {
            let name = field.json_name();
            if name != "id" && !sel.contains(name) && !sel.contains(field.name()) {
                continue;
            }
        }
        // Unset message fields, proto3 `optional` and oneof members are omitted.
        if field.supports_presence() && !msg.has_field(&field) {
            continue;
        }
        let value = msg.get_field(&field);
        // The zero enum value means "unset" and is omitted (in singular fields).
        if matches!(*value, Value::EnumNumber(0)) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_key(field.json_name(), out);
        let inner = match filter {
            Filter::Items(sel) => Filter::Fields(sel),
            _ => Filter::All,
        };
        write_field_value(&field, &value, inner, depth, out);
    }
}

/// Writes a whole field value: an array for a list, an object for a map, else the singular value.
/// `filter` applies to the message(s) in it.
fn write_field_value(
    field: &FieldDescriptor,
    value: &Value,
    filter: Filter<'_>,
    depth: usize,
    out: &mut Vec<u8>,
) {
    let kind = field.kind();
    match value {
        Value::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_singular(&kind, item, filter, depth + 1, out);
            }
            out.push(b']');
        }
        Value::Map(map) => {
            let value_kind = match &kind {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                _ => kind.clone(),
            };
            write_map(&value_kind, map, depth, out);
        }
        _ => write_singular(&kind, value, filter, depth, out),
    }
}

fn write_map(
    value_kind: &Kind,
    map: &std::collections::HashMap<MapKey, Value>,
    depth: usize,
    out: &mut Vec<u8>,
) {
    let mut entries: Vec<(&MapKey, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match key {
            MapKey::String(s) => write_str(s, out),
            MapKey::Bool(b) => out.extend_from_slice(if *b { b"\"true\"" } else { b"\"false\"" }),
            MapKey::I32(n) => write_quoted_int(*n, out),
            MapKey::I64(n) => write_quoted_int(*n, out),
            MapKey::U32(n) => write_quoted_int(*n, out),
            MapKey::U64(n) => write_quoted_int(*n, out),
        }
        out.push(b':');
        write_singular(value_kind, value, Filter::All, depth + 1, out);
    }
    out.push(b'}');
}

fn write_singular(kind: &Kind, value: &Value, filter: Filter<'_>, depth: usize, out: &mut Vec<u8>) {
    match value {
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::I32(n) => write_int(*n, out),
        Value::I64(n) => write_int(*n, out),
        Value::U32(n) => write_int(*n, out),
        Value::U64(n) => write_int(*n, out),
        Value::F32(f) => write_f32(*f, out),
        Value::F64(f) => write_f64(*f, out),
        Value::String(s) => write_str(s, out),
        Value::Bytes(b) => write_base64(b, out),
        Value::EnumNumber(n) => write_enum(kind, *n, out),
        Value::Message(m) => write_message(m, filter, depth + 1, out),
        // Not produced for singular fields by prost-reflect; written faithfully anyway.
        Value::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_singular(kind, item, filter, depth + 1, out);
            }
            out.push(b']');
        }
        Value::Map(map) => write_map(kind, map, depth, out),
    }
}

fn write_enum(kind: &Kind, n: i32, out: &mut Vec<u8>) {
    let Kind::Enum(e) = kind else {
        write_int(n, out);
        return;
    };
    if e.full_name() == "google.protobuf.NullValue" {
        out.extend_from_slice(b"null");
        return;
    }
    match e.get_value(n) {
        Some(v) => {
            // Value names are identifiers: no escaping needed.
            out.push(b'"');
            out.extend(
                enum_value_suffix(e.name(), v.name())
                    .bytes()
                    .map(|b| b.to_ascii_lowercase()),
            );
            out.push(b'"');
        }
        // An enum number this descriptor does not know (a newer server): the number itself.
        None => write_int(n, out),
    }
}

fn write_wkt(msg: &DynamicMessage, w: Wkt, depth: usize, out: &mut Vec<u8>) {
    let get = |number: u32| msg.get_field_by_number(number);
    match w {
        Wkt::Timestamp | Wkt::Duration => {
            let seconds = get(1).and_then(|v| v.as_i64()).unwrap_or(0);
            let nanos = get(2).and_then(|v| v.as_i32()).unwrap_or(0);
            let ok = if w == Wkt::Timestamp {
                wkt::write_timestamp(seconds, nanos, out)
            } else {
                wkt::write_duration(seconds, nanos, out)
            };
            if !ok {
                // Out of range: there is no valid JSON form; null rather than a lie.
                out.extend_from_slice(b"null");
            }
        }
        Wkt::Wrapper | Wkt::Struct | Wkt::ListValue => {
            match msg.descriptor().get_field(1) {
                Some(field) => {
                    let value = msg.get_field(&field);
                    write_field_value(&field, &value, Filter::All, depth, out);
                }
                None => out.extend_from_slice(b"null"),
            };
        }
        Wkt::Value => match msg.fields().next() {
            Some((field, value)) => write_field_value(&field, value, Filter::All, depth, out),
            None => out.extend_from_slice(b"null"),
        },
        Wkt::FieldMask => {
            let mut joined = String::new();
            if let Some(paths) = get(1).as_ref().and_then(|v| v.as_list()) {
                for (i, path) in paths.iter().filter_map(Value::as_str).enumerate() {
                    if i > 0 {
                        joined.push(',');
                    }
                    wkt::snake_to_camel(path, &mut joined);
                }
            }
            write_str(&joined, out);
        }
        Wkt::Any => write_any(msg, depth, out),
    }
}

/// Best effort: the packed message inline when its type is in the pool, else its bytes.
fn write_any(msg: &DynamicMessage, depth: usize, out: &mut Vec<u8>) {
    let type_url = msg
        .get_field_by_number(1)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let bytes = msg
        .get_field_by_number(2)
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    out.extend_from_slice(b"{\"@type\":");
    write_str(&type_url, out);
    let type_name = type_url.rsplit('/').next().unwrap_or_default();
    let packed = msg
        .descriptor()
        .parent_pool()
        .get_message_by_name(type_name)
        .and_then(|desc| DynamicMessage::decode(desc, bytes.as_ref()).ok());
    match packed {
        Some(inner) if Wkt::of(inner.descriptor().full_name()).is_some() => {
            out.extend_from_slice(b",\"value\":");
            write_message(&inner, Filter::All, depth + 1, out);
        }
        Some(inner) => write_fields(
            &inner,
            &inner.descriptor(),
            Filter::All,
            depth + 1,
            false,
            out,
        ),
        None => {
            out.extend_from_slice(b",\"value\":");
            write_base64(&bytes, out);
        }
    }
    out.push(b'}');
}

/// A JSON object key. Field JSON names are nearly always plain identifiers; anything else goes
/// through serde_json's escaping.
fn write_key(name: &str, out: &mut Vec<u8>) {
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
    {
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
    } else {
        write_str(name, out);
        out.push(b':');
    }
}

/// A JSON string with serde_json's escaping.
pub(crate) fn write_str(s: &str, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_int<I: itoa::Integer>(n: I, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn write_quoted_int<I: itoa::Integer>(n: I, out: &mut Vec<u8>) {
    out.push(b'"');
    write_int(n, out);
    out.push(b'"');
}

fn write_base64(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    let start = out.len();
    let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
    out.resize(start + len, 0);
    let written = STANDARD.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
    out.push(b'"');
}

/// Largest magnitude below which an integral double is written as an integer: 2^53, where
/// every integer is still exact.
const EXACT_INT_LIMIT: f64 = 9_007_199_254_740_992.0;

fn write_non_finite(f: f64, out: &mut Vec<u8>) {
    out.extend_from_slice(if f.is_nan() {
        b"\"NaN\"".as_slice()
    } else if f > 0.0 {
        b"\"Infinity\""
    } else {
        b"\"-Infinity\""
    });
}

fn write_f64(f: f64, out: &mut Vec<u8>) {
    if !f.is_finite() {
        write_non_finite(f, out);
    } else if f.fract() == 0.0 && f.abs() < EXACT_INT_LIMIT {
        write_int(f as i64, out);
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
    }
}

fn write_f32(f: f32, out: &mut Vec<u8>) {
    if !f.is_finite() {
        write_non_finite(f64::from(f), out);
    } else if f.fract() == 0.0 && f64::from(f).abs() < EXACT_INT_LIMIT {
        write_int(f as i64, out);
    } else {
        // Shortest form of the f32 itself: 0.1f32 is "0.1", not 0.10000000149011612.
        out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f64s(f: f64) -> String {
        let mut out = Vec::new();
        write_f64(f, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats() {
        assert_eq!(f64s(0.0), "0");
        assert_eq!(f64s(-0.0), "0");
        assert_eq!(f64s(100.0), "100");
        assert_eq!(f64s(1199.99), "1199.99");
        assert_eq!(f64s(1e300), "1e300");
        assert_eq!(f64s(f64::NAN), "\"NaN\"");
        assert_eq!(f64s(f64::NEG_INFINITY), "\"-Infinity\"");
        let mut out = Vec::new();
        write_f32(0.1, &mut out);
        assert_eq!(out, b"0.1");
    }
}

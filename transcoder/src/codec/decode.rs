//! The JSON decoder: a request body merged into a [`DynamicMessage`] with proto3-JSON value
//! rules, unknown fields rejected, and every error naming the JSON path of its field.
//!
//! The body is parsed by serde_json (which reports the positions of syntax errors) into a light
//! tree that borrows from the body (`tree::Json`), then walked against the descriptors. Nesting
//! is capped at [`MAX_DEPTH`] levels.

use std::fmt::Write as _;

use super::tree::Json;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage as _, Value,
};

use super::CodecError;
use super::text;
use super::wkt::{self, Wkt};

/// Deepest nesting of objects and arrays accepted in a body.
pub(crate) const MAX_DEPTH: usize = 64;

/// One step of a JSON path; paths live on the stack and are rendered only for errors.
#[derive(Clone, Copy)]
pub(crate) enum Seg<'a> {
    Root,
    Field(&'a str),
    Index(usize),
    Key(&'a str),
}

#[derive(Clone, Copy)]
pub(crate) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

impl<'a> Path<'a> {
    pub(crate) const ROOT: Path<'static> = Path {
        parent: None,
        seg: Seg::Root,
    };

    fn child(&'a self, seg: Seg<'a>) -> Path<'a> {
        Path {
            parent: Some(self),
            seg,
        }
    }

    /// `products[0].quantity`; `None` for the root.
    fn render(&self) -> Option<String> {
        let mut segs = Vec::new();
        let mut cur = Some(self);
        while let Some(p) = cur {
            segs.push(p.seg);
            cur = p.parent;
        }
        let mut out = String::new();
        for seg in segs.into_iter().rev() {
            match seg {
                Seg::Root => {}
                Seg::Field(name) | Seg::Key(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Seg::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        (!out.is_empty()).then_some(out)
    }

    fn error(&self, message: impl Into<String>) -> CodecError {
        match self.render() {
            Some(field) => CodecError::field(field, message),
            // The body as a whole: "request body must be an object".
            None => CodecError::body(format!("request body {}", message.into())),
        }
    }
}

/// `Path::error` for results whose error is only a message.
trait At<T> {
    fn at(self, path: &Path<'_>) -> Result<T, CodecError>;
}

impl<T> At<T> for Result<T, String> {
    fn at(self, path: &Path<'_>) -> Result<T, CodecError> {
        self.map_err(|m| path.error(m))
    }
}

/// Parses `body` and merges it into `msg`, or into its field `field`.
pub(crate) fn decode(
    body: &[u8],
    msg: &mut DynamicMessage,
    field: Option<&FieldDescriptor>,
) -> Result<(), CodecError> {
    let json: Json<'_> = serde_json::from_slice(body).map_err(|e| malformed(&e))?;
    let root = Path::ROOT;
    match field {
        None => {
            if !json.is_object() && Wkt::of(msg.descriptor().full_name()).is_none() {
                return Err(CodecError::body("request body must be a JSON object"));
            }
            merge_message(msg, json, &root, 0)
        }
        Some(field) => {
            // The body *is* the field: errors inside it are named relative to the body.
            let expected = if field.is_list() {
                json.is_array().then_some(()).ok_or("a JSON array")
            } else if field.is_map() {
                json.is_object().then_some(()).ok_or("a JSON object")
            } else {
                Ok(())
            };
            if let Err(what) = expected {
                return Err(CodecError::body(format!("request body must be {what}")));
            }
            if json.is_null() {
                return Ok(());
            }
            merge_field(msg, field, json, &root, 0)
        }
    }
}

/// `malformed JSON at line 1 column 17: expected value`.
fn malformed(e: &serde_json::Error) -> CodecError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let what = full.strip_suffix(&suffix).unwrap_or(&full);
    CodecError::body(format!(
        "malformed JSON at line {} column {}: {what}",
        e.line(),
        e.column()
    ))
}

fn too_deep(path: &Path<'_>) -> CodecError {
    path.error(format!("nested too deeply (more than {MAX_DEPTH} levels)"))
}

/// Merges a JSON value into a message: an object for a plain message, the special form for a
/// well-known type (which replaces the message's content).
fn merge_message(
    msg: &mut DynamicMessage,
    json: Json<'_>,
    path: &Path<'_>,
    depth: usize,
) -> Result<(), CodecError> {
    if depth > MAX_DEPTH {
        return Err(too_deep(path));
    }
    let desc = msg.descriptor();
    if let Some(w) = Wkt::of(desc.full_name()) {
        *msg = parse_wkt(&desc, w, json, path, depth)?;
        return Ok(());
    }
    let Json::Object(obj) = json else {
        return Err(path.error("must be an object"));
    };
    // Oneofs seen in this object, with the JSON name of the member that set them.
    let mut oneofs: Vec<(String, String)> = Vec::new();
    for (key, value) in obj {
        let Some(field) = find_field(&desc, &key) else {
            return Err(path.child(Seg::Key(&key)).error("unknown field"));
        };
        let json_name = field.json_name();
        let fpath = path.child(Seg::Field(json_name));
        if value.is_null() && !is_value_wkt(&field) {
            // null means "leave unset / default".
            continue;
        }
        if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
            if let Some((_, other)) = oneofs.iter().find(|(name, _)| name == oneof.name()) {
                return Err(fpath.error(format!(
                    "cannot be set together with {other} (only one of them may be set)"
                )));
            }
            oneofs.push((oneof.name().to_owned(), key.into_owned()));
        }
        merge_field(msg, &field, value, &fpath, depth + 1)?;
    }
    Ok(())
}

/// A field by JSON name, else by proto name.
pub(crate) fn find_field(desc: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    desc.get_field_by_json_name(name)
        .or_else(|| desc.get_field_by_name(name))
}

/// A singular `google.protobuf.Value` field, where JSON null is a value of its own.
fn is_value_wkt(field: &FieldDescriptor) -> bool {
    !field.is_list()
        && !field.is_map()
        && matches!(field.kind(), Kind::Message(m) if m.full_name() == "google.protobuf.Value")
}

/// Merges a non-null JSON value into one field: appends to lists, inserts into maps, merges
/// into singular messages, replaces scalars.
fn merge_field(
    msg: &mut DynamicMessage,
    field: &FieldDescriptor,
    json: Json<'_>,
    path: &Path<'_>,
    depth: usize,
) -> Result<(), CodecError> {
    if depth > MAX_DEPTH {
        return Err(too_deep(path));
    }
    let kind = field.kind();
    if field.is_map() {
        let Json::Object(obj) = json else {
            return Err(path.error("must be an object"));
        };
        let Kind::Message(entry) = &kind else {
            return Err(path.error("must be an object"));
        };
        let key_kind = entry.map_entry_key_field().kind();
        let value_kind = entry.map_entry_value_field().kind();
        let mut entries = Vec::with_capacity(obj.len());
        for (key, value) in obj {
            let kpath = path.child(Seg::Key(&key));
            if value.is_null() && !is_value_kind(&value_kind) {
                return Err(kpath.error("must not be null"));
            }
            let value = parse_value(&value_kind, value, &kpath, depth + 1)?;
            let map_key = match key_kind {
                Kind::String => MapKey::String(key.into_owned()),
                _ => parse_map_key(&key_kind, &key).at(&kpath)?,
            };
            entries.push((map_key, value));
        }
        if let Some(map) = msg.get_field_mut(field).as_map_mut() {
            map.extend(entries);
        }
    } else if field.is_list() {
        let Json::Array(items) = json else {
            return Err(path.error("must be an array"));
        };
        let mut values = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let ipath = path.child(Seg::Index(i));
            if item.is_null() && !is_value_kind(&kind) {
                return Err(ipath.error("must not be null"));
            }
            values.push(parse_value(&kind, item, &ipath, depth + 1)?);
        }
        if let Some(list) = msg.get_field_mut(field).as_list_mut() {
            list.extend(values);
        }
    } else if let Kind::Message(_) = kind {
        if let Some(sub) = msg.get_field_mut(field).as_message_mut() {
            merge_message(sub, json, path, depth)?;
        }
    } else {
        let value = parse_value(&kind, json, path, depth)?;
        try_set(msg, field, value, path)?;
    }
    Ok(())
}

fn is_value_kind(kind: &Kind) -> bool {
    matches!(kind, Kind::Message(m) if m.full_name() == "google.protobuf.Value")
}

fn parse_map_key(kind: &Kind, key: &str) -> Result<MapKey, String> {
    Ok(match kind {
        Kind::String => MapKey::String(key.to_owned()),
        Kind::Bool => MapKey::Bool(text::parse_bool_text(key)?),
        _ => match text::parse_scalar_text(kind, key) {
            Ok(v) => v.into_map_key().ok_or("is not a valid map key")?,
            Err(_) => return Err("must be an integer map key".into()),
        },
    })
}

/// One singular value of `kind` from JSON.
fn parse_value(
    kind: &Kind,
    json: Json<'_>,
    path: &Path<'_>,
    depth: usize,
) -> Result<Value, CodecError> {
    match kind {
        Kind::Message(desc) => {
            let mut msg = DynamicMessage::new(desc.clone());
            merge_message(&mut msg, json, path, depth)?;
            Ok(Value::Message(msg))
        }
        _ => parse_scalar(kind, json).at(path),
    }
}

/// A non-message value from JSON by proto3-JSON rules.
fn parse_scalar(kind: &Kind, json: Json<'_>) -> Result<Value, String> {
    match kind {
        Kind::Double | Kind::Float => {
            let f = match json {
                Json::Number(n) => n.as_f64(),
                Json::String(s) => text::parse_float_text(&s)?,
                _ => return Err("must be a number".into()),
            };
            text::float_value(kind, f)
        }
        Kind::Int32
        | Kind::Sint32
        | Kind::Sfixed32
        | Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64
        | Kind::Uint32
        | Kind::Fixed32
        | Kind::Uint64
        | Kind::Fixed64 => {
            let i = match json {
                Json::Number(n) => {
                    if let Some(i) = n.as_i64() {
                        i128::from(i)
                    } else if let Some(u) = n.as_u64() {
                        i128::from(u)
                    } else {
                        text::float_to_int(n.as_f64())?
                    }
                }
                Json::String(s) => text::parse_int_text(&s)?,
                _ => return Err("must be an integer".into()),
            };
            text::int_value(kind, i)
        }
        Kind::Bool => match json {
            Json::Bool(b) => Ok(Value::Bool(b)),
            _ => Err("must be a boolean".into()),
        },
        Kind::String => match json {
            Json::String(s) => Ok(Value::String(s.into_owned())),
            _ => Err("must be a string".into()),
        },
        Kind::Bytes => match json {
            Json::String(s) => text::parse_base64(&s).map(Value::Bytes),
            _ => Err("must be a base64 string".into()),
        },
        Kind::Enum(e) => match json {
            Json::String(s) => text::parse_enum_text(e, &s).map(Value::EnumNumber),
            Json::Number(n) => match n.as_i64() {
                Some(n) => text::enum_number(e, n).map(Value::EnumNumber),
                None => Err(text::enum_error(e)),
            },
            Json::Null if e.full_name() == "google.protobuf.NullValue" => Ok(Value::EnumNumber(0)),
            _ => Err(text::enum_error(e)),
        },
        Kind::Message(_) => Err("must be an object".into()),
    }
}

/// A well-known type from its special JSON form.
fn parse_wkt(
    desc: &MessageDescriptor,
    w: Wkt,
    json: Json<'_>,
    path: &Path<'_>,
    depth: usize,
) -> Result<DynamicMessage, CodecError> {
    let mut msg = DynamicMessage::new(desc.clone());
    match w {
        Wkt::Timestamp | Wkt::Duration | Wkt::FieldMask | Wkt::Wrapper => {
            if let Json::String(s) = &json {
                return wkt_from_text(desc, w, s).at(path);
            }
            if w != Wkt::Wrapper {
                return Err(path.error("must be a string"));
            }
            let field = wkt_field(desc, 1, path)?;
            let value = parse_scalar(&field.kind(), json).at(path)?;
            try_set(&mut msg, &field, value, path)?;
        }
        Wkt::Struct => {
            let Json::Object(_) = json else {
                return Err(path.error("must be an object"));
            };
            merge_field(&mut msg, &wkt_field(desc, 1, path)?, json, path, depth)?;
        }
        Wkt::ListValue => {
            let Json::Array(_) = json else {
                return Err(path.error("must be an array"));
            };
            merge_field(&mut msg, &wkt_field(desc, 1, path)?, json, path, depth)?;
        }
        Wkt::Value => {
            let (number, value) = match json {
                Json::Null => (1, Value::EnumNumber(0)),
                Json::Number(n) => (2, Value::F64(n.as_f64())),
                Json::String(s) => (3, Value::String(s.into_owned())),
                Json::Bool(b) => (4, Value::Bool(b)),
                Json::Object(_) | Json::Array(_) => {
                    let number = if json.is_object() { 5 } else { 6 };
                    let field = wkt_field(desc, number, path)?;
                    let Kind::Message(inner) = field.kind() else {
                        return Err(path.error("is not a google.protobuf.Value"));
                    };
                    let mut sub = DynamicMessage::new(inner);
                    merge_message(&mut sub, json, path, depth + 1)?;
                    (number, Value::Message(sub))
                }
            };
            try_set(&mut msg, &wkt_field(desc, number, path)?, value, path)?;
        }
        Wkt::Any => {
            return Err(path.error("google.protobuf.Any is not supported in requests"));
        }
    }
    Ok(msg)
}

/// `set_field` without its panic: a value that does not fit the field (only possible with a
/// descriptor pool whose well-known types are not the real ones) is an error.
fn try_set(
    msg: &mut DynamicMessage,
    field: &FieldDescriptor,
    value: Value,
    path: &Path<'_>,
) -> Result<(), CodecError> {
    msg.try_set_field(field, value)
        .map_err(|_| path.error(format!("cannot hold this value ({})", field.full_name())))
}

fn wkt_field(
    desc: &MessageDescriptor,
    number: u32,
    path: &Path<'_>,
) -> Result<FieldDescriptor, CodecError> {
    desc.get_field(number)
        .ok_or_else(|| path.error(format!("is not a valid {}", desc.full_name())))
}

/// A scalar-form well-known type (Timestamp, Duration, FieldMask, wrappers) from text.
pub(crate) fn wkt_from_text(
    desc: &MessageDescriptor,
    w: Wkt,
    s: &str,
) -> Result<DynamicMessage, String> {
    let mut msg = DynamicMessage::new(desc.clone());
    let mut set = |number: u32, value: Value| -> Result<(), String> {
        let field = desc
            .get_field(number)
            .ok_or_else(|| format!("is not a valid {}", desc.full_name()))?;
        msg.try_set_field(&field, value)
            .map_err(|_| format!("is not a valid {}", desc.full_name()))
    };
    match w {
        Wkt::Timestamp | Wkt::Duration => {
            let (seconds, nanos) = if w == Wkt::Timestamp {
                wkt::parse_timestamp(s)?
            } else {
                wkt::parse_duration(s)?
            };
            set(1, Value::I64(seconds))?;
            set(2, Value::I32(nanos))?;
        }
        Wkt::FieldMask => {
            let paths = s
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(wkt::camel_to_snake(p)))
                .collect();
            set(1, Value::List(paths))?;
        }
        Wkt::Wrapper => {
            let kind = desc
                .get_field(1)
                .map(|f| f.kind())
                .ok_or("is not a valid wrapper")?;
            set(1, text::parse_scalar_text(&kind, s)?)?;
        }
        _ => return Err("must be a JSON value, not text".into()),
    }
    Ok(msg)
}

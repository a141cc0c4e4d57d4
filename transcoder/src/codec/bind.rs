//! Binding one textual value (a path variable, query parameter or multipart text part) to the
//! field at a dotted path.

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, ReflectMessage as _, Value};

use super::CodecError;
use super::decode::{find_field, wkt_from_text};
use super::text;
use super::wkt::Wkt;

/// Bind one textual value (path variable or query parameter or multipart text part) to the field
/// at a dotted path (`id`, `filter.brand`; each segment matched by JSON name or proto name).
/// Repeated fields append (so `?ids=1&ids=2` works); values parse by the field's type with
/// proto3-JSON rules (ints, floats, bools `true|false|1|0`, enums by our rule / full name /
/// number, Timestamp RFC 3339, wrappers, bytes base64 (standard or url-safe), strings raw).
///
/// `Ok(true)` bound; `Ok(false)` no such field (caller decides to ignore or reject); `Err` names
/// the field by its JSON path: `CodecError{field: Some("id"), message: "must be an integer"}`.
/// Maps and plain message fields exist but cannot take a text value: that is an `Err`.
pub fn bind_value(msg: &mut DynamicMessage, path: &str, raw: &str) -> Result<bool, CodecError> {
    // Resolve the whole path on descriptors first, so that a miss changes nothing.
    let mut fields: Vec<FieldDescriptor> = Vec::new();
    let mut desc = msg.descriptor();
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        let Some(field) = find_field(&desc, segment) else {
            return Ok(false);
        };
        if segments.peek().is_some() {
            // Only singular, plain messages can be walked through.
            match field.kind() {
                Kind::Message(next)
                    if !field.is_list()
                        && !field.is_map()
                        && Wkt::of(next.full_name()).is_none() =>
                {
                    desc = next;
                }
                _ => return Ok(false),
            }
        }
        fields.push(field);
    }
    let Some((leaf, parents)) = fields.split_last() else {
        return Ok(false);
    };
    let json_path = || {
        fields
            .iter()
            .map(FieldDescriptor::json_name)
            .collect::<Vec<_>>()
            .join(".")
    };
    let value = parse_text(leaf, raw).map_err(|m| CodecError::field(json_path(), m))?;

    let mut target = msg;
    for field in parents {
        match target.get_field_mut(field).as_message_mut() {
            Some(sub) => target = sub,
            None => return Ok(false),
        }
    }
    if leaf.is_list() {
        match target.get_field_mut(leaf).as_list_mut() {
            Some(list) => list.push(value),
            None => return Ok(false),
        }
    } else {
        target
            .try_set_field(leaf, value)
            .map_err(|_| CodecError::field(json_path(), "cannot be set from text"))?;
    }
    Ok(true)
}

/// One (list item or singular) value of `field` from text.
fn parse_text(field: &FieldDescriptor, raw: &str) -> Result<Value, String> {
    if field.is_map() {
        return Err("is a map and must be set in the request body".into());
    }
    match field.kind() {
        Kind::Message(desc) => match Wkt::of(desc.full_name()) {
            Some(w) if w.is_scalar() => wkt_from_text(&desc, w, raw).map(Value::Message),
            _ => Err("is an object and must be set in the request body".into()),
        },
        kind => text::parse_scalar_text(&kind, raw),
    }
}

//! The marshaler: protobuf messages (as [`prost_reflect::DynamicMessage`]) to and from the
//! contract's JSON, and textual values (path variables, query parameters, multipart text parts)
//! bound onto message fields.
//!
//! This module owns the JSON *shape* of the REST contract (see `options.proto` for the
//! conventions): lowerCamelCase names, default values emitted, 64-bit integers as JSON numbers,
//! enums by the naming rule, well-known types in their proto3 JSON form, and the `?select=` field
//! selector. It knows nothing about HTTP, routes or any particular service, and it must never
//! panic on client input: every malformed body or value becomes a [`CodecError`] naming the field.
//!
//! * `json`: the encoder, a hand-written walk that streams straight into a `Vec<u8>`.
//! * `decode`: JSON bodies merged into messages, with full-path error reporting.
//! * `bind`: single textual values bound to (nested, repeated) fields by dotted path.
//! * `select`: the `?select=` field selector.
//! * `text`, `wkt`: proto3-JSON text forms of scalars and well-known types, shared by both
//!   directions.
//!
//! Choices the contract leaves open, made here: fields are written in field-number order and map
//! keys sorted (equal messages give equal bytes); enum numbers the descriptor does not define are
//! written as numbers and rejected in requests; out-of-range Timestamps / Durations are written
//! as `null`; an empty selector selects everything.

mod bind;
mod decode;
mod json;
mod select;
mod text;
mod tree;
mod wkt;

use std::borrow::Cow;

use prost_reflect::{DynamicMessage, EnumValueDescriptor, FieldDescriptor};

pub use bind::bind_value;
pub use select::Selector;

/// A body or value that could not be turned into a message, with the JSON path of the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CodecError {
    /// The JSON path of the offending field, e.g. `products[0].quantity`, or `fooBar` for an
    /// unknown field; `None` when the problem is the body as a whole (malformed JSON).
    pub field: Option<String>,
    /// What is wrong, for a human: `must be an integer`, `unknown field`, ...
    pub message: String,
}

impl CodecError {
    /// An error about the field at `field` (a JSON path).
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// An error about the body as a whole.
    pub fn body(message: impl Into<String>) -> Self {
        Self {
            field: None,
            message: message.into(),
        }
    }
}

/// Chosen by Content-Type / Accept; JSON is the only one today.
pub trait Marshaler: Send + Sync + 'static {
    /// The media type this marshaler reads and writes, e.g. `application/json`.
    fn content_type(&self) -> &'static str;

    /// Whole message. `select`: keep only these top-level fields (plus `id` when the message has
    /// one); when the message's only non-scalar content is a repeated message field that is a
    /// list of items (e.g. `{products:[..], total, skip, limit}`), the selector applies to each
    /// item of every repeated message field instead (list responses).
    fn encode_message(&self, msg: &DynamicMessage, select: Option<&Selector>, out: &mut Vec<u8>);

    /// One field of `msg` alone (google.api.http `response_body`): a repeated field becomes a
    /// bare JSON array, a message field a bare object; `select` applies to the object / to each
    /// item.
    fn encode_field(
        &self,
        msg: &DynamicMessage,
        field: &FieldDescriptor,
        select: Option<&Selector>,
        out: &mut Vec<u8>,
    );

    /// Merge a JSON body into `msg` (for body "*"), or into the sub-message / field `field` when
    /// Some (body: "name").
    fn decode(
        &self,
        body: &[u8],
        msg: &mut DynamicMessage,
        field: Option<&FieldDescriptor>,
    ) -> Result<(), CodecError>;
}

/// The JSON marshaler (`application/json`) in the contract's shape.
///
/// List responses (for the selector) are recognised from the descriptor: no `id` field, at least
/// one repeated message field, and nothing else but scalars. A message with an `id` is always a
/// single object, so an order's line items are never mistaken for a list of results.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonMarshaler;

impl Marshaler for JsonMarshaler {
    fn content_type(&self) -> &'static str {
        "application/json"
    }

    fn encode_message(&self, msg: &DynamicMessage, select: Option<&Selector>, out: &mut Vec<u8>) {
        json::encode_message(msg, select, out);
    }

    fn encode_field(
        &self,
        msg: &DynamicMessage,
        field: &FieldDescriptor,
        select: Option<&Selector>,
        out: &mut Vec<u8>,
    ) {
        json::encode_field(msg, field, select, out);
    }

    fn decode(
        &self,
        body: &[u8],
        msg: &mut DynamicMessage,
        field: Option<&FieldDescriptor>,
    ) -> Result<(), CodecError> {
        decode::decode(body, msg, field)
    }
}

/// JSON name of an enum value by the rule in options.proto (`ORDER_STATUS_PENDING` of
/// `OrderStatus` -> "pending"). Used by the OpenAPI generator too.
pub fn enum_value_json_name(v: &EnumValueDescriptor) -> Cow<'_, str> {
    let suffix = text::enum_value_suffix(v.parent_enum().name(), v.name());
    if suffix.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(suffix.to_ascii_lowercase())
    } else {
        Cow::Borrowed(suffix)
    }
}

/// True for the zero value that means "unset" (number 0): omitted from responses, and what an
/// absent field means in requests.
pub fn is_unset_enum_value(v: &EnumValueDescriptor) -> bool {
    v.number() == 0
}

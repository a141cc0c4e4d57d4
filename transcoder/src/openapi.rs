//! The OpenAPI 3.1 document of the REST edge.
//!
//! This module owns describing, from the same [`RouteTable`] the edge serves and
//! the descriptors behind it, every route as an OpenAPI operation: path and
//! query parameters, request and response bodies, the success status, the
//! response headers and the error shape. The schemas follow the codec's JSON
//! rules (see `transcoder/v1/options.proto`): lowerCamelCase field names,
//! 64-bit integers as JSON numbers, enums as strings named by the enum rule
//! (zero value left out), well-known types in their proto3 JSON form.
//!
//! Messages get two component schemas: `pkg.Message` describes responses, where
//! the codec writes every field without presence (so those are `required`), and
//! `pkg.Message-Input` describes requests, where any field may be left out.
//! Enums are one component each, `pkg.Enum`.
//!
//! Paths are the base path followed by the route's template with each
//! variable as a parameter (see [`document`] for multi-segment variables).
//!
//! It never serves the document and never changes what is routed: a route the
//! table has is documented exactly once, except for custom methods OpenAPI 3.1
//! cannot express (anything but GET, PUT, POST, DELETE, OPTIONS, HEAD, PATCH
//! and TRACE), which are left out.

use std::collections::{BTreeMap, HashMap, HashSet};

use http::Method;
use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::codec::{enum_value_json_name, is_unset_enum_value};
use crate::routes::{BodyRule, Route, RouteTable};
use crate::template::Segment;

/// The `info` object of the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenApiInfo {
    /// The API's title.
    pub title: String,
    /// The API's version (of the document, not of OpenAPI).
    pub version: String,
}

/// The component name of the error body every operation answers with on failure.
const ERROR_SCHEMA: &str = "Error";
const HTTP_BODY: &str = "google.api.HttpBody";

/// Builds the OpenAPI 3.1 document of `table`, with `base_path` (such as `/api/v1`) prefixed to
/// every path.
///
/// A variable of one `*` or `**` is written `{field.path}` (`/products/{id}`, `/files/{path}`).
/// A variable spanning several segments is written out, its literals in the path and each of
/// its wildcards a parameter: `/v1/{name=shelves/*/books/*}` is documented as
/// `/v1/shelves/{name_1}/books/{name_2}` and `/v1/{name=operations/**}` as
/// `/v1/operations/{name}`. OpenAPI clients percent-encode `/` in parameters, so this is the
/// form they can call, and it keeps such routes from sharing a path.
pub fn document(table: &RouteTable, base_path: &str, info: &OpenApiInfo) -> Value {
    let base = base_path.trim_end_matches('/');
    let base = if base.is_empty() || base.starts_with('/') {
        base.to_owned()
    } else {
        format!("/{base}")
    };
    let mut schemas = Schemas::default();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut operation_ids = HashSet::new();
    let mut bindings: HashMap<String, usize> = HashMap::new();
    let mut tags: Vec<Value> = Vec::new();

    for route in table.routes() {
        let binding = bindings
            .entry(route.rpc.full_name().to_owned())
            .or_insert(0);
        *binding += 1;
        let Some(key) = operation_key(&route.method) else {
            continue;
        };
        let service = route.rpc.parent_service();
        if !tags.iter().any(|t| t["name"] == service.name()) {
            tags.push(json!({ "name": service.name(), "description": service.full_name() }));
        }
        let mut id = format!("{}_{}", service.name(), route.rpc.name());
        if *binding > 1 {
            id.push_str(&binding.to_string());
        }
        let mut unique = id.clone();
        let mut n = 1;
        while !operation_ids.insert(unique.clone()) {
            n += 1;
            unique = format!("{id}_{n}");
        }
        let (path, mut params) = openapi_path(route);
        let mut path = match (base.as_str(), path.as_str()) {
            ("", path) => path.to_owned(),
            (base, "/") => base.to_owned(),
            (base, path) => format!("{base}{path}"),
        };
        // Two routes can still share an OpenAPI path (`/f/{p}` and `/f/{p=**}`); rename the
        // later one's last parameter rather than lose an operation.
        if let Some(last) = params.last_mut() {
            let original = last.name.clone();
            let mut n = 1;
            while paths.get(&path).is_some_and(|item| item.contains_key(key)) {
                n += 1;
                let renamed = format!("{original}_alt{n}");
                path = path.replace(&format!("{{{}}}", last.name), &format!("{{{renamed}}}"));
                last.name = renamed;
            }
        }
        let operation = operation(route, &unique, &params, &mut schemas);
        paths
            .entry(path)
            .or_default()
            .insert(key.to_owned(), operation);
    }

    let mut components = schemas.finish();
    components.insert(ERROR_SCHEMA.to_owned(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": { "title": info.title, "version": info.version },
        "tags": tags,
        "paths": paths,
        "components": { "schemas": components },
    })
}

/// The path item key of a method, `None` for methods OpenAPI 3.1 has no field for.
fn operation_key(method: &Method) -> Option<&'static str> {
    Some(match *method {
        Method::GET => "get",
        Method::PUT => "put",
        Method::POST => "post",
        Method::DELETE => "delete",
        Method::OPTIONS => "options",
        Method::HEAD => "head",
        Method::PATCH => "patch",
        Method::TRACE => "trace",
        _ => return None,
    })
}

/// A path parameter of an operation.
struct PathParam {
    /// The name in the path template.
    name: String,
    /// The field it fills on its own (a variable of exactly one `*`), for a typed schema.
    field: Option<Vec<String>>,
    description: Option<String>,
}

/// The OpenAPI path of a route and its path parameters.
///
/// A variable of one `*` or `**` is `{field.path}`. A variable spanning several segments is
/// written out: its literals stay literal and each wildcard becomes a parameter (`{name}`, or
/// `{name_1}`, `{name_2}`, ... for several), so `/v1/{name=shelves/*/books/*}` is
/// `/v1/shelves/{name_1}/books/{name_2}`. That keeps the paths of such routes distinct and lets
/// OpenAPI clients, which percent-encode `/` in parameters, call them. A wildcard outside any
/// variable becomes `{wildcard1}`, `{wildcard2}`, ...
fn openapi_path(route: &Route) -> (String, Vec<PathParam>) {
    let template = &route.template;
    let mut path = String::new();
    let mut params = Vec::new();
    let mut anonymous = 0;
    let mut vars = template.variables().iter().peekable();
    let mut i = 0;
    while i < template.segments().len() {
        if let Some(var) = vars.next_if(|v| v.segments.start == i) {
            let segments = &template.segments()[var.segments.clone()];
            let dotted = var.dotted();
            let wildcards = segments
                .iter()
                .filter(|s| !matches!(s, Segment::Literal(_)))
                .count();
            let mut shape = Vec::new();
            let mut n = 0;
            for segment in segments {
                path.push('/');
                match segment {
                    Segment::Literal(literal) => {
                        path.push_str(literal);
                        shape.push(literal.clone());
                    }
                    Segment::Wildcard | Segment::DoubleWildcard => {
                        n += 1;
                        let name = if wildcards == 1 {
                            dotted.clone()
                        } else {
                            format!("{dotted}_{n}")
                        };
                        path.push_str(&format!("{{{name}}}"));
                        shape.push(format!("{{{name}}}"));
                        params.push(PathParam {
                            name,
                            field: None,
                            description: None,
                        });
                    }
                }
            }
            if segments == [Segment::Wildcard] {
                if let Some(param) = params.last_mut() {
                    param.field = Some(var.field_path.clone());
                }
            } else {
                let shape = shape.join("/");
                let deep = matches!(segments.last(), Some(Segment::DoubleWildcard));
                for param in params.iter_mut().rev().take(wildcards) {
                    let mut text = format!("Part of the field `{dotted}`, which is `{shape}`.");
                    if deep && shape.ends_with(&format!("{{{}}}", param.name)) {
                        text.push_str(" This part may span several segments.");
                    }
                    param.description = Some(text);
                }
            }
            i = var.segments.end;
            continue;
        }
        path.push('/');
        match &template.segments()[i] {
            Segment::Literal(literal) => path.push_str(literal),
            Segment::Wildcard | Segment::DoubleWildcard => {
                anonymous += 1;
                let name = format!("wildcard{anonymous}");
                path.push_str(&format!("{{{name}}}"));
                let description = "An unnamed wildcard of the route, bound to no field.".to_owned();
                params.push(PathParam {
                    name,
                    field: None,
                    description: Some(description),
                });
            }
        }
        i += 1;
    }
    if path.is_empty() {
        path.push('/');
    }
    if let Some(verb) = template.verb() {
        path.push(':');
        path.push_str(verb);
    }
    (path, params)
}

fn operation(
    route: &Route,
    operation_id: &str,
    path_params: &[PathParam],
    schemas: &mut Schemas,
) -> Value {
    let input = route.rpc.input();
    let mut parameters = Vec::new();
    for param in path_params {
        let field = param.field.as_ref().and_then(|path| resolve(&input, path));
        let schema = match field {
            Some(field) => schemas.singular(&field, Variant::Input),
            None => json!({ "type": "string" }),
        };
        let mut parameter =
            json!({ "name": param.name, "in": "path", "required": true, "schema": schema });
        if let Some(description) = &param.description {
            parameter["description"] = json!(description);
        }
        parameters.push(parameter);
    }
    let bound: Vec<Vec<String>> = route
        .template
        .variables()
        .iter()
        .map(|v| v.field_path.clone())
        .collect();
    match &route.body {
        BodyRule::Whole => {}
        BodyRule::None => query_parameters(&input, &bound, None, schemas, &mut parameters),
        BodyRule::Field(body) => {
            query_parameters(&input, &bound, Some(body), schemas, &mut parameters)
        }
    }

    let service = route.rpc.parent_service();
    let mut operation = json!({
        "operationId": operation_id,
        "tags": [service.name()],
        "summary": format!("{}.{}", service.name(), route.rpc.name()),
        "parameters": parameters,
        "responses": responses(route, schemas),
    });
    let request_body = match &route.body {
        BodyRule::None => None,
        BodyRule::Whole if input.full_name() == HTTP_BODY => Some(binary_content()),
        BodyRule::Whole => Some(json_content(schemas.message_ref(&input, Variant::Input))),
        BodyRule::Field(field) => Some(match field.kind() {
            Kind::Message(m) if m.full_name() == HTTP_BODY && !field.is_list() => binary_content(),
            _ => json_content(schemas.field(field, Variant::Input)),
        }),
    };
    if let Some(mut content) = request_body {
        let target = match &route.body {
            BodyRule::Field(field) if !field.is_list() && !field.is_map() => match field.kind() {
                Kind::Message(m) => Some(m),
                _ => None,
            },
            BodyRule::Field(_) | BodyRule::None => None,
            BodyRule::Whole => Some(input.clone()),
        };
        if let Some(form) = target.and_then(|t| multipart_content(&t, schemas)) {
            content["multipart/form-data"] = form;
        }
        operation["requestBody"] = json!({ "content": content });
    }
    operation
}

/// The `multipart/form-data` form of a body message that has a singular `bytes` field, by the
/// convention in `options.proto`: such a field is a file part of the same name, whose content
/// type and file name fill the sibling fields `x_content_type` and `x_filename` (so those are
/// not parts); the other scalar fields are text parts.
fn multipart_content(target: &MessageDescriptor, schemas: &mut Schemas) -> Option<Value> {
    let is_file = |f: &FieldDescriptor| matches!(f.kind(), Kind::Bytes) && !f.is_list();
    let files: Vec<FieldDescriptor> = target.fields().filter(is_file).collect();
    if files.is_empty() {
        return None;
    }
    let mut properties = Map::new();
    let mut encoding = Map::new();
    for field in target.fields() {
        if is_file(&field) {
            let schema =
                json!({ "type": "string", "contentMediaType": "application/octet-stream" });
            properties.insert(field.name().to_owned(), schema);
            encoding.insert(field.name().to_owned(), json!({ "contentType": "*/*" }));
            continue;
        }
        let sibling = files.iter().any(|file| {
            field.name() == format!("{}_content_type", file.name())
                || field.name() == format!("{}_filename", file.name())
        });
        let text = !field.is_map() && !matches!(field.kind(), Kind::Message(_));
        if text && !sibling {
            properties.insert(
                field.json_name().to_owned(),
                schemas.field(&field, Variant::Input),
            );
        }
    }
    Some(json!({
        "schema": { "type": "object", "properties": properties },
        "encoding": encoding,
    }))
}

/// `responses`: the success status with its body and headers, and `default` with the error.
fn responses(route: &Route, schemas: &mut Schemas) -> Value {
    let status = route.success_status;
    let mut success = json!({ "description": status.canonical_reason().unwrap_or("Success") });
    if status != http::StatusCode::NO_CONTENT {
        let content = match &route.response_body {
            Some(field) => match field.kind() {
                Kind::Message(m) if m.full_name() == HTTP_BODY && !field.is_list() => {
                    binary_content()
                }
                _ => json_content(schemas.field(field, Variant::Output)),
            },
            None if route.rpc.output().full_name() == HTTP_BODY => binary_content(),
            None => json_content(schemas.message_ref(&route.rpc.output(), Variant::Output)),
        };
        success["content"] = content;
    }
    if !route.response_headers.is_empty() {
        let headers: Map<String, Value> = route
            .response_headers
            .iter()
            .map(|h| {
                let header = json!({
                    "description": "Copied from the gRPC response metadata of the same name.",
                    "schema": { "type": "string" },
                });
                (h.as_str().to_owned(), header)
            })
            .collect();
        success["headers"] = Value::Object(headers);
    }
    json!({
        status.as_str(): success,
        "default": {
            "description": "An error, in the shape shared by every endpoint.",
            "content": { "application/json": { "schema": { "$ref": schema_ref(ERROR_SCHEMA) } } },
        },
    })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn binary_content() -> Value {
    json!({ "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } })
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "message": { "type": "string" },
            "status": { "type": "integer", "format": "int32" },
            "code": { "type": "string" },
            "details": { "type": "object" },
        },
        "required": ["message", "status", "code"],
    })
}

/// The field a dotted path names, if it exists.
fn resolve(message: &MessageDescriptor, path: &[String]) -> Option<FieldDescriptor> {
    let (last, parents) = path.split_last()?;
    let mut message = message.clone();
    for name in parents {
        match message.get_field_by_name(name)?.kind() {
            Kind::Message(m) => message = m,
            _ => return None,
        }
    }
    message.get_field_by_name(last)
}

/// Query parameters: the request's scalar, enum and repeated-scalar fields not bound by the path
/// or the body, nested messages flattened with dots (JSON names), recursion cut at a repeat.
fn query_parameters(
    input: &MessageDescriptor,
    bound: &[Vec<String>],
    body: Option<&FieldDescriptor>,
    schemas: &mut Schemas,
    out: &mut Vec<Value>,
) {
    struct Walk<'a> {
        bound: &'a [Vec<String>],
        body: Option<&'a FieldDescriptor>,
        stack: Vec<String>,
        proto_path: Vec<String>,
        json_path: Vec<String>,
    }
    fn visit(
        walk: &mut Walk<'_>,
        message: &MessageDescriptor,
        schemas: &mut Schemas,
        out: &mut Vec<Value>,
    ) {
        walk.stack.push(message.full_name().to_owned());
        for field in message.fields() {
            if walk.proto_path.is_empty() && walk.body == Some(&field) {
                continue;
            }
            walk.proto_path.push(field.name().to_owned());
            walk.json_path.push(field.json_name().to_owned());
            let is_bound = walk.bound.contains(&walk.proto_path);
            let schema = match field.kind() {
                _ if is_bound || field.is_map() => None,
                Kind::Message(m) => match query_scalar_message(&m) {
                    Some(schema) if field.is_list() => {
                        Some(json!({ "type": "array", "items": schema }))
                    }
                    Some(schema) => Some(schema),
                    None if !field.is_list()
                        && !is_well_known(&m)
                        && !walk.stack.iter().any(|s| s == m.full_name()) =>
                    {
                        visit(walk, &m, schemas, out);
                        None
                    }
                    None => None,
                },
                Kind::Enum(e) if e.full_name() == "google.protobuf.NullValue" => None,
                _ => Some(schemas.field(&field, Variant::Input)),
            };
            if let Some(schema) = schema {
                out.push(json!({
                    "name": walk.json_path.join("."),
                    "in": "query",
                    "required": false,
                    "schema": schema,
                }));
            }
            walk.proto_path.pop();
            walk.json_path.pop();
        }
        walk.stack.pop();
    }
    let mut walk = Walk {
        bound,
        body,
        stack: Vec::new(),
        proto_path: Vec::new(),
        json_path: Vec::new(),
    };
    visit(&mut walk, input, schemas, out);
}

/// Well-known messages that are written as one JSON scalar, and so can be query parameters.
fn query_scalar_message(message: &MessageDescriptor) -> Option<Value> {
    match message.full_name() {
        "google.protobuf.Timestamp" | "google.protobuf.Duration" | "google.protobuf.FieldMask" => {
            Some(well_known(message).unwrap_or_else(|| json!({ "type": "string" })))
        }
        name if name.starts_with("google.protobuf.") && name.ends_with("Value") => match name {
            "google.protobuf.Value" | "google.protobuf.ListValue" => None,
            _ => well_known(message),
        },
        _ => None,
    }
}

fn is_well_known(message: &MessageDescriptor) -> bool {
    well_known(message).is_some()
}

/// The proto3 JSON schema of a well-known message type, `None` for other messages.
fn well_known(message: &MessageDescriptor) -> Option<Value> {
    let scalar = |kind: Kind| scalar_schema(&kind);
    Some(match message.full_name() {
        "google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
        "google.protobuf.Duration" => {
            json!({ "type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$" })
        }
        "google.protobuf.FieldMask" => json!({ "type": "string" }),
        "google.protobuf.Struct" => json!({ "type": "object" }),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({ "type": "array" }),
        "google.protobuf.Empty" => json!({ "type": "object" }),
        "google.protobuf.Any" => json!({
            "type": "object",
            "properties": { "@type": { "type": "string" } },
            "required": ["@type"],
        }),
        "google.protobuf.DoubleValue" => scalar(Kind::Double),
        "google.protobuf.FloatValue" => scalar(Kind::Float),
        "google.protobuf.Int64Value" => scalar(Kind::Int64),
        "google.protobuf.UInt64Value" => scalar(Kind::Uint64),
        "google.protobuf.Int32Value" => scalar(Kind::Int32),
        "google.protobuf.UInt32Value" => scalar(Kind::Uint32),
        "google.protobuf.BoolValue" => scalar(Kind::Bool),
        "google.protobuf.StringValue" => scalar(Kind::String),
        "google.protobuf.BytesValue" => scalar(Kind::Bytes),
        _ => return None,
    })
}

/// The schema of a scalar kind (not message or enum).
fn scalar_schema(kind: &Kind) -> Value {
    match kind {
        Kind::Double => json!({ "type": "number", "format": "double" }),
        Kind::Float => json!({ "type": "number", "format": "float" }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({ "type": "integer", "format": "int32" })
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            json!({ "type": "integer", "format": "int64" })
        }
        Kind::Uint32 | Kind::Fixed32 => {
            json!({ "type": "integer", "format": "uint32", "minimum": 0 })
        }
        Kind::Uint64 | Kind::Fixed64 => {
            json!({ "type": "integer", "format": "uint64", "minimum": 0 })
        }
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::String => json!({ "type": "string" }),
        Kind::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
        Kind::Message(_) | Kind::Enum(_) => json!({}),
    }
}

fn schema_ref(name: &str) -> String {
    format!("#/components/schemas/{name}")
}

/// Which side of the wire a message schema describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Variant {
    /// Requests: nothing required.
    Input,
    /// Responses: the fields the codec always writes are required.
    Output,
}

/// The component schemas referenced so far, generated on [`Schemas::finish`].
#[derive(Default)]
struct Schemas {
    messages: BTreeMap<(String, Variant), MessageDescriptor>,
    enums: BTreeMap<String, EnumDescriptor>,
}

impl Schemas {
    /// A `$ref` to the component of a message (or the inline schema of a well-known type).
    fn message_ref(&mut self, message: &MessageDescriptor, variant: Variant) -> Value {
        if let Some(schema) = well_known(message) {
            return schema;
        }
        let key = match variant {
            Variant::Input => format!("{}-Input", message.full_name()),
            Variant::Output => message.full_name().to_owned(),
        };
        let reference = schema_ref(&key);
        self.messages
            .entry((key, variant))
            .or_insert_with(|| message.clone());
        json!({ "$ref": reference })
    }

    /// The schema of one value of a field (an element, for repeated fields).
    fn singular(&mut self, field: &FieldDescriptor, variant: Variant) -> Value {
        match field.kind() {
            Kind::Message(m) => self.message_ref(&m, variant),
            Kind::Enum(e) if e.full_name() == "google.protobuf.NullValue" => {
                json!({ "type": "null" })
            }
            Kind::Enum(e) => {
                let reference = schema_ref(e.full_name());
                self.enums.entry(e.full_name().to_owned()).or_insert(e);
                json!({ "$ref": reference })
            }
            kind => scalar_schema(&kind),
        }
    }

    /// The schema of a field's JSON value: arrays for repeated, objects for maps.
    fn field(&mut self, field: &FieldDescriptor, variant: Variant) -> Value {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                return json!({ "type": "object" });
            };
            let value = self.singular(&entry.map_entry_value_field(), variant);
            json!({ "type": "object", "additionalProperties": value })
        } else if field.is_list() {
            json!({ "type": "array", "items": self.singular(field, variant) })
        } else {
            self.singular(field, variant)
        }
    }

    /// Generates every referenced component, following references until none are new.
    fn finish(mut self) -> Map<String, Value> {
        let mut out = Map::new();
        let mut done = HashSet::new();
        loop {
            let pending: Vec<_> = self
                .messages
                .iter()
                .filter(|(key, _)| !done.contains(*key))
                .map(|(key, m)| (key.clone(), m.clone()))
                .collect();
            if pending.is_empty() {
                break;
            }
            for (key, message) in pending {
                let schema = self.message_schema(&message, key.1);
                out.insert(key.0.clone(), schema);
                done.insert(key);
            }
        }
        for (name, e) in &self.enums {
            out.insert(name.clone(), enum_schema(e));
        }
        out
    }

    fn message_schema(&mut self, message: &MessageDescriptor, variant: Variant) -> Value {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for field in message.fields() {
            properties.insert(field.json_name().to_owned(), self.field(&field, variant));
            // The codec writes every field without presence, except a singular enum at its zero
            // value, which it omits (options.proto).
            let singular_enum = matches!(field.kind(), Kind::Enum(_)) && !field.is_list();
            if variant == Variant::Output && !field.supports_presence() && !singular_enum {
                required.push(field.json_name().to_owned());
            }
        }
        let mut schema =
            json!({ "type": "object", "title": message.name(), "properties": properties });
        if !required.is_empty() {
            schema["required"] = json!(required);
        }
        schema
    }
}

fn enum_schema(e: &EnumDescriptor) -> Value {
    let mut names: Vec<String> = Vec::new();
    for value in e.values().filter(|v| !is_unset_enum_value(v)) {
        let name = enum_value_json_name(&value).into_owned();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let mut schema = json!({ "type": "string", "title": e.name() });
    if !names.is_empty() {
        schema["enum"] = json!(names);
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_keys_cover_the_openapi_methods_only() {
        assert_eq!(operation_key(&Method::GET), Some("get"));
        assert_eq!(operation_key(&Method::HEAD), Some("head"));
        assert_eq!(operation_key(&Method::from_bytes(b"PURGE").unwrap()), None);
    }
}

//! The route table: which RPC serves a REST request.
//!
//! This module owns turning the `google.api.http` rules (and the
//! `(transcoder.v1.rest)` options beside them) of every method in a
//! [`DescriptorPool`] into a [`RouteTable`], once at start-up, and matching a
//! request's method and path against it. Every check that can be done on the
//! descriptors alone is done here, so a bad rule stops the start rather than a
//! request: templates parse, body and response fields exist, path variables
//! name scalar fields, and no two rules collide.
//!
//! Matching rules (after grpc-gateway's runtime and the `google.api.http` spec):
//!
//! * The templates are compiled into a trie over path segments. At each
//!   segment a literal wins over `*`, and `*` over `**`; if the preferred
//!   branch fails further on, the next one is tried, so `/products/search`
//!   and `/products/categories` are never captured by `/products/{id}` while
//!   `/products/42` still is.
//! * A `:verb` suffix is only split off the last segment for a route that
//!   declares that verb; elsewhere `:` is an ordinary character.
//! * Paths are strict: an empty segment (`//`, or a trailing `/`) matches
//!   nothing, so `/products/` is a 404 even when `/products` exists. The root
//!   path is `/` (or the empty string, what is left after stripping a base path).
//! * Single-segment variables are percent-decoded fully (`%2F` becomes `/`);
//!   variables spanning several segments keep `%2F` and `%2f` as they are, as
//!   the spec says. A malformed escape anywhere in the path is a
//!   [`RouteMatch::BadPath`]; so is a variable that does not decode to UTF-8.
//! * The method is part of the match: the best route for the request's
//!   method wins (`DELETE /products/search` reaches `DELETE /products/{id}`
//!   when only `GET` has the literal route). `HEAD` is served by `HEAD` and
//!   `GET` routes alike, the most specific path first, an explicit `HEAD`
//!   route before a `GET` route of the same template. A path served only
//!   with other methods is [`RouteMatch::MethodNotAllowed`] with the `Allow`
//!   list.
//!
//! It never converts messages or calls upstreams.

use std::collections::HashMap;

use http::{HeaderName, Method, StatusCode};
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor,
    Value,
};

use crate::template::{PathTemplate, Segment, TemplateError};

/// Full name of the `google.api.http` method option.
const HTTP_OPTION: &str = "google.api.http";
/// Full name of the transcoder's own method option.
const REST_OPTION: &str = "transcoder.v1.rest";

/// One REST binding of an RPC: a `google.api.http` rule or one of its `additional_bindings`.
#[derive(Clone, Debug)]
pub struct Route {
    /// The HTTP method (`custom` rules give any method, e.g. `HEAD`).
    pub method: Method,
    /// The parsed path template.
    pub template: PathTemplate,
    /// The template as written in the proto, e.g. `/products/{id}`.
    pub pattern: String,
    /// The RPC the route calls.
    pub rpc: MethodDescriptor,
    /// Where the request message comes from besides path and query.
    pub body: BodyRule,
    /// The response field written as the whole HTTP body (`response_body`), if any.
    pub response_body: Option<FieldDescriptor>,
    /// The status of a successful response (`(transcoder.v1.rest).success_status`, default 200).
    pub success_status: StatusCode,
    /// Response metadata keys copied to HTTP headers (`(transcoder.v1.rest).response_headers`).
    pub response_headers: Vec<HeaderName>,
}

/// The `body` of an HTTP rule.
#[derive(Clone, Debug)]
pub enum BodyRule {
    /// No body: every field not bound by the path comes from the query.
    None,
    /// `body: "*"`: the body is the request message; the path binds the rest.
    Whole,
    /// `body: "field"`: the body is that top-level field of the request message.
    Field(FieldDescriptor),
}

/// The result of [`RouteTable::match_request`].
#[derive(Debug)]
pub enum RouteMatch<'a> {
    /// A route serves the request.
    Found {
        /// The route.
        route: &'a Route,
        /// The path variables as (dotted field path, percent-decoded value), in template order.
        vars: Vec<(String, String)>,
    },
    /// The path matches some route, not with this method (HTTP 405).
    MethodNotAllowed {
        /// The methods the path is served with, in a stable order (`HEAD` listed with `GET`).
        allow: Vec<Method>,
    },
    /// No route matches the path (HTTP 404).
    NotFound,
    /// The path cannot be decoded (HTTP 400).
    BadPath {
        /// What is wrong, for the client.
        message: String,
    },
}

/// Why a route table cannot be built from a descriptor pool. Each is a start-up error.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// A path template does not parse.
    #[error("{rpc}: {source}")]
    Template {
        /// Full name of the RPC.
        rpc: String,
        /// The parse error.
        #[source]
        source: TemplateError,
    },
    /// An HTTP rule without a pattern (`get`, `post`, ...).
    #[error("{rpc}: google.api.http rule has no pattern")]
    MissingPattern {
        /// Full name of the RPC.
        rpc: String,
    },
    /// A `custom` kind that is not an HTTP method token.
    #[error("{rpc}: invalid custom HTTP method {kind:?}")]
    InvalidMethod {
        /// Full name of the RPC.
        rpc: String,
        /// The kind as written.
        kind: String,
    },
    /// `additional_bindings` inside an additional binding, which the spec forbids.
    #[error("{rpc}: additional_bindings must not contain additional_bindings")]
    NestedAdditionalBindings {
        /// Full name of the RPC.
        rpc: String,
    },
    /// A body on a method that has none (GET, HEAD).
    #[error("{rpc}: {method} {pattern} must not have a body")]
    BodyNotAllowed {
        /// Full name of the RPC.
        rpc: String,
        /// The HTTP method.
        method: Method,
        /// The pattern.
        pattern: String,
    },
    /// `body` or `response_body` names a field the message does not have.
    #[error("{rpc}: {what} field `{field}` is not a field of {message}")]
    UnknownField {
        /// Full name of the RPC.
        rpc: String,
        /// `body` or `response_body`.
        what: &'static str,
        /// The field name as written.
        field: String,
        /// Full name of the message searched.
        message: String,
    },
    /// A path variable that does not name a (nested) scalar field of the request.
    #[error("{rpc}: path variable `{field}` of {pattern}: {reason}")]
    BadVariable {
        /// Full name of the RPC.
        rpc: String,
        /// The pattern.
        pattern: String,
        /// The dotted field path.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `success_status` outside 200..=299.
    #[error("{rpc}: (transcoder.v1.rest).success_status {status} is not a 2xx status")]
    InvalidSuccessStatus {
        /// Full name of the RPC.
        rpc: String,
        /// The status as written.
        status: i32,
    },
    /// A `response_headers` entry that is not a valid header name.
    #[error(
        "{rpc}: (transcoder.v1.rest).response_headers entry {header:?} is not a valid header name"
    )]
    InvalidResponseHeader {
        /// Full name of the RPC.
        rpc: String,
        /// The entry as written.
        header: String,
    },
    /// Two rules with the same method and equivalent templates.
    #[error(
        "route collision: {method} {first_pattern} ({first_rpc}) and {method} {second_pattern} ({second_rpc}) match the same requests"
    )]
    Collision {
        /// The HTTP method of both.
        method: Method,
        /// Full name of the RPC of the first rule.
        first_rpc: String,
        /// The first rule's pattern.
        first_pattern: String,
        /// Full name of the RPC of the second rule.
        second_rpc: String,
        /// The second rule's pattern.
        second_pattern: String,
    },
}

/// All routes of a descriptor pool, compiled for matching. Built once at start-up.
#[derive(Clone, Debug)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// The trie; `nodes[0]` is the root (no segment consumed).
    nodes: Vec<Node>,
    /// Every verb some route declares, longest first.
    verbs: Vec<Box<str>>,
}

#[derive(Clone, Debug, Default)]
struct Node {
    /// Children by literal segment, percent-decoded, sorted by bytes.
    literals: Vec<(Box<[u8]>, usize)>,
    /// The child for `*`.
    wildcard: Option<usize>,
    /// Routes whose template ends at this node.
    ends: Vec<Terminal>,
    /// Routes whose last segment is a `**` starting at this node.
    deep: Vec<Terminal>,
}

#[derive(Clone, Debug)]
struct Terminal {
    verb: Option<Box<str>>,
    method: Method,
    route: usize,
}

impl RouteTable {
    /// Every method of every service in `pool` that has a `google.api.http` option (including
    /// `additional_bindings`, and the `custom` kind), with `(transcoder.v1.rest)` options read
    /// when present (`success_status` default 200). Body and response_body field names are
    /// checked against the messages; a variable's field path must exist and be a scalar (or
    /// nested scalar). Two rules with the same method and an equivalent template (same shape,
    /// variables renamed counts as equal) are an error naming both RPCs and patterns.
    ///
    /// The pool must come from an encoded descriptor set (e.g. `DescriptorPool::decode`) so the
    /// option extensions survive. A pool without `google/api/annotations.proto` has no routes.
    pub fn from_pool(pool: &DescriptorPool) -> Result<RouteTable, RouteError> {
        let mut routes = Vec::new();
        if let Some(http) = pool.get_extension_by_name(HTTP_OPTION) {
            let rest = pool.get_extension_by_name(REST_OPTION);
            for service in pool.services() {
                for rpc in service.methods() {
                    let options = rpc.options();
                    if !options.has_extension(&http) {
                        continue;
                    }
                    let rest_options = rest.as_ref().and_then(|rest| {
                        options
                            .has_extension(rest)
                            .then(|| options.get_extension(rest).into_owned())
                    });
                    let extras =
                        RestExtras::read(&rpc, rest_options.as_ref().and_then(Value::as_message))?;
                    let rule = options.get_extension(&http);
                    let Some(rule) = rule.as_message() else {
                        continue;
                    };
                    read_rule(&rpc, rule, &extras, false, &mut routes)?;
                }
            }
        }
        RouteTable::from_routes(routes)
    }

    /// Compiles routes into a table, rejecting collisions.
    fn from_routes(routes: Vec<Route>) -> Result<RouteTable, RouteError> {
        let mut seen: HashMap<(Method, String), usize> = HashMap::new();
        let mut table = RouteTable {
            routes: Vec::new(),
            nodes: vec![Node::default()],
            verbs: Vec::new(),
        };
        for (index, route) in routes.iter().enumerate() {
            if let Some(&first) = seen.get(&(route.method.clone(), shape(&route.template))) {
                let first = &routes[first];
                return Err(RouteError::Collision {
                    method: route.method.clone(),
                    first_rpc: first.rpc.full_name().to_owned(),
                    first_pattern: first.pattern.clone(),
                    second_rpc: route.rpc.full_name().to_owned(),
                    second_pattern: route.pattern.clone(),
                });
            }
            seen.insert((route.method.clone(), shape(&route.template)), index);
            table.insert(index, route);
        }
        table
            .verbs
            .sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        table.verbs.dedup();
        table.routes = routes;
        Ok(table)
    }

    fn insert(&mut self, index: usize, route: &Route) {
        let mut node = 0;
        let terminal = Terminal {
            verb: route.template.verb().map(Into::into),
            method: route.method.clone(),
            route: index,
        };
        if let Some(verb) = route.template.verb() {
            self.verbs.push(verb.into());
        }
        for segment in route.template.segments() {
            node = match segment {
                Segment::Literal(literal) => {
                    let key = decode_literal(literal);
                    match self.nodes[node]
                        .literals
                        .binary_search_by(|(k, _)| (**k).cmp(&*key))
                    {
                        Ok(i) => self.nodes[node].literals[i].1,
                        Err(i) => {
                            let child = self.new_node();
                            self.nodes[node].literals.insert(i, (key.into(), child));
                            child
                        }
                    }
                }
                Segment::Wildcard => match self.nodes[node].wildcard {
                    Some(child) => child,
                    None => {
                        let child = self.new_node();
                        self.nodes[node].wildcard = Some(child);
                        child
                    }
                },
                Segment::DoubleWildcard => {
                    // `**` is always last (the parser guarantees it).
                    let deep = &mut self.nodes[node].deep;
                    deep.push(terminal);
                    deep.sort_by_key(|t| t.method != Method::HEAD);
                    return;
                }
            };
        }
        let ends = &mut self.nodes[node].ends;
        ends.push(terminal);
        ends.sort_by_key(|t| t.method != Method::HEAD);
    }

    fn new_node(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.nodes.len() - 1
    }

    /// Every route, in descriptor order (services, then methods, then bindings).
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Finds the route for a request. `path` is the raw (percent-encoded) request path with the
    /// base path already stripped, no query string. See the module documentation for the rules.
    pub fn match_request(&self, method: &Method, path: &str) -> RouteMatch<'_> {
        if let Some(position) = bad_escape(path) {
            return RouteMatch::BadPath {
                message: format!("malformed percent escape at byte {position} of the path"),
            };
        }
        let body = match path {
            "" | "/" => None,
            _ => match path.strip_prefix('/') {
                Some(body) => Some(body),
                None => return RouteMatch::NotFound,
            },
        };
        // HEAD is served by GET routes too; terminal lists put HEAD routes first, so an explicit
        // HEAD route wins over a GET route of the same template.
        let head = *method == Method::HEAD;
        let found = self.find(body, &mut |t| {
            t.method == *method || (head && t.method == Method::GET)
        });
        if let Some((route, body)) = found {
            let route = &self.routes[route];
            return match extract_vars(route, body) {
                Ok(vars) => RouteMatch::Found { route, vars },
                Err(message) => RouteMatch::BadPath { message },
            };
        }
        let mut allow: Vec<Method> = Vec::new();
        self.find(body, &mut |t| {
            if !allow.contains(&t.method) {
                allow.push(t.method.clone());
            }
            false
        });
        if allow.is_empty() {
            return RouteMatch::NotFound;
        }
        if allow.contains(&Method::GET) && !allow.contains(&Method::HEAD) {
            allow.push(Method::HEAD);
        }
        allow.sort_by(|a, b| {
            method_rank(a)
                .cmp(&method_rank(b))
                .then_with(|| a.as_str().cmp(b.as_str()))
        });
        RouteMatch::MethodNotAllowed { allow }
    }

    /// Walks the trie for every way of reading a verb off the path, verbs first; returns the
    /// first terminal `accept` takes, with the path (without verb) it matched.
    fn find<'p>(
        &self,
        body: Option<&'p str>,
        accept: &mut impl FnMut(&Terminal) -> bool,
    ) -> Option<(usize, Option<&'p str>)> {
        if let Some(text) = body {
            for verb in &self.verbs {
                let Some(rest) = text.strip_suffix(&**verb).and_then(|r| r.strip_suffix(':'))
                else {
                    continue;
                };
                if let Some(route) = self.walk(0, Some(rest), Some(verb), accept) {
                    return Some((route, Some(rest)));
                }
            }
        }
        self.walk(0, body, None, accept).map(|route| (route, body))
    }

    /// Depth-first search in priority order: literal, then `*`, then `**`.
    fn walk(
        &self,
        node: usize,
        rest: Option<&str>,
        verb: Option<&str>,
        accept: &mut impl FnMut(&Terminal) -> bool,
    ) -> Option<usize> {
        let node = &self.nodes[node];
        let Some(rest) = rest else {
            // `**` matches zero segments too.
            return pick(&node.ends, verb, accept).or_else(|| pick(&node.deep, verb, accept));
        };
        let (segment, next) = match rest.split_once('/') {
            Some((segment, next)) => (segment, Some(next)),
            None => (rest, None),
        };
        if segment.is_empty() {
            return None;
        }
        if let Some(child) = find_literal(&node.literals, segment)
            && let Some(route) = self.walk(child, next, verb, accept)
        {
            return Some(route);
        }
        if let Some(child) = node.wildcard
            && let Some(route) = self.walk(child, next, verb, accept)
        {
            return Some(route);
        }
        if !node.deep.is_empty() && rest.split('/').all(|s| !s.is_empty()) {
            return pick(&node.deep, verb, accept);
        }
        None
    }
}

/// The first terminal with this verb that `accept` takes.
fn pick(
    terminals: &[Terminal],
    verb: Option<&str>,
    accept: &mut impl FnMut(&Terminal) -> bool,
) -> Option<usize> {
    terminals
        .iter()
        .find(|t| t.verb.as_deref() == verb && accept(t))
        .map(|t| t.route)
}

/// The literal child for a raw path segment: compared percent-decoded.
fn find_literal(literals: &[(Box<[u8]>, usize)], segment: &str) -> Option<usize> {
    if literals.is_empty() {
        return None;
    }
    if !segment.contains('%') {
        let key = segment.as_bytes();
        return literals
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| literals[i].1);
    }
    literals
        .iter()
        .find(|(k, _)| percent_encoding::percent_decode(segment.as_bytes()).eq(k.iter().copied()))
        .map(|(_, child)| *child)
}

fn decode_literal(literal: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(literal).collect()
}

/// Byte position of the first `%` not followed by two hex digits.
fn bad_escape(path: &str) -> Option<usize> {
    let bytes = path.as_bytes();
    let hex = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_hexdigit);
    bytes
        .iter()
        .enumerate()
        .find(|&(i, &b)| b == b'%' && !(hex(i + 1) && hex(i + 2)))
        .map(|(i, _)| i)
}

/// The order of methods in an `Allow` list.
fn method_rank(method: &Method) -> usize {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ]
    .iter()
    .position(|m| m == method)
    .unwrap_or(usize::MAX)
}

/// The matching shape of a template: what two templates must share to match the same requests.
fn shape(template: &PathTemplate) -> String {
    let mut shape = String::new();
    for segment in template.segments() {
        shape.push('/');
        match segment {
            // Canonically re-encoded, so `%61` and `a` are the same literal and none looks
            // like a wildcard.
            Segment::Literal(literal) => {
                shape.push('=');
                let decoded = decode_literal(literal);
                shape.extend(percent_encoding::percent_encode(
                    &decoded,
                    percent_encoding::NON_ALPHANUMERIC,
                ));
            }
            Segment::Wildcard => shape.push('*'),
            Segment::DoubleWildcard => shape.push_str("**"),
        }
    }
    if let Some(verb) = template.verb() {
        shape.push(':');
        shape.push_str(verb);
    }
    shape
}

/// The variables of a matched route. `body` is the matched path without leading `/` and verb.
fn extract_vars(route: &Route, body: Option<&str>) -> Result<Vec<(String, String)>, String> {
    let template = &route.template;
    let body = body.unwrap_or("");
    let mut vars = Vec::with_capacity(template.variables().len());
    for var in template.variables() {
        let (start, end) = span(
            body,
            var.segments.start,
            var.segments.end,
            template.segments().len(),
        );
        let raw = &body[start..end];
        let segments = &template.segments()[var.segments.clone()];
        let multi = segments.len() > 1 || segments == [Segment::DoubleWildcard];
        let decoded = if multi {
            decode_keeping_slash(raw)
        } else {
            percent_encoding::percent_decode_str(raw).collect()
        };
        let value = String::from_utf8(decoded).map_err(|_| {
            format!(
                "path variable `{}` is not valid UTF-8 once percent-decoded",
                var.dotted()
            )
        })?;
        vars.push((var.dotted(), value));
    }
    Ok(vars)
}

/// Byte range in `body` of template segments `first..last`; a range reaching the last template
/// segment (`count`) takes the rest of the path, which is how `**` spans.
fn span(body: &str, first: usize, last: usize, count: usize) -> (usize, usize) {
    let mut start = body.len();
    let mut end = body.len();
    let mut offset = 0;
    for (i, segment) in body.split('/').enumerate() {
        if i == first {
            start = offset;
        }
        if i + 1 == last && last < count {
            end = offset + segment.len();
            break;
        }
        offset += segment.len() + 1;
    }
    (start.min(end), end)
}

/// Percent-decodes everything except `%2F` / `%2f`, for multi-segment variables.
fn decode_keeping_slash(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2]))
            && hi * 16 + lo != b'/'
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The `(transcoder.v1.rest)` options of an RPC, shared by all its bindings.
struct RestExtras {
    success_status: StatusCode,
    response_headers: Vec<HeaderName>,
}

impl RestExtras {
    fn read(
        rpc: &MethodDescriptor,
        options: Option<&DynamicMessage>,
    ) -> Result<RestExtras, RouteError> {
        let mut extras = RestExtras {
            success_status: StatusCode::OK,
            response_headers: Vec::new(),
        };
        let Some(options) = options else {
            return Ok(extras);
        };
        let status = options
            .get_field_by_name("success_status")
            .and_then(|v| v.as_i32())
            .unwrap_or(0);
        if status != 0 {
            extras.success_status = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .filter(StatusCode::is_success)
                .ok_or_else(|| RouteError::InvalidSuccessStatus {
                    rpc: rpc.full_name().to_owned(),
                    status,
                })?;
        }
        if let Some(headers) = options.get_field_by_name("response_headers") {
            for header in headers.as_list().unwrap_or_default() {
                let header = header.as_str().unwrap_or_default();
                let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                    RouteError::InvalidResponseHeader {
                        rpc: rpc.full_name().to_owned(),
                        header: header.to_owned(),
                    }
                })?;
                extras.response_headers.push(name);
            }
        }
        Ok(extras)
    }
}

/// Reads one `HttpRule` (and, at the top level, its additional bindings) into routes.
fn read_rule(
    rpc: &MethodDescriptor,
    rule: &DynamicMessage,
    extras: &RestExtras,
    nested: bool,
    routes: &mut Vec<Route>,
) -> Result<(), RouteError> {
    let rpc_name = || rpc.full_name().to_owned();
    let string = |name: &str| {
        rule.get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let mut pattern = None;
    for (name, method) in [
        ("get", Method::GET),
        ("put", Method::PUT),
        ("post", Method::POST),
        ("delete", Method::DELETE),
        ("patch", Method::PATCH),
    ] {
        if rule.has_field_by_name(name) {
            pattern = Some((method, string(name)));
        }
    }
    if rule.has_field_by_name("custom") {
        let custom = rule.get_field_by_name("custom");
        let custom = custom.as_ref().and_then(|c| c.as_message());
        let field = |name: &str| {
            custom
                .and_then(|c| c.get_field_by_name(name))
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        let kind = field("kind");
        let method = Method::from_bytes(kind.as_bytes())
            .ok()
            .filter(|_| !kind.is_empty())
            .ok_or_else(|| RouteError::InvalidMethod {
                rpc: rpc_name(),
                kind: kind.clone(),
            })?;
        pattern = Some((method, field("path")));
    }
    let bindings = rule
        .get_field_by_name("additional_bindings")
        .map(|v| v.as_list().unwrap_or_default().to_vec())
        .unwrap_or_default();
    if nested && !bindings.is_empty() {
        return Err(RouteError::NestedAdditionalBindings { rpc: rpc_name() });
    }
    let Some((method, pattern)) = pattern else {
        return Err(RouteError::MissingPattern { rpc: rpc_name() });
    };
    let template = PathTemplate::parse(&pattern).map_err(|source| RouteError::Template {
        rpc: rpc_name(),
        source,
    })?;

    let input = rpc.input();
    let body = match string("body").as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::Whole,
        name => BodyRule::Field(input.get_field_by_name(name).ok_or_else(|| {
            RouteError::UnknownField {
                rpc: rpc_name(),
                what: "body",
                field: name.to_owned(),
                message: input.full_name().to_owned(),
            }
        })?),
    };
    if !matches!(body, BodyRule::None) && (method == Method::GET || method == Method::HEAD) {
        return Err(RouteError::BodyNotAllowed {
            rpc: rpc_name(),
            method,
            pattern,
        });
    }
    let output = rpc.output();
    let response_body = match string("response_body").as_str() {
        "" => None,
        name => Some(
            output
                .get_field_by_name(name)
                .ok_or_else(|| RouteError::UnknownField {
                    rpc: rpc_name(),
                    what: "response_body",
                    field: name.to_owned(),
                    message: output.full_name().to_owned(),
                })?,
        ),
    };
    for var in template.variables() {
        check_variable(&input, &var.field_path).map_err(|reason| RouteError::BadVariable {
            rpc: rpc_name(),
            pattern: pattern.clone(),
            field: var.dotted(),
            reason,
        })?;
    }
    routes.push(Route {
        method,
        template,
        pattern,
        rpc: rpc.clone(),
        body,
        response_body,
        success_status: extras.success_status,
        response_headers: extras.response_headers.clone(),
    });
    for binding in &bindings {
        if let Some(binding) = binding.as_message() {
            read_rule(rpc, binding, extras, true, routes)?;
        }
    }
    Ok(())
}

/// Checks that `path` names a singular scalar (or enum) field, through singular message fields.
fn check_variable(input: &MessageDescriptor, path: &[String]) -> Result<(), String> {
    let mut message = input.clone();
    for (i, name) in path.iter().enumerate() {
        let field = message
            .get_field_by_name(name)
            .ok_or_else(|| format!("{} has no field `{name}`", message.full_name()))?;
        if field.is_list() || field.is_map() {
            return Err(format!("`{name}` is repeated"));
        }
        let last = i + 1 == path.len();
        match (field.kind(), last) {
            (Kind::Message(m), false) => message = m,
            (Kind::Message(m), true) => {
                return Err(format!("`{name}` is a message ({})", m.full_name()));
            }
            (_, true) => return Ok(()),
            (_, false) => return Err(format!("`{name}` is a scalar, not a message")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_escape_finds_first_malformed_percent() {
        assert_eq!(bad_escape("/a%2Fb"), None);
        assert_eq!(bad_escape("/a%zz"), Some(2));
        assert_eq!(bad_escape("/a%2"), Some(2));
        assert_eq!(bad_escape("/a%"), Some(2));
    }

    #[test]
    fn multi_segment_decoding_keeps_slash() {
        assert_eq!(decode_keeping_slash("a%2Fb%2fc%20d"), b"a%2Fb%2fc d");
        assert_eq!(decode_keeping_slash("%41"), b"A");
    }

    #[test]
    fn span_covers_segments_and_double_wildcard_rest() {
        // body "a/bb/ccc", template of 3 segments
        assert_eq!(span("a/bb/ccc", 1, 2, 3), (2, 4));
        assert_eq!(span("a/bb/ccc", 0, 2, 3), (0, 4));
        assert_eq!(span("a/bb/ccc", 1, 3, 3), (2, 8));
        // `**` matched zero segments
        assert_eq!(span("a", 1, 2, 2), (1, 1));
        assert_eq!(span("", 0, 1, 1), (0, 0));
    }

    #[test]
    fn shapes_ignore_variable_names() {
        let a = PathTemplate::parse("/a/{x}/b/{y=**}").unwrap();
        let b = PathTemplate::parse("/a/*/b/{z=**}").unwrap();
        let c = PathTemplate::parse("/a/{x=*/b/**}").unwrap();
        assert_eq!(shape(&a), shape(&b));
        assert_eq!(shape(&a), shape(&c));
        assert_ne!(
            shape(&a),
            shape(&PathTemplate::parse("/a/*/b/**:v").unwrap())
        );
        assert_eq!(
            shape(&PathTemplate::parse("/%61").unwrap()),
            shape(&PathTemplate::parse("/a").unwrap())
        );
        assert_ne!(
            shape(&PathTemplate::parse("/%FF").unwrap()),
            shape(&PathTemplate::parse("/%FE").unwrap())
        );
        assert_ne!(
            shape(&PathTemplate::parse("/%2A").unwrap()),
            shape(&PathTemplate::parse("/*").unwrap())
        );
    }
}

//! The error contract of the edge: gRPC status -> HTTP status, and the one
//! JSON shape of every error body.
//!
//! Every error the edge answers, whether produced by the transcoder itself
//! (404, 405, 413, 415, 400 on bad input, 503/504 on upstream failure), by a
//! layer (panic, rate limit), or by a service's `tonic::Status`, goes through
//! [`error_response`] and so has the body
//! `{"message": .., "status": <http status>, "code": .., "details": {..}}`.
//! `details` is always present and always an object (`{}` when there is
//! nothing to say), so clients never have to test for its presence.
//!
//! This module must never show the message of a 5xx to the client: those
//! carry internals (SQL, addresses, panics) and are logged instead.

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::body::Body;

/// The `ErrorInfo.metadata` key with which a service overrides the HTTP
/// status of an error (for example `"422"`); must parse as 400..=599.
pub const HTTP_STATUS_METADATA_KEY: &str = "http_status";

/// The message of every 500-class error that is not a deliberate one
/// (the real message is logged, never sent).
pub const INTERNAL_MESSAGE: &str = "Internal server error";

/// gRPC code -> HTTP status: the one table, after grpc-gateway's
/// `HTTPStatusFromCode`, with the deviations commented.
pub fn http_status_of(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        // Deliberately 400, not 412: 412 is about HTTP conditional requests
        // (If-Match and friends), which this edge does not implement; a
        // failed business precondition ("cart is empty") is a client error
        // the client must fix, as grpc-gateway maps it.
        Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        // 499 "client closed request" (nginx's), as grpc-gateway.
        Code::Cancelled => StatusCode::from_u16(499).expect("499 is a valid status"),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        // Unknown, Internal, DataLoss, and anything a future gRPC adds.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The body's `code` for an HTTP status when the error carries no
/// `google.rpc.ErrorInfo` reason.
pub fn default_code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "VALIDATION_ERROR",
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        409 => "CONFLICT",
        413 => "PAYLOAD_TOO_LARGE",
        415 => "UNSUPPORTED_MEDIA_TYPE",
        422 => "VALIDATION_ERROR",
        429 => "RATE_LIMITED",
        499 => "CANCELLED",
        501 => "NOT_IMPLEMENTED",
        503 => "SERVICE_UNAVAILABLE",
        504 => "GATEWAY_TIMEOUT",
        402..=499 => "BAD_REQUEST",
        _ => "INTERNAL_ERROR",
    }
}

/// Builds a response in the contract's error shape:
/// `{"message","status","code","details"}` with `content-type:
/// application/json`. Public so that layers outside the transcoder (a rate
/// limiter, an auth gate) answer in the same shape.
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    details: Map<String, Value>,
) -> http::Response<Body> {
    let mut response = http::Response::new(Body::from(error_body(status, code, message, &details)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The JSON bytes of an error body.
pub(crate) fn error_body(
    status: StatusCode,
    code: &str,
    message: &str,
    details: &Map<String, Value>,
) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct ErrorBody<'a> {
        message: &'a str,
        status: u16,
        code: &'a str,
        details: &'a Map<String, Value>,
    }
    serde_json::to_vec(&ErrorBody {
        message,
        status: status.as_u16(),
        code,
        details,
    })
    .expect("serializing strings and JSON values cannot fail")
}

/// An error the edge answers with: the parts of the contract's body.
#[derive(Debug, Clone)]
pub struct EdgeError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The machine-readable code, e.g. `NOT_FOUND`.
    pub code: String,
    /// The human-readable message.
    pub message: String,
    /// Extra structured details (always an object).
    pub details: Map<String, Value>,
}

impl EdgeError {
    /// An error with the default code of its status and no details.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        EdgeError {
            status,
            code: default_code_of(status).to_owned(),
            message: message.into(),
            details: Map::new(),
        }
    }

    /// A 400 VALIDATION_ERROR with `details = {field: [message]}`.
    pub fn validation(field: Option<&str>, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut err = EdgeError::new(StatusCode::BAD_REQUEST, message.clone());
        if let Some(field) = field {
            err.details
                .insert(field.to_owned(), Value::Array(vec![Value::String(message)]));
        }
        err
    }

    /// Maps a gRPC status with its rich details (see the module docs).
    pub fn from_status(status: &Status) -> Self {
        let mut http = http_status_of(status.code());
        let mut code: Option<String> = None;
        let mut details = Map::new();

        let rich = status.get_error_details();
        if let Some(info) = rich.error_info() {
            if !info.reason.is_empty() {
                code = Some(info.reason.clone());
            }
            for (key, value) in &info.metadata {
                if key == HTTP_STATUS_METADATA_KEY {
                    // Only an error status may be forced; anything else is
                    // a service bug and is ignored rather than trusted.
                    if let Some(s) = value
                        .parse::<u16>()
                        .ok()
                        .filter(|s| (400..=599).contains(s))
                        .and_then(|s| StatusCode::from_u16(s).ok())
                    {
                        http = s;
                    }
                    continue;
                }
                let json = match value.parse::<i64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => Value::String(value.clone()),
                };
                details.insert(key.clone(), json);
            }
        }
        if let Some(bad) = rich.bad_request() {
            for violation in &bad.field_violations {
                let entry = details
                    .entry(violation.field.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                match entry {
                    Value::Array(list) => list.push(Value::String(violation.description.clone())),
                    // An ErrorInfo metadata key with the same name as a
                    // field: the violation wins, the metadata moves aside.
                    other => {
                        *other = Value::Array(vec![Value::String(violation.description.clone())])
                    }
                }
            }
        }

        let message = if http.is_server_error() && !deliberate_5xx(status.code()) {
            tracing::error!(grpc.code = ?status.code(), grpc.message = status.message(), "upstream internal error");
            INTERNAL_MESSAGE.to_owned()
        } else if status.message().is_empty() {
            http.canonical_reason().unwrap_or("Error").to_owned()
        } else {
            status.message().to_owned()
        };
        EdgeError {
            status: http,
            code: code.unwrap_or_else(|| default_code_of(http).to_owned()),
            message,
            details,
        }
    }

    /// Turns the error into a response in the contract's shape.
    pub fn into_response(self) -> http::Response<Body> {
        error_response(self.status, &self.code, &self.message, self.details)
    }
}

/// 5xx codes whose messages are meant for clients (a service saying it is
/// unavailable or unimplemented says nothing internal).
fn deliberate_5xx(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::DeadlineExceeded | Code::Unimplemented
    )
}

/// Copies the metadata keys `names` from gRPC metadata to HTTP headers.
pub(crate) fn copy_metadata(
    from: &tonic::metadata::MetadataMap,
    names: &[http::HeaderName],
    to: &mut HeaderMap,
) {
    for name in names {
        for value in from.get_all(name.as_str()).iter() {
            if let Ok(v) = HeaderValue::from_bytes(value.as_encoded_bytes()) {
                to.append(name.clone(), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_architecture() {
        let cases = [
            (Code::Ok, 200),
            (Code::InvalidArgument, 400),
            (Code::FailedPrecondition, 400),
            (Code::OutOfRange, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::ResourceExhausted, 429),
            (Code::Cancelled, 499),
            (Code::Unimplemented, 501),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Internal, 500),
            (Code::Unknown, 500),
            (Code::DataLoss, 500),
        ];
        for (code, http) in cases {
            assert_eq!(http_status_of(code).as_u16(), http, "{code:?}");
        }
    }

    #[test]
    fn rich_status_maps_reason_override_and_details() {
        use tonic_types::{ErrorDetails, FieldViolation};
        let mut d = ErrorDetails::new();
        d.set_error_info(
            "OUT_OF_STOCK",
            "example",
            [
                ("http_status".to_owned(), "422".to_owned()),
                ("retryAfter".to_owned(), "60".to_owned()),
                ("sku".to_owned(), "A-1".to_owned()),
            ],
        );
        d.set_bad_request(vec![
            FieldViolation::new("price", "must be positive"),
            FieldViolation::new("price", "must have 2 decimals"),
            FieldViolation::new("title", "required"),
        ]);
        let status = Status::with_error_details(Code::FailedPrecondition, "no stock", d);
        let e = EdgeError::from_status(&status);
        assert_eq!(e.status, 422);
        assert_eq!(e.code, "OUT_OF_STOCK");
        assert_eq!(e.message, "no stock");
        assert_eq!(
            Value::Object(e.details),
            serde_json::json!({"retryAfter": 60, "sku": "A-1",
                "price": ["must be positive", "must have 2 decimals"], "title": ["required"]})
        );
    }

    #[test]
    fn bad_override_is_ignored_and_internal_message_hidden() {
        use tonic_types::ErrorDetails;
        let d = ErrorDetails::with_error_info(
            "BOOM",
            "example",
            [("http_status".to_owned(), "200".to_owned())],
        );
        let status = Status::with_error_details(Code::Internal, "db password wrong", d);
        let e = EdgeError::from_status(&status);
        assert_eq!(e.status, 500);
        assert_eq!(e.code, "BOOM");
        assert_eq!(e.message, INTERNAL_MESSAGE);
        let e = EdgeError::from_status(&Status::not_found("no such shelf"));
        assert_eq!((e.status.as_u16(), e.code.as_str()), (404, "NOT_FOUND"));
    }

    #[test]
    fn body_shape() {
        let body = error_body(StatusCode::NOT_FOUND, "NOT_FOUND", "nope", &Map::new());
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"message":"nope","status":404,"code":"NOT_FOUND","details":{}}"#
        );
    }
}

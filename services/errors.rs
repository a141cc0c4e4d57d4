//! How services say what went wrong: a `tonic::Status` with rich details that the edge turns
//! into the contract's `{message, status, code, details}` (docs/ARCHITECTURE.md).
//!
//! The `ErrorInfo.reason` is an [`ErrorReason`] from proto/ecom/common/v1, so gRPC clients see
//! the same codes as REST clients. Internal errors are logged once, here, with their cause
//! chain, and answered with a generic message.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub use crate::proto::ecom::common::v1::ErrorReason;

/// The `ErrorInfo.metadata` key the edge reads the contract's HTTP status from, where the
/// gRPC code does not give it (422, 423, 409 for some reasons): the edge's own constant.
pub use transcoder::error::HTTP_STATUS_METADATA_KEY as HTTP_STATUS;

/// The `ErrorInfo.domain` of every ecom error.
const DOMAIN: &str = "ecom";

/// The wire name of a reason: the enum value name without its `ERROR_REASON_` prefix.
pub fn reason_name(reason: ErrorReason) -> &'static str {
    let name = reason.as_str_name();
    name.strip_prefix("ERROR_REASON_").unwrap_or(name)
}

/// A status with `code`, a message and an `ErrorInfo` carrying `reason`.
pub fn status(code: Code, reason: ErrorReason, message: impl Into<String>) -> Status {
    with_metadata(code, reason, message, HashMap::new())
}

/// Like [`status`], with the HTTP status the contract fixes where the gRPC code does not give it
/// (422, 423, 409 for some reasons): the edge reads `ErrorInfo.metadata["http_status"]`.
pub fn status_with_http(
    code: Code,
    reason: ErrorReason,
    http_status: u16,
    message: impl Into<String>,
) -> Status {
    status_with_http_details(code, reason, http_status, message, [])
}

/// Like [`status_with_http`], with more `ErrorInfo.metadata` that lands in the REST body's
/// `details` (`retryAfter`, `orderTotal`...): the one place the `http_status` key is set.
pub fn status_with_http_details<'a>(
    code: Code,
    reason: ErrorReason,
    http_status: u16,
    message: impl Into<String>,
    details: impl IntoIterator<Item = (&'a str, String)>,
) -> Status {
    let mut metadata: HashMap<String, String> = details
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    metadata.insert(HTTP_STATUS.to_owned(), http_status.to_string());
    with_metadata(code, reason, message, metadata)
}

/// A status whose `ErrorInfo.metadata` also lands in the REST body's `details`.
pub fn with_metadata(
    code: Code,
    reason: ErrorReason,
    message: impl Into<String>,
    metadata: HashMap<String, String>,
) -> Status {
    let details = ErrorDetails::with_error_info(reason_name(reason), DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

/// 400 VALIDATION_ERROR with one field violation per `(json field, message)`.
pub fn validation(violations: Vec<(String, String)>) -> Status {
    let mut details = ErrorDetails::with_error_info(
        reason_name(ErrorReason::ValidationError),
        DOMAIN,
        HashMap::new(),
    );
    for (field, message) in violations {
        details.add_bad_request_violation(field, message);
    }
    Status::with_error_details(Code::InvalidArgument, "Validation failed", details)
}

/// 400 VALIDATION_ERROR for a single field.
pub fn invalid_field(field: &str, message: impl Into<String>) -> Status {
    validation(vec![(field.to_owned(), message.into())])
}

/// 404 PRODUCT_NOT_FOUND naming the unknown products in `details.productIds`: what the
/// catalog answers, and what the orders service answers for an order or cart naming them.
pub fn products_not_found(ids: &[i64]) -> Status {
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let metadata = HashMap::from([("productIds".to_owned(), list.clone())]);
    with_metadata(
        Code::NotFound,
        ErrorReason::ProductNotFound,
        format!("Product(s) not found: {list}"),
        metadata,
    )
}

/// 500 INTERNAL_ERROR: logs the whole cause chain once and answers with a generic message.
pub fn internal(err: anyhow::Error) -> Status {
    tracing::error!(error = ?err, "internal error");
    status(
        Code::Internal,
        ErrorReason::InternalError,
        "Internal server error",
    )
}

/// 503 for a dependency that is down (PostgreSQL unreachable, pool timed out).
pub fn unavailable(err: anyhow::Error) -> Status {
    tracing::warn!(error = ?err, "dependency unavailable");
    Status::unavailable("Service temporarily unavailable")
}

/// Maps a database error: connectivity problems are 503 (retryable), the rest 500.
pub fn database(err: sqlx::Error) -> Status {
    unexpected(anyhow::Error::new(err).context("database"))
}

/// An error no rule expected: 503 when its cause is a dependency that cannot be reached
/// right now (see [`is_unavailable`]), so clients retry, else 500. Every service's
/// `Unexpected` variant maps through here.
pub fn unexpected(err: anyhow::Error) -> Status {
    if err.chain().any(is_unavailable) {
        unavailable(err)
    } else if err.chain().any(is_nul_in_text) {
        // Bad input that only PostgreSQL noticed: its text type cannot hold U+0000, and no
        // field rule of ours forbids it everywhere a string reaches a query (a search word, an
        // address line, a note). The statement failed, so its transaction wrote nothing.
        tracing::info!(error = %err, "refused: NUL in text");
        status(
            Code::InvalidArgument,
            ErrorReason::ValidationError,
            "Text must not contain NUL characters (U+0000)",
        )
    } else {
        internal(err)
    }
}

/// Whether PostgreSQL refused a NUL character: in text (SQLSTATE 22021,
/// character_not_in_repertoire: "invalid byte sequence for encoding UTF8: 0x00") or in JSONB
/// (22P05, untranslatable_character: "\u0000 cannot be converted to text").
fn is_nul_in_text(err: &(dyn std::error::Error + 'static)) -> bool {
    match err.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(db)) => matches!(db.code().as_deref(), Some("22021" | "22P05")),
        _ => false,
    }
}

/// Whether an error means PostgreSQL cannot be reached right now: the pool timed out or is
/// closed, the connection broke, or the server refused or ended it because it is shutting
/// down, starting up or full (SQLSTATE class 08, 57P01-57P03, 53300). What a restart of
/// PostgreSQL looks like to the requests in flight and to those in the gap.
fn is_unavailable(err: &(dyn std::error::Error + 'static)) -> bool {
    match err.downcast_ref::<sqlx::Error>() {
        Some(
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed,
        ) => true,
        Some(sqlx::Error::Database(db)) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("57P") || code == "53300"
        }),
        _ => false,
    }
}

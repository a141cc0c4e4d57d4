//! How the users service fails, and what each failure looks like on the wire.

use tonic::{Code, Status};

use crate::accounts::domain::Violations;
use crate::errors;
use crate::proto::ecom::common::v1::ErrorReason;

/// Everything a users RPC can fail with. Each variant's doc names the status it becomes; the
/// conversion is [`From<UsersError> for Status`].
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// INVALID_ARGUMENT (400) VALIDATION_ERROR, one violation per field.
    #[error("invalid request: {0:?}")]
    Invalid(#[from] Violations),
    /// ALREADY_EXISTS (409) EMAIL_EXISTS.
    #[error("email already registered")]
    EmailExists,
    /// INVALID_ARGUMENT (400) INVALID_CREDENTIALS: the password confirming a deletion is wrong.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// NOT_FOUND (404) USER_NOT_FOUND.
    #[error("user not found")]
    UserNotFound,
    /// PERMISSION_DENIED (403) FORBIDDEN.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// NOT_FOUND (404) ADDRESS_NOT_FOUND, also for another user's address.
    #[error("address not found")]
    AddressNotFound,
    /// NOT_FOUND (404) NOTIFICATION_NOT_FOUND, also for another user's notification.
    #[error("notification not found")]
    NotificationNotFound,
    /// NOT_FOUND (404) WEBHOOK_NOT_FOUND.
    #[error("webhook endpoint not found")]
    WebhookNotFound,
    /// Unsupported media type (415) UNSUPPORTED_MEDIA_TYPE.
    #[error("unsupported media type")]
    UnsupportedMediaType(&'static str),
    /// Payload too large (413) PAYLOAD_TOO_LARGE.
    #[error("payload too large")]
    PayloadTooLarge(String),
    /// A query failed: 503 when PostgreSQL cannot be reached, else 500 ([`errors::database`]).
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// INTERNAL (500) INTERNAL_ERROR; the cause chain is logged once.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<UsersError> for Status {
    fn from(err: UsersError) -> Status {
        match err {
            UsersError::Invalid(v) => errors::validation(v.into_inner()),
            UsersError::EmailExists => errors::status(
                Code::AlreadyExists,
                ErrorReason::EmailExists,
                "Email already registered",
            ),
            UsersError::InvalidCredentials => errors::status(
                Code::InvalidArgument,
                ErrorReason::InvalidCredentials,
                "Invalid username/email or password",
            ),
            UsersError::UserNotFound => {
                errors::status(Code::NotFound, ErrorReason::UserNotFound, "User not found")
            }
            UsersError::Forbidden(why) => {
                errors::status(Code::PermissionDenied, ErrorReason::Forbidden, why)
            }
            UsersError::AddressNotFound => errors::status(
                Code::NotFound,
                ErrorReason::AddressNotFound,
                "Address not found",
            ),
            UsersError::NotificationNotFound => errors::status(
                Code::NotFound,
                ErrorReason::NotificationNotFound,
                "Notification not found",
            ),
            UsersError::WebhookNotFound => errors::status(
                Code::NotFound,
                ErrorReason::WebhookNotFound,
                "Webhook endpoint not found",
            ),
            UsersError::UnsupportedMediaType(why) => errors::status_with_http(
                Code::InvalidArgument,
                ErrorReason::UnsupportedMediaType,
                415,
                why,
            ),
            UsersError::PayloadTooLarge(why) => errors::status_with_http(
                Code::InvalidArgument,
                ErrorReason::PayloadTooLarge,
                413,
                why,
            ),
            UsersError::Database(e) => errors::database(e),
            UsersError::Unexpected(e) => errors::unexpected(e),
        }
    }
}

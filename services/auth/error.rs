//! How the auth service fails, and what each failure looks like on the wire.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};

use super::domain::Violations;
use crate::errors;
use crate::proto::ecom::common::v1::ErrorReason;

/// Everything an auth RPC can fail with. Each variant's doc names the status it
/// becomes; the conversion is [`From<AuthError> for Status`].
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// INVALID_ARGUMENT (400) VALIDATION_ERROR, one violation per field.
    #[error("invalid request: {0:?}")]
    Invalid(#[from] Violations),
    /// ALREADY_EXISTS (409) EMAIL_EXISTS.
    #[error("email already registered")]
    EmailExists,
    /// INVALID_ARGUMENT (400) INVALID_CREDENTIALS: the same answer for an unknown account and a
    /// wrong password.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// FAILED_PRECONDITION, HTTP 423 ACCOUNT_LOCKED, details.retryAfter.
    #[error("account locked")]
    AccountLocked(Duration),
    /// RESOURCE_EXHAUSTED (429) RATE_LIMITED, details.retryAfter and a `retry-after` header.
    #[error("rate limited")]
    RateLimited(Duration),
    /// UNAUTHENTICATED (401) INVALID_REFRESH_TOKEN.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// INVALID_ARGUMENT (400) INVALID_RESET_TOKEN: unknown or already used.
    #[error("invalid reset token")]
    InvalidResetToken,
    /// INVALID_ARGUMENT (400) RESET_TOKEN_EXPIRED.
    #[error("reset token expired")]
    ResetTokenExpired,
    /// NOT_FOUND (404) USER_NOT_FOUND.
    #[error("user not found")]
    UserNotFound,
    /// A query failed: 503 when PostgreSQL cannot be reached, else 500 ([`errors::database`]).
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// INTERNAL (500) INTERNAL_ERROR; the cause chain is logged once.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Whole seconds, rounded up, at least 1.
fn seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl From<AuthError> for Status {
    fn from(err: AuthError) -> Status {
        match err {
            AuthError::Invalid(v) => errors::validation(v.into_inner()),
            AuthError::EmailExists => errors::status(
                Code::AlreadyExists,
                ErrorReason::EmailExists,
                "Email already registered",
            ),
            AuthError::InvalidCredentials => errors::status(
                Code::InvalidArgument,
                ErrorReason::InvalidCredentials,
                "Invalid username/email or password",
            ),
            AuthError::AccountLocked(left) => {
                let secs = seconds(left);
                errors::status_with_http_details(
                    Code::FailedPrecondition,
                    ErrorReason::AccountLocked,
                    423,
                    format!(
                        "Account locked after too many failed logins. Try again in {secs} seconds."
                    ),
                    [("retryAfter", secs.to_string())],
                )
            }
            AuthError::RateLimited(left) => {
                let secs = seconds(left);
                let metadata = HashMap::from([("retryAfter".to_owned(), secs.to_string())]);
                let mut status = errors::with_metadata(
                    Code::ResourceExhausted,
                    ErrorReason::RateLimited,
                    format!("Rate limit exceeded. Try again in {secs} seconds."),
                    metadata,
                );
                if let Ok(value) = secs.to_string().parse() {
                    status.metadata_mut().insert("retry-after", value);
                }
                status
            }
            AuthError::InvalidRefreshToken => errors::status(
                Code::Unauthenticated,
                ErrorReason::InvalidRefreshToken,
                "Refresh token is invalid, expired or revoked",
            ),
            AuthError::InvalidResetToken => errors::status(
                Code::InvalidArgument,
                ErrorReason::InvalidResetToken,
                "Reset token is invalid or already used",
            ),
            AuthError::ResetTokenExpired => errors::status(
                Code::InvalidArgument,
                ErrorReason::ResetTokenExpired,
                "Reset token has expired",
            ),
            AuthError::UserNotFound => {
                errors::status(Code::NotFound, ErrorReason::UserNotFound, "User not found")
            }
            AuthError::Database(e) => errors::database(e),
            AuthError::Unexpected(e) => errors::unexpected(e),
        }
    }
}

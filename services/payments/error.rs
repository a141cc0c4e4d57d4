//! How the payments service fails, and what each failure looks like on the wire.

use tonic::{Code, Status};

use super::domain::NotPayable;
use super::provider::ProviderError;
use crate::errors::{self, ErrorReason};
use crate::idempotency;
use crate::validation::Violations;

/// Everything a payments RPC can fail with. Each variant's doc names the status it
/// becomes; the conversion is [`From<PaymentsError> for Status`].
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    /// INVALID_ARGUMENT (400) VALIDATION_ERROR, one violation per field.
    #[error("invalid request: {0}")]
    Invalid(#[from] Violations),
    /// NOT_FOUND (404) PAYMENT_INTENT_NOT_FOUND: unknown, or another user's intent.
    #[error("payment intent not found")]
    IntentNotFound,
    /// FAILED_PRECONDITION, 422 PAYMENT_FAILED, details.paymentIntentId; the reason (the
    /// provider's decline message is meant for the customer) is in the message.
    #[error("payment of {id} failed: {reason}")]
    PaymentFailed { id: String, reason: String },
    /// The order of metadata.orderId takes no such payment: FAILED_PRECONDITION, 422
    /// ORDER_NOT_PAYABLE (cancelled), 409 ORDER_ALREADY_PAID, or 422 AMOUNT_MISMATCH with
    /// details.orderTotal and details.amount.
    #[error(transparent)]
    NotPayable(#[from] NotPayable),
    /// INVALID_ARGUMENT (400) INVALID_SIGNATURE: the webhook's signature is missing or
    /// wrong (or no secret is configured to check it), and why.
    #[error("invalid webhook signature: {0}")]
    InvalidSignature(String),
    /// FAILED_PRECONDITION, 422 IDEMPOTENCY_KEY_REUSED: same key, other body.
    #[error("idempotency key reused with another request")]
    KeyReused,
    /// ABORTED (409), CONFLICT: a duplicate request is still running after the wait.
    #[error("a request with this idempotency key is still in progress")]
    KeyInProgress,
    /// The provider gave no answer: UNAVAILABLE (503) when it could not be reached, else
    /// UNAVAILABLE with HTTP 502 PAYMENT_PROVIDER_ERROR. The cause is logged, never
    /// answered (it may name the provider's internals; the secret key is never part of it).
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// A status from the orders service, passed through as it is.
    #[error("orders: {}", .0.message())]
    Upstream(Status),
    /// UNAVAILABLE (503): a dependency is down right now (the order could not be told
    /// about a webhook's effect, so the provider delivers it again); the cause is logged.
    #[error(transparent)]
    Unavailable(anyhow::Error),
    /// INTERNAL (500) INTERNAL_ERROR without details: a stored intent's status is none
    /// the code writes. Logged with the intent's id.
    #[error("payment intent {id} has the unknown status {status:?}")]
    CorruptIntent { id: String, status: String },
    /// A query failed: 503 when PostgreSQL cannot be reached, else 500 ([`errors::database`]).
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// INTERNAL (500) INTERNAL_ERROR; the cause chain is logged once.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<idempotency::Error> for PaymentsError {
    fn from(err: idempotency::Error) -> Self {
        match err {
            idempotency::Error::Invalid(v) => PaymentsError::Invalid(v),
            idempotency::Error::Reused => PaymentsError::KeyReused,
            idempotency::Error::InProgress => PaymentsError::KeyInProgress,
            idempotency::Error::Database(e) => PaymentsError::Database(e),
            corrupt @ idempotency::Error::Corrupt(_) => PaymentsError::Unexpected(corrupt.into()),
        }
    }
}

impl From<PaymentsError> for Status {
    fn from(err: PaymentsError) -> Status {
        match err {
            PaymentsError::Invalid(v) => errors::validation(v.into_inner()),
            PaymentsError::IntentNotFound => errors::status(
                Code::NotFound,
                ErrorReason::PaymentIntentNotFound,
                "Payment intent not found",
            ),
            PaymentsError::PaymentFailed { id, reason } => errors::status_with_http_details(
                Code::FailedPrecondition,
                ErrorReason::PaymentFailed,
                422,
                format!("Payment failed: {reason}"),
                [("paymentIntentId", id)],
            ),
            PaymentsError::NotPayable(NotPayable::Cancelled) => errors::status_with_http(
                Code::FailedPrecondition,
                ErrorReason::OrderNotPayable,
                422,
                "The order is cancelled",
            ),
            PaymentsError::NotPayable(NotPayable::AlreadyPaid) => errors::status_with_http(
                Code::FailedPrecondition,
                ErrorReason::OrderAlreadyPaid,
                409,
                "The order is already paid",
            ),
            PaymentsError::NotPayable(NotPayable::AmountMismatch {
                order_total,
                amount,
                currency: _,
            }) => errors::status_with_http_details(
                Code::FailedPrecondition,
                ErrorReason::AmountMismatch,
                422,
                "The amount (in usd) does not match the order total",
                [
                    ("orderTotal", order_total.to_string()),
                    ("amount", amount.to_string()),
                ],
            ),
            PaymentsError::InvalidSignature(why) => errors::status(
                Code::InvalidArgument,
                ErrorReason::InvalidSignature,
                format!("Invalid webhook signature: {why}"),
            ),
            PaymentsError::KeyReused => errors::status_with_http(
                Code::FailedPrecondition,
                ErrorReason::IdempotencyKeyReused,
                422,
                "Idempotency-Key was already used with a different request",
            ),
            // No ErrorInfo: the edge's default code for ABORTED is CONFLICT (409).
            PaymentsError::KeyInProgress => {
                Status::aborted("A request with this Idempotency-Key is still in progress")
            }
            PaymentsError::Provider(ProviderError::Unavailable(e)) => errors::unavailable(e),
            PaymentsError::Provider(ProviderError::Refused(e)) => {
                tracing::error!(error = ?e, "payment provider refused a request");
                errors::status_with_http(
                    Code::Unavailable,
                    ErrorReason::PaymentProviderError,
                    502,
                    "The payment provider could not process the request",
                )
            }
            PaymentsError::Upstream(status) => status,
            PaymentsError::Unavailable(e) => errors::unavailable(e),
            corrupt @ PaymentsError::CorruptIntent { .. } => errors::internal(corrupt.into()),
            PaymentsError::Database(e) => errors::database(e),
            PaymentsError::Unexpected(e) => errors::unexpected(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt as _;

    use super::*;

    /// The code, reason and `http_status` metadata of a mapped error.
    fn wire(err: PaymentsError) -> (Code, String, Option<String>, String) {
        let status = Status::from(err);
        let info = status.get_details_error_info();
        (
            status.code(),
            info.as_ref().map(|i| i.reason.clone()).unwrap_or_default(),
            info.and_then(|i| i.metadata.get(errors::HTTP_STATUS).cloned()),
            status.message().to_owned(),
        )
    }

    #[test]
    fn idempotency_failures_answer_as_they_did_for_orders() {
        let reused = wire(idempotency::Error::Reused.into());
        assert_eq!(
            (reused.0, reused.1.as_str(), reused.2.as_deref()),
            (
                Code::FailedPrecondition,
                "IDEMPOTENCY_KEY_REUSED",
                Some("422")
            )
        );
        let running = wire(idempotency::Error::InProgress.into());
        assert_eq!((running.0, running.1.as_str()), (Code::Aborted, ""));
        let invalid =
            wire(idempotency::Error::Invalid(Violations::one("Idempotency-Key", "bad")).into());
        assert_eq!(
            (invalid.0, invalid.1.as_str()),
            (Code::InvalidArgument, "VALIDATION_ERROR")
        );
    }

    #[test]
    fn a_corrupt_intent_is_a_bare_internal_error() {
        let (code, reason, http, message) = wire(PaymentsError::CorruptIntent {
            id: "pi_1".to_owned(),
            status: "bogus".to_owned(),
        });
        assert_eq!(
            (code, reason.as_str(), http, message.as_str()),
            (
                Code::Internal,
                "INTERNAL_ERROR",
                None,
                "Internal server error"
            )
        );
    }

    #[test]
    fn order_refusals_keep_their_http_statuses() {
        let cancelled = wire(NotPayable::Cancelled.into());
        assert_eq!(
            (cancelled.1.as_str(), cancelled.2.as_deref()),
            ("ORDER_NOT_PAYABLE", Some("422"))
        );
        let paid = wire(NotPayable::AlreadyPaid.into());
        assert_eq!(
            (paid.1.as_str(), paid.2.as_deref()),
            ("ORDER_ALREADY_PAID", Some("409"))
        );
        let refused = wire(ProviderError::Refused(anyhow::anyhow!("no")).into());
        assert_eq!(
            (refused.0, refused.1.as_str(), refused.2.as_deref()),
            (Code::Unavailable, "PAYMENT_PROVIDER_ERROR", Some("502"))
        );
    }
}

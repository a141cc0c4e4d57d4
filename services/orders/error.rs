//! How the orders service fails, and what each failure looks like on the wire.

use tonic::{Code, Status};

use super::domain::shipping::Unshippable;
use super::domain::{Corrupt, CouponRefusal};
use crate::errors::{self, ErrorReason};
use crate::idempotency;
use crate::validation::Violations;

/// Everything an orders RPC can fail with. Each variant's doc names the
/// status it becomes; the conversion is [`From<OrderError> for Status`].
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// NOT_FOUND (404), ORDER_NOT_FOUND: unknown, or another user's order.
    #[error("order not found")]
    NotFound,
    /// INVALID_ARGUMENT (400), VALIDATION_ERROR, one violation per field.
    #[error("invalid request: {0}")]
    Invalid(#[from] Violations),
    /// NOT_FOUND (404), CART_NOT_FOUND: unknown, deleted, or another user's cart.
    #[error("cart not found")]
    CartNotFound,
    /// PERMISSION_DENIED (403), FORBIDDEN: another user's carts.
    #[error("carts of another user")]
    NotYourCarts,
    /// FAILED_PRECONDITION, 422 ORDER_CANNOT_CANCEL.
    #[error("order cannot be cancelled in status {0}")]
    CannotCancel(&'static str),
    /// FAILED_PRECONDITION, 422 INVALID_STATUS_TRANSITION.
    #[error("order cannot go from {0} to {1}")]
    InvalidTransition(&'static str, &'static str),
    /// FAILED_PRECONDITION, 422 RETURN_NOT_ALLOWED: the order is not delivered.
    #[error("order cannot be returned in status {0}")]
    NotReturnable(&'static str),
    /// FAILED_PRECONDITION, 422 RETURN_WINDOW_EXPIRED: delivered more than the window ago.
    #[error("the return window of {0} days has passed")]
    ReturnWindowExpired(u32),
    /// ALREADY_EXISTS, 409 RETURN_EXISTS: the order has an open return.
    #[error("a return is already open for this order")]
    ReturnExists,
    /// PERMISSION_DENIED (403), FORBIDDEN: an admin acting as the buyer.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// FAILED_PRECONDITION, 422 IDEMPOTENCY_KEY_REUSED: same key, other body.
    #[error("idempotency key reused with another request")]
    KeyReused,
    /// ABORTED (409), CONFLICT: a duplicate request is still running after the wait.
    #[error("a request with this idempotency key is still in progress")]
    KeyInProgress,
    /// FAILED_PRECONDITION, 422 AMOUNT_MISMATCH: the intent is not of the order's total.
    #[error("payment amount {intent_cents} does not match the order total {order_cents}")]
    AmountMismatch { order_cents: i64, intent_cents: i64 },
    /// ALREADY_EXISTS, 409 PAYMENT_INTENT_IN_USE: the intent pays another order.
    #[error("payment intent already pays another order")]
    IntentInUse,
    /// A coupon that does not apply: 404 COUPON_NOT_FOUND, or 422 COUPON_EXPIRED,
    /// COUPON_NOT_STARTED, COUPON_USAGE_LIMIT, COUPON_MIN_SUBTOTAL, COUPON_NOT_APPLICABLE.
    #[error("coupon refused: {0:?}")]
    Coupon(CouponRefusal),
    /// ALREADY_EXISTS, 409 COUPON_EXISTS: the code is taken.
    #[error("a coupon with this code exists")]
    CouponExists,
    /// FAILED_PRECONDITION, 422 SHIPPING_UNAVAILABLE: nothing (or not the method chosen)
    /// ships to the address.
    #[error("cannot ship: {0:?}")]
    Unshippable(Unshippable),
    /// A status from another service (the catalog), passed through as it is.
    #[error("upstream: {0}")]
    Upstream(Status),
    /// INTERNAL (500): a stored row holds a state no code writes; logged with the row.
    #[error("order {row}: {source}")]
    Corrupt { row: String, source: Corrupt },
    /// INTERNAL (500); the cause chain is logged once.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<idempotency::Error> for OrderError {
    fn from(err: idempotency::Error) -> Self {
        match err {
            idempotency::Error::Invalid(violations) => OrderError::Invalid(violations),
            idempotency::Error::Reused => OrderError::KeyReused,
            idempotency::Error::InProgress => OrderError::KeyInProgress,
            idempotency::Error::Database(err) => err.into(),
            err @ idempotency::Error::Corrupt(_) => OrderError::Unexpected(anyhow::Error::new(err)),
        }
    }
}

impl From<sqlx::Error> for OrderError {
    fn from(err: sqlx::Error) -> Self {
        // Two orders raced for one intent: the UNIQUE constraint decided.
        if err
            .as_database_error()
            .and_then(|e| e.constraint())
            .is_some_and(|c| c == "orders_payment_intent_id_key")
        {
            return OrderError::IntentInUse;
        }
        OrderError::Unexpected(anyhow::Error::new(err).context("orders database"))
    }
}

impl From<OrderError> for Status {
    fn from(err: OrderError) -> Status {
        match err {
            OrderError::NotFound => errors::status(
                Code::NotFound,
                ErrorReason::OrderNotFound,
                "Order not found",
            ),
            OrderError::Invalid(violations) => errors::validation(violations.into_inner()),
            OrderError::CartNotFound => {
                errors::status(Code::NotFound, ErrorReason::CartNotFound, "Cart not found")
            }
            OrderError::NotYourCarts => errors::status(
                Code::PermissionDenied,
                ErrorReason::Forbidden,
                "You can only access your own carts",
            ),
            OrderError::CannotCancel(status) => errors::status_with_http(
                Code::FailedPrecondition,
                ErrorReason::OrderCannotCancel,
                422,
                format!("Cannot cancel order that is {status}"),
            ),
            OrderError::InvalidTransition(from, to) => errors::status_with_http(
                Code::FailedPrecondition,
                ErrorReason::InvalidStatusTransition,
                422,
                format!("Cannot change order status from {from} to {to}"),
            ),
            OrderError::NotReturnable(status) => errors::status_with_http(
                Code::FailedPrecondition,
                ErrorReason::ReturnNotAllowed,
                422,
                format!("Only delivered orders can be returned; this order is {status}"),
            ),
            OrderError::ReturnWindowExpired(days) => errors::status_with_http(
                Code::FailedPrecondition,
                ErrorReason::ReturnWindowExpired,
                422,
                format!("Returns are accepted within {days} days of delivery"),
            ),
            OrderError::ReturnExists => errors::status_with_http(
                Code::AlreadyExists,
                ErrorReason::ReturnExists,
                409,
                "A return was already requested for this order",
            ),
            OrderError::Forbidden(message) => {
                errors::status(Code::PermissionDenied, ErrorReason::Forbidden, message)
            }
            OrderError::KeyReused => errors::status_with_http(
                Code::FailedPrecondition,
                ErrorReason::IdempotencyKeyReused,
                422,
                "Idempotency-Key was already used with a different request",
            ),
            // No ErrorInfo: the edge's default code for ABORTED is CONFLICT (409).
            OrderError::KeyInProgress => {
                Status::aborted("A request with this Idempotency-Key is still in progress")
            }
            OrderError::AmountMismatch {
                order_cents,
                intent_cents,
            } => errors::status_with_http_details(
                Code::FailedPrecondition,
                ErrorReason::AmountMismatch,
                422,
                "The payment intent's amount does not match the order total",
                [
                    ("orderTotal", order_cents.to_string()),
                    ("amount", intent_cents.to_string()),
                ],
            ),
            OrderError::IntentInUse => errors::status_with_http(
                Code::AlreadyExists,
                ErrorReason::PaymentIntentInUse,
                409,
                "The payment intent already pays another order",
            ),
            OrderError::Coupon(refusal) => coupon_status(refusal),
            OrderError::CouponExists => errors::status_with_http(
                Code::AlreadyExists,
                ErrorReason::CouponExists,
                409,
                "A coupon with this code already exists",
            ),
            OrderError::Unshippable(Unshippable::Country(country)) => {
                errors::status_with_http_details(
                    Code::FailedPrecondition,
                    ErrorReason::ShippingUnavailable,
                    422,
                    if country.is_empty() {
                        "We do not ship to this address's country".to_owned()
                    } else {
                        format!("We do not ship to {country}")
                    },
                    [("country", country)],
                )
            }
            OrderError::Unshippable(Unshippable::Method(method, country)) => {
                errors::status_with_http_details(
                    Code::FailedPrecondition,
                    ErrorReason::ShippingUnavailable,
                    422,
                    format!("{method} shipping is not available to {country}"),
                    [("shippingMethod", method), ("country", country)],
                )
            }
            OrderError::Upstream(status) => status,
            err @ OrderError::Corrupt { .. } => errors::unexpected(anyhow::Error::new(err)),
            OrderError::Unexpected(err) => errors::unexpected(err),
        }
    }
}

/// The status of a refused coupon: each refusal its own code and message.
fn coupon_status(refusal: CouponRefusal) -> Status {
    let (reason, message) = match refusal {
        CouponRefusal::NotFound => {
            return errors::status(
                Code::NotFound,
                ErrorReason::CouponNotFound,
                "No active coupon has this code",
            );
        }
        CouponRefusal::NotStarted => (
            ErrorReason::CouponNotStarted,
            "This coupon cannot be used yet".to_owned(),
        ),
        CouponRefusal::Expired => (
            ErrorReason::CouponExpired,
            "This coupon has expired".to_owned(),
        ),
        CouponRefusal::UsageLimit => (
            ErrorReason::CouponUsageLimit,
            "This coupon has reached its usage limit".to_owned(),
        ),
        CouponRefusal::PerUserLimit => (
            ErrorReason::CouponUsageLimit,
            "You have already used this coupon as often as it allows".to_owned(),
        ),
        CouponRefusal::MinSubtotal(min) => {
            return errors::status_with_http_details(
                Code::FailedPrecondition,
                ErrorReason::CouponMinSubtotal,
                422,
                format!(
                    "This coupon needs a subtotal of at least {:.2} of eligible items",
                    crate::money::to_wire(min)
                ),
                [("minSubtotal", format!("{:.2}", crate::money::to_wire(min)))],
            );
        }
        CouponRefusal::NotApplicable => (
            ErrorReason::CouponNotApplicable,
            "This coupon does not apply to any item in the cart".to_owned(),
        ),
    };
    errors::status_with_http(Code::FailedPrecondition, reason, 422, message)
}

//! The payments service, behind `ecom.payments.v1.PaymentsService`: intents,
//! confirmation through a provider, status, the provider's signed webhook, and the
//! internal reads and refunds of the orders service.
//!
//! It owns the `payment_intents` and `payment_webhook_events` tables
//! (migrations/20261127000400_payments.sql, 20261127000600_payments_orders.sql).
//! Money moves only through a [`provider::PaymentProvider`]: the sandbox by
//! default, or Stripe's API (PAYMENT_PROVIDER=stripe). No card data is stored,
//! only the provider's ids and the card's last four digits when the provider
//! gives them; it never reads the orders tables. A confirmation locks the intent's row while the
//! provider is called, so concurrent confirmations never charge twice; a
//! webhook event's id is inserted in the transaction that applies it, so a
//! redelivered event changes nothing. An intent created for an order
//! (metadata.orderId) and the order it pays are kept in step with the orders
//! service through its gRPC client ([`orders`]); the link lives on the order.
//!
//! Rooms: `domain` (statuses, amounts and the transitions, pure), `app` (the use
//! cases and their transactions), `store` (all the SQL), `error` (one enum, mapped
//! once to a status), `grpc` (decode, authorize, call, encode) and `wire` (encoding).

mod app;
mod domain;
mod error;
mod grpc;
pub mod orders;
pub mod provider;
mod store;
pub mod webhook;
mod wire;

pub use app::PaymentsService;
pub use domain::IntentStatus;
pub use error::PaymentsError;
pub use orders::Orders;

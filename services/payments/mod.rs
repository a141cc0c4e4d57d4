//! The payments service (contract section 8), behind `ecom.payments.v1.PaymentsService`.
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
//! service: see [`crate::orders::payments`].

mod grpc;
pub mod orders;
pub mod provider;
mod store;
pub mod webhook;

pub use grpc::PaymentsService;
pub use orders::Orders;

//! The orders service: orders and their life cycle (the /orders routes), behind
//! `ecom.orders.v1.OrdersService`.
//!
//! Its rooms, as in every service: [`domain`] (typed values and the pure rules
//! of pricing and of an order's states), [`app`] (the use cases, [`carts`]
//! among them), `store` (all of its SQL), `error` (one enum, mapped once to a
//! gRPC status), `wire` (protobuf to and from domain values) and `grpc`
//! (decode, authorize, call, encode). [`catalog`] and [`payments`] are its
//! generated-client views of the other services.
//!
//! It owns the `orders`, `order_items`, `order_history`, `order_notes`,
//! `order_numbers` and `carts`/`cart_items` tables
//! (migrations/20261127000300_orders.sql), `order_returns`
//! (migrations/20261127000700_order_returns_mail.sql), and `coupons`,
//! `coupon_redemptions`, `shipping_methods`, `shipping_rates` and `tax_rates`
//! (migrations/20261207000400_coupons_shipping_tax.sql; use cases in
//! [`checkout`]). Mail goes through the kernel's outbox, addressed by account ([`crate::mail`]); idempotency keys
//! through the kernel's runner ([`crate::idempotency`]). Product data and stock
//! belong to the catalog: this service asks the catalog service over gRPC
//! ([`catalog`]), never reads its tables.
//!
//! Placing an order (POST /orders), and why it never oversells or loses stock:
//! 1. Idempotency-Key: the first request with a key owns it; duplicates wait and
//!    replay the stored response ([`crate::idempotency`]).
//! 2. Prices come from the catalog (`GetProductsForPricing`), never from the
//!    client; totals are computed in integer cents ([`domain::pricing`]).
//! 3. The order id (ORD-YYYYMMDDNN) is taken from a per-day counter in its own
//!    statement: never reused, even when the order then fails.
//! 4. `ReserveStock(order id, lines)`: the catalog takes all lines or none in one
//!    transaction, guarded by `stock >= quantity`; a short line is 422
//!    INSUFFICIENT_STOCK naming the products. Retrying with the same order id
//!    never reserves twice.
//! 5. One transaction inserts the order and stores the idempotent response. If it
//!    fails, the reservation is released at once. If the connection breaks during
//!    COMMIT, the outcome is unknown: the request asks PostgreSQL again (for up to
//!    8 s, waiting on the order's advisory lock so a commit still in flight is
//!    seen) and answers 201 if the order is stored. Only if it cannot tell does it
//!    answer 503, and then it keeps the reservation (see below), since releasing
//!    the stock of an order that exists would oversell.
//! 6. `CommitReservation(order id)` makes the reservation permanent and the order
//!    is marked `stock_committed`.
//!
//! A crash between 4 and 5 leaves a reservation without an order: the catalog's
//! sweeper releases it at expiry (15 minutes), so the stock comes back. A crash
//! between 5 and 6 leaves an order whose reservation is not committed: the
//! reconciler ([`app::OrdersApp::reconcile`], every minute) commits it; if the
//! reservation expired in between, the order is cancelled (its units went back
//! to the shelf and may have been sold). Cancelling an order releases its stock.
//!
//! Payments: an order may be paid by one payment intent of the payments
//! service; where that link lives and how the two services keep it in step is
//! explained in [`payments`].

pub mod app;
pub mod carts;
pub mod catalog;
pub mod checkout;
pub mod domain;
mod error;
mod grpc;
pub mod invoice;
mod mail;
pub use mail::{OrderMails, StockAlertMails};
pub mod payments;
mod pdf;
mod store;
mod wire;

pub use app::AfterSales;
pub use catalog::Catalog;
pub use error::OrderError;
pub use grpc::OrdersService;
pub use payments::Payments;

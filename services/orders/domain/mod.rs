//! The orders service's domain: values that are valid once built, and the pure
//! rules of pricing and of an order's states. No proto, no SQL.

pub mod cart;
pub mod order;
pub mod pricing;
pub mod request;
pub mod status;

pub use cart::Cart;
pub use order::{
    Address, DELIVERY_DAYS, Note, Order, OrderSummary, PayingIntent, PaymentView, ReturnRequest,
    StatusChange, Tracking, TrackingEvent, tracking_url,
};
pub use pricing::{PricedLine, PricingRules, ProductPrice, Totals};
pub use request::{
    CartLines, Lines, NewOrder, OrderForm, StatusForm, StatusUpdate, cancel_reason, note,
    return_items, return_reason,
};
pub use status::{Corrupt, IntentState, OrderStatus, PaymentState, ReturnStatus};

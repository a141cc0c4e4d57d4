//! The orders service's domain: values that are valid once built, and the pure
//! rules of pricing and of an order's states. No proto, no SQL.

pub mod cart;
pub mod coupon;
pub mod location;
pub mod order;
pub mod pricing;
pub mod request;
pub mod shipping;
pub mod status;

pub use cart::{Cart, CheckoutCart};
pub use coupon::{Coupon, CouponCode, CouponEffect, CouponForm, CouponRefusal, NewCoupon};
pub use location::Destination;
pub use order::{
    Address, DELIVERY_DAYS, Note, Order, OrderSummary, PayingIntent, PaymentView, ReturnRequest,
    StatusChange, Tracking, TrackingEvent, tracking_url,
};
pub use pricing::{PricedLine, PricingRules, ProductPrice, TaxRate, Totals};
pub use request::{
    CartLines, CouponChoice, Lines, NewOrder, OrderForm, StatusForm, StatusUpdate, cancel_reason,
    note, return_items, return_reason,
};
pub use status::{Corrupt, IntentState, OrderStatus, PaymentState, ReturnStatus};

//! Domain values to and from the wire (proto/ecom/orders/v1): the only room of
//! the orders service, with grpc.rs, that sees protobuf types.

use super::checkout::Rates;
use super::domain::coupon::CouponKind;
use super::domain::shipping::ShippingMethod;
use super::domain::{
    Address, Cart, CheckoutCart, Coupon, CouponForm, Order, OrderForm, OrderStatus, OrderSummary,
    PaymentState, PricedLine, ReturnRequest, ReturnStatus, StatusForm, TaxRate, Tracking,
};
use crate::clock::{from_timestamp, timestamp};
use crate::money;
use crate::proto::ecom::common::v1::ShippingAddress;
use crate::proto::ecom::orders::v1 as pb;

/// (product id, quantity) pairs of request lines.
pub fn line_items(items: &[pb::LineItem]) -> Vec<(i64, i32)> {
    items.iter().map(|i| (i.id, i.quantity)).collect()
}

pub fn address_from_wire(a: &ShippingAddress) -> Address {
    Address {
        first_name: a.first_name.clone(),
        last_name: a.last_name.clone(),
        address: a.address.clone(),
        city: a.city.clone(),
        state: a.state.clone(),
        zip_code: a.zip_code.clone(),
        country: a.country.clone(),
        phone: a.phone.clone(),
    }
}

fn address(a: &Address) -> ShippingAddress {
    ShippingAddress {
        first_name: a.first_name.clone(),
        last_name: a.last_name.clone(),
        address: a.address.clone(),
        city: a.city.clone(),
        state: a.state.clone(),
        zip_code: a.zip_code.clone(),
        country: a.country.clone(),
        phone: a.phone.clone(),
    }
}

/// What POST /orders sent.
pub fn order_form(r: &pb::CreateOrderRequest) -> OrderForm {
    OrderForm {
        lines: line_items(&r.products),
        shipping_address: r.shipping_address.as_ref().map(address_from_wire),
        billing_address: r.billing_address.as_ref().map(address_from_wire),
        payment_method: r.payment_method.clone(),
        payment_intent_id: r.payment_intent_id.clone(),
        coupon_code: r.coupon_code.clone(),
        shipping_method: r.shipping_method.clone(),
    }
}

/// What PUT /orders/:id/status sent.
pub fn status_form(r: &pb::UpdateOrderStatusRequest) -> StatusForm {
    StatusForm {
        status: status_from_wire(r.status),
        tracking_number: r.tracking_number.clone(),
        carrier: r.carrier.clone(),
        note: r.note.clone(),
    }
}

/// A status from the wire; `None` for UNSPECIFIED or unknown values.
pub fn status_from_wire(value: i32) -> Option<OrderStatus> {
    Some(match pb::OrderStatus::try_from(value).ok()? {
        pb::OrderStatus::Pending => OrderStatus::Pending,
        pb::OrderStatus::Processing => OrderStatus::Processing,
        pb::OrderStatus::Shipped => OrderStatus::Shipped,
        pb::OrderStatus::Delivered => OrderStatus::Delivered,
        pb::OrderStatus::Cancelled => OrderStatus::Cancelled,
        pb::OrderStatus::Unspecified => return None,
    })
}

pub fn status(s: OrderStatus) -> pb::OrderStatus {
    match s {
        OrderStatus::Pending => pb::OrderStatus::Pending,
        OrderStatus::Processing => pb::OrderStatus::Processing,
        OrderStatus::Shipped => pb::OrderStatus::Shipped,
        OrderStatus::Delivered => pb::OrderStatus::Delivered,
        OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
    }
}

pub fn payment_state(s: PaymentState) -> pb::PaymentState {
    match s {
        PaymentState::Unpaid => pb::PaymentState::Unpaid,
        PaymentState::Paid => pb::PaymentState::Paid,
        PaymentState::Refunded => pb::PaymentState::Refunded,
    }
}

fn return_status(s: ReturnStatus) -> pb::ReturnStatus {
    match s {
        ReturnStatus::Requested => pb::ReturnStatus::Requested,
        ReturnStatus::Approved => pb::ReturnStatus::Approved,
        ReturnStatus::Rejected => pb::ReturnStatus::Rejected,
        ReturnStatus::Completed => pb::ReturnStatus::Completed,
    }
}

fn line(l: &PricedLine) -> pb::CartItem {
    pb::CartItem {
        id: l.product_id,
        title: l.title.clone(),
        price: money::to_wire(l.price_cents),
        quantity: l.quantity,
        total: money::to_wire(l.total_cents),
        discount_percentage: f64::from(l.discount_bp) / 100.0,
        discounted_total: money::to_wire(l.discounted_total_cents),
        thumbnail: l.thumbnail.clone(),
    }
}

fn return_request(r: &ReturnRequest) -> pb::ReturnRequest {
    pb::ReturnRequest {
        status: return_status(r.status) as i32,
        reason: r.reason.clone(),
        items: r
            .items
            .iter()
            .map(|&(id, quantity)| pb::LineItem { id, quantity })
            .collect(),
        requested_at: Some(timestamp(r.requested_at)),
        updated_at: Some(timestamp(r.updated_at)),
    }
}

pub fn order(o: &Order) -> pb::Order {
    let t = o.totals;
    pb::Order {
        id: o.id.clone(),
        user_id: o.user_id,
        products: o.lines.iter().map(line).collect(),
        subtotal: money::to_wire(t.subtotal_cents),
        tax: money::to_wire(t.tax_cents),
        shipping: money::to_wire(t.shipping_cents),
        total: money::to_wire(t.total_cents),
        status: status(o.status) as i32,
        shipping_address: Some(address(&o.shipping_address)),
        billing_address: Some(address(&o.billing_address)),
        payment_method: o.payment_method.clone(),
        payment_intent_id: o.payment_intent_id.clone(),
        tracking_number: o.tracking_number.clone(),
        carrier: o.carrier.clone(),
        cancel_reason: o.cancel_reason.clone(),
        cancelled_at: o.cancelled_at.map(timestamp),
        created_at: Some(timestamp(o.created_at)),
        updated_at: Some(timestamp(o.updated_at)),
        payment_status: payment_state(o.payment_status) as i32,
        history: o
            .history
            .iter()
            .map(|h| pb::StatusChange {
                status: status(h.status) as i32,
                note: h.note.clone(),
                by_user_id: h.by_user_id,
                at: Some(timestamp(h.at)),
            })
            .collect(),
        notes: o
            .notes
            .iter()
            .map(|n| pb::OrderNote {
                id: n.id,
                note: n.note.clone(),
                by_user_id: n.by_user_id,
                created_at: Some(timestamp(n.created_at)),
            })
            .collect(),
        return_request: o.return_request.as_ref().map(return_request),
        discount: money::to_wire(t.discount_cents),
        coupon_code: o.coupon_code.clone(),
        shipping_method: o.shipping_method.clone(),
        tax_rate: o.tax_rate.map(TaxRate::fraction),
    }
}

pub fn summary(s: &OrderSummary) -> pb::OrderSummary {
    pb::OrderSummary {
        id: s.id.clone(),
        status: status(s.status) as i32,
        total: money::to_wire(s.total_cents),
        created_at: Some(timestamp(s.created_at)),
    }
}

pub fn tracking(t: Tracking) -> pb::GetTrackingResponse {
    pb::GetTrackingResponse {
        order_id: t.order_id,
        status: t.status.to_owned(),
        carrier: t.carrier,
        tracking_number: t.tracking_number,
        tracking_url: t.tracking_url,
        estimated_delivery: t.estimated_delivery,
        events: t
            .events
            .into_iter()
            .map(|e| pb::TrackingEvent {
                status: e.status.to_owned(),
                location: e.location,
                timestamp: Some(timestamp(e.at)),
                description: e.description,
            })
            .collect(),
    }
}

pub fn cart(c: &Cart) -> pb::Cart {
    pb::Cart {
        id: c.id,
        products: c.lines.iter().map(line).collect(),
        total: money::to_wire(c.total_cents()),
        discounted_total: money::to_wire(c.discounted_total_cents()),
        user_id: c.user_id,
        total_products: c.lines.len() as i32,
        total_quantity: c.total_quantity(),
        is_deleted: c.deleted_at.is_some(),
        deleted_on: c.deleted_at.map(timestamp),
    }
}

/// What an admin sent for a coupon (`code` from the path when given).
pub fn coupon_form(c: &pb::CouponInput, code: Option<&str>) -> CouponForm {
    let kind = match pb::CouponKind::try_from(c.kind) {
        Ok(pb::CouponKind::Percentage) => "percentage",
        Ok(pb::CouponKind::FixedAmount) => "fixed_amount",
        Ok(pb::CouponKind::FreeShipping) => "free_shipping",
        _ => "",
    };
    let cents = |v: Option<f64>| v.map(|v| money::from_wire_non_negative(v).ok());
    CouponForm {
        code: code.unwrap_or(&c.code).to_owned(),
        kind: kind.to_owned(),
        percent_off: c.percent_off,
        amount_off_cents: cents(c.amount_off),
        min_subtotal_cents: cents(c.min_subtotal),
        starts_at: c.starts_at.as_ref().and_then(from_timestamp),
        ends_at: c.ends_at.as_ref().and_then(from_timestamp),
        usage_limit: c.usage_limit,
        per_user_limit: c.per_user_limit,
        product_ids: c.product_ids.clone(),
        categories: c.categories.clone(),
        active: c.active,
    }
}

pub fn coupon(c: &Coupon) -> pb::Coupon {
    let t = &c.terms;
    let kind = match t.kind {
        CouponKind::Percentage(_) => pb::CouponKind::Percentage,
        CouponKind::FixedAmount(_) => pb::CouponKind::FixedAmount,
        CouponKind::FreeShipping => pb::CouponKind::FreeShipping,
    };
    pb::Coupon {
        id: c.id,
        code: c.code.clone(),
        kind: kind as i32,
        percent_off: t.kind.percent_off(),
        amount_off: t.kind.amount_off_cents().map(money::to_wire),
        min_subtotal: t.min_subtotal_cents.map(money::to_wire),
        starts_at: t.starts_at.map(timestamp),
        ends_at: t.ends_at.map(timestamp),
        usage_limit: t.usage_limit,
        per_user_limit: t.per_user_limit,
        used: c.used,
        product_ids: t.product_ids.clone(),
        categories: t.categories.clone(),
        active: t.active,
        created_at: Some(timestamp(c.created_at)),
        updated_at: Some(timestamp(c.updated_at)),
    }
}

pub fn priced_cart(c: &CheckoutCart) -> pb::PricedCart {
    let t = c.totals;
    pb::PricedCart {
        id: c.cart.id,
        products: c.cart.lines.iter().map(line).collect(),
        subtotal: money::to_wire(t.subtotal_cents),
        discount: money::to_wire(t.discount_cents),
        shipping: money::to_wire(t.shipping_cents),
        tax: money::to_wire(t.tax_cents),
        total: money::to_wire(t.total_cents),
        coupon_code: c.coupon_code.clone(),
        shipping_method: c.shipping_method.clone(),
        tax_rate: c.tax_rate.fraction(),
        total_quantity: c.cart.total_quantity(),
    }
}

pub fn shipping_method(m: &ShippingMethod) -> pb::ShippingMethod {
    pb::ShippingMethod {
        code: m.code.clone(),
        name: m.name.clone(),
        free_over_threshold: m.free_over_threshold,
    }
}

pub fn rates(r: &Rates) -> pb::GetShippingRatesResponse {
    pb::GetShippingRatesResponse {
        rates: r
            .quotes
            .iter()
            .map(|q| pb::ShippingRate {
                method: q.method.clone(),
                name: q.name.clone(),
                amount: money::to_wire(q.cents),
                free: q.free,
                min_days: q.min_days,
                max_days: q.max_days,
            })
            .collect(),
        weight: r.weight_grams as f64 / 1000.0,
        subtotal: money::to_wire(r.subtotal_cents),
    }
}

pub fn tax_rate(country: &str, state: &str, rate: TaxRate) -> pb::TaxRate {
    pb::TaxRate {
        country: country.to_owned(),
        state: state.to_owned(),
        rate: rate.fraction(),
    }
}

//! An order as the service knows it: its lines and totals, addresses, states,
//! history, notes and latest return, and the pure rules that read or change it.

use chrono::{DateTime, Utc};

use super::pricing::{PricedLine, TaxRate, Totals};
use super::status::{OrderStatus, PaymentState, ReturnStatus, status_after_payment};
use crate::validation::Violations;

/// A postal address of an order (shipping or billing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    pub first_name: String,
    pub last_name: String,
    pub address: String,
    pub city: String,
    pub state: String,
    pub zip_code: String,
    pub country: String,
    pub phone: String,
}

impl Address {
    /// Checks an address given as `field`: the name, street, city, zip code and
    /// country are required, each at most 200 bytes.
    pub fn check(field: &str, address: Option<Address>) -> Result<Address, Violations> {
        let Some(a) = address else {
            return Err(Violations::one(field, "is required"));
        };
        let mut violations = Violations::default();
        for (name, value) in [
            ("firstName", &a.first_name),
            ("lastName", &a.last_name),
            ("address", &a.address),
            ("city", &a.city),
            ("zipCode", &a.zip_code),
            ("country", &a.country),
        ] {
            if value.trim().is_empty() {
                violations.push(format!("{field}.{name}"), "is required");
            } else if value.len() > 200 {
                violations.push(format!("{field}.{name}"), "is too long");
            }
        }
        violations.finish(|| a)
    }

    /// "First Last", trimmed.
    pub fn name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_owned()
    }

    /// "City, State", or the city alone.
    pub fn locality(&self) -> String {
        if self.state.is_empty() {
            self.city.clone()
        } else {
            format!("{}, {}", self.city, self.state)
        }
    }
}

/// One entry of an order's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub status: OrderStatus,
    pub note: String,
    /// Who made the change; 0 for the system.
    pub by_user_id: i64,
    pub at: DateTime<Utc>,
}

/// A note on an order, by its buyer or an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub id: i64,
    pub note: String,
    pub by_user_id: i64,
    pub created_at: DateTime<Utc>,
}

/// A return of (part of) a delivered order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnRequest {
    pub status: ReturnStatus,
    pub reason: String,
    /// (product id, units) per returned line.
    pub items: Vec<(i64, i32)>,
    pub requested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An order in full.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: String,
    pub user_id: i64,
    pub lines: Vec<PricedLine>,
    pub totals: Totals,
    /// The coupon redeemed (its discount is `totals.discount_cents`).
    pub coupon_code: Option<String>,
    /// The shipping method's code, e.g. "standard".
    pub shipping_method: String,
    /// The tax rate applied; `None` for orders placed before rates were recorded.
    pub tax_rate: Option<TaxRate>,
    pub status: OrderStatus,
    pub payment_status: PaymentState,
    pub shipping_address: Address,
    pub billing_address: Address,
    pub payment_method: String,
    pub payment_intent_id: Option<String>,
    pub tracking_number: Option<String>,
    pub carrier: Option<String>,
    pub cancel_reason: Option<String>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Oldest first.
    pub history: Vec<StatusChange>,
    pub notes: Vec<Note>,
    pub return_request: Option<ReturnRequest>,
}

/// The note of the history entry a payment adds.
pub const PAYMENT_RECEIVED: &str = "Payment received";

impl Order {
    /// When the order last reached `status`, from its history.
    pub fn last_reached(&self, status: OrderStatus) -> Option<DateTime<Utc>> {
        self.history
            .iter()
            .rev()
            .find(|h| h.status == status)
            .map(|h| h.at)
    }

    /// Marks a just-placed order paid by its intent (the system moves it on).
    pub fn paid_at_placement(&mut self, now: DateTime<Utc>) {
        self.payment_status = PaymentState::Paid;
        if let Some(next) = status_after_payment(self.status, self.payment_status) {
            self.status = next;
            self.history.push(StatusChange {
                status: next,
                note: PAYMENT_RECEIVED.to_owned(),
                by_user_id: 0,
                at: now,
            });
        }
    }
}

/// A summary line of an order list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSummary {
    pub id: String,
    pub status: OrderStatus,
    pub total_cents: i64,
    pub created_at: DateTime<Utc>,
}

/// What a payment needs of an order: owner, status, total, payment state, intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentView {
    pub id: String,
    pub user_id: i64,
    pub status: OrderStatus,
    pub total_cents: i64,
    pub payment_status: PaymentState,
    pub payment_intent_id: Option<String>,
}

/// The intent an order is to be paid by, as the payments service tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayingIntent {
    pub amount_cents: i64,
    /// ISO code, lowercase.
    pub currency: String,
    pub succeeded: bool,
    pub refunded: bool,
}

/// The carriers the shop ships with, and their tracking pages.
const CARRIERS: &[(&str, &str)] = &[
    ("UPS", "https://www.ups.com/track?tracknum="),
    ("FedEx", "https://www.fedex.com/fedextrack/?trknbr="),
    (
        "USPS",
        "https://tools.usps.com/go/TrackConfirmAction?tLabels=",
    ),
    ("DHL", "https://www.dhl.com/en/express/tracking.html?AWB="),
];
/// Days from shipping to the estimated delivery.
pub const DELIVERY_DAYS: i64 = 3;

/// A carrier the shop ships with, by its name in any case.
pub fn carrier(name: &str) -> Option<&'static str> {
    CARRIERS
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|(known, _)| *known)
}

/// The carrier's tracking page of a shipment; empty for an unknown carrier or no number.
pub fn tracking_url(carrier: &str, tracking_number: &str) -> String {
    CARRIERS
        .iter()
        .find(|(name, _)| *name == carrier)
        .filter(|_| !tracking_number.is_empty())
        .map(|(_, base)| format!("{base}{tracking_number}"))
        .unwrap_or_default()
}

/// One event of the tracking page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingEvent {
    pub status: &'static str,
    pub location: String,
    pub at: DateTime<Utc>,
    pub description: String,
}

/// The tracking page of an order (GET /orders/{id}/tracking).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    pub order_id: String,
    pub status: &'static str,
    pub carrier: String,
    pub tracking_number: String,
    pub tracking_url: String,
    /// `YYYY-MM-DD`, empty while unknown.
    pub estimated_delivery: String,
    pub events: Vec<TrackingEvent>,
}

impl Tracking {
    /// The carrier, tracking number and page, the delivery (as it happened, or
    /// estimated from the shipping), and an event per history entry.
    pub fn of(order: &Order) -> Tracking {
        let carrier = order.carrier.clone().unwrap_or_default();
        let tracking_number = order.tracking_number.clone().unwrap_or_default();
        let estimated_delivery = order
            .last_reached(OrderStatus::Delivered)
            .or_else(|| {
                order
                    .last_reached(OrderStatus::Shipped)
                    .map(|at| at + chrono::Duration::days(DELIVERY_DAYS))
            })
            .map(|at| at.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let location = order.shipping_address.locality();
        let events = order
            .history
            .iter()
            .map(|h| TrackingEvent {
                status: h.status.carrier_status(),
                location: if h.status == OrderStatus::Delivered {
                    location.clone()
                } else {
                    String::new()
                },
                at: h.at,
                description: h.note.clone(),
            })
            .collect();
        Tracking {
            order_id: order.id.clone(),
            status: order.status.carrier_status(),
            tracking_url: tracking_url(&carrier, &tracking_number),
            carrier,
            tracking_number,
            estimated_delivery,
            events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carriers_are_matched_in_any_case_and_link_their_tracking_page() {
        assert_eq!(carrier("fedex"), Some("FedEx"));
        assert_eq!(carrier("Royal Mail"), None);
        assert_eq!(
            tracking_url("UPS", "1Z999"),
            "https://www.ups.com/track?tracknum=1Z999"
        );
        assert_eq!(tracking_url("UPS", ""), "");
        assert_eq!(tracking_url("Royal Mail", "1"), "");
    }

    #[test]
    fn addresses_need_their_fields() {
        let v = Address::check("shippingAddress", Some(Address::default())).unwrap_err();
        assert_eq!(v.as_slice().len(), 6);
        assert_eq!(v.as_slice()[0].0, "shippingAddress.firstName");
        let v = Address::check("billingAddress", None).unwrap_err();
        assert_eq!(
            v.as_slice()[0],
            ("billingAddress".into(), "is required".into())
        );
    }
}

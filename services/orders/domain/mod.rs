//! The orders service's domain: values that are valid once built.

pub mod pricing;

use std::collections::BTreeMap;

use crate::proto::ecom::common::v1::ShippingAddress;
use crate::proto::ecom::orders::v1 as pb;

pub use pricing::{PricedLine, PricingRules, Totals};

/// Most distinct products in one order or cart.
pub const MAX_LINES: usize = 100;
/// Most units of one product in one order or cart line.
pub const MAX_QUANTITY: i32 = 1000;

/// Fulfilment status of an order (contract 9.1), stored as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Processing,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    /// The stored and JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Processing => "processing",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<OrderStatus> {
        Some(match s {
            "pending" => OrderStatus::Pending,
            "processing" => OrderStatus::Processing,
            "shipped" => OrderStatus::Shipped,
            "delivered" => OrderStatus::Delivered,
            "cancelled" => OrderStatus::Cancelled,
            _ => return None,
        })
    }

    /// From the wire enum; None for UNSPECIFIED or unknown values.
    pub fn from_wire(value: i32) -> Option<OrderStatus> {
        Some(match pb::OrderStatus::try_from(value).ok()? {
            pb::OrderStatus::Pending => OrderStatus::Pending,
            pb::OrderStatus::Processing => OrderStatus::Processing,
            pb::OrderStatus::Shipped => OrderStatus::Shipped,
            pb::OrderStatus::Delivered => OrderStatus::Delivered,
            pb::OrderStatus::Cancelled => OrderStatus::Cancelled,
            pb::OrderStatus::Unspecified => return None,
        })
    }

    /// To the wire enum.
    pub fn to_wire(self) -> pb::OrderStatus {
        match self {
            OrderStatus::Pending => pb::OrderStatus::Pending,
            OrderStatus::Processing => pb::OrderStatus::Processing,
            OrderStatus::Shipped => pb::OrderStatus::Shipped,
            OrderStatus::Delivered => pb::OrderStatus::Delivered,
            OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
        }
    }

    /// The status machine: pending -> processing -> shipped -> delivered;
    /// cancelled from pending or processing only.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Pending, Processing)
                | (Processing, Shipped)
                | (Shipped, Delivered)
                | (Pending | Processing, Cancelled)
        )
    }

    /// Whether the buyer may still cancel.
    pub fn cancellable(self) -> bool {
        self.can_become(OrderStatus::Cancelled)
    }
}

/// Order lines as requested: quantities per product, in id order, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines(BTreeMap<i64, i32>);

impl Lines {
    /// Merges repeated products and checks ids and quantities. `allow_empty` for carts.
    pub fn parse(
        items: &[pb::LineItem],
        allow_empty: bool,
    ) -> Result<Lines, Vec<(String, String)>> {
        let mut lines = BTreeMap::new();
        let mut violations = Vec::new();
        for item in items {
            if item.id <= 0 {
                violations.push((
                    "products.id".to_owned(),
                    format!("`{}` is not a product id", item.id),
                ));
                continue;
            }
            if item.quantity < 1 || item.quantity > MAX_QUANTITY {
                violations.push((
                    "products.quantity".to_owned(),
                    format!("must be between 1 and {MAX_QUANTITY}"),
                ));
                continue;
            }
            let q: &mut i32 = lines.entry(item.id).or_default();
            *q += item.quantity;
            if *q > MAX_QUANTITY {
                violations.push((
                    "products.quantity".to_owned(),
                    format!("must be between 1 and {MAX_QUANTITY}"),
                ));
            }
        }
        if lines.is_empty() && !allow_empty && violations.is_empty() {
            violations.push((
                "products".to_owned(),
                "must list at least one product".to_owned(),
            ));
        }
        if lines.len() > MAX_LINES {
            violations.push((
                "products".to_owned(),
                format!("at most {MAX_LINES} products"),
            ));
        }
        if violations.is_empty() {
            Ok(Lines(lines))
        } else {
            Err(violations)
        }
    }

    /// The lines, by product id.
    pub fn iter(&self) -> impl Iterator<Item = (i64, i32)> + '_ {
        self.0.iter().map(|(id, q)| (*id, *q))
    }

    /// The product ids.
    pub fn ids(&self) -> Vec<i64> {
        self.0.keys().copied().collect()
    }

    /// No lines.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A checked shipping or billing address.
pub fn check_address(
    field: &str,
    address: Option<&ShippingAddress>,
) -> Result<ShippingAddress, Vec<(String, String)>> {
    let Some(a) = address else {
        return Err(vec![(field.to_owned(), "is required".to_owned())]);
    };
    let mut violations = Vec::new();
    for (name, value) in [
        ("firstName", &a.first_name),
        ("lastName", &a.last_name),
        ("address", &a.address),
        ("city", &a.city),
        ("zipCode", &a.zip_code),
        ("country", &a.country),
    ] {
        if value.trim().is_empty() {
            violations.push((format!("{field}.{name}"), "is required".to_owned()));
        } else if value.len() > 200 {
            violations.push((format!("{field}.{name}"), "is too long".to_owned()));
        }
    }
    if violations.is_empty() {
        Ok(a.clone())
    } else {
        Err(violations)
    }
}

/// A valid order to place (contract 6.2.1), before pricing.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub lines: Lines,
    pub shipping_address: ShippingAddress,
    pub billing_address: ShippingAddress,
    pub payment_method: String,
    pub payment_intent_id: Option<String>,
}

impl TryFrom<&pb::CreateOrderRequest> for NewOrder {
    type Error = Vec<(String, String)>;

    fn try_from(r: &pb::CreateOrderRequest) -> Result<NewOrder, Self::Error> {
        let mut violations = Vec::new();
        let lines = Lines::parse(&r.products, false)
            .map_err(|v| violations.extend(v))
            .ok();
        let shipping = check_address("shippingAddress", r.shipping_address.as_ref())
            .map_err(|v| violations.extend(v))
            .ok();
        let billing = match &r.billing_address {
            Some(b) => check_address("billingAddress", Some(b))
                .map_err(|v| violations.extend(v))
                .ok(),
            None => shipping.clone(),
        };
        let payment_method = r.payment_method.trim().to_owned();
        if payment_method.is_empty() || payment_method.len() > 50 {
            violations.push((
                "paymentMethod".to_owned(),
                "is required (at most 50 characters)".to_owned(),
            ));
        }
        let payment_intent_id = r
            .payment_intent_id
            .as_ref()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        match (lines, shipping, billing) {
            (Some(lines), Some(shipping_address), Some(billing_address))
                if violations.is_empty() =>
            {
                Ok(NewOrder {
                    lines,
                    shipping_address,
                    billing_address,
                    payment_method,
                    payment_intent_id,
                })
            }
            _ => Err(violations),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_machine() {
        use OrderStatus::*;
        assert!(Pending.can_become(Processing));
        assert!(Processing.can_become(Shipped));
        assert!(Shipped.can_become(Delivered));
        assert!(Pending.can_become(Cancelled));
        assert!(Processing.can_become(Cancelled));
        assert!(!Shipped.can_become(Cancelled));
        assert!(!Delivered.can_become(Cancelled));
        assert!(!Pending.can_become(Shipped));
        assert!(!Delivered.can_become(Pending));
        assert!(!Cancelled.can_become(Processing));
    }

    #[test]
    fn lines_merge_and_validate() {
        let item = |id, quantity| pb::LineItem { id, quantity };
        let lines = Lines::parse(&[item(5, 1), item(2, 1), item(5, 2)], false).unwrap();
        assert_eq!(lines.iter().collect::<Vec<_>>(), vec![(2, 1), (5, 3)]);
        assert!(Lines::parse(&[], false).is_err());
        assert!(Lines::parse(&[], true).is_ok());
        assert!(Lines::parse(&[item(1, 0)], false).is_err());
        assert!(Lines::parse(&[item(-1, 1)], false).is_err());
    }
}

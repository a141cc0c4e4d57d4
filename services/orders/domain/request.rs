//! What callers ask of the orders service, checked: each value is valid once
//! built, and a refusal names every field that is wrong.

use std::collections::BTreeMap;

use super::coupon::CouponCode;
use super::order::{Address, carrier};
use super::shipping::method_code;
use super::status::OrderStatus;
use crate::validation::Violations;

/// Most distinct products in one order or cart.
pub const MAX_LINES: usize = 100;
/// Most units of one product in one order or cart line.
pub const MAX_QUANTITY: i32 = 1000;
/// Longest note, cancellation reason or status note, in bytes.
pub const MAX_NOTE: usize = 2000;
/// Longest return reason, in characters.
pub const MAX_RETURN_REASON: usize = 500;

/// Order lines as requested: quantities per product, in id order, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines(BTreeMap<i64, i32>);

impl Lines {
    /// Merges repeated products and checks ids and quantities.
    pub fn parse(items: impl IntoIterator<Item = (i64, i32)>) -> Result<Lines, Violations> {
        let mut lines = BTreeMap::new();
        let mut violations = Violations::default();
        for (id, quantity) in items {
            if id <= 0 {
                violations.push("products.id", format!("`{id}` is not a product id"));
                continue;
            }
            if !(1..=MAX_QUANTITY).contains(&quantity) {
                violations.push(
                    "products.quantity",
                    format!("must be between 1 and {MAX_QUANTITY}"),
                );
                continue;
            }
            let q: &mut i32 = lines.entry(id).or_default();
            *q += quantity;
            if *q > MAX_QUANTITY {
                violations.push(
                    "products.quantity",
                    format!("must be between 1 and {MAX_QUANTITY}"),
                );
            }
        }
        if lines.is_empty() && violations.is_empty() {
            violations.push("products", "must list at least one product");
        }
        if lines.len() > MAX_LINES {
            violations.push("products", format!("at most {MAX_LINES} products"));
        }
        violations.finish(|| Lines(lines))
    }

    /// The lines, by product id.
    pub fn iter(&self) -> impl Iterator<Item = (i64, i32)> + '_ {
        self.0.iter().map(|(id, q)| (*id, *q))
    }

    /// The product ids.
    pub fn ids(&self) -> Vec<i64> {
        self.0.keys().copied().collect()
    }
}

/// Cart lines as requested: the quantity per product (the last one given wins);
/// with `allow_zero`, a quantity of 0 removes the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartLines(BTreeMap<i64, i32>);

impl CartLines {
    pub fn parse(
        items: impl IntoIterator<Item = (i64, i32)>,
        allow_zero: bool,
    ) -> Result<CartLines, Violations> {
        let mut lines = BTreeMap::new();
        let mut violations = Violations::default();
        let min = if allow_zero { 0 } else { 1 };
        for (id, quantity) in items {
            if id <= 0 {
                violations.push("products.id", format!("`{id}` is not a product id"));
            } else if !(min..=MAX_QUANTITY).contains(&quantity) {
                violations.push(
                    "products.quantity",
                    format!("must be between {min} and {MAX_QUANTITY}"),
                );
            } else {
                lines.insert(id, quantity);
            }
        }
        if lines.len() > MAX_LINES {
            violations.push("products", format!("at most {MAX_LINES} products"));
        }
        violations.finish(|| CartLines(lines))
    }

    /// The lines, by product id (quantity 0: remove).
    pub fn iter(&self) -> impl Iterator<Item = (i64, i32)> + '_ {
        self.0.iter().map(|(id, q)| (*id, *q))
    }

    /// The products the lines keep or add (not those they remove).
    pub fn kept_ids(&self) -> Vec<i64> {
        self.iter()
            .filter(|(_, q)| *q > 0)
            .map(|(id, _)| id)
            .collect()
    }
}

/// What POST /orders sends, decoded but not yet checked.
#[derive(Debug, Clone, Default)]
pub struct OrderForm {
    pub lines: Vec<(i64, i32)>,
    pub shipping_address: Option<Address>,
    pub billing_address: Option<Address>,
    pub payment_method: String,
    pub payment_intent_id: Option<String>,
    /// `None`: the coupon applied to the caller's cart, if any; `Some("")`: none.
    pub coupon_code: Option<String>,
    /// '' for the default method.
    pub shipping_method: String,
}

/// Which coupon an order redeems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponChoice {
    /// The one applied to the buyer's cart, if any (the request named none).
    FromCart,
    /// None (the request sent an empty code).
    None,
    /// This one.
    Code(CouponCode),
}

/// A valid order to place (the body of POST /orders), before pricing.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub lines: Lines,
    pub shipping_address: Address,
    /// The shipping address when none was given.
    pub billing_address: Address,
    pub payment_method: String,
    pub payment_intent_id: Option<String>,
    pub coupon: CouponChoice,
    /// A method code (checked against the methods when priced).
    pub shipping_method: String,
}

impl NewOrder {
    pub fn parse(form: OrderForm) -> Result<NewOrder, Violations> {
        let mut violations = Violations::default();
        let lines = keep(&mut violations, Lines::parse(form.lines));
        let shipping = keep(
            &mut violations,
            Address::check("shippingAddress", form.shipping_address),
        );
        let billing = match form.billing_address {
            Some(b) => keep(&mut violations, Address::check("billingAddress", Some(b))),
            None => shipping.clone(),
        };
        let payment_method = form.payment_method.trim().to_owned();
        if payment_method.is_empty() || payment_method.len() > 50 {
            violations.push("paymentMethod", "is required (at most 50 characters)");
        }
        let payment_intent_id = form
            .payment_intent_id
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let coupon = match form.coupon_code.as_deref().map(str::trim) {
            None => Some(CouponChoice::FromCart),
            Some("") => Some(CouponChoice::None),
            Some(code) => violations
                .check("couponCode", CouponCode::parse(code))
                .map(CouponChoice::Code),
        };
        let shipping_method = keep(&mut violations, method_code(&form.shipping_method));
        match (lines, shipping, billing, coupon, shipping_method) {
            (
                Some(lines),
                Some(shipping_address),
                Some(billing_address),
                Some(coupon),
                Some(shipping_method),
            ) if violations.is_empty() => Ok(NewOrder {
                lines,
                shipping_address,
                billing_address,
                payment_method,
                payment_intent_id,
                coupon,
                shipping_method,
            }),
            _ => Err(violations),
        }
    }
}

/// Keeps a value, or moves its violations into `all`.
fn keep<T>(all: &mut Violations, parsed: Result<T, Violations>) -> Option<T> {
    parsed
        .map_err(|v| {
            for (field, message) in v.into_inner() {
                all.push(field, message);
            }
        })
        .ok()
}

/// What PUT /orders/:id/status sends, decoded but not yet checked.
#[derive(Debug, Clone, Default)]
pub struct StatusForm {
    /// `None` for an unknown or unspecified status.
    pub status: Option<OrderStatus>,
    pub tracking_number: Option<String>,
    pub carrier: Option<String>,
    pub note: Option<String>,
}

/// A valid status change (PUT /orders/{id}/status): shipping needs a tracking number
/// and a known carrier, which are kept for a shipment only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub next: OrderStatus,
    /// Given for `Shipped` only.
    pub shipment: Option<(String, &'static str)>,
    /// The admin's note, or "Status changed to <status>".
    pub note: String,
}

impl StatusUpdate {
    pub fn parse(form: StatusForm) -> Result<StatusUpdate, Violations> {
        let next = form
            .status
            .ok_or_else(|| Violations::one("status", "must be a known order status"))?;
        let given = |s: Option<String>| {
            s.map(|s| s.trim().to_owned())
                .filter(|s: &String| !s.is_empty())
        };
        let tracking = given(form.tracking_number);
        let carrier = match given(form.carrier) {
            Some(c) => Some(carrier(&c).ok_or_else(|| {
                Violations::one("carrier", "must be one of UPS, FedEx, USPS, DHL")
            })?),
            None => None,
        };
        if next == OrderStatus::Shipped && (tracking.is_none() || carrier.is_none()) {
            let mut violations = Violations::default();
            if tracking.is_none() {
                violations.push("trackingNumber", "is required when shipping");
            }
            if carrier.is_none() {
                violations.push("carrier", "is required when shipping");
            }
            return Err(violations);
        }
        if tracking.as_ref().is_some_and(|t| t.len() > 100) {
            return Err(Violations::one("trackingNumber", "is too long"));
        }
        let note = given(form.note).unwrap_or_default();
        if note.len() > MAX_NOTE {
            return Err(Violations::one("note", "is too long"));
        }
        let note = if note.is_empty() {
            format!("Status changed to {}", next.as_str())
        } else {
            note
        };
        let shipment = match (next, tracking, carrier) {
            (OrderStatus::Shipped, Some(tracking), Some(carrier)) => Some((tracking, carrier)),
            _ => None,
        };
        Ok(StatusUpdate {
            next,
            shipment,
            note,
        })
    }
}

/// The reason of a cancellation by the buyer: trimmed, at most 2000 bytes, a
/// default when none is given.
pub fn cancel_reason(raw: &str) -> Result<String, Violations> {
    let reason = raw.trim();
    if reason.len() > MAX_NOTE {
        return Err(Violations::one("reason", "is too long"));
    }
    Ok(if reason.is_empty() {
        "Cancelled by the customer".to_owned()
    } else {
        reason.to_owned()
    })
}

/// A note on an order: trimmed, 1 to 2000 characters.
pub fn note(raw: &str) -> Result<String, Violations> {
    let note = raw.trim();
    if note.is_empty() || note.chars().count() > MAX_NOTE {
        return Err(Violations::one(
            "note",
            format!("must be 1 to {MAX_NOTE} characters"),
        ));
    }
    Ok(note.to_owned())
}

/// The reason of a return: trimmed, 1 to 500 characters.
pub fn return_reason(raw: &str) -> Result<String, Violations> {
    let reason = raw.trim();
    if reason.is_empty() || reason.chars().count() > MAX_RETURN_REASON {
        return Err(Violations::one(
            "reason",
            format!("must be 1 to {MAX_RETURN_REASON} characters"),
        ));
    }
    Ok(reason.to_owned())
}

/// The units to return per product: the `requested` items, or every line of
/// `ordered` in full. Each item must name a line of the order once, with
/// 1..=ordered units; every violation is reported with its field (`items[2].quantity`).
pub fn return_items(
    requested: &[(i64, i32)],
    ordered: &[(i64, i32)],
) -> Result<Vec<(i64, i32)>, Violations> {
    let mut per_product: BTreeMap<i64, i32> = BTreeMap::new();
    for (id, quantity) in ordered {
        *per_product.entry(*id).or_default() += quantity;
    }
    if requested.is_empty() {
        return Ok(per_product.into_iter().collect());
    }
    let mut violations = Violations::default();
    let mut seen = BTreeMap::new();
    for (i, &(id, quantity)) in requested.iter().enumerate() {
        match per_product.get(&id) {
            None => violations.push(
                format!("items[{i}].id"),
                format!("product {id} is not in this order"),
            ),
            Some(_) if seen.insert(id, i).is_some() => violations.push(
                format!("items[{i}].id"),
                format!("product {id} is listed twice"),
            ),
            Some(&max) if !(1..=max).contains(&quantity) => violations.push(
                format!("items[{i}].quantity"),
                format!("must be between 1 and {max}"),
            ),
            Some(_) => {}
        }
    }
    violations.finish(|| requested.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_merge_and_validate() {
        let lines = Lines::parse([(5, 1), (2, 1), (5, 2)]).unwrap();
        assert_eq!(lines.iter().collect::<Vec<_>>(), vec![(2, 1), (5, 3)]);
        assert!(Lines::parse([]).is_err());
        assert!(Lines::parse([(1, 0)]).is_err());
        assert!(Lines::parse([(-1, 1)]).is_err());
        assert!(Lines::parse([(1, 600), (1, 600)]).is_err());
    }

    #[test]
    fn cart_lines_may_be_empty_and_remove_with_zero_when_merging() {
        assert!(CartLines::parse([], false).is_ok());
        assert!(CartLines::parse([(1, 0)], false).is_err());
        let lines = CartLines::parse([(1, 0), (2, 3)], true).unwrap();
        assert_eq!(lines.kept_ids(), vec![2]);
    }

    #[test]
    fn shipping_needs_a_tracking_number_and_a_known_carrier() {
        let form = |status, tracking: Option<&str>, carrier: Option<&str>| StatusForm {
            status,
            tracking_number: tracking.map(str::to_owned),
            carrier: carrier.map(str::to_owned),
            note: None,
        };
        let shipped = Some(OrderStatus::Shipped);
        let fields = |v: Violations| {
            v.into_inner()
                .into_iter()
                .map(|(f, _)| f)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields(StatusUpdate::parse(form(shipped, None, None)).unwrap_err()),
            ["trackingNumber", "carrier"]
        );
        assert_eq!(
            fields(StatusUpdate::parse(form(shipped, Some("1Z"), Some("Pigeon"))).unwrap_err()),
            ["carrier"]
        );
        assert_eq!(
            fields(StatusUpdate::parse(form(None, None, None)).unwrap_err()),
            ["status"]
        );
        let update = StatusUpdate::parse(form(shipped, Some(" 1Z "), Some("ups"))).unwrap();
        assert_eq!(update.shipment, Some(("1Z".to_owned(), "UPS")));
        assert_eq!(update.note, "Status changed to shipped");
        // Tracking details are kept for a shipment only.
        let update =
            StatusUpdate::parse(form(Some(OrderStatus::Delivered), Some("1Z"), Some("UPS")))
                .unwrap();
        assert_eq!(update.shipment, None);
    }

    #[test]
    fn no_items_means_the_whole_order() {
        assert_eq!(
            return_items(&[], &[(7, 2), (9, 1)]).unwrap(),
            vec![(7, 2), (9, 1)]
        );
    }

    #[test]
    fn items_must_be_lines_in_ordered_quantities() {
        let ordered = [(7, 2), (9, 1)];
        assert_eq!(return_items(&[(7, 1)], &ordered).unwrap(), vec![(7, 1)]);
        let v = return_items(&[(7, 3), (8, 1), (9, 0), (7, 1)], &ordered).unwrap_err();
        let v = v.into_inner();
        let fields: Vec<&str> = v.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "items[0].quantity",
                "items[1].id",
                "items[2].quantity",
                "items[3].id"
            ]
        );
        assert_eq!(v[0].1, "must be between 1 and 2");
    }

    #[test]
    fn reasons_and_notes_are_bounded() {
        assert!(return_reason("  ").is_err());
        assert!(return_reason(&"x".repeat(501)).is_err());
        assert_eq!(return_reason(" Too small ").unwrap(), "Too small");
        assert_eq!(cancel_reason("  ").unwrap(), "Cancelled by the customer");
        assert!(cancel_reason(&"x".repeat(2001)).is_err());
        assert!(note("").is_err());
        assert_eq!(note(" hi ").unwrap(), "hi");
    }
}

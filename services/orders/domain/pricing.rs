//! Server-side pricing of an order (POST /orders carries no prices; they come from the
//! catalog): integer cents only.
//!
//! Per line: `total = price * quantity`, `discountedTotal = total * (1 -
//! discount)` rounded half-up to the cent. Subtotal = sum of discounted totals;
//! tax = subtotal * TAX_RATE rounded half-up; shipping = the flat fee below the
//! free-shipping threshold, else 0; total = subtotal + tax + shipping.

/// Basis points in one whole (100 %).
const WHOLE_BP: i64 = 10_000;

/// `value * numerator / denominator`, rounded half-up (for non-negative values).
fn mul_div_half_up(value: i64, numerator: i64, denominator: i64) -> i64 {
    let product = value as i128 * numerator as i128;
    ((2 * product + denominator as i128) / (2 * denominator as i128)) as i64
}

/// A rate in basis points from a fraction (0.08 -> 800), rounded to the nearest.
pub fn basis_points(fraction: f64) -> i64 {
    (fraction * WHOLE_BP as f64).round() as i64
}

/// The pricing rules of the shop, from settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PricingRules {
    /// Tax in basis points of the discounted subtotal (800 = 8 %).
    pub tax_bp: i64,
    /// Flat shipping fee in cents.
    pub shipping_fee_cents: i64,
    /// Discounted subtotal in cents from which shipping is free.
    pub free_shipping_threshold_cents: i64,
}

/// A product's current price, as the catalog tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductPrice {
    pub id: i64,
    pub title: String,
    pub price_cents: i64,
    pub discount_bp: i32,
    pub thumbnail: String,
}

impl ProductPrice {
    /// `quantity` units of the product, priced.
    pub fn line(&self, quantity: i32) -> PricedLine {
        PricedLine::new(
            self.id,
            self.title.clone(),
            self.price_cents,
            self.discount_bp,
            quantity,
            self.thumbnail.clone(),
        )
    }
}

/// A priced line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub product_id: i64,
    pub title: String,
    pub price_cents: i64,
    pub quantity: i32,
    pub total_cents: i64,
    pub discount_bp: i32,
    pub discounted_total_cents: i64,
    pub thumbnail: String,
}

impl PricedLine {
    /// Prices `quantity` units at `price_cents` with `discount_bp` off.
    pub fn new(
        product_id: i64,
        title: String,
        price_cents: i64,
        discount_bp: i32,
        quantity: i32,
        thumbnail: String,
    ) -> Self {
        let total_cents = price_cents * i64::from(quantity);
        let discounted_total_cents =
            mul_div_half_up(total_cents, WHOLE_BP - i64::from(discount_bp), WHOLE_BP);
        PricedLine {
            product_id,
            title,
            price_cents,
            quantity,
            total_cents,
            discount_bp,
            discounted_total_cents,
            thumbnail,
        }
    }
}

/// An order's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub subtotal_cents: i64,
    pub tax_cents: i64,
    pub shipping_cents: i64,
    pub total_cents: i64,
}

impl PricingRules {
    /// The totals of `lines`.
    pub fn totals(&self, lines: &[PricedLine]) -> Totals {
        let subtotal_cents: i64 = lines.iter().map(|l| l.discounted_total_cents).sum();
        let tax_cents = mul_div_half_up(subtotal_cents, self.tax_bp, WHOLE_BP);
        let shipping_cents = if subtotal_cents >= self.free_shipping_threshold_cents {
            0
        } else {
            self.shipping_fee_cents
        };
        Totals {
            subtotal_cents,
            tax_cents,
            shipping_cents,
            total_cents: subtotal_cents + tax_cents + shipping_cents,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> PricingRules {
        PricingRules {
            tax_bp: basis_points(0.08),
            shipping_fee_cents: 999,
            free_shipping_threshold_cents: 10_000,
        }
    }

    #[test]
    fn the_contract_example_prices_exactly() {
        // Two units at 1199.99 with 5.5 % off: the worked example of the REST contract.
        let line = PricedLine::new(1, "iPhone 15 Pro".into(), 119_999, 550, 2, String::new());
        assert_eq!(line.total_cents, 239_998);
        assert_eq!(line.discounted_total_cents, 226_798);
        let totals = rules().totals(&[line]);
        assert_eq!(totals.subtotal_cents, 226_798);
        assert_eq!(totals.tax_cents, 18_144);
        assert_eq!(totals.shipping_cents, 0);
        assert_eq!(totals.total_cents, 244_942);
    }

    #[test]
    fn rounding_is_half_up_per_line() {
        // 1.00 with 12.5 % off = 0.875 -> 0.88.
        assert_eq!(
            PricedLine::new(1, "a".into(), 100, 1250, 1, String::new()).discounted_total_cents,
            88
        );
        // 0.10 with 5 % off = 0.095 -> 0.10.
        assert_eq!(
            PricedLine::new(1, "a".into(), 10, 500, 1, String::new()).discounted_total_cents,
            10
        );
    }

    #[test]
    fn shipping_is_free_from_the_threshold() {
        let below = PricedLine::new(1, "a".into(), 9_999, 0, 1, String::new());
        let t = rules().totals(&[below]);
        assert_eq!(t.shipping_cents, 999);
        assert_eq!(t.tax_cents, 800); // 99.99 * 8 % = 7.9992 -> 8.00
        assert_eq!(t.total_cents, 9_999 + 800 + 999);
        let at = PricedLine::new(1, "a".into(), 10_000, 0, 1, String::new());
        assert_eq!(rules().totals(&[at]).shipping_cents, 0);
    }
}

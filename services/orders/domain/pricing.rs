//! Server-side pricing of an order (POST /orders carries no prices; they come from the
//! catalog): integer cents only.
//!
//! Per line: `total = price * quantity`, `discountedTotal = total * (1 -
//! discount)` rounded half-up to the cent. Subtotal = sum of discounted totals;
//! discount = the coupon's ([`super::coupon`]), at most the subtotal; tax = (subtotal -
//! discount) * the destination's rate ([`TaxRate`]) rounded half-up; shipping = the
//! chosen method's rate ([`super::shipping::quote`]); total = subtotal - discount + tax +
//! shipping. [`Totals::new`] is the one place these add up.

/// Basis points in one whole (100 %).
const WHOLE_BP: i64 = 10_000;

/// `value * numerator / denominator`, rounded half-up (for non-negative values).
fn mul_div_half_up(value: i64, numerator: i64, denominator: i64) -> i64 {
    let product = value as i128 * numerator as i128;
    ((2 * product + denominator as i128) / (2 * denominator as i128)) as i64
}

/// Parts per million in one whole (100 %).
const WHOLE_PPM: i64 = 1_000_000;

/// A tax rate in parts per million (8 % = 80 000; 8.875 % = 88 750), so every rate with up
/// to four decimals of a percent is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaxRate(i64);

impl TaxRate {
    /// A rate of `ppm` parts per million, if within 0..=100 %.
    pub fn from_ppm(ppm: i64) -> Option<TaxRate> {
        (0..=WHOLE_PPM).contains(&ppm).then_some(TaxRate(ppm))
    }

    /// A rate from a fraction (0.08), rounded to the nearest millionth, if within 0..=1.
    pub fn from_fraction(fraction: f64) -> Option<TaxRate> {
        if !fraction.is_finite() {
            return None;
        }
        TaxRate::from_ppm((fraction * WHOLE_PPM as f64).round() as i64)
    }

    pub fn ppm(self) -> i64 {
        self.0
    }

    /// The rate as a fraction (0.08), for the wire.
    pub fn fraction(self) -> f64 {
        self.0 as f64 / WHOLE_PPM as f64
    }

    /// The tax on `cents`, rounded half-up.
    pub fn of(self, cents: i64) -> i64 {
        mul_div_half_up(cents, self.0, WHOLE_PPM)
    }

    /// "8%", "8.875%": the rate as an invoice prints it.
    pub fn percent_label(self) -> String {
        let whole = self.0 / 10_000;
        let rest = self.0 % 10_000;
        if rest == 0 {
            format!("{whole}%")
        } else {
            let decimals = format!("{rest:04}");
            format!("{whole}.{}%", decimals.trim_end_matches('0'))
        }
    }
}

/// The pricing rules of the shop, from settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PricingRules {
    /// Tax of a location without a row in the rate table (TAX_RATE).
    pub fallback_tax: TaxRate,
    /// Shipping estimated for a cart before an address is known (SHIPPING_FLAT_FEE).
    pub shipping_fee_cents: i64,
    /// Subtotal (after the coupon) in cents from which the methods that allow it ship for
    /// free (FREE_SHIPPING_THRESHOLD).
    pub free_shipping_threshold_cents: i64,
}

impl PricingRules {
    /// Shipping before an address is known: the flat fee below the free-shipping
    /// threshold (or without a free-shipping coupon), else 0.
    pub fn estimated_shipping(&self, value_cents: i64, free_shipping: bool) -> i64 {
        if free_shipping || value_cents >= self.free_shipping_threshold_cents {
            0
        } else {
            self.shipping_fee_cents
        }
    }
}

/// A product's current price, as the catalog tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductPrice {
    pub id: i64,
    pub title: String,
    pub price_cents: i64,
    pub discount_bp: i32,
    pub thumbnail: String,
    /// Shipping weight of one unit in grams (0 when the product has none).
    pub weight_grams: i64,
    /// The product's category slug, for coupons restricted to categories.
    pub category: String,
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
    /// Sum of the lines' discounted totals (before the coupon).
    pub subtotal_cents: i64,
    /// The coupon's discount, at most the subtotal.
    pub discount_cents: i64,
    pub tax_cents: i64,
    pub shipping_cents: i64,
    pub total_cents: i64,
}

impl Totals {
    /// The totals of `lines` with a coupon's `discount_cents` off (capped at the subtotal),
    /// taxed at `tax` on what remains, plus `shipping_cents`.
    pub fn new(
        lines: &[PricedLine],
        discount_cents: i64,
        shipping_cents: i64,
        tax: TaxRate,
    ) -> Totals {
        let subtotal_cents: i64 = lines.iter().map(|l| l.discounted_total_cents).sum();
        let discount_cents = discount_cents.clamp(0, subtotal_cents);
        let tax_cents = tax.of(subtotal_cents - discount_cents);
        Totals {
            subtotal_cents,
            discount_cents,
            tax_cents,
            shipping_cents,
            total_cents: subtotal_cents - discount_cents + tax_cents + shipping_cents,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> PricingRules {
        PricingRules {
            fallback_tax: TaxRate::from_fraction(0.08).unwrap(),
            shipping_fee_cents: 999,
            free_shipping_threshold_cents: 10_000,
        }
    }

    fn totals(lines: &[PricedLine]) -> Totals {
        let r = rules();
        let subtotal: i64 = lines.iter().map(|l| l.discounted_total_cents).sum();
        Totals::new(
            lines,
            0,
            r.estimated_shipping(subtotal, false),
            r.fallback_tax,
        )
    }

    #[test]
    fn the_contract_example_prices_exactly() {
        // Two units at 1199.99 with 5.5 % off: the worked example of the REST contract.
        let line = PricedLine::new(1, "iPhone 15 Pro".into(), 119_999, 550, 2, String::new());
        assert_eq!(line.total_cents, 239_998);
        assert_eq!(line.discounted_total_cents, 226_798);
        let totals = totals(&[line]);
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
        let t = totals(&[below]);
        assert_eq!(t.shipping_cents, 999);
        assert_eq!(t.tax_cents, 800); // 99.99 * 8 % = 7.9992 -> 8.00
        assert_eq!(t.total_cents, 9_999 + 800 + 999);
        let at = PricedLine::new(1, "a".into(), 10_000, 0, 1, String::new());
        assert_eq!(totals(&[at]).shipping_cents, 0);
    }

    #[test]
    fn tax_rates_are_exact_to_the_millionth_and_round_half_up() {
        let ny = TaxRate::from_fraction(0.08875).unwrap();
        assert_eq!(ny.ppm(), 88_750);
        // 100.00 * 8.875 % = 8.875 -> 8.88.
        assert_eq!(ny.of(10_000), 888);
        // 6.625 % of 0.40 = 0.0265 -> 0.03.
        assert_eq!(TaxRate::from_ppm(66_250).unwrap().of(40), 3);
        assert_eq!(TaxRate::from_ppm(0).unwrap().of(123_456), 0);
        assert_eq!(TaxRate::from_fraction(1.5), None);
        assert_eq!(TaxRate::from_fraction(-0.01), None);
        assert_eq!(TaxRate::from_fraction(f64::NAN), None);
        assert_eq!(ny.percent_label(), "8.875%");
        assert_eq!(TaxRate::from_ppm(80_000).unwrap().percent_label(), "8%");
        assert_eq!(TaxRate::from_ppm(200_000).unwrap().percent_label(), "20%");
        assert_eq!(TaxRate::from_ppm(66_250).unwrap().percent_label(), "6.625%");
        assert_eq!(
            TaxRate::from_ppm(149_750).unwrap().percent_label(),
            "14.975%"
        );
    }

    #[test]
    fn the_discount_comes_off_before_tax_and_never_below_zero() {
        let line = PricedLine::new(1, "a".into(), 10_000, 0, 1, String::new());
        let tax = TaxRate::from_ppm(80_000).unwrap();
        let t = Totals::new(std::slice::from_ref(&line), 2_500, 999, tax);
        assert_eq!(t.subtotal_cents, 10_000);
        assert_eq!(t.discount_cents, 2_500);
        assert_eq!(t.tax_cents, 600);
        assert_eq!(t.total_cents, 10_000 - 2_500 + 600 + 999);
        // A discount larger than the subtotal is capped: the goods cost nothing, shipping stays.
        let t = Totals::new(&[line], 20_000, 999, tax);
        assert_eq!(t.discount_cents, 10_000);
        assert_eq!(t.tax_cents, 0);
        assert_eq!(t.total_cents, 999);
    }
}

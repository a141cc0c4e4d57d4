//! A cart as shown: its lines priced by the catalog now.

use chrono::{DateTime, Utc};

use super::pricing::{PricedLine, TaxRate, Totals};

/// A cart with its lines priced (products gone since are left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart {
    pub id: i64,
    pub user_id: i64,
    pub lines: Vec<PricedLine>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Cart {
    /// The sum of the lines before discounts, in cents.
    pub fn total_cents(&self) -> i64 {
        self.lines.iter().map(|l| l.total_cents).sum()
    }

    /// The sum of the discounted lines, in cents.
    pub fn discounted_total_cents(&self) -> i64 {
        self.lines.iter().map(|l| l.discounted_total_cents).sum()
    }

    /// Units over all lines.
    pub fn total_quantity(&self) -> i32 {
        self.lines.iter().map(|l| l.quantity).sum()
    }
}

/// The signed-in user's cart priced for checkout: with its coupon, shipping and tax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutCart {
    pub cart: Cart,
    pub totals: Totals,
    pub coupon_code: Option<String>,
    pub shipping_method: String,
    pub tax_rate: TaxRate,
}

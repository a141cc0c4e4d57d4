//! Coupons: what an admin creates (`NewCoupon::parse`), and the pure rules of applying one
//! to priced lines ([`Coupon::apply`]). Redemption (the usage counters) is the store's:
//! one conditional UPDATE in the order's transaction.
//!
//! The checks, in this order, so the refusal names the first thing wrong: the coupon exists
//! and is active (else COUPON_NOT_FOUND: a disabled code is not advertised), it has started,
//! it has not ended, its total and per-user limits are not reached, some line is eligible
//! (its product or category is among the restrictions, or there are none), and the eligible
//! lines reach the minimum subtotal (Shopify counts only the eligible items too).
//!
//! The discount: a percentage of the eligible lines' sum, rounded half-up once (not per line,
//! so it never drifts by a cent per line); a fixed amount, at most the eligible lines' sum; a
//! free-shipping coupon discounts nothing and makes the methods that allow it free.

use chrono::{DateTime, Utc};

use super::pricing::{PricedLine, ProductPrice};
use crate::validation::Violations;

/// Most products or categories a coupon may be restricted to.
pub const MAX_RESTRICTIONS: usize = 100;

/// A coupon code: 3-32 of `[A-Z0-9_-]`, upper-cased (codes compare case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponCode(String);

impl CouponCode {
    pub fn parse(code: &str) -> Result<CouponCode, String> {
        let code = code.trim().to_uppercase();
        if !(3..=32).contains(&code.len())
            || !code
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err("must be 3 to 32 letters, digits, '_' or '-'".to_owned());
        }
        Ok(CouponCode(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a coupon takes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouponKind {
    /// 1..=100 percent of the eligible lines.
    Percentage(i32),
    /// Cents off the eligible lines, at most their sum.
    FixedAmount(i64),
    /// Free shipping with the methods that allow it.
    FreeShipping,
}

impl CouponKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CouponKind::Percentage(_) => "percentage",
            CouponKind::FixedAmount(_) => "fixed_amount",
            CouponKind::FreeShipping => "free_shipping",
        }
    }

    /// The kind stored as `kind` with its value columns; `None` if they disagree.
    pub fn from_columns(kind: &str, percent: Option<i32>, amount: Option<i64>) -> Option<Self> {
        match (kind, percent, amount) {
            ("percentage", Some(p), None) if (1..=100).contains(&p) => Some(Self::Percentage(p)),
            ("fixed_amount", None, Some(a)) if a > 0 => Some(Self::FixedAmount(a)),
            ("free_shipping", None, None) => Some(Self::FreeShipping),
            _ => None,
        }
    }

    pub fn percent_off(self) -> Option<i32> {
        match self {
            CouponKind::Percentage(p) => Some(p),
            _ => None,
        }
    }

    pub fn amount_off_cents(self) -> Option<i64> {
        match self {
            CouponKind::FixedAmount(a) => Some(a),
            _ => None,
        }
    }
}

/// The terms of a coupon, as an admin sets them (create and replace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponTerms {
    pub kind: CouponKind,
    pub min_subtotal_cents: Option<i64>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub usage_limit: Option<i32>,
    pub per_user_limit: Option<i32>,
    pub product_ids: Vec<i64>,
    pub categories: Vec<String>,
    pub active: bool,
}

/// A stored coupon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub id: i64,
    pub code: String,
    pub terms: CouponTerms,
    /// Live redemptions.
    pub used: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an admin sent, decoded (money already in cents, `None` for a bad amount) but not checked.
#[derive(Debug, Clone, Default)]
pub struct CouponForm {
    pub code: String,
    /// "percentage", "fixed_amount", "free_shipping"; '' when unspecified.
    pub kind: String,
    pub percent_off: Option<i32>,
    /// `Some(None)`: an amount was sent that is not one.
    pub amount_off_cents: Option<Option<i64>>,
    pub min_subtotal_cents: Option<Option<i64>>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub usage_limit: Option<i32>,
    pub per_user_limit: Option<i32>,
    pub product_ids: Vec<i64>,
    pub categories: Vec<String>,
    pub active: Option<bool>,
}

/// A valid coupon to create or to replace one with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCoupon {
    pub code: CouponCode,
    pub terms: CouponTerms,
}

impl NewCoupon {
    /// Checks every field; a refusal names each one wrong.
    pub fn parse(form: CouponForm) -> Result<NewCoupon, Violations> {
        let mut v = Violations::default();
        let code = v.check("code", CouponCode::parse(&form.code));
        let kind = match form.kind.as_str() {
            "percentage" => match form.percent_off {
                Some(p) if (1..=100).contains(&p) => Some(CouponKind::Percentage(p)),
                _ => {
                    v.push(
                        "percentOff",
                        "must be between 1 and 100 for a percentage coupon",
                    );
                    None
                }
            },
            "fixed_amount" => match form.amount_off_cents {
                Some(Some(a)) if a > 0 => Some(CouponKind::FixedAmount(a)),
                _ => {
                    v.push(
                        "amountOff",
                        "must be a positive amount for a fixed-amount coupon",
                    );
                    None
                }
            },
            "free_shipping" => Some(CouponKind::FreeShipping),
            _ => {
                v.push("kind", "must be percentage, fixed_amount or free_shipping");
                None
            }
        };
        if let Some(kind) = kind {
            if form.percent_off.is_some() && kind.percent_off().is_none() {
                v.push("percentOff", "is only for a percentage coupon");
            }
            if form.amount_off_cents.is_some() && kind.amount_off_cents().is_none() {
                v.push("amountOff", "is only for a fixed-amount coupon");
            }
        }
        let min_subtotal_cents = match form.min_subtotal_cents {
            None => None,
            Some(Some(m)) if m >= 0 => Some(m),
            Some(_) => {
                v.push("minSubtotal", "must be an amount of at least 0");
                None
            }
        };
        if let (Some(s), Some(e)) = (form.starts_at, form.ends_at)
            && s >= e
        {
            v.push("endsAt", "must be after startsAt");
        }
        for (field, limit) in [
            ("usageLimit", form.usage_limit),
            ("perUserLimit", form.per_user_limit),
        ] {
            if limit.is_some_and(|l| l < 1) {
                v.push(field, "must be at least 1");
            }
        }
        let mut product_ids = form.product_ids;
        product_ids.sort_unstable();
        product_ids.dedup();
        if product_ids.iter().any(|&id| id <= 0) {
            v.push("productIds", "must be product ids");
        }
        if product_ids.len() > MAX_RESTRICTIONS {
            v.push("productIds", format!("at most {MAX_RESTRICTIONS}"));
        }
        let mut categories: Vec<String> = form
            .categories
            .iter()
            .map(|c| c.trim().to_lowercase())
            .collect();
        categories.sort_unstable();
        categories.dedup();
        if categories.iter().any(|c| {
            c.is_empty()
                || c.len() > 100
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }) {
            v.push("categories", "must be category slugs, e.g. smartphones");
        }
        if categories.len() > MAX_RESTRICTIONS {
            v.push("categories", format!("at most {MAX_RESTRICTIONS}"));
        }
        match (code, kind) {
            (Some(code), Some(kind)) if v.is_empty() => Ok(NewCoupon {
                code,
                terms: CouponTerms {
                    kind,
                    min_subtotal_cents,
                    starts_at: form.starts_at,
                    ends_at: form.ends_at,
                    usage_limit: form.usage_limit,
                    per_user_limit: form.per_user_limit,
                    product_ids,
                    categories,
                    active: form.active.unwrap_or(true),
                },
            }),
            _ => Err(v),
        }
    }
}

/// Why a coupon does not apply: each is a 404 or 422 with its own code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponRefusal {
    NotFound,
    NotStarted,
    Expired,
    /// The total limit is reached.
    UsageLimit,
    /// This user's limit is reached (COUPON_USAGE_LIMIT too).
    PerUserLimit,
    /// The eligible lines' sum is below this minimum (cents).
    MinSubtotal(i64),
    /// No line is of a product or category the coupon is restricted to (or no lines).
    NotApplicable,
}

/// What an applicable coupon does to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CouponEffect {
    pub discount_cents: i64,
    pub free_shipping: bool,
}

/// `value * numerator / denominator`, rounded half-up (non-negative values).
fn mul_div_half_up(value: i64, numerator: i64, denominator: i64) -> i64 {
    let product = value as i128 * numerator as i128;
    ((2 * product + denominator as i128) / (2 * denominator as i128)) as i64
}

impl Coupon {
    /// Whether a line of `product` gets the discount.
    fn eligible(&self, product: &ProductPrice) -> bool {
        let t = &self.terms;
        (t.product_ids.is_empty() && t.categories.is_empty())
            || t.product_ids.contains(&product.id)
            || t.categories.contains(&product.category)
    }

    /// The effect of this coupon at `now` on `lines` (priced from `products`) for a user who
    /// has redeemed it `used_by_user` times; the first rule broken otherwise.
    pub fn apply(
        &self,
        now: DateTime<Utc>,
        used_by_user: i64,
        lines: &[PricedLine],
        products: &[ProductPrice],
    ) -> Result<CouponEffect, CouponRefusal> {
        let t = &self.terms;
        if !t.active {
            return Err(CouponRefusal::NotFound);
        }
        if t.starts_at.is_some_and(|s| now < s) {
            return Err(CouponRefusal::NotStarted);
        }
        if t.ends_at.is_some_and(|e| now >= e) {
            return Err(CouponRefusal::Expired);
        }
        if t.usage_limit.is_some_and(|l| self.used >= l) {
            return Err(CouponRefusal::UsageLimit);
        }
        if t.per_user_limit
            .is_some_and(|l| used_by_user >= i64::from(l))
        {
            return Err(CouponRefusal::PerUserLimit);
        }
        let eligible: Vec<&PricedLine> = lines
            .iter()
            .filter(|l| {
                products
                    .iter()
                    .find(|p| p.id == l.product_id)
                    .is_some_and(|p| self.eligible(p))
            })
            .collect();
        if eligible.is_empty() {
            return Err(CouponRefusal::NotApplicable);
        }
        let eligible_cents: i64 = eligible.iter().map(|l| l.discounted_total_cents).sum();
        if let Some(min) = t.min_subtotal_cents
            && eligible_cents < min
        {
            return Err(CouponRefusal::MinSubtotal(min));
        }
        Ok(match t.kind {
            CouponKind::Percentage(p) => CouponEffect {
                discount_cents: mul_div_half_up(eligible_cents, p.into(), 100),
                free_shipping: false,
            },
            CouponKind::FixedAmount(a) => CouponEffect {
                discount_cents: a.min(eligible_cents),
                free_shipping: false,
            },
            CouponKind::FreeShipping => CouponEffect {
                discount_cents: 0,
                free_shipping: true,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + s, 0).unwrap()
    }

    fn terms(kind: CouponKind) -> CouponTerms {
        CouponTerms {
            kind,
            min_subtotal_cents: None,
            starts_at: None,
            ends_at: None,
            usage_limit: None,
            per_user_limit: None,
            product_ids: Vec::new(),
            categories: Vec::new(),
            active: true,
        }
    }

    fn coupon(terms: CouponTerms) -> Coupon {
        Coupon {
            id: 1,
            code: "SAVE".into(),
            terms,
            used: 0,
            created_at: at(0),
            updated_at: at(0),
        }
    }

    fn product(id: i64, price_cents: i64, category: &str) -> ProductPrice {
        ProductPrice {
            id,
            title: format!("p{id}"),
            price_cents,
            discount_bp: 0,
            thumbnail: String::new(),
            weight_grams: 0,
            category: category.into(),
        }
    }

    /// Phones at 333.33 (id 1) and 10.01 (id 2), a laptop at 999.99 (id 3), one each.
    fn cart() -> (Vec<PricedLine>, Vec<ProductPrice>) {
        let products = vec![
            product(1, 33_333, "smartphones"),
            product(2, 1_001, "smartphones"),
            product(3, 99_999, "laptops"),
        ];
        let lines = products.iter().map(|p| p.line(1)).collect();
        (lines, products)
    }

    fn apply(c: &Coupon) -> Result<CouponEffect, CouponRefusal> {
        let (lines, products) = cart();
        c.apply(at(100), 0, &lines, &products)
    }

    fn discount(c: &Coupon) -> i64 {
        apply(c).unwrap().discount_cents
    }

    #[test]
    fn a_percentage_is_taken_of_the_eligible_sum_rounded_half_up_once() {
        // 15 % of 1343.33 = 201.4995 -> 201.50 (per line it would be 50.00 + 1.50 + 150.00;
        // rounding once is what keeps many small lines from gaining a cent each).
        assert_eq!(discount(&coupon(terms(CouponKind::Percentage(15)))), 20_150);
        // Restricted to the 10.01 line: 15 % = 1.5015 -> 1.50.
        let mut t = terms(CouponKind::Percentage(15));
        t.product_ids = vec![2];
        assert_eq!(discount(&coupon(t)), 150);
        assert_eq!(
            discount(&coupon(terms(CouponKind::Percentage(100)))),
            134_333
        );
        // 1 % of 0.50 = 0.005 -> 0.01 (half-up).
        let p = product(9, 50, "x");
        let c = coupon(terms(CouponKind::Percentage(1)));
        let effect = c.apply(at(0), 0, &[p.line(1)], &[p]).unwrap();
        assert_eq!(effect.discount_cents, 1);
    }

    #[test]
    fn a_fixed_amount_is_at_most_the_eligible_sum() {
        assert_eq!(
            discount(&coupon(terms(CouponKind::FixedAmount(2_500)))),
            2_500
        );
        let mut t = terms(CouponKind::FixedAmount(5_000));
        t.product_ids = vec![2];
        assert_eq!(discount(&coupon(t)), 1_001);
    }

    #[test]
    fn free_shipping_discounts_nothing_and_frees_shipping() {
        assert_eq!(
            apply(&coupon(terms(CouponKind::FreeShipping))),
            Ok(CouponEffect {
                discount_cents: 0,
                free_shipping: true
            })
        );
    }

    #[test]
    fn restrictions_by_product_or_category_choose_the_lines() {
        let mut t = terms(CouponKind::Percentage(10));
        t.categories = vec!["laptops".into()];
        assert_eq!(discount(&coupon(t.clone())), 10_000); // 99.999 -> 100.00
        t.product_ids = vec![2];
        // Either restriction makes a line eligible: 10 % of 1010.00.
        assert_eq!(discount(&coupon(t)), 10_100);
        let mut none = terms(CouponKind::Percentage(10));
        none.categories = vec!["groceries".into()];
        none.product_ids = vec![42];
        assert_eq!(apply(&coupon(none)), Err(CouponRefusal::NotApplicable));
        // An empty cart has nothing to discount.
        let c = coupon(terms(CouponKind::FreeShipping));
        assert_eq!(
            c.apply(at(0), 0, &[], &[]),
            Err(CouponRefusal::NotApplicable)
        );
    }

    #[test]
    fn the_minimum_counts_the_eligible_lines_only() {
        let mut t = terms(CouponKind::FixedAmount(500));
        t.min_subtotal_cents = Some(5_000);
        assert!(apply(&coupon(t.clone())).is_ok());
        t.product_ids = vec![2];
        assert_eq!(
            apply(&coupon(t.clone())),
            Err(CouponRefusal::MinSubtotal(5_000))
        );
        t.min_subtotal_cents = Some(1_001);
        assert!(apply(&coupon(t)).is_ok());
    }

    #[test]
    fn time_window_limits_and_the_active_flag_are_checked_first_in_order() {
        let base = terms(CouponKind::Percentage(10));
        let mut t = base.clone();
        t.starts_at = Some(at(101));
        assert_eq!(apply(&coupon(t.clone())), Err(CouponRefusal::NotStarted));
        t.starts_at = Some(at(100));
        assert!(apply(&coupon(t.clone())).is_ok());
        t.ends_at = Some(at(100));
        assert_eq!(apply(&coupon(t.clone())), Err(CouponRefusal::Expired));
        t.ends_at = Some(at(101));
        assert!(apply(&coupon(t)).is_ok());

        let mut limited = coupon(base.clone());
        limited.terms.usage_limit = Some(10);
        limited.used = 9;
        assert!(apply(&limited).is_ok());
        limited.used = 10;
        assert_eq!(apply(&limited), Err(CouponRefusal::UsageLimit));

        let mut per_user = coupon(base.clone());
        per_user.terms.per_user_limit = Some(2);
        let (lines, products) = cart();
        assert!(per_user.apply(at(0), 1, &lines, &products).is_ok());
        assert_eq!(
            per_user.apply(at(0), 2, &lines, &products),
            Err(CouponRefusal::PerUserLimit)
        );

        let mut inactive = coupon(base);
        inactive.terms.active = false;
        assert_eq!(apply(&inactive), Err(CouponRefusal::NotFound));
    }

    #[test]
    fn codes_are_upper_cased_and_checked() {
        assert_eq!(
            CouponCode::parse(" save_10-x ").unwrap().as_str(),
            "SAVE_10-X"
        );
        assert!(CouponCode::parse("ab").is_err());
        assert!(CouponCode::parse(&"A".repeat(33)).is_err());
        assert!(CouponCode::parse(&"A".repeat(32)).is_ok());
        assert!(CouponCode::parse("SAVE 10").is_err());
        assert!(CouponCode::parse("SÄVE").is_err());
    }

    fn form(kind: &str) -> CouponForm {
        CouponForm {
            code: "save10".into(),
            kind: kind.into(),
            ..CouponForm::default()
        }
    }

    #[test]
    fn a_new_coupon_names_every_wrong_field() {
        let ok = NewCoupon::parse(CouponForm {
            percent_off: Some(10),
            categories: vec![" Laptops ".into(), "laptops".into()],
            product_ids: vec![3, 1, 3],
            ..form("percentage")
        })
        .unwrap();
        assert_eq!(ok.code.as_str(), "SAVE10");
        assert_eq!(ok.terms.kind, CouponKind::Percentage(10));
        assert_eq!(ok.terms.categories, ["laptops"]);
        assert_eq!(ok.terms.product_ids, [1, 3]);
        assert!(ok.terms.active);

        let fields = |f: CouponForm| -> Vec<String> {
            NewCoupon::parse(f)
                .unwrap_err()
                .into_inner()
                .into_iter()
                .map(|(field, _)| field)
                .collect()
        };
        assert_eq!(fields(form("percentage")), ["percentOff"]);
        assert_eq!(
            fields(CouponForm {
                percent_off: Some(101),
                ..form("percentage")
            }),
            ["percentOff"]
        );
        assert_eq!(fields(form("fixed_amount")), ["amountOff"]);
        assert_eq!(
            fields(CouponForm {
                amount_off_cents: Some(None),
                ..form("fixed_amount")
            }),
            ["amountOff"]
        );
        assert_eq!(
            fields(CouponForm {
                percent_off: Some(5),
                ..form("free_shipping")
            }),
            ["percentOff"]
        );
        assert_eq!(
            fields(CouponForm {
                code: "x".into(),
                starts_at: Some(at(10)),
                ends_at: Some(at(10)),
                usage_limit: Some(0),
                per_user_limit: Some(-1),
                min_subtotal_cents: Some(Some(-1)),
                product_ids: vec![0],
                categories: vec!["Bad Slug!".into()],
                ..form("")
            }),
            [
                "code",
                "kind",
                "minSubtotal",
                "endsAt",
                "usageLimit",
                "perUserLimit",
                "productIds",
                "categories"
            ]
        );
        assert!(NewCoupon::parse(form("free_shipping")).is_ok());
    }
}

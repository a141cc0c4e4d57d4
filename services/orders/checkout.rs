//! The checkout use cases: coupons (admin CRUD, apply to and remove from the cart, and the
//! race-free redemption inside an order's transaction), shipping methods and rates, and tax
//! rates by location. [`OrdersApp::price`] is the one pricing path of POST /orders and of
//! POST /checkout/apply-coupon; [`OrdersApp::quote`] the one shipping price of POST /orders
//! and of POST /shipping/rates (both call [`shipping::quote`]).

use sqlx::PgConnection;

use super::app::{OrdersApp, Page};
use super::domain::shipping::{self, Parcel, Quote, ShippingMethod, Unshippable};
use super::domain::{
    Cart, CheckoutCart, Coupon, CouponCode, CouponEffect, CouponRefusal, Destination, Lines,
    NewCoupon, PricedLine, ProductPrice, TaxRate, Totals,
};
use super::error::OrderError;
use super::store;
use crate::validation::Violations;

/// An order's or a cart's price: its totals and what they were computed with.
#[derive(Debug, Clone)]
pub struct Priced {
    pub totals: Totals,
    pub tax_rate: TaxRate,
    pub shipping_method: String,
}

/// The rates of a parcel to an address (POST /shipping/rates).
#[derive(Debug, Clone)]
pub struct Rates {
    pub quotes: Vec<Quote>,
    pub weight_grams: i64,
    pub subtotal_cents: i64,
}

/// The weight of `lines` priced from `products`, in grams.
pub fn weight_of(lines: &[PricedLine], products: &[ProductPrice]) -> i64 {
    lines
        .iter()
        .map(|l| {
            let unit = products
                .iter()
                .find(|p| p.id == l.product_id)
                .map_or(0, |p| p.weight_grams);
            unit * i64::from(l.quantity)
        })
        .sum()
}

/// Priced lines of `items` from `products` (products missing are left out).
fn lines_of(items: impl Iterator<Item = (i64, i32)>, products: &[ProductPrice]) -> Vec<PricedLine> {
    items
        .filter_map(|(id, quantity)| Some(products.iter().find(|p| p.id == id)?.line(quantity)))
        .collect()
}

impl OrdersApp {
    /// The coupon with `code` (404 COUPON_NOT_FOUND when there is none).
    pub(super) async fn coupon(&self, code: &CouponCode) -> Result<Coupon, OrderError> {
        store::find_coupon(self.db(), code.as_str())
            .await?
            .ok_or(OrderError::Coupon(CouponRefusal::NotFound))
    }

    /// What `coupon` does for `user_id`'s `lines` now (its rules; the redemption is later).
    async fn effect(
        &self,
        user_id: i64,
        coupon: &Coupon,
        lines: &[PricedLine],
        products: &[ProductPrice],
    ) -> Result<CouponEffect, OrderError> {
        let used_by_user = if coupon.terms.per_user_limit.is_some() {
            store::redemptions_by(self.db(), coupon.id, user_id).await?
        } else {
            0
        };
        coupon
            .apply(self.now(), used_by_user, lines, products)
            .map_err(OrderError::Coupon)
    }

    /// The price of shipping `parcel` to `to` with method `code`: 400 for an unknown method,
    /// 422 SHIPPING_UNAVAILABLE when it does not serve the destination.
    pub(super) async fn quote(
        &self,
        to: &Destination,
        code: &str,
        parcel: &Parcel,
    ) -> Result<Quote, OrderError> {
        let methods = store::shipping_methods(self.db()).await?;
        let method = methods
            .iter()
            .find(|m| m.code == code)
            .ok_or_else(|| unknown_method(code, &methods))?;
        let country = to
            .country
            .as_deref()
            .ok_or(OrderError::Unshippable(Unshippable::Country(String::new())))?;
        let rates = store::shipping_rates(self.db(), country).await?;
        shipping::quote(
            method,
            &rates,
            to,
            parcel,
            self.pricing().free_shipping_threshold_cents,
        )
        .map_err(OrderError::Unshippable)
    }

    /// The tax rate of a destination: its state's or country's row, else TAX_RATE.
    async fn tax_rate(&self, to: Option<&Destination>) -> Result<TaxRate, OrderError> {
        if let Some(Destination {
            country: Some(country),
            state,
        }) = to
            && let Some(rate) = store::tax_rate(self.db(), country, state).await?
        {
            return Ok(rate);
        }
        Ok(self.pricing().fallback_tax)
    }

    /// Prices `lines` (from `products`) for `user_id` with `coupon`, shipped with method
    /// `method` to `to` (the flat-fee estimate and TAX_RATE without an address).
    pub(super) async fn price(
        &self,
        user_id: i64,
        lines: &[PricedLine],
        products: &[ProductPrice],
        coupon: Option<&Coupon>,
        to: Option<&Destination>,
        method: &str,
    ) -> Result<Priced, OrderError> {
        let effect = match coupon {
            Some(coupon) => self.effect(user_id, coupon, lines, products).await?,
            None => CouponEffect {
                discount_cents: 0,
                free_shipping: false,
            },
        };
        let subtotal: i64 = lines.iter().map(|l| l.discounted_total_cents).sum();
        let value_cents = subtotal - effect.discount_cents.min(subtotal);
        let shipping_cents = match to {
            Some(to) => {
                let parcel = Parcel {
                    weight_grams: weight_of(lines, products),
                    value_cents,
                    free_shipping_coupon: effect.free_shipping,
                };
                self.quote(to, method, &parcel).await?.cents
            }
            None => self
                .pricing()
                .estimated_shipping(value_cents, effect.free_shipping),
        };
        let tax_rate = self.tax_rate(to).await?;
        Ok(Priced {
            totals: Totals::new(lines, effect.discount_cents, shipping_cents, tax_rate),
            tax_rate,
            shipping_method: method.to_owned(),
        })
    }

    /// Redeems `coupon` for `order_id` in the order's transaction `tx`: the conditional
    /// UPDATE takes one use or refuses (COUPON_USAGE_LIMIT, never a 500), and, holding the
    /// coupon's row lock until COMMIT, the per-user count cannot race either.
    pub(super) async fn redeem(
        tx: &mut PgConnection,
        coupon_id: i64,
        order_id: &str,
        user_id: i64,
        discount_cents: i64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), OrderError> {
        let per_user_limit = store::take_coupon_use(tx, coupon_id, now)
            .await?
            .ok_or(OrderError::Coupon(CouponRefusal::UsageLimit))?;
        if let Some(limit) = per_user_limit
            && store::redemptions_by(&mut *tx, coupon_id, user_id).await? >= i64::from(limit)
        {
            return Err(OrderError::Coupon(CouponRefusal::PerUserLimit));
        }
        store::insert_redemption(tx, order_id, coupon_id, user_id, discount_cents, now).await
    }

    // The cart at checkout.

    /// The user's active cart and its lines' products.
    async fn cart_with_products(
        &self,
        user_id: i64,
    ) -> Result<(Cart, Vec<ProductPrice>, Option<String>), OrderError> {
        let row = store::active_cart(self.db(), user_id, self.now()).await?;
        let items = store::cart_lines(self.db(), row.id).await?;
        let products = if items.is_empty() {
            Vec::new()
        } else {
            self.catalog
                .pricing_lenient(items.iter().map(|(id, _)| *id).collect())
                .await?
        };
        let lines = lines_of(items.into_iter(), &products);
        let coupon = store::cart_coupon(self.db(), row.id).await?;
        let cart = Cart {
            id: row.id,
            user_id: row.user_id,
            lines,
            deleted_at: None,
        };
        Ok((cart, products, coupon))
    }

    /// POST /checkout/apply-coupon: checks `code` against the caller's cart, keeps it on the
    /// cart, and answers the cart priced with it (to `to` with `method` when given).
    pub async fn apply_coupon(
        &self,
        user_id: i64,
        code: &CouponCode,
        to: Option<&Destination>,
        method: &str,
    ) -> Result<CheckoutCart, OrderError> {
        let (cart, products, _) = self.cart_with_products(user_id).await?;
        let coupon = self.coupon(code).await?;
        let priced = self
            .price(user_id, &cart.lines, &products, Some(&coupon), to, method)
            .await?;
        store::set_cart_coupon(self.db(), cart.id, Some(&coupon.code), self.now()).await?;
        tracing::info!(user_id, coupon = %coupon.code, "coupon applied to the cart");
        Ok(CheckoutCart {
            cart,
            totals: priced.totals,
            coupon_code: Some(coupon.code),
            shipping_method: priced.shipping_method,
            tax_rate: priced.tax_rate,
        })
    }

    /// DELETE /checkout/remove-coupon: the caller's cart without a coupon, priced (estimate).
    pub async fn remove_coupon(&self, user_id: i64) -> Result<CheckoutCart, OrderError> {
        let (cart, products, _) = self.cart_with_products(user_id).await?;
        store::set_cart_coupon(self.db(), cart.id, None, self.now()).await?;
        let method = shipping::DEFAULT_METHOD;
        let priced = self
            .price(user_id, &cart.lines, &products, None, None, method)
            .await?;
        Ok(CheckoutCart {
            cart,
            totals: priced.totals,
            coupon_code: None,
            shipping_method: priced.shipping_method,
            tax_rate: priced.tax_rate,
        })
    }

    // Coupons (admin).

    /// POST /admin/coupons.
    pub async fn create_coupon(&self, new: &NewCoupon) -> Result<Coupon, OrderError> {
        let coupon = store::insert_coupon(self.db(), new.code.as_str(), &new.terms, self.now())
            .await?
            .ok_or(OrderError::CouponExists)?;
        tracing::info!(coupon = %coupon.code, "coupon created");
        Ok(coupon)
    }

    /// GET /admin/coupons.
    pub async fn list_coupons(&self, page: Page) -> Result<(Vec<Coupon>, i64), OrderError> {
        store::list_coupons(self.db(), page.skip, page.limit).await
    }

    /// GET /admin/coupons/{code} (inactive ones too: admins see everything).
    pub async fn get_coupon(&self, code: &str) -> Result<Coupon, OrderError> {
        let code = path_code(code)?;
        store::find_coupon(self.db(), code.as_str())
            .await?
            .ok_or(OrderError::Coupon(CouponRefusal::NotFound))
    }

    /// PUT /admin/coupons/{code}: the terms replaced, the code and usage kept.
    pub async fn update_coupon(&self, new: &NewCoupon) -> Result<Coupon, OrderError> {
        store::update_coupon(self.db(), new.code.as_str(), &new.terms, self.now())
            .await?
            .ok_or(OrderError::Coupon(CouponRefusal::NotFound))
    }

    /// DELETE /admin/coupons/{code}; answers the code.
    pub async fn delete_coupon(&self, code: &str) -> Result<String, OrderError> {
        let code = path_code(code)?;
        if !store::delete_coupon(self.db(), code.as_str()).await? {
            return Err(OrderError::Coupon(CouponRefusal::NotFound));
        }
        tracing::info!(coupon = %code.as_str(), "coupon deleted");
        Ok(code.as_str().to_owned())
    }

    // Shipping.

    /// GET /shipping/methods.
    pub async fn shipping_methods(&self) -> Result<Vec<ShippingMethod>, OrderError> {
        store::shipping_methods(self.db()).await
    }

    /// POST /shipping/rates: the quotes of `items` (or, when none and signed in, of the
    /// caller's cart) to `to`.
    pub async fn shipping_rates(
        &self,
        caller: Option<i64>,
        to: &Destination,
        items: Vec<(i64, i32)>,
    ) -> Result<Rates, OrderError> {
        let (lines, products) = match (items.is_empty(), caller) {
            (true, Some(user_id)) => {
                let (cart, products, _) = self.cart_with_products(user_id).await?;
                (cart.lines, products)
            }
            (true, None) => {
                return Err(Violations::one("items", "are required when not signed in").into());
            }
            (false, _) => {
                let lines = Lines::parse(items).map_err(|v| {
                    let mut renamed = Violations::default();
                    for (field, message) in v.into_inner() {
                        let field = field
                            .replacen("products", "items", 1)
                            .replace(".id", ".productId");
                        renamed.push(field, message);
                    }
                    renamed
                })?;
                let products = self.catalog.pricing(lines.ids()).await?;
                (lines_of(lines.iter(), &products), products)
            }
        };
        let weight_grams = weight_of(&lines, &products);
        let subtotal_cents: i64 = lines.iter().map(|l| l.discounted_total_cents).sum();
        let methods = store::shipping_methods(self.db()).await?;
        let country = to
            .country
            .as_deref()
            .ok_or(OrderError::Unshippable(Unshippable::Country(String::new())))?;
        let rates = store::shipping_rates(self.db(), country).await?;
        let parcel = Parcel {
            weight_grams,
            value_cents: subtotal_cents,
            free_shipping_coupon: false,
        };
        let quotes = shipping::quotes(
            &methods,
            &rates,
            to,
            &parcel,
            self.pricing().free_shipping_threshold_cents,
        )
        .map_err(OrderError::Unshippable)?;
        Ok(Rates {
            quotes,
            weight_grams,
            subtotal_cents,
        })
    }

    // Tax rates (admin).

    /// GET /admin/tax-rates: every row, and the fallback.
    pub async fn tax_rates(&self) -> Result<(Vec<(String, String, TaxRate)>, TaxRate), OrderError> {
        Ok((
            store::tax_rates(self.db()).await?,
            self.pricing().fallback_tax,
        ))
    }

    /// PUT /admin/tax-rates: sets one row.
    pub async fn set_tax_rate(
        &self,
        country: &str,
        state: &str,
        rate: f64,
    ) -> Result<(String, String, TaxRate), OrderError> {
        let mut v = Violations::default();
        let country = country.trim().to_uppercase();
        if !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase())) {
            v.push("country", "must be an ISO 3166-1 alpha-2 code, e.g. US");
        }
        let state = state.trim().to_uppercase();
        let state_ok = state.len() <= 3 && state.bytes().all(|b| b.is_ascii_alphanumeric());
        if !state_ok {
            v.push(
                "state",
                "must be a state code of up to 3 letters or digits, e.g. NY",
            );
        }
        let rate = TaxRate::from_fraction(rate);
        if rate.is_none() {
            v.push("rate", "must be a fraction between 0 and 1, e.g. 0.08");
        }
        let rate = v.finish(|| rate)?.expect("checked");
        store::set_tax_rate(self.db(), &country, &state, rate, self.now()).await?;
        tracing::info!(country, state, ppm = rate.ppm(), "tax rate set");
        Ok((country, state, rate))
    }
}

/// A code from a path: one that cannot be a code names no coupon (404, not 400: the path
/// is an address, as with an unknown order id).
fn path_code(code: &str) -> Result<CouponCode, OrderError> {
    CouponCode::parse(code).map_err(|_| OrderError::Coupon(CouponRefusal::NotFound))
}

/// 400 naming the known methods.
fn unknown_method(code: &str, methods: &[ShippingMethod]) -> OrderError {
    let known: Vec<&str> = methods.iter().map(|m| m.code.as_str()).collect();
    Violations::one(
        "shippingMethod",
        format!(
            "unknown shipping method `{code}`; one of: {}",
            known.join(", ")
        ),
    )
    .into()
}

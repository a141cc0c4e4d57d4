//! The cart use cases: GET/POST /cart (the signed-in user's active cart) and
//! DummyJSON's /carts routes. Each user has one active cart, created empty on
//! first access; a placed order empties it. A user reads and changes only
//! their own carts; admins all. Lines store product ids and quantities only;
//! prices come from the catalog (over gRPC) each time a cart is shown, and a
//! write naming an unknown product is refused with its id in the details.

use super::app::OrdersApp;
use super::domain::{Cart, CartLines, request::MAX_LINES};
use super::error::OrderError;
use super::store::{self, CartRow};
use crate::authn::Principal;

impl OrdersApp {
    /// The user's active cart (created empty on first access), priced.
    pub async fn active_cart(&self, user_id: i64) -> Result<Cart, OrderError> {
        let cart = store::active_cart(self.db(), user_id, self.now()).await?;
        self.priced(&cart).await
    }

    /// The active cart of `user_id`, seen by `caller`: oneself, or anyone for an admin.
    pub async fn user_cart(&self, caller: &Principal, user_id: i64) -> Result<Cart, OrderError> {
        if !caller.may_access(user_id) {
            return Err(OrderError::NotYourCarts);
        }
        self.active_cart(user_id).await
    }

    /// Cart `id` if `caller` may see it, priced.
    pub async fn cart(&self, caller: &Principal, id: i64) -> Result<Cart, OrderError> {
        let cart = self.visible_cart(caller, id).await?;
        self.priced(&cart).await
    }

    /// Replaces the lines of the user's active cart.
    pub async fn replace_active_cart(
        &self,
        user_id: i64,
        lines: CartLines,
    ) -> Result<Cart, OrderError> {
        self.check_products(&lines).await?;
        let cart = store::active_cart(self.db(), user_id, self.now()).await?;
        self.write_lines(&cart, &lines, false).await?;
        self.priced(&cart).await
    }

    /// A new active cart for `user_id` (0: the caller), oneself or anyone for an
    /// admin. (Here and in [`Self::update_cart`] the caller is authorized before
    /// the lines are checked: another user's cart is 403/404 whatever the body.)
    pub async fn add_cart(
        &self,
        caller: &Principal,
        user_id: i64,
        items: &[(i64, i32)],
    ) -> Result<Cart, OrderError> {
        let user_id = if user_id == 0 {
            caller.user_id
        } else {
            user_id
        };
        if !caller.may_access(user_id) {
            return Err(OrderError::NotYourCarts);
        }
        let lines = CartLines::parse(items.iter().copied(), false)?;
        self.check_products(&lines).await?;
        let cart = store::create_cart(self.db(), user_id, self.now()).await?;
        self.write_lines(&cart, &lines, false).await?;
        self.priced(&cart).await
    }

    /// Merges lines into cart `id` (quantity 0 removes one) or replaces them.
    pub async fn update_cart(
        &self,
        caller: &Principal,
        id: i64,
        items: &[(i64, i32)],
        merge: bool,
    ) -> Result<Cart, OrderError> {
        let cart = self.visible_cart(caller, id).await?;
        let lines = CartLines::parse(items.iter().copied(), true)?;
        self.check_products(&lines).await?;
        self.write_lines(&cart, &lines, merge).await?;
        self.priced(&cart).await
    }

    /// Soft-deletes cart `id`; answers it as it was, marked deleted.
    pub async fn delete_cart(&self, caller: &Principal, id: i64) -> Result<Cart, OrderError> {
        let cart = self.visible_cart(caller, id).await?;
        let mut priced = self.priced(&cart).await?;
        let now = self.now();
        store::delete_cart(self.db(), cart.id, now).await?;
        priced.deleted_at = Some(now);
        Ok(priced)
    }

    /// A cart by id that `caller` may see (own, or any for an admin); deleted ones are not found.
    async fn visible_cart(&self, caller: &Principal, id: i64) -> Result<CartRow, OrderError> {
        let cart = store::find_cart(self.db(), id)
            .await?
            .ok_or(OrderError::CartNotFound)?;
        if !caller.may_access(cart.user_id) {
            return Err(OrderError::CartNotFound);
        }
        Ok(cart)
    }

    /// Checks that every product kept exists (404 PRODUCT_NOT_FOUND naming the others).
    async fn check_products(&self, lines: &CartLines) -> Result<(), OrderError> {
        let ids = lines.kept_ids();
        if !ids.is_empty() {
            self.catalog.pricing(ids).await?;
        }
        Ok(())
    }

    async fn write_lines(
        &self,
        cart: &CartRow,
        lines: &CartLines,
        merge: bool,
    ) -> Result<(), OrderError> {
        store::write_cart_lines(
            self.db(),
            cart.id,
            lines.iter(),
            merge,
            MAX_LINES,
            self.now(),
        )
        .await
    }

    /// A cart with its lines priced by the catalog now (products gone since are left out).
    async fn priced(&self, cart: &CartRow) -> Result<Cart, OrderError> {
        let items = store::cart_lines(self.db(), cart.id).await?;
        let products = if items.is_empty() {
            Vec::new()
        } else {
            self.catalog
                .pricing_lenient(items.iter().map(|(id, _)| *id).collect())
                .await?
        };
        let lines = items
            .iter()
            .filter_map(|(id, quantity)| {
                let p = products.iter().find(|p| p.id == *id)?;
                Some(p.line(*quantity))
            })
            .collect();
        Ok(Cart {
            id: cart.id,
            user_id: cart.user_id,
            lines,
            deleted_at: cart.deleted_at,
        })
    }
}

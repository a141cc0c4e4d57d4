//! Carts: GET/POST /cart (the signed-in user's active cart, contract 15.2) and
//! DummyJSON's /carts routes. Each user has one active cart, created empty on
//! first access; a placed order empties it. A user reads and changes only
//! their own carts; admins all. Lines store product ids and quantities only;
//! prices come from the catalog (over gRPC) each time a cart is shown, and a
//! write naming an unknown product is refused with its id in the details.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tonic::Code;

use super::catalog::Catalog;
use super::domain::{MAX_LINES, MAX_QUANTITY, PricedLine};
use super::error::OrderError;
use super::store::{line_to_wire, timestamp};
use crate::authn::Principal;
use crate::errors::{self, ErrorReason};
use crate::money;
use crate::proto::ecom::orders::v1 as pb;

/// A stored cart.
#[derive(Debug, Clone)]
pub struct CartRow {
    pub id: i64,
    pub user_id: i64,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// 404 CART_NOT_FOUND (also for another user's cart).
pub fn not_found() -> OrderError {
    OrderError::Upstream(errors::status(
        Code::NotFound,
        ErrorReason::CartNotFound,
        "Cart not found",
    ))
}

/// 403 FORBIDDEN for another user's carts.
pub fn forbidden() -> OrderError {
    OrderError::Upstream(errors::status(
        Code::PermissionDenied,
        ErrorReason::Forbidden,
        "You can only access your own carts",
    ))
}

/// Cart lines from a request: quantities per product; 0 (with `allow_zero`) removes.
pub fn parse_lines(
    items: &[pb::LineItem],
    allow_zero: bool,
) -> Result<BTreeMap<i64, i32>, OrderError> {
    let mut lines = BTreeMap::new();
    let mut violations = Vec::new();
    for item in items {
        let min = if allow_zero { 0 } else { 1 };
        if item.id <= 0 {
            violations.push((
                "products.id".to_owned(),
                format!("`{}` is not a product id", item.id),
            ));
        } else if item.quantity < min || item.quantity > MAX_QUANTITY {
            violations.push((
                "products.quantity".to_owned(),
                format!("must be between {min} and {MAX_QUANTITY}"),
            ));
        } else {
            lines.insert(item.id, item.quantity);
        }
    }
    if lines.len() > MAX_LINES {
        violations.push((
            "products".to_owned(),
            format!("at most {MAX_LINES} products"),
        ));
    }
    if violations.is_empty() {
        Ok(lines)
    } else {
        Err(OrderError::Invalid(violations))
    }
}

/// The user's active cart, created empty on first access.
pub async fn active_cart(
    db: &PgPool,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<CartRow, OrderError> {
    loop {
        let found = sqlx::query_as!(
            CartRow,
            "SELECT id, user_id, deleted_at FROM carts WHERE user_id = $1 AND is_active AND deleted_at IS NULL",
            user_id
        )
        .fetch_optional(db)
        .await?;
        if let Some(cart) = found {
            return Ok(cart);
        }
        // A concurrent first access may win the unique index; then read its cart.
        let created = sqlx::query_as!(
            CartRow,
            r#"INSERT INTO carts (user_id, created_at, updated_at) VALUES ($1, $2, $2)
               ON CONFLICT DO NOTHING RETURNING id, user_id, deleted_at"#,
            user_id,
            now
        )
        .fetch_optional(db)
        .await?;
        if let Some(cart) = created {
            return Ok(cart);
        }
    }
}

/// A cart by id that `caller` may see (own, or any for an admin); deleted ones are not found.
pub async fn visible_cart(db: &PgPool, caller: &Principal, id: i64) -> Result<CartRow, OrderError> {
    let cart = sqlx::query_as!(
        CartRow,
        "SELECT id, user_id, deleted_at FROM carts WHERE id = $1 AND deleted_at IS NULL",
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or_else(not_found)?;
    if !caller.may_access(cart.user_id) {
        return Err(not_found());
    }
    Ok(cart)
}

/// Checks that every product exists (404 PRODUCT_NOT_FOUND naming the others).
pub async fn check_products(
    catalog: &Catalog,
    lines: &BTreeMap<i64, i32>,
) -> Result<(), OrderError> {
    let ids: Vec<i64> = lines
        .iter()
        .filter(|(_, q)| **q > 0)
        .map(|(id, _)| *id)
        .collect();
    if !ids.is_empty() {
        catalog.pricing(ids).await?;
    }
    Ok(())
}

/// Replaces a cart's lines (`merge` false) or sets the given ones, 0 removing (`merge` true).
pub async fn write_lines(
    db: &PgPool,
    cart_id: i64,
    lines: &BTreeMap<i64, i32>,
    merge: bool,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    let mut tx = db.begin().await?;
    sqlx::query!("SELECT id FROM carts WHERE id = $1 FOR UPDATE", cart_id)
        .fetch_optional(&mut *tx)
        .await?;
    if !merge {
        sqlx::query!("DELETE FROM cart_items WHERE cart_id = $1", cart_id)
            .execute(&mut *tx)
            .await?;
    }
    for (product_id, quantity) in lines {
        if *quantity == 0 {
            sqlx::query!(
                "DELETE FROM cart_items WHERE cart_id = $1 AND product_id = $2",
                cart_id,
                product_id
            )
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query!(
                r#"INSERT INTO cart_items (cart_id, product_id, quantity) VALUES ($1, $2, $3)
                   ON CONFLICT (cart_id, product_id) DO UPDATE SET quantity = EXCLUDED.quantity"#,
                cart_id,
                product_id,
                quantity
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM cart_items WHERE cart_id = $1"#,
        cart_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if count as usize > MAX_LINES {
        return Err(OrderError::Invalid(vec![(
            "products".into(),
            format!("at most {MAX_LINES} products"),
        )]));
    }
    sqlx::query!(
        "UPDATE carts SET updated_at = $2 WHERE id = $1",
        cart_id,
        now
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Creates a new active cart for `user_id` (the previous one stays readable, inactive).
pub async fn create_cart(
    db: &PgPool,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<CartRow, OrderError> {
    let mut tx = db.begin().await?;
    sqlx::query!(
        "UPDATE carts SET is_active = false WHERE user_id = $1 AND is_active AND deleted_at IS NULL",
        user_id
    )
    .execute(&mut *tx)
    .await?;
    let cart = sqlx::query_as!(
        CartRow,
        "INSERT INTO carts (user_id, created_at, updated_at) VALUES ($1, $2, $2) RETURNING id, user_id, deleted_at",
        user_id,
        now
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(cart)
}

/// Soft-deletes a cart.
pub async fn delete_cart(db: &PgPool, id: i64, now: DateTime<Utc>) -> Result<(), OrderError> {
    sqlx::query!(
        "UPDATE carts SET deleted_at = $2, is_active = false WHERE id = $1",
        id,
        now
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Empties the user's active cart (after an order), inside the order's transaction.
pub async fn empty_active_cart(tx: &mut PgConnection, user_id: i64) -> Result<(), OrderError> {
    sqlx::query!(
        "DELETE FROM cart_items WHERE cart_id IN (SELECT id FROM carts WHERE user_id = $1 AND is_active AND deleted_at IS NULL)",
        user_id
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A cart with its lines priced by the catalog now (products gone since are left out).
pub async fn render(
    db: &PgPool,
    catalog: &Catalog,
    cart: &CartRow,
) -> Result<pb::Cart, OrderError> {
    let items = sqlx::query!(
        "SELECT product_id, quantity FROM cart_items WHERE cart_id = $1 ORDER BY position",
        cart.id
    )
    .fetch_all(db)
    .await?;
    let products = if items.is_empty() {
        Vec::new()
    } else {
        catalog
            .pricing_lenient(items.iter().map(|i| i.product_id).collect())
            .await?
    };
    let lines: Vec<PricedLine> = items
        .iter()
        .filter_map(|i| {
            let p = products.iter().find(|p| p.id == i.product_id)?;
            Some(PricedLine::new(
                p.id,
                p.title.clone(),
                p.price_cents,
                p.discount_basis_points,
                i.quantity,
                p.thumbnail.clone(),
            ))
        })
        .collect();
    Ok(pb::Cart {
        id: cart.id,
        products: lines.iter().map(line_to_wire).collect(),
        total: money::to_wire(lines.iter().map(|l| l.total_cents).sum()),
        discounted_total: money::to_wire(lines.iter().map(|l| l.discounted_total_cents).sum()),
        user_id: cart.user_id,
        total_products: lines.len() as i32,
        total_quantity: lines.iter().map(|l| l.quantity).sum(),
        is_deleted: cart.deleted_at.is_some(),
        deleted_on: cart.deleted_at.map(timestamp),
    })
}

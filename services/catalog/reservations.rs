//! Stock reservations: the catalog's internal RPCs that the orders service calls
//! over gRPC (`ReserveStock`, `CommitReservation`, `ReleaseReservation`,
//! `GetProductsForPricing`). They have no `google.api.http` rule, so the REST
//! edge never routes them.
//!
//! Who may call them: only callers whose token carries the admin role, that is
//! an admin, or the orders service with its internal service token (an access
//! token signed with the shared JWT secret, role admin, minted by the orders
//! service for each call). Anyone else gets PERMISSION_DENIED / UNAUTHENTICATED.
//!
//! Design (no oversell, no stock lost, no stock held forever):
//! - A reservation is keyed by the order id (`order_key`) and holds one row per
//!   product in `stock_reservations` (migrations/20261127000250).
//! - `ReserveStock` takes every line or none in ONE transaction: it locks the
//!   product rows in id order (so two orders never deadlock), checks them,
//!   decrements with `UPDATE products SET stock = stock - q WHERE id = .. AND
//!   stock >= q`, and inserts the reservation rows. A short line rolls the whole
//!   transaction back and answers 422 INSUFFICIENT_STOCK with the short ids in
//!   `details.productIds`. A retry with the same key finds the rows and returns
//!   their state; two concurrent first tries collide on the primary key and the
//!   loser's transaction (with its decrements) rolls back.
//! - `CommitReservation` moves `reserved` to `committed`; `ReleaseReservation`
//!   moves `reserved` or `committed` to `released` and gives the units back.
//!   Both only touch rows in the state they expect, under the row locks, so a
//!   release never gives units back twice (even racing the sweeper).
//! - [`release_expired`] (the sweeper, run by the server every minute) releases
//!   `reserved` rows past `expires_at`: a checkout that crashed between reserving
//!   and committing gives its stock back after the TTL.
//!
//! After each change the affected products' cache entries are deleted, since
//! the cached product shows its stock.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tonic::{Code, Request, Response, Status};

use crate::authn;
use crate::cache::Cache;
use crate::errors::{self, ErrorReason};
use crate::proto::ecom::catalog::v1 as pb;

/// How long a reservation holds when the caller does not say (15 minutes).
pub const DEFAULT_TTL_SECONDS: i32 = 900;
/// The longest reservation a caller may ask for (1 hour).
const MAX_TTL_SECONDS: i32 = 3600;
/// Most lines (distinct products) in one reservation.
const MAX_LINES: usize = 100;

const RESERVED: &str = "reserved";
const COMMITTED: &str = "committed";
const RELEASED: &str = "released";

fn state_of(status: &str) -> pb::ReservationState {
    match status {
        RESERVED => pb::ReservationState::Reserved,
        COMMITTED => pb::ReservationState::Committed,
        RELEASED => pb::ReservationState::Released,
        _ => pb::ReservationState::Unspecified,
    }
}

fn product_keys(ids: impl IntoIterator<Item = i64>) -> Vec<String> {
    ids.into_iter().map(super::product_key).collect()
}

use crate::clock::timestamp;

fn order_key(key: &str) -> Result<&str, Status> {
    let key = key.trim();
    if key.is_empty() || key.len() > 100 {
        return Err(errors::invalid_field(
            "orderKey",
            "must be 1 to 100 characters",
        ));
    }
    Ok(key)
}

/// 422 INSUFFICIENT_STOCK naming the short products in `details.productIds`.
pub fn insufficient_stock(ids: &[i64]) -> Status {
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let metadata = HashMap::from([
        (crate::errors::HTTP_STATUS.to_owned(), "422".to_owned()),
        ("productIds".to_owned(), list.clone()),
    ]);
    errors::with_metadata(
        Code::FailedPrecondition,
        ErrorReason::InsufficientStock,
        format!("Insufficient stock for product(s) {list}"),
        metadata,
    )
}

/// 404 PRODUCT_NOT_FOUND naming the unknown products in `details.productIds`.
pub fn products_not_found(ids: &[i64]) -> Status {
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let metadata = HashMap::from([("productIds".to_owned(), list.clone())]);
    errors::with_metadata(
        Code::NotFound,
        ErrorReason::ProductNotFound,
        format!("Product(s) not found: {list}"),
        metadata,
    )
}

/// `ReserveStock`: all lines or none, idempotent per order key.
#[tracing::instrument(skip_all, fields(order_key = %request.get_ref().order_key))]
pub async fn reserve_stock(
    db: &PgPool,
    cache: &Cache,
    request: Request<pb::ReserveStockRequest>,
) -> Result<Response<pb::ReserveStockResponse>, Status> {
    authn::require_admin(&request)?;
    let request = request.into_inner();
    let key = order_key(&request.order_key)?.to_owned();
    let ttl = match request.ttl_seconds {
        0 => DEFAULT_TTL_SECONDS,
        t if (1..=MAX_TTL_SECONDS).contains(&t) => t,
        _ => {
            return Err(errors::invalid_field(
                "ttlSeconds",
                "must be between 1 and 3600",
            ));
        }
    };
    // Quantities per product, in id order: the order rows are locked in.
    let mut lines: BTreeMap<i64, i32> = BTreeMap::new();
    for line in &request.lines {
        if line.quantity < 1 {
            return Err(errors::invalid_field("quantity", "must be at least 1"));
        }
        let q = lines.entry(line.product_id).or_default();
        *q = q
            .checked_add(line.quantity)
            .ok_or_else(|| errors::invalid_field("quantity", "is too large"))?;
    }
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(errors::invalid_field(
            "lines",
            "must name 1 to 100 products",
        ));
    }

    if let Some(existing) = existing_state(db, &key).await? {
        return Ok(Response::new(existing));
    }

    let ids: Vec<i64> = lines.keys().copied().collect();
    let quantities: Vec<i32> = lines.values().copied().collect();
    let mut tx = db.begin().await.map_err(errors::database)?;
    // Lock in id order; a concurrent order waits here rather than deadlocking.
    let rows = sqlx::query!(
        r#"SELECT id, stock FROM products
           WHERE id = ANY($1) AND deleted_at IS NULL
           ORDER BY id FOR UPDATE"#,
        &ids
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(errors::database)?;
    let stock: HashMap<i64, i32> = rows.into_iter().map(|r| (r.id, r.stock)).collect();
    let missing: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !stock.contains_key(id))
        .collect();
    if !missing.is_empty() {
        return Err(products_not_found(&missing));
    }
    let short: Vec<i64> = lines
        .iter()
        .filter(|(id, q)| stock[id] < **q)
        .map(|(id, _)| *id)
        .collect();
    if !short.is_empty() {
        return Err(insufficient_stock(&short));
    }
    let updated = sqlx::query!(
        r#"UPDATE products p SET stock = p.stock - l.quantity
           FROM UNNEST($1::bigint[], $2::int[]) AS l(id, quantity)
           WHERE p.id = l.id AND p.stock >= l.quantity"#,
        &ids,
        &quantities
    )
    .execute(&mut *tx)
    .await
    .map_err(errors::database)?;
    if updated.rows_affected() != ids.len() as u64 {
        // Cannot happen under the row locks; refuse rather than half-reserve.
        return Err(insufficient_stock(&ids));
    }
    let expires_at = sqlx::query_scalar!(
        r#"INSERT INTO stock_reservations (order_key, product_id, quantity, expires_at)
           SELECT $1, l.id, l.quantity, now() + make_interval(secs => $4)
           FROM UNNEST($2::bigint[], $3::int[]) AS l(id, quantity)
           RETURNING expires_at"#,
        key,
        &ids,
        &quantities,
        ttl as f64
    )
    .fetch_all(&mut *tx)
    .await;
    let expires_at = match expires_at {
        Ok(rows) => rows.into_iter().next(),
        Err(err) if is_unique_violation(&err) => {
            // A concurrent first try with the same key won; ours rolls back.
            drop(tx);
            let existing = existing_state(db, &key).await?;
            return existing
                .map(Response::new)
                .ok_or_else(|| errors::internal(anyhow::anyhow!("reservation {key} vanished")));
        }
        Err(err) => return Err(errors::database(err)),
    };
    tx.commit().await.map_err(errors::database)?;
    cache.delete(&product_keys(ids)).await;
    Ok(Response::new(pb::ReserveStockResponse {
        state: pb::ReservationState::Reserved as i32,
        expires_at: expires_at.map(timestamp),
    }))
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.constraint() == Some("stock_reservations_pkey"))
}

/// The state of an existing reservation, if there is one.
async fn existing_state(
    db: &PgPool,
    key: &str,
) -> Result<Option<pb::ReserveStockResponse>, Status> {
    let row = sqlx::query!(
        r#"SELECT status, min(expires_at) AS "expires_at!"
           FROM stock_reservations WHERE order_key = $1 GROUP BY status"#,
        key
    )
    .fetch_optional(db)
    .await
    .map_err(errors::database)?;
    Ok(row.map(|r| pb::ReserveStockResponse {
        state: state_of(&r.status) as i32,
        expires_at: Some(timestamp(r.expires_at)),
    }))
}

/// `CommitReservation`: reserved -> committed; idempotent.
#[tracing::instrument(skip_all, fields(order_key = %request.get_ref().order_key))]
pub async fn commit_reservation(
    db: &PgPool,
    request: Request<pb::CommitReservationRequest>,
) -> Result<Response<pb::CommitReservationResponse>, Status> {
    authn::require_admin(&request)?;
    let key = order_key(&request.get_ref().order_key)?;
    sqlx::query!(
        "UPDATE stock_reservations SET status = 'committed' WHERE order_key = $1 AND status = 'reserved'",
        key
    )
    .execute(db)
    .await
    .map_err(errors::database)?;
    let state = existing_state(db, key)
        .await?
        .map(|s| s.state)
        .unwrap_or(pb::ReservationState::Unspecified as i32);
    Ok(Response::new(pb::CommitReservationResponse { state }))
}

/// `ReleaseReservation`: reserved or committed -> released, units back; idempotent.
#[tracing::instrument(skip_all, fields(order_key = %request.get_ref().order_key))]
pub async fn release_reservation(
    db: &PgPool,
    cache: &Cache,
    request: Request<pb::ReleaseReservationRequest>,
) -> Result<Response<pb::ReleaseReservationResponse>, Status> {
    authn::require_admin(&request)?;
    let key = order_key(&request.get_ref().order_key)?.to_owned();
    let mut tx = db.begin().await.map_err(errors::database)?;
    let released = sqlx::query!(
        r#"UPDATE stock_reservations SET status = 'released'
           WHERE order_key = $1 AND status IN ('reserved', 'committed')
           RETURNING product_id, quantity"#,
        key
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(errors::database)?;
    let lines: BTreeMap<i64, i32> = released
        .into_iter()
        .map(|r| (r.product_id, r.quantity))
        .collect();
    restock(&mut tx, &lines).await.map_err(errors::internal)?;
    tx.commit().await.map_err(errors::database)?;
    cache.delete(&product_keys(lines.keys().copied())).await;
    let state = existing_state(db, &key)
        .await?
        .map(|s| s.state)
        .unwrap_or(pb::ReservationState::Unspecified as i32);
    Ok(Response::new(pb::ReleaseReservationResponse { state }))
}

/// Gives units back, product by product in id order (the order reservations lock in).
async fn restock(tx: &mut sqlx::PgConnection, lines: &BTreeMap<i64, i32>) -> anyhow::Result<()> {
    for (id, quantity) in lines {
        sqlx::query!(
            "UPDATE products SET stock = stock + $2 WHERE id = $1",
            id,
            quantity
        )
        .execute(&mut *tx)
        .await
        .with_context(|| format!("restocking product {id}"))?;
    }
    Ok(())
}

/// The sweeper: releases every `reserved` reservation that expired before `now`
/// and gives its units back. Returns the number of reservation rows released.
pub async fn release_expired(
    db: &PgPool,
    cache: &Cache,
    now: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let mut tx = db.begin().await.context("starting the sweep")?;
    let released = sqlx::query!(
        r#"UPDATE stock_reservations SET status = 'released'
           WHERE status = 'reserved' AND expires_at < $1
           RETURNING product_id, quantity"#,
        now
    )
    .fetch_all(&mut *tx)
    .await
    .context("releasing expired reservations")?;
    let count = released.len() as u64;
    let mut lines: BTreeMap<i64, i32> = BTreeMap::new();
    for r in released {
        *lines.entry(r.product_id).or_default() += r.quantity;
    }
    restock(&mut tx, &lines).await?;
    tx.commit().await.context("committing the sweep")?;
    if count > 0 {
        tracing::info!(count, "released expired stock reservations");
        cache.delete(&product_keys(lines.keys().copied())).await;
    }
    Ok(count)
}

/// `GetProductsForPricing`: live products by id, and the ids that are not.
#[tracing::instrument(skip_all)]
pub async fn get_products_for_pricing(
    db: &PgPool,
    request: Request<pb::GetProductsForPricingRequest>,
) -> Result<Response<pb::GetProductsForPricingResponse>, Status> {
    authn::require_admin(&request)?;
    let mut ids = request.into_inner().ids;
    ids.sort_unstable();
    ids.dedup();
    if ids.len() > MAX_LINES {
        return Err(errors::invalid_field("ids", "at most 100 products"));
    }
    let rows = sqlx::query!(
        r#"SELECT id, title, price_cents, thumbnail, stock,
                  round(discount_percentage * 100)::int AS "discount_basis_points!"
           FROM products WHERE id = ANY($1) AND deleted_at IS NULL ORDER BY id"#,
        &ids
    )
    .fetch_all(db)
    .await
    .map_err(errors::database)?;
    let products: Vec<pb::PricedProduct> = rows
        .into_iter()
        .map(|r| pb::PricedProduct {
            id: r.id,
            title: r.title,
            price_cents: r.price_cents,
            discount_basis_points: r.discount_basis_points,
            thumbnail: r.thumbnail,
            stock: r.stock,
        })
        .collect();
    let missing_ids = ids
        .into_iter()
        .filter(|id| !products.iter().any(|p| p.id == *id))
        .collect();
    Ok(Response::new(pb::GetProductsForPricingResponse {
        products,
        missing_ids,
    }))
}

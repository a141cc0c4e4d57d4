//! Stock reservations: the catalog's internal RPCs that the orders service calls
//! over gRPC (`ReserveStock`, `CommitReservation`, `ReleaseReservation`,
//! `GetProductsForPricing`). They have no `google.api.http` rule, so the REST
//! edge never routes them. This module holds their use cases; their SQL is in
//! `store.rs` and their failures are [`CatalogError`]s, like every catalog RPC's.
//!
//! Who may call them: only callers whose token carries the admin role, that is
//! an admin, or the orders service with its internal service token (an access
//! token signed with the shared JWT secret, role admin, minted by the orders
//! service for each call); `grpc.rs` checks it before calling in here. Anyone
//! else gets PERMISSION_DENIED / UNAUTHENTICATED.
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

use std::collections::BTreeMap;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::domain::Violations;
use super::error::CatalogError;
use super::store;
use crate::cache::Cache;
use crate::clock::timestamp;
use crate::proto::ecom::catalog::v1 as pb;

/// How long a reservation holds when the caller does not say (15 minutes).
pub const DEFAULT_TTL_SECONDS: i32 = 900;
/// The longest reservation a caller may ask for (1 hour).
const MAX_TTL_SECONDS: i32 = 3600;
/// Most lines (distinct products) in one reservation.
const MAX_LINES: usize = 100;

fn state_of(status: &str) -> pb::ReservationState {
    match status {
        "reserved" => pb::ReservationState::Reserved,
        "committed" => pb::ReservationState::Committed,
        "released" => pb::ReservationState::Released,
        _ => pb::ReservationState::Unspecified,
    }
}

fn product_keys(ids: impl IntoIterator<Item = i64>) -> Vec<String> {
    ids.into_iter().map(super::product_key).collect()
}

fn invalid(field: &str, message: &str) -> CatalogError {
    CatalogError::Invalid(Violations::one(field, message))
}

fn order_key(key: &str) -> Result<&str, CatalogError> {
    let key = key.trim();
    if key.is_empty() || key.len() > 100 {
        return Err(invalid("orderKey", "must be 1 to 100 characters"));
    }
    Ok(key)
}

/// `ReserveStock`: all lines or none, idempotent per order key.
#[tracing::instrument(skip_all, fields(order_key = %request.order_key))]
pub async fn reserve_stock(
    db: &PgPool,
    cache: &Cache,
    request: pb::ReserveStockRequest,
) -> Result<pb::ReserveStockResponse, CatalogError> {
    let key = order_key(&request.order_key)?.to_owned();
    let ttl = match request.ttl_seconds {
        0 => DEFAULT_TTL_SECONDS,
        t if (1..=MAX_TTL_SECONDS).contains(&t) => t,
        _ => return Err(invalid("ttlSeconds", "must be between 1 and 3600")),
    };
    // Quantities per product, in id order: the order rows are locked in.
    let mut lines: BTreeMap<i64, i32> = BTreeMap::new();
    for line in &request.lines {
        if line.quantity < 1 {
            return Err(invalid("quantity", "must be at least 1"));
        }
        let q = lines.entry(line.product_id).or_default();
        *q = q
            .checked_add(line.quantity)
            .ok_or_else(|| invalid("quantity", "is too large"))?;
    }
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(invalid("lines", "must name 1 to 100 products"));
    }

    if let Some(existing) = existing_state(db, &key).await? {
        return Ok(existing);
    }

    let ids: Vec<i64> = lines.keys().copied().collect();
    let quantities: Vec<i32> = lines.values().copied().collect();
    let mut tx = db.begin().await.context("starting a reservation")?;
    // Locked in id order; a concurrent order waits there rather than deadlocking.
    let stock = store::lock_stock(&mut tx, &ids).await?;
    let missing: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !stock.contains_key(id))
        .collect();
    if !missing.is_empty() {
        return Err(CatalogError::ProductsNotFound(missing));
    }
    let short: Vec<i64> = lines
        .iter()
        .filter(|(id, q)| stock[id] < **q)
        .map(|(id, _)| *id)
        .collect();
    if !short.is_empty() {
        return Err(CatalogError::InsufficientStock(short));
    }
    if store::take_stock(&mut tx, &ids, &quantities).await? != ids.len() as u64 {
        // Cannot happen under the row locks; refuse rather than half-reserve.
        return Err(CatalogError::InsufficientStock(ids));
    }
    let expires_at = match store::insert_reservation(&mut tx, &key, &ids, &quantities, ttl).await {
        Ok(expires_at) => expires_at,
        Err(err) if store::is_duplicate_reservation(&err) => {
            // A concurrent first try with the same key won; ours rolls back.
            drop(tx);
            return existing_state(db, &key)
                .await?
                .ok_or_else(|| anyhow::anyhow!("reservation {key} vanished").into());
        }
        Err(err) => {
            return Err(anyhow::Error::new(err)
                .context("recording a reservation")
                .into());
        }
    };
    tx.commit().await.context("committing a reservation")?;
    cache.delete(&product_keys(ids)).await;
    Ok(pb::ReserveStockResponse {
        state: pb::ReservationState::Reserved as i32,
        expires_at: expires_at.map(timestamp),
    })
}

/// The state of an existing reservation, if there is one.
async fn existing_state(
    db: &PgPool,
    key: &str,
) -> Result<Option<pb::ReserveStockResponse>, CatalogError> {
    let row = store::find_reservation(db, key).await?;
    Ok(row.map(|r| pb::ReserveStockResponse {
        state: state_of(&r.status) as i32,
        expires_at: Some(timestamp(r.expires_at)),
    }))
}

/// The state of reservation `key` as the commit and release RPCs answer it.
async fn state_after(db: &PgPool, key: &str) -> Result<i32, CatalogError> {
    Ok(existing_state(db, key)
        .await?
        .map(|s| s.state)
        .unwrap_or(pb::ReservationState::Unspecified as i32))
}

/// `CommitReservation`: reserved -> committed; idempotent.
#[tracing::instrument(skip_all, fields(order_key = %request.order_key))]
pub async fn commit_reservation(
    db: &PgPool,
    request: pb::CommitReservationRequest,
) -> Result<pb::CommitReservationResponse, CatalogError> {
    let key = order_key(&request.order_key)?;
    store::commit_reservation(db, key).await?;
    let state = state_after(db, key).await?;
    Ok(pb::CommitReservationResponse { state })
}

/// `ReleaseReservation`: reserved or committed -> released, units back; idempotent.
#[tracing::instrument(skip_all, fields(order_key = %request.order_key))]
pub async fn release_reservation(
    db: &PgPool,
    cache: &Cache,
    request: pb::ReleaseReservationRequest,
) -> Result<pb::ReleaseReservationResponse, CatalogError> {
    let key = order_key(&request.order_key)?;
    let mut tx = db.begin().await.context("starting a release")?;
    let lines = store::release_reservation(&mut tx, key).await?;
    store::restock(&mut tx, &lines).await?;
    tx.commit().await.context("committing a release")?;
    cache.delete(&product_keys(lines.keys().copied())).await;
    let state = state_after(db, key).await?;
    Ok(pb::ReleaseReservationResponse { state })
}

/// The sweeper: releases every `reserved` reservation that expired before `now`
/// and gives its units back. Returns the number of reservation rows released.
pub async fn release_expired(
    db: &PgPool,
    cache: &Cache,
    now: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let mut tx = db.begin().await.context("starting the sweep")?;
    let (count, lines) = store::release_expired_reservations(&mut tx, now).await?;
    store::restock(&mut tx, &lines).await?;
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
    request: pb::GetProductsForPricingRequest,
) -> Result<pb::GetProductsForPricingResponse, CatalogError> {
    let mut ids = request.ids;
    ids.sort_unstable();
    ids.dedup();
    if ids.len() > MAX_LINES {
        return Err(invalid("ids", "at most 100 products"));
    }
    let products: Vec<pb::PricedProduct> = store::products_for_pricing(db, &ids)
        .await?
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
    Ok(pb::GetProductsForPricingResponse {
        products,
        missing_ids,
    })
}

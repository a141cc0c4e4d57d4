//! Stock reservations: the use cases behind the catalog's internal RPCs that the
//! orders service calls over gRPC (`ReserveStock`, `CommitReservation`,
//! `ReleaseReservation`, `GetProductsForPricing`), as methods of [`CatalogApp`]
//! taking checked values (`domain::NewReservation`, `OrderKey`). The RPCs have no
//! `google.api.http` rule, so the REST edge never routes them. Their SQL is in
//! `store.rs` and their failures are [`CatalogError`]s, like every catalog RPC's.
//!
//! Who may call them: only callers whose token carries the admin role, that is
//! an admin, or the orders service with its internal service token (an access
//! token signed with the shared JWT secret, role admin, minted by the orders
//! service for each call); `grpc.rs` checks it before calling in here. Anyone
//! else gets PERMISSION_DENIED / UNAUTHENTICATED.
//!
//! Design (no oversell, no stock lost, no stock held forever):
//! - A reservation is keyed by the order id (`OrderKey`) and holds one row per
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

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::app::CatalogApp;
use super::domain::{NewReservation, OrderKey, Reservation, ReservationState};
use super::error::CatalogError;
use super::store::{self, PricingRow};
use crate::cache::Cache;

fn product_keys(ids: impl IntoIterator<Item = i64>) -> Vec<String> {
    ids.into_iter().map(super::product_key).collect()
}

/// Live products by id, and the ids that are not.
pub struct Pricing {
    pub products: Vec<PricingRow>,
    pub missing_ids: Vec<i64>,
}

impl CatalogApp {
    /// `ReserveStock`: all lines or none, idempotent per order key.
    #[tracing::instrument(skip_all, fields(order_key = %new.key.as_str()))]
    pub async fn reserve_stock(&self, new: &NewReservation) -> Result<Reservation, CatalogError> {
        let db = &self.db;
        let key = new.key.as_str();
        if let Some(existing) = existing(db, key).await? {
            return Ok(existing);
        }

        let ids: Vec<i64> = new.lines.keys().copied().collect();
        let quantities: Vec<i32> = new.lines.values().copied().collect();
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
        let short: Vec<i64> = new
            .lines
            .iter()
            .filter(|(id, q)| stock[id] < **q)
            .map(|(id, _)| *id)
            .collect();
        if !short.is_empty() {
            return Err(CatalogError::InsufficientStock(short));
        }
        let taken = store::take_stock(&mut tx, &ids, &quantities).await?;
        if taken.len() != ids.len() {
            // Cannot happen under the row locks; refuse rather than half-reserve.
            return Err(CatalogError::InsufficientStock(ids));
        }
        self.alert_low_stock(&mut tx, &taken).await?;
        let expires_at =
            match store::insert_reservation(&mut tx, key, &ids, &quantities, new.ttl_seconds).await
            {
                Ok(expires_at) => expires_at,
                Err(err) if store::is_duplicate_reservation(&err) => {
                    // A concurrent first try with the same key won; ours rolls back.
                    drop(tx);
                    return existing(db, key)
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
        self.cache.delete(&product_keys(ids)).await;
        Ok(Reservation {
            state: Some(ReservationState::Reserved),
            expires_at,
        })
    }

    /// `CommitReservation`: reserved -> committed; idempotent. Answers the state after.
    #[tracing::instrument(skip_all, fields(order_key = %key.as_str()))]
    pub async fn commit_reservation(
        &self,
        key: &OrderKey,
    ) -> Result<Option<ReservationState>, CatalogError> {
        store::commit_reservation(&self.db, key.as_str()).await?;
        state_after(&self.db, key.as_str()).await
    }

    /// `ReleaseReservation`: reserved or committed -> released, units back; idempotent.
    /// Answers the state after.
    #[tracing::instrument(skip_all, fields(order_key = %key.as_str()))]
    pub async fn release_reservation(
        &self,
        key: &OrderKey,
    ) -> Result<Option<ReservationState>, CatalogError> {
        let key = key.as_str();
        let mut tx = self.db.begin().await.context("starting a release")?;
        let lines = store::release_reservation(&mut tx, key).await?;
        store::restock(&mut tx, &lines).await?;
        tx.commit().await.context("committing a release")?;
        self.cache
            .delete(&product_keys(lines.keys().copied()))
            .await;
        state_after(&self.db, key).await
    }

    /// `GetProductsForPricing`: live products among `ids` (checked by
    /// `domain::pricing_ids`), and the ids that are not.
    #[tracing::instrument(skip_all)]
    pub async fn products_for_pricing(&self, ids: Vec<i64>) -> Result<Pricing, CatalogError> {
        let products = store::products_for_pricing(&self.db, &ids).await?;
        let missing_ids = ids
            .into_iter()
            .filter(|id| !products.iter().any(|p| p.id == *id))
            .collect();
        Ok(Pricing {
            products,
            missing_ids,
        })
    }
}

/// The state of an existing reservation, if there is one.
async fn existing(db: &PgPool, key: &str) -> Result<Option<Reservation>, CatalogError> {
    let row = store::find_reservation(db, key).await?;
    Ok(row.map(|r| Reservation {
        state: ReservationState::parse(&r.status),
        expires_at: Some(r.expires_at),
    }))
}

/// The state of reservation `key` as the commit and release RPCs answer it.
async fn state_after(db: &PgPool, key: &str) -> Result<Option<ReservationState>, CatalogError> {
    Ok(existing(db, key).await?.and_then(|r| r.state))
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

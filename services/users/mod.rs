//! The users service: profiles, preferences, avatars, addresses and account deletion (contract
//! section 7), behind `ecom.users.v1.UsersService`.
//!
//! It shares the identity tables with the auth service (see [`crate::auth`]) and owns
//! `user_preferences` and `addresses`, and the avatar files in UPLOAD_DIR. Profiles are cached
//! write-through for 60 s (spec 12.2). Deletion is soft with a grace period; [`run_purge`]
//! anonymises accounts afterwards and keeps the rows, so orders keep their user id.

mod avatar;
mod domain;
mod grpc;
pub mod store;

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::watch;

pub use grpc::UsersApi;

/// Anonymises accounts whose grace period ended before `now`; returns how many.
pub async fn purge_expired(db: &PgPool, now: DateTime<Utc>, grace: Duration) -> anyhow::Result<usize> {
    let cutoff = now - chrono::Duration::from_std(grace).context("grace period out of range")?;
    let mut tx = db.begin().await?;
    let ids = store::purge_deleted(&mut tx, cutoff, now).await?;
    tx.commit().await?;
    if !ids.is_empty() {
        tracing::info!(count = ids.len(), "purged deleted accounts");
    }
    Ok(ids.len())
}

/// The purge job: runs [`purge_expired`] every `every` until `stop`.
pub async fn run_purge(shared: crate::server::Shared, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        let grace = shared.settings.account_deletion_grace;
        if let Err(e) = purge_expired(&shared.db, shared.clock.now(), grace).await {
            tracing::warn!(error = ?e, "account purge failed; retrying later");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

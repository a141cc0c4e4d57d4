//! The users service: profiles, preferences, avatars, addresses and account deletion (the
//! /users routes), behind `ecom.users.v1.UsersService`.
//!
//! It shares the identity tables with the auth service (see [`crate::auth`]) and owns
//! `user_preferences` and `addresses`, and the avatar files in UPLOAD_DIR. Profiles are cached
//! write-through for 60 s. Deletion is soft with a grace period; [`run_purge`]
//! anonymises accounts afterwards and keeps the rows, so orders keep their user id.

mod app;
mod avatar;
pub mod consumers;
mod domain;
mod error;
mod grpc;
pub mod notices;
pub mod store;
pub mod webhooks;
mod wire;

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::watch;

pub use app::UsersApi;
pub use consumers::{NotificationsConsumer, WebhooksConsumer};
pub use error::UsersError;
pub use webhooks::{WebhookSender, run_webhook_sender};

/// The users service's event consumers, for the runner to drive.
pub fn consumers() -> Vec<std::sync::Arc<dyn crate::events::Consumer>> {
    vec![
        std::sync::Arc::new(NotificationsConsumer),
        std::sync::Arc::new(WebhooksConsumer),
    ]
}

/// The settings the users service reads.
#[derive(Debug, Clone)]
pub struct UsersSettings {
    /// UPLOAD_MAX_SIZE: the largest avatar accepted, in bytes.
    pub upload_max_size: usize,
    /// UPLOAD_DIR: where avatars are written.
    pub upload_dir: String,
    /// The public URL avatars are served under (`/uploads` on PUBLIC_URL or CDN_URL).
    pub uploads_base: String,
    /// JWT_EXPIRES_IN and the longest `expiresInMins`: how long a revoked user's tokens live.
    pub jwt_expires_in: Duration,
    pub jwt_max_expires_in_mins: u32,
    /// WEBHOOK_ALLOW_PRIVATE: which addresses webhook URLs may name.
    pub webhook_targets: crate::https::Targets,
}

impl UsersSettings {
    /// The users slice of the process settings.
    pub fn from_settings(s: &crate::config::Settings) -> UsersSettings {
        UsersSettings {
            upload_max_size: s.upload_max_size,
            upload_dir: s.upload_dir.clone(),
            uploads_base: s.uploads_base(),
            jwt_expires_in: s.jwt_expires_in,
            jwt_max_expires_in_mins: s.jwt_max_expires_in_mins,
            webhook_targets: s.webhook_targets(),
        }
    }
}

/// Anonymises accounts whose grace period ended before `now`; returns how many.
pub async fn purge_expired(
    db: &PgPool,
    now: DateTime<Utc>,
    grace: Duration,
) -> anyhow::Result<usize> {
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
pub async fn run_purge(
    db: PgPool,
    clock: crate::clock::Clock,
    grace: Duration,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = purge_expired(&db, clock.now(), grace).await {
            tracing::warn!(error = ?e, "account purge failed; retrying later");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

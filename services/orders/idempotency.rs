//! Idempotency-Key (contract: POST /orders, POST /payments/intents).
//!
//! The edge forwards the `Idempotency-Key` header as gRPC metadata. The first
//! request with a key inserts a `pending` row (the primary key makes exactly
//! one request the owner); the owner stores its encoded response in the same
//! transaction as its effect (see [`finish`]) and the row becomes `done`.
//! Duplicates with the same body wait for `done` and replay the stored response
//! (with the response metadata `idempotent-replayed: true`); a different body is
//! 422 IDEMPOTENCY_KEY_REUSED. A failed owner deletes its row, so a retry runs
//! again. Keys live 24 hours: older rows are ignored and purged.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::error::OrderError;

/// The metadata key the edge forwards the header as.
pub const HEADER: &str = "idempotency-key";
/// The response metadata of a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// How long a key is kept.
pub fn retention() -> chrono::Duration {
    chrono::Duration::hours(24)
}
/// How long a duplicate waits for the first request before giving up (409).
const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(25);

/// A key the caller sent, with what it guards.
#[derive(Debug, Clone)]
pub struct Key {
    pub user_id: i64,
    pub scope: &'static str,
    pub key: String,
    pub request_hash: Vec<u8>,
}

/// What to do with a request that carries a key.
pub enum Claim {
    /// This request owns the key: run it, then [`finish`] (or [`abandon`]).
    Owner,
    /// An earlier request finished: answer its stored response.
    Replay(Vec<u8>),
}

/// The key of a request, if it has one: `request` is the encoded request body.
pub fn key_of<T>(
    request: &tonic::Request<T>,
    user_id: i64,
    scope: &'static str,
    body: &[u8],
) -> Result<Option<Key>, OrderError> {
    let Some(value) = request.metadata().get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            OrderError::Invalid(vec![(
                "Idempotency-Key".into(),
                "must be 1 to 255 visible characters".into(),
            )])
        })?;
    Ok(Some(Key {
        user_id,
        scope,
        key: key.to_owned(),
        request_hash: Sha256::digest(body).to_vec(),
    }))
}

/// Claims `key`: owner, replay, or an error (reused with another body, or still running).
pub async fn claim(db: &PgPool, key: &Key, now: DateTime<Utc>) -> Result<Claim, OrderError> {
    let cutoff = now - retention();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let inserted = sqlx::query!(
            r#"INSERT INTO idempotency_keys (user_id, scope, key, request_hash, created_at)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"#,
            key.user_id,
            key.scope,
            key.key,
            key.request_hash,
            now
        )
        .execute(db)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Owner);
        }
        let row = sqlx::query!(
            r#"SELECT request_hash, status, response, created_at FROM idempotency_keys
               WHERE user_id = $1 AND scope = $2 AND key = $3"#,
            key.user_id,
            key.scope,
            key.key
        )
        .fetch_optional(db)
        .await?;
        match row {
            // The owner failed and gave the key up meanwhile: try again.
            None => continue,
            Some(r) if r.created_at < cutoff => {
                // Expired: forget it and claim afresh.
                sqlx::query!(
                    "DELETE FROM idempotency_keys WHERE user_id = $1 AND scope = $2 AND key = $3 AND created_at < $4",
                    key.user_id,
                    key.scope,
                    key.key,
                    cutoff
                )
                .execute(db)
                .await?;
                continue;
            }
            Some(r) if r.request_hash != key.request_hash => return Err(OrderError::KeyReused),
            Some(r) if r.status == "done" => {
                return Ok(Claim::Replay(r.response.unwrap_or_default()));
            }
            Some(_) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(OrderError::KeyInProgress);
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

/// Stores the owner's response; call in the transaction of the request's effect.
pub async fn finish(
    db: &mut sqlx::PgConnection,
    key: &Key,
    response: &[u8],
) -> Result<(), OrderError> {
    sqlx::query!(
        r#"UPDATE idempotency_keys SET status = 'done', response = $4
           WHERE user_id = $1 AND scope = $2 AND key = $3"#,
        key.user_id,
        key.scope,
        key.key,
        response
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Gives the key up after the owner failed, so that a retry runs again.
pub async fn abandon(db: &PgPool, key: &Key) {
    let result = sqlx::query!(
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND scope = $2 AND key = $3 AND status = 'pending'",
        key.user_id,
        key.scope,
        key.key
    )
    .execute(db)
    .await;
    if let Err(err) = result {
        tracing::warn!(error = %err, "could not release an idempotency key");
    }
}

/// Deletes keys older than the retention; returns how many.
pub async fn purge(db: &PgPool, now: DateTime<Utc>) -> anyhow::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM idempotency_keys WHERE created_at < $1",
        now - retention()
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Marks a response as a replay.
pub fn mark_replayed<T>(response: &mut tonic::Response<T>) {
    response.metadata_mut().insert(
        REPLAYED,
        tonic::metadata::MetadataValue::from_static("true"),
    );
}

//! The payments service's SQL (migrations/20261127000400_payments.sql).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// A stored payment intent.
#[derive(Debug, Clone)]
pub struct IntentRow {
    pub id: String,
    pub user_id: i64,
    pub amount_cents: i64,
    pub currency: String,
    pub status: String,
    pub client_secret: String,
    pub provider_ref: String,
    pub created_at: DateTime<Utc>,
}

/// Inserts a new intent.
pub async fn insert_intent(
    tx: &mut PgConnection,
    row: &IntentRow,
    metadata: &serde_json::Value,
    provider: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO payment_intents (id, user_id, amount_cents, currency, status, client_secret, metadata,
                                        provider, provider_ref, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)"#,
        row.id,
        row.user_id,
        row.amount_cents,
        row.currency,
        row.status,
        row.client_secret,
        metadata,
        provider,
        row.provider_ref,
        row.created_at
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// An intent by id, locked when `tx` is a transaction.
pub async fn lock_intent(
    tx: &mut PgConnection,
    id: &str,
) -> Result<Option<IntentRow>, sqlx::Error> {
    sqlx::query_as!(
        IntentRow,
        r#"SELECT id, user_id, amount_cents, currency, status, client_secret, provider_ref, created_at
           FROM payment_intents WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await
}

/// An intent by id.
pub async fn find_intent(db: &PgPool, id: &str) -> Result<Option<IntentRow>, sqlx::Error> {
    sqlx::query_as!(
        IntentRow,
        r#"SELECT id, user_id, amount_cents, currency, status, client_secret, provider_ref, created_at
           FROM payment_intents WHERE id = $1"#,
        id
    )
    .fetch_optional(db)
    .await
}

/// Sets an intent's status (and failure reason).
pub async fn set_status(
    tx: &mut PgConnection,
    id: &str,
    status: &str,
    failure: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE payment_intents SET status = $2, failure_reason = $3, updated_at = $4 WHERE id = $1",
        id,
        status,
        failure,
        now
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Applies a provider event to the intent with `provider_ref`, once per event id.
/// Returns false when the event was seen before.
pub async fn apply_event(
    db: &PgPool,
    event_id: &str,
    event_type: &str,
    provider_ref: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let fresh = sqlx::query!(
        "INSERT INTO payment_webhook_events (id, type, received_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        event_id,
        event_type,
        now
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        return Ok(false);
    }
    match event_type {
        "payment_intent.succeeded" => {
            sqlx::query!(
                "UPDATE payment_intents SET status = 'succeeded', failure_reason = NULL, updated_at = $2 WHERE provider_ref = $1",
                provider_ref,
                now
            )
            .execute(&mut *tx)
            .await?;
        }
        "payment_intent.payment_failed" => {
            sqlx::query!(
                "UPDATE payment_intents SET status = 'failed', updated_at = $2 WHERE provider_ref = $1 AND status <> 'succeeded'",
                provider_ref,
                now
            )
            .execute(&mut *tx)
            .await?;
        }
        "charge.refunded" => {
            sqlx::query!(
                "UPDATE payment_intents SET refunded_at = COALESCE(refunded_at, $2), updated_at = $2 WHERE provider_ref = $1",
                provider_ref,
                now
            )
            .execute(&mut *tx)
            .await?;
        }
        _ => {}
    }
    tx.commit().await?;
    Ok(true)
}

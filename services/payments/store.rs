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
    /// Why it failed (the provider's decline message, or [`CANCELED`]).
    pub failure_reason: Option<String>,
    /// The order it was created for (metadata.orderId).
    pub order_id: Option<String>,
    pub refunded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The failure reason of an intent cancelled because its order was: it can
/// no longer be confirmed.
pub const CANCELED: &str = "canceled";

/// Inserts a new intent.
pub async fn insert_intent(
    tx: &mut PgConnection,
    row: &IntentRow,
    metadata: &serde_json::Value,
    provider: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO payment_intents (id, user_id, amount_cents, currency, status, client_secret, metadata,
                                        provider, provider_ref, order_id, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)"#,
        row.id,
        row.user_id,
        row.amount_cents,
        row.currency,
        row.status,
        row.client_secret,
        metadata,
        provider,
        row.provider_ref,
        row.order_id,
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
        r#"SELECT id, user_id, amount_cents, currency, status, client_secret, provider_ref, failure_reason, order_id,
                  refunded_at, created_at
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
        r#"SELECT id, user_id, amount_cents, currency, status, client_secret, provider_ref, failure_reason, order_id,
                  refunded_at, created_at
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

/// Marks an intent succeeded, keeping the card's last four digits when given.
pub async fn set_succeeded(
    tx: &mut PgConnection,
    id: &str,
    card_last4: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE payment_intents SET status = 'succeeded', failure_reason = NULL,
                card_last4 = COALESCE($2, card_last4), updated_at = $3
         WHERE id = $1",
        id,
        card_last4,
        now
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records an intent's refund (the first time only).
pub async fn set_refunded(
    tx: &mut PgConnection,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE payment_intents SET refunded_at = COALESCE(refunded_at, $2), updated_at = $2 WHERE id = $1",
        id,
        now
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Applies a provider event to the intent with `provider_ref`, once per event
/// id, in `tx`. Returns the intent afterwards when the event was new and names
/// a known intent; None when it was seen before (or names no intent).
/// The updates are guarded so that any order of delivery converges: a late
/// `payment_failed` never undoes `succeeded`, and a refund stays recorded.
pub async fn apply_event(
    tx: &mut PgConnection,
    event_id: &str,
    event_type: &str,
    provider_ref: &str,
    now: DateTime<Utc>,
) -> Result<Option<IntentRow>, sqlx::Error> {
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
        return Ok(None);
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
            // A refund implies the payment: a refund delivered before the
            // success event still leaves the intent succeeded and refunded.
            sqlx::query!(
                "UPDATE payment_intents SET status = 'succeeded', failure_reason = NULL,
                        refunded_at = COALESCE(refunded_at, $2), updated_at = $2
                 WHERE provider_ref = $1",
                provider_ref,
                now
            )
            .execute(&mut *tx)
            .await?;
        }
        _ => return Ok(None),
    }
    sqlx::query_as!(
        IntentRow,
        r#"SELECT id, user_id, amount_cents, currency, status, client_secret, provider_ref, failure_reason, order_id,
                  refunded_at, created_at
           FROM payment_intents WHERE provider_ref = $1"#,
        provider_ref
    )
    .fetch_optional(&mut *tx)
    .await
}

/// Forgets that an event was applied, so the provider's redelivery applies it
/// again (its effect could not reach the order).
pub async fn forget_event(db: &PgPool, event_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM payment_webhook_events WHERE id = $1", event_id)
        .execute(db)
        .await?;
    Ok(())
}

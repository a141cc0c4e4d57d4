//! The payments service's SQL (migrations/20261127000400_payments.sql,
//! 20261127000600_payments_orders.sql): intents and the webhook events already applied.
//! Every read returns an [`IntentRow`] with a typed status; a stored status no code
//! writes is [`PaymentsError::CorruptIntent`], never guessed.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::domain::{EventEffect, IntentStatus};
use super::error::PaymentsError;

/// A stored payment intent.
#[derive(Debug, Clone)]
pub struct IntentRow {
    pub id: String,
    pub user_id: i64,
    pub amount_cents: i64,
    pub currency: String,
    pub status: IntentStatus,
    pub client_secret: String,
    pub provider_ref: String,
    /// Why it failed (the provider's decline message, or [`super::domain::CANCELED`]).
    pub failure_reason: Option<String>,
    /// The order it was created for (metadata.orderId).
    pub order_id: Option<String>,
    pub refunded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// An intent as the database holds it, status untyped.
struct StoredIntent {
    id: String,
    user_id: i64,
    amount_cents: i64,
    currency: String,
    status: String,
    client_secret: String,
    provider_ref: String,
    failure_reason: Option<String>,
    order_id: Option<String>,
    refunded_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl TryFrom<StoredIntent> for IntentRow {
    type Error = PaymentsError;

    fn try_from(s: StoredIntent) -> Result<IntentRow, PaymentsError> {
        let Some(status) = IntentStatus::parse(&s.status) else {
            return Err(PaymentsError::CorruptIntent {
                id: s.id,
                status: s.status,
            });
        };
        Ok(IntentRow {
            id: s.id,
            user_id: s.user_id,
            amount_cents: s.amount_cents,
            currency: s.currency,
            status,
            client_secret: s.client_secret,
            provider_ref: s.provider_ref,
            failure_reason: s.failure_reason,
            order_id: s.order_id,
            refunded_at: s.refunded_at,
            created_at: s.created_at,
        })
    }
}

/// The typed row of a read that may have found nothing.
fn typed(stored: Option<StoredIntent>) -> Result<Option<IntentRow>, PaymentsError> {
    stored.map(IntentRow::try_from).transpose()
}

/// Inserts a new intent.
pub async fn insert_intent(
    tx: &mut PgConnection,
    row: &IntentRow,
    metadata: &serde_json::Value,
    provider: &str,
) -> Result<(), PaymentsError> {
    sqlx::query!(
        r#"INSERT INTO payment_intents (id, user_id, amount_cents, currency, status, client_secret, metadata,
                                        provider, provider_ref, order_id, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)"#,
        row.id,
        row.user_id,
        row.amount_cents,
        row.currency,
        row.status.as_str(),
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
) -> Result<Option<IntentRow>, PaymentsError> {
    let stored = sqlx::query_as!(
        StoredIntent,
        r#"SELECT id, user_id, amount_cents, currency, status, client_secret, provider_ref, failure_reason, order_id,
                  refunded_at, created_at
           FROM payment_intents WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?;
    typed(stored)
}

/// An intent by id.
pub async fn find_intent(db: &PgPool, id: &str) -> Result<Option<IntentRow>, PaymentsError> {
    let stored = sqlx::query_as!(
        StoredIntent,
        r#"SELECT id, user_id, amount_cents, currency, status, client_secret, provider_ref, failure_reason, order_id,
                  refunded_at, created_at
           FROM payment_intents WHERE id = $1"#,
        id
    )
    .fetch_optional(db)
    .await?;
    typed(stored)
}

/// The intent with the provider's reference `provider_ref`, locked.
pub async fn lock_intent_by_ref(
    tx: &mut PgConnection,
    provider_ref: &str,
) -> Result<Option<IntentRow>, PaymentsError> {
    let stored = sqlx::query_as!(
        StoredIntent,
        r#"SELECT id, user_id, amount_cents, currency, status, client_secret, provider_ref, failure_reason, order_id,
                  refunded_at, created_at
           FROM payment_intents WHERE provider_ref = $1 FOR UPDATE"#,
        provider_ref
    )
    .fetch_optional(&mut *tx)
    .await?;
    typed(stored)
}

/// Sets an intent's status (and failure reason).
pub async fn set_status(
    tx: &mut PgConnection,
    id: &str,
    status: IntentStatus,
    failure: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), PaymentsError> {
    sqlx::query!(
        "UPDATE payment_intents SET status = $2, failure_reason = $3, updated_at = $4 WHERE id = $1",
        id,
        status.as_str(),
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
) -> Result<(), PaymentsError> {
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
) -> Result<(), PaymentsError> {
    sqlx::query!(
        "UPDATE payment_intents SET refunded_at = COALESCE(refunded_at, $2), updated_at = $2 WHERE id = $1",
        id,
        now
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records that event `event_id` arrived, in the transaction that applies it; false
/// when it was recorded before (a redelivery, which changes nothing).
pub async fn record_event(
    tx: &mut PgConnection,
    event_id: &str,
    event_type: &str,
    now: DateTime<Utc>,
) -> Result<bool, PaymentsError> {
    let inserted = sqlx::query!(
        "INSERT INTO payment_webhook_events (id, type, received_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        event_id,
        event_type,
        now
    )
    .execute(&mut *tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Writes an event's effect to intent `id`; returns the intent afterwards.
pub async fn apply_effect(
    tx: &mut PgConnection,
    id: &str,
    effect: EventEffect,
    now: DateTime<Utc>,
) -> Result<IntentRow, PaymentsError> {
    let stored = sqlx::query_as!(
        StoredIntent,
        r#"UPDATE payment_intents
           SET status = $2,
               failure_reason = CASE WHEN $3 THEN NULL ELSE failure_reason END,
               refunded_at = CASE WHEN $4 THEN COALESCE(refunded_at, $5) ELSE refunded_at END,
               updated_at = $5
           WHERE id = $1
           RETURNING id, user_id, amount_cents, currency, status, client_secret, provider_ref, failure_reason,
                     order_id, refunded_at, created_at"#,
        id,
        effect.status.as_str(),
        effect.clears_failure,
        effect.refunds,
        now
    )
    .fetch_one(&mut *tx)
    .await?;
    IntentRow::try_from(stored)
}

/// Forgets that an event was applied, so the provider's redelivery applies it
/// again (its effect could not reach the order).
pub async fn forget_event(db: &PgPool, event_id: &str) -> Result<(), PaymentsError> {
    sqlx::query!("DELETE FROM payment_webhook_events WHERE id = $1", event_id)
        .execute(db)
        .await?;
    Ok(())
}

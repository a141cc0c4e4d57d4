//! The payments use cases: creating an intent (under the kernel's idempotency runner),
//! confirming it through the provider, reading (and refreshing) its status, applying the
//! provider's webhook events, and the internal reads and refunds of the orders service.
//! Each holds its own transaction and keeps the intent's order in step through the
//! orders client. Decoded values in, store rows out: no proto types here (grpc.rs
//! decodes and encodes).

use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, SubsecRound as _, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::PgPool;

use super::domain::{
    self, CANCELED, Confirmation, IntentStatus, NewIntent, PaymentMethod, ProviderEvent, RefundStep,
};
use super::error::PaymentsError;
use super::orders::Orders;
use super::provider::{Outcome as Confirmed, PaymentProvider};
use super::store::{self, IntentRow};
use super::webhook;
use crate::clock::Clock;
use crate::idempotency::{self, Key, Outcome};
use crate::validation::Violations;

/// The payments service. Cheap to clone.
#[derive(Clone)]
pub struct PaymentsService {
    db: PgPool,
    clock: Clock,
    provider: Arc<dyn PaymentProvider>,
    webhook_secret: Option<SecretString>,
    orders: Orders,
}

impl PaymentsService {
    /// A service storing intents in `db`, paying through `provider`, keeping
    /// the orders the intents pay in step through `orders`.
    pub fn new(
        db: PgPool,
        clock: Clock,
        provider: Arc<dyn PaymentProvider>,
        webhook_secret: Option<SecretString>,
        orders: Orders,
    ) -> Self {
        PaymentsService {
            db,
            clock,
            provider,
            webhook_secret,
            orders,
        }
    }

    /// Creates an intent of `user_id` at the provider and stores it. An intent for an
    /// order must be for the caller's unpaid order and of its total. Under `key`, the
    /// response `encode` makes of the new intent is stored with it, and a duplicate
    /// gets that response back instead.
    pub(super) async fn create_intent(
        &self,
        user_id: i64,
        new: NewIntent,
        key: Option<&Key>,
        encode: impl FnOnce(&IntentRow) -> Vec<u8> + Send,
    ) -> Result<Outcome<IntentRow>, PaymentsError> {
        idempotency::run(&self.db, key, self.now(), async || {
            if let Some(order_id) = &new.order_id {
                let order = self
                    .orders
                    .order(order_id.clone(), user_id)
                    .await
                    .map_err(PaymentsError::Upstream)?;
                domain::check_payable(&order, new.amount, &new.currency)?;
            }
            let id = format!("pi_{}", uuid::Uuid::new_v4().simple());
            let provider_ref = self
                .provider
                .create_intent(&id, new.amount.cents(), new.currency.as_str())
                .await?;
            let row = IntentRow {
                client_secret: format!("{id}_secret_{}", uuid::Uuid::new_v4().simple()),
                id,
                user_id,
                amount_cents: new.amount.cents(),
                currency: new.currency.as_str().to_owned(),
                status: IntentStatus::RequiresPaymentMethod,
                provider_ref,
                failure_reason: None,
                order_id: new.order_id.clone(),
                refunded_at: None,
                created_at: self.now(),
            };
            let metadata =
                serde_json::to_value(&new.metadata).context("encoding an intent's metadata")?;
            let mut tx = self.db.begin().await?;
            store::insert_intent(&mut tx, &row, &metadata, self.provider.name()).await?;
            if let Some(key) = key {
                idempotency::finish(&mut tx, key, &encode(&row)).await?;
            }
            tx.commit().await?;
            Ok(row)
        })
        .await
    }

    /// Confirms intent `id` of `user_id` with `method` through the provider; answers the
    /// intent with its new status. The row stays locked for the provider's call, so it
    /// is never charged twice; a decline is stored, then answered 422 PAYMENT_FAILED.
    pub(super) async fn confirm(
        &self,
        user_id: i64,
        id: &str,
        method: &PaymentMethod,
    ) -> Result<IntentRow, PaymentsError> {
        let mut tx = self.db.begin().await?;
        let row = store::lock_intent(&mut tx, id)
            .await?
            .filter(|row| row.user_id == user_id)
            .ok_or(PaymentsError::IntentNotFound)?;
        match domain::confirmation(row.status, row.failure_reason.as_deref()) {
            Confirmation::AlreadySucceeded => return Ok(row),
            Confirmation::Canceled => {
                return Err(PaymentsError::PaymentFailed {
                    id: row.id,
                    reason: "the payment intent was canceled with its order".to_owned(),
                });
            }
            Confirmation::AskProvider => {}
        }
        let outcome = self
            .provider
            .confirm(&row.provider_ref, method.as_str())
            .await?;
        let now = self.now();
        match outcome {
            Confirmed::Succeeded { card_last4 } => {
                store::set_succeeded(&mut tx, &row.id, card_last4.as_deref(), now).await?;
                tx.commit().await?;
                tracing::info!(intent = %row.id, user_id, "payment succeeded");
                // After the commit: no intent lock is held while orders works.
                let paid = IntentRow {
                    status: IntentStatus::Succeeded,
                    ..row
                };
                self.notify_order(&paid).await;
                Ok(paid)
            }
            Confirmed::Processing => {
                store::set_status(&mut tx, &row.id, IntentStatus::Processing, None, now).await?;
                tx.commit().await?;
                Ok(IntentRow {
                    status: IntentStatus::Processing,
                    ..row
                })
            }
            Confirmed::Failed(reason) => {
                store::set_status(&mut tx, &row.id, IntentStatus::Failed, Some(&reason), now)
                    .await?;
                tx.commit().await?;
                tracing::info!(intent = %row.id, user_id, "payment failed");
                Err(PaymentsError::PaymentFailed { id: row.id, reason })
            }
        }
    }

    /// The status of intent `id` of `user_id`, refreshed from the provider while in flight.
    pub(super) async fn status(
        &self,
        user_id: i64,
        id: &str,
    ) -> Result<IntentStatus, PaymentsError> {
        let row = store::find_intent(&self.db, id)
            .await?
            .filter(|row| row.user_id == user_id)
            .ok_or(PaymentsError::IntentNotFound)?;
        self.refresh(row).await
    }

    /// The status of an intent still in flight as the provider now says, stored (and
    /// told to its order) when it ended; the stored status otherwise, and when the
    /// provider cannot be asked (the webhook will tell).
    async fn refresh(&self, row: IntentRow) -> Result<IntentStatus, PaymentsError> {
        if !row.status.in_flight() {
            return Ok(row.status);
        }
        let at_provider = match self.provider.retrieve(&row.provider_ref).await {
            Ok(Some(status)) => status,
            Ok(None) => return Ok(row.status),
            Err(err) => {
                tracing::warn!(intent = %row.id, error = %err, "refreshing an intent's status");
                return Ok(row.status);
            }
        };
        let Some(fresh) = domain::refreshed(row.status, at_provider) else {
            return Ok(row.status);
        };
        let mut tx = self.db.begin().await?;
        let locked = store::lock_intent(&mut tx, &row.id)
            .await?
            .ok_or(PaymentsError::IntentNotFound)?;
        if locked.status != row.status {
            // Changed meanwhile (a confirmation or a webhook): that one wins.
            return Ok(locked.status);
        }
        let now = self.now();
        if fresh == IntentStatus::Succeeded {
            store::set_succeeded(&mut tx, &row.id, None, now).await?;
        } else {
            store::set_status(
                &mut tx,
                &row.id,
                IntentStatus::Failed,
                Some("Declined at the provider."),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        if fresh == IntentStatus::Succeeded {
            self.notify_order(&IntentRow {
                status: fresh,
                ..row
            })
            .await;
        }
        Ok(fresh)
    }

    /// Applies the provider's webhook event in `body`, signed by `signature` (the
    /// Stripe-Signature header): verified against STRIPE_WEBHOOK_SECRET at the clock's
    /// time, and each event id takes effect once.
    pub(super) async fn handle_webhook(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), PaymentsError> {
        let Some(secret) = &self.webhook_secret else {
            return Err(PaymentsError::InvalidSignature(
                "no webhook secret is configured".to_owned(),
            ));
        };
        let signature = signature.ok_or_else(|| {
            PaymentsError::InvalidSignature("missing Stripe-Signature".to_owned())
        })?;
        webhook::verify(
            secret.expose_secret().as_bytes(),
            signature,
            body,
            self.clock.now().timestamp(),
        )
        .map_err(|e| PaymentsError::InvalidSignature(e.to_string()))?;
        let event: serde_json::Value = serde_json::from_slice(body)
            .map_err(|_| Violations::one("body", "is not a JSON event"))?;
        let event_id = event["id"]
            .as_str()
            .ok_or_else(|| Violations::one("id", "is required"))?;
        let event_type = event["type"].as_str().unwrap_or_default();
        let object = &event["data"]["object"];
        // charge.* events carry the charge; its intent is `payment_intent`.
        let reference = object["payment_intent"]
            .as_str()
            .or_else(|| object["id"].as_str())
            .unwrap_or_default();
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let changed = if store::record_event(&mut tx, event_id, event_type, now).await? {
            self.apply_event(&mut tx, event_type, reference, now)
                .await?
        } else {
            None
        };
        tx.commit().await?;
        tracing::info!(
            event_id,
            event_type,
            applied = changed.is_some(),
            "webhook event"
        );
        // After the commit (no intent lock held while orders works). If the
        // order cannot be told, the event is forgotten and the answer is 503:
        // the provider delivers it again, and applying it again converges.
        if let Some(intent) = changed
            && let Err(status) = self.orders.record(&intent).await
        {
            if let Err(err) = store::forget_event(&self.db, event_id).await {
                tracing::error!(event_id, error = %err, "forgetting an event whose order was not told");
            }
            return Err(PaymentsError::Unavailable(anyhow::anyhow!(
                "telling the order about intent {}: {}",
                intent.id,
                status.message()
            )));
        }
        Ok(())
    }

    /// Applies a new event of `event_type` to the intent with `provider_ref`; the intent
    /// afterwards when the type is one that changes intents and names a known intent
    /// (changed or not: its order is told either way).
    async fn apply_event(
        &self,
        tx: &mut sqlx::PgConnection,
        event_type: &str,
        provider_ref: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IntentRow>, PaymentsError> {
        let Some(event) = ProviderEvent::parse(event_type) else {
            return Ok(None);
        };
        let Some(intent) = store::lock_intent_by_ref(tx, provider_ref).await? else {
            return Ok(None);
        };
        match domain::event_effect(intent.status, event) {
            Some(effect) => Ok(Some(
                store::apply_effect(tx, &intent.id, effect, now).await?,
            )),
            None => Ok(Some(intent)),
        }
    }

    /// Internal (orders): intent `id`, when it is `user_id`'s.
    pub(super) async fn intent_for_order(
        &self,
        id: &str,
        user_id: i64,
    ) -> Result<IntentRow, PaymentsError> {
        store::find_intent(&self.db, id)
            .await?
            .filter(|row| row.user_id == user_id)
            .ok_or(PaymentsError::IntentNotFound)
    }

    /// Internal (orders): refunds intent `id` in full, once; an intent never paid is
    /// cancelled instead. Answers whether it is refunded.
    pub(super) async fn refund(&self, id: &str) -> Result<bool, PaymentsError> {
        let mut tx = self.db.begin().await?;
        let row = store::lock_intent(&mut tx, id)
            .await?
            .ok_or(PaymentsError::IntentNotFound)?;
        match domain::refund_step(row.status, row.refunded_at.is_some()) {
            RefundStep::AlreadyRefunded => Ok(true),
            RefundStep::NothingToRefund => Ok(false),
            RefundStep::Cancel => {
                // Best effort at the provider (an intent there that we refuse to
                // confirm can take no money through us).
                if let Err(err) = self.provider.cancel(&row.provider_ref).await {
                    tracing::warn!(intent = %row.id, error = %err, "cancelling an intent at the provider");
                }
                store::set_status(
                    &mut tx,
                    &row.id,
                    IntentStatus::Failed,
                    Some(CANCELED),
                    self.now(),
                )
                .await?;
                tx.commit().await?;
                Ok(false)
            }
            RefundStep::Refund => {
                // The row stays locked during the call: one refund per intent (and
                // the provider's Idempotency-Key covers a retry after a lost answer).
                self.provider.refund(&row.provider_ref).await?;
                store::set_refunded(&mut tx, &row.id, self.now()).await?;
                tx.commit().await?;
                tracing::info!(intent = %row.id, "payment refunded");
                Ok(true)
            }
        }
    }

    /// Tells the orders service an intent's state after a confirmation. A
    /// failure is logged: the money moved, and the provider's webhook event
    /// tells the order again.
    async fn notify_order(&self, intent: &IntentRow) {
        if let Err(status) = self.orders.record(intent).await {
            tracing::warn!(intent = %intent.id, error = %status.message(), "telling the order about its payment");
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(6)
    }
}

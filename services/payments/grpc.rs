//! `PaymentsService` over gRPC (contract section 8): intents, confirmation
//! through the provider, status, and the provider's webhook.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound as _, Utc};
use prost::Message as _;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use tonic::{Code, Request, Response, Status};

use super::orders::Orders;
use super::provider::{Outcome, PaymentProvider, ProviderError};
use super::store::{self, IntentRow};
use super::webhook;
use crate::authn;
use crate::clock::Clock;
use crate::errors::{self, ErrorReason};
use crate::idempotency;
use crate::proto::ecom::payments::v1 as pb;

/// The idempotency scope of POST /payments/intents.
const CREATE_SCOPE: &str = "payments.create_intent";
/// The largest amount of one intent, in cents (Stripe's limit).
const MAX_AMOUNT_CENTS: i64 = 99_999_999;

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

    /// The status of an intent still in flight (`processing`, or waiting for a
    /// confirmation step at the provider) as the provider now says, stored (and
    /// told to its order) when it ended; the stored status otherwise, and when
    /// the provider cannot be asked (the webhook will tell).
    async fn refresh(&self, row: IntentRow) -> Result<String, Status> {
        if !matches!(row.status.as_str(), "processing" | "requires_confirmation") {
            return Ok(row.status);
        }
        let fresh = match self.provider.retrieve(&row.provider_ref).await {
            Ok(Some(fresh)) => fresh,
            Ok(None) => return Ok(row.status),
            Err(err) => {
                tracing::warn!(intent = %row.id, error = %err, "refreshing an intent's status");
                return Ok(row.status);
            }
        };
        if fresh != "succeeded" && fresh != "failed" {
            return Ok(row.status);
        }
        let mut tx = self.db.begin().await.map_err(errors::database)?;
        let Some(locked) = store::lock_intent(&mut tx, &row.id)
            .await
            .map_err(errors::database)?
        else {
            return Err(not_found());
        };
        if locked.status != row.status {
            // Changed meanwhile (a confirmation or a webhook): that one wins.
            return Ok(locked.status);
        }
        let now = self.now();
        if fresh == "succeeded" {
            store::set_succeeded(&mut tx, &row.id, None, now).await
        } else {
            store::set_status(
                &mut tx,
                &row.id,
                "failed",
                Some("Declined at the provider."),
                now,
            )
            .await
        }
        .map_err(errors::database)?;
        tx.commit().await.map_err(errors::database)?;
        if fresh == "succeeded" {
            self.notify_order(&IntentRow {
                status: fresh.clone(),
                ..row
            })
            .await;
        }
        Ok(fresh)
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

fn status_of(s: &str) -> pb::PaymentStatus {
    match s {
        "requires_payment_method" => pb::PaymentStatus::RequiresPaymentMethod,
        "requires_confirmation" => pb::PaymentStatus::RequiresConfirmation,
        "processing" => pb::PaymentStatus::Processing,
        "succeeded" => pb::PaymentStatus::Succeeded,
        "failed" => pb::PaymentStatus::Failed,
        _ => pb::PaymentStatus::Unspecified,
    }
}

fn to_wire(row: &IntentRow) -> pb::PaymentIntent {
    pb::PaymentIntent {
        id: row.id.clone(),
        client_secret: row.client_secret.clone(),
        amount: row.amount_cents,
        currency: row.currency.clone(),
        status: status_of(&row.status) as i32,
        created_at: Some(crate::clock::timestamp(row.created_at)),
    }
}

fn not_found() -> Status {
    errors::status(
        Code::NotFound,
        ErrorReason::PaymentIntentNotFound,
        "Payment intent not found",
    )
}

fn internal(err: impl Into<anyhow::Error>) -> Status {
    errors::unexpected(err.into())
}

/// 422 PAYMENT_FAILED for intent `id`, with the reason (the provider's
/// decline message is meant for the customer).
fn payment_failed(id: &str, reason: &str) -> Status {
    let metadata = std::collections::HashMap::from([
        (crate::errors::HTTP_STATUS.to_owned(), "422".to_owned()),
        ("paymentIntentId".to_owned(), id.to_owned()),
    ]);
    errors::with_metadata(
        Code::FailedPrecondition,
        ErrorReason::PaymentFailed,
        format!("Payment failed: {reason}"),
        metadata,
    )
}

/// A provider failure: unreachable is 503; a refusal is 502
/// PAYMENT_PROVIDER_ERROR. The cause is logged, never answered (it may name
/// the provider's internals; the secret key is never part of it).
fn provider_error(err: ProviderError) -> Status {
    match err {
        ProviderError::Unavailable(e) => errors::unavailable(e),
        ProviderError::Refused(e) => {
            tracing::error!(error = ?e, "payment provider refused a request");
            errors::status_with_http(
                Code::Unavailable,
                ErrorReason::PaymentProviderError,
                502,
                "The payment provider could not process the request",
            )
        }
    }
}

#[tonic::async_trait]
impl pb::payments_service_server::PaymentsService for PaymentsService {
    /// Contract 8: creates an intent (amount in cents); honours Idempotency-Key.
    #[tracing::instrument(skip_all)]
    async fn create_payment_intent(
        &self,
        request: Request<pb::CreatePaymentIntentRequest>,
    ) -> Result<Response<pb::CreatePaymentIntentResponse>, Status> {
        let user_id = authn::require_user(&request)?.user_id;
        let r = request.get_ref();
        if r.amount < 50 || r.amount > MAX_AMOUNT_CENTS {
            return Err(errors::invalid_field(
                "amount",
                "must be between 50 and 99999999 cents",
            ));
        }
        let currency = if r.currency.trim().is_empty() {
            "usd".to_owned()
        } else {
            r.currency.trim().to_lowercase()
        };
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_lowercase()) {
            return Err(errors::invalid_field(
                "currency",
                "must be a three-letter ISO code",
            ));
        }
        if r.metadata.len() > 50
            || r.metadata
                .iter()
                .any(|(k, v)| k.len() > 40 || v.len() > 500)
        {
            return Err(errors::invalid_field(
                "metadata",
                "at most 50 keys of 40 characters, values of 500",
            ));
        }
        let body = r.encode_to_vec();
        let key = idempotency::key_of(&request, user_id, CREATE_SCOPE, &body).map_err(idem)?;
        let result = idempotency::run(
            &self.db,
            key.as_ref(),
            self.now(),
            async || -> Result<_, Shim> {
                Ok(async {
                    // An intent for an order: the caller's order, unpaid, of its total,
                    // so a client cannot choose its price.
                    let order_id = r.metadata.get("orderId").map(|id| id.trim().to_owned());
                    if let Some(order_id) = &order_id {
                        let order = self.orders.order(order_id.clone(), user_id).await?;
                        if order.status() == crate::proto::ecom::orders::v1::OrderStatus::Cancelled
                        {
                            return Err(errors::status_with_http(
                                Code::FailedPrecondition,
                                ErrorReason::OrderNotPayable,
                                422,
                                "The order is cancelled",
                            ));
                        }
                        if order.payment_status()
                            != crate::proto::ecom::orders::v1::PaymentState::Unpaid
                        {
                            return Err(errors::status_with_http(
                                Code::FailedPrecondition,
                                ErrorReason::OrderAlreadyPaid,
                                409,
                                "The order is already paid",
                            ));
                        }
                        // Orders are priced in US dollars.
                        if order.total_cents != r.amount || currency != "usd" {
                            return Err(errors::with_metadata(
                                Code::FailedPrecondition,
                                ErrorReason::AmountMismatch,
                                "The amount (in usd) does not match the order total",
                                std::collections::HashMap::from([
                                    (crate::errors::HTTP_STATUS.to_owned(), "422".to_owned()),
                                    ("orderTotal".to_owned(), order.total_cents.to_string()),
                                    ("amount".to_owned(), r.amount.to_string()),
                                ]),
                            ));
                        }
                    }
                    let id = format!("pi_{}", uuid::Uuid::new_v4().simple());
                    let provider_ref = self
                        .provider
                        .create_intent(&id, r.amount, &currency)
                        .await
                        .map_err(provider_error)?;
                    let row = IntentRow {
                        client_secret: format!("{id}_secret_{}", uuid::Uuid::new_v4().simple()),
                        id,
                        user_id,
                        amount_cents: r.amount,
                        currency: currency.clone(),
                        status: "requires_payment_method".to_owned(),
                        provider_ref,
                        failure_reason: None,
                        order_id,
                        refunded_at: None,
                        created_at: self.now(),
                    };
                    let response = pb::CreatePaymentIntentResponse {
                        payment_intent: Some(to_wire(&row)),
                    };
                    let metadata = serde_json::to_value(&r.metadata).map_err(internal)?;
                    let mut tx = self.db.begin().await.map_err(errors::database)?;
                    store::insert_intent(&mut tx, &row, &metadata, self.provider.name())
                        .await
                        .map_err(errors::database)?;
                    if let Some(key) = &key {
                        idempotency::finish(&mut tx, key, &response.encode_to_vec())
                            .await
                            .map_err(idem)?;
                    }
                    tx.commit().await.map_err(errors::database)?;
                    Ok::<_, Status>(response)
                }
                .await?)
            },
        )
        .await
        .map_err(|Shim(status)| status)?;
        match result {
            idempotency::Outcome::Ran(response) => Ok(Response::new(response)),
            idempotency::Outcome::Replayed(bytes) => idempotency::replayed(&bytes).map_err(idem),
        }
    }

    /// Contract 8: confirms an intent with a payment method through the provider.
    /// The intent row is locked for the call, so it is never charged twice.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn confirm_payment_intent(
        &self,
        request: Request<pb::ConfirmPaymentIntentRequest>,
    ) -> Result<Response<pb::ConfirmPaymentIntentResponse>, Status> {
        let user_id = authn::require_user(&request)?.user_id;
        let r = request.into_inner();
        let payment_method = r.payment_method_id.trim().to_owned();
        if payment_method.is_empty() || payment_method.len() > 100 {
            return Err(errors::invalid_field("paymentMethodId", "is required"));
        }
        let mut tx = self.db.begin().await.map_err(errors::database)?;
        let row = store::lock_intent(&mut tx, &r.id)
            .await
            .map_err(errors::database)?;
        let Some(row) = row.filter(|row| row.user_id == user_id) else {
            return Err(not_found());
        };
        let answer = |status: &str| pb::ConfirmPaymentIntentResponse {
            id: row.id.clone(),
            status: status_of(status) as i32,
            amount: row.amount_cents,
            currency: row.currency.clone(),
        };
        if row.status == "succeeded" {
            // Already paid: confirming again charges nothing.
            return Ok(Response::new(answer("succeeded")));
        }
        if row.failure_reason.as_deref() == Some(store::CANCELED) {
            // Its order was cancelled: it takes no payment any more.
            return Err(payment_failed(
                &row.id,
                "the payment intent was canceled with its order",
            ));
        }
        let outcome = self
            .provider
            .confirm(&row.provider_ref, &payment_method)
            .await
            .map_err(provider_error)?;
        let now = self.now();
        match outcome {
            Outcome::Succeeded { card_last4 } => {
                store::set_succeeded(&mut tx, &row.id, card_last4.as_deref(), now)
                    .await
                    .map_err(errors::database)?;
                tx.commit().await.map_err(errors::database)?;
                tracing::info!(intent = %row.id, user_id, "payment succeeded");
                // After the commit: no intent lock is held while orders works.
                let paid = IntentRow {
                    status: "succeeded".to_owned(),
                    ..row.clone()
                };
                self.notify_order(&paid).await;
                Ok(Response::new(answer("succeeded")))
            }
            Outcome::Processing => {
                store::set_status(&mut tx, &row.id, "processing", None, now)
                    .await
                    .map_err(errors::database)?;
                tx.commit().await.map_err(errors::database)?;
                Ok(Response::new(answer("processing")))
            }
            Outcome::Failed(reason) => {
                store::set_status(&mut tx, &row.id, "failed", Some(&reason), now)
                    .await
                    .map_err(errors::database)?;
                tx.commit().await.map_err(errors::database)?;
                tracing::info!(intent = %row.id, user_id, "payment failed");
                Err(payment_failed(&row.id, &reason))
            }
        }
    }

    /// Contract 8: an intent's status; only its owner sees it.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn get_payment_intent_status(
        &self,
        request: Request<pb::GetPaymentIntentStatusRequest>,
    ) -> Result<Response<pb::GetPaymentIntentStatusResponse>, Status> {
        let user_id = authn::require_user(&request)?.user_id;
        let row = store::find_intent(&self.db, &request.get_ref().id)
            .await
            .map_err(errors::database)?
            .filter(|row| row.user_id == user_id)
            .ok_or_else(not_found)?;
        let status = self.refresh(row).await?;
        Ok(Response::new(pb::GetPaymentIntentStatusResponse {
            status: status_of(&status) as i32,
        }))
    }

    /// The provider's webhook: Stripe-Signature verified (HMAC-SHA256 over
    /// `t.body`, constant-time, 300 s tolerance; else 400 INVALID_SIGNATURE);
    /// each event id takes effect once.
    #[tracing::instrument(skip_all)]
    async fn handle_webhook(
        &self,
        request: Request<pb::HandleWebhookRequest>,
    ) -> Result<Response<pb::HandleWebhookResponse>, Status> {
        let refused = |why: &str| {
            errors::status(
                Code::InvalidArgument,
                ErrorReason::InvalidSignature,
                format!("Invalid webhook signature: {why}"),
            )
        };
        let Some(secret) = &self.webhook_secret else {
            return Err(refused("no webhook secret is configured"));
        };
        let header = request
            .metadata()
            .get("stripe-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| refused("missing Stripe-Signature"))?;
        let body = request
            .into_inner()
            .body
            .map(|b| b.data)
            .unwrap_or_default();
        webhook::verify(
            secret.expose_secret().as_bytes(),
            &header,
            &body,
            self.clock.now().timestamp(),
        )
        .map_err(|e| refused(&e.to_string()))?;
        let event: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| errors::invalid_field("body", "is not a JSON event"))?;
        let event_id = event["id"]
            .as_str()
            .ok_or_else(|| errors::invalid_field("id", "is required"))?;
        let event_type = event["type"].as_str().unwrap_or_default();
        let object = &event["data"]["object"];
        // charge.* events carry the charge; its intent is `payment_intent`.
        let reference = object["payment_intent"]
            .as_str()
            .or_else(|| object["id"].as_str())
            .unwrap_or_default();
        let mut tx = self.db.begin().await.map_err(errors::database)?;
        let changed = store::apply_event(&mut tx, event_id, event_type, reference, self.now())
            .await
            .map_err(errors::database)?;
        tx.commit().await.map_err(errors::database)?;
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
            return Err(errors::unavailable(anyhow::anyhow!(
                "telling the order about intent {}: {}",
                intent.id,
                status.message()
            )));
        }
        Ok(Response::new(pb::HandleWebhookResponse { received: true }))
    }

    /// Internal (orders): an intent as the order it pays sees it.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn get_intent_for_order(
        &self,
        request: Request<pb::GetIntentForOrderRequest>,
    ) -> Result<Response<pb::GetIntentForOrderResponse>, Status> {
        authn::require_admin(&request)?;
        let r = request.get_ref();
        let row = store::find_intent(&self.db, &r.id)
            .await
            .map_err(errors::database)?
            .filter(|row| row.user_id == r.user_id)
            .ok_or_else(not_found)?;
        Ok(Response::new(pb::GetIntentForOrderResponse {
            amount_cents: row.amount_cents,
            currency: row.currency,
            status: status_of(&row.status) as i32,
            refunded: row.refunded_at.is_some(),
        }))
    }

    /// Internal (orders): refunds a paid intent in full, once.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn refund_payment_intent(
        &self,
        request: Request<pb::RefundPaymentIntentRequest>,
    ) -> Result<Response<pb::RefundPaymentIntentResponse>, Status> {
        authn::require_admin(&request)?;
        let mut tx = self.db.begin().await.map_err(errors::database)?;
        let row = store::lock_intent(&mut tx, &request.get_ref().id)
            .await
            .map_err(errors::database)?
            .ok_or_else(not_found)?;
        if row.refunded_at.is_some() {
            return Ok(Response::new(pb::RefundPaymentIntentResponse {
                refunded: true,
            }));
        }
        if row.status != "succeeded" {
            // Never paid: cancelled, so it cannot pay a cancelled order later.
            // Best effort at the provider (an intent there that we refuse to
            // confirm can take no money through us).
            if matches!(
                row.status.as_str(),
                "requires_payment_method" | "requires_confirmation"
            ) {
                if let Err(err) = self.provider.cancel(&row.provider_ref).await {
                    tracing::warn!(intent = %row.id, error = %err, "cancelling an intent at the provider");
                }
                store::set_status(
                    &mut tx,
                    &row.id,
                    "failed",
                    Some(store::CANCELED),
                    self.now(),
                )
                .await
                .map_err(errors::database)?;
                tx.commit().await.map_err(errors::database)?;
            }
            return Ok(Response::new(pb::RefundPaymentIntentResponse {
                refunded: false,
            }));
        }
        // The row stays locked during the call: one refund per intent (and
        // the provider's Idempotency-Key covers a retry after a lost answer).
        self.provider
            .refund(&row.provider_ref)
            .await
            .map_err(provider_error)?;
        store::set_refunded(&mut tx, &row.id, self.now())
            .await
            .map_err(errors::database)?;
        tx.commit().await.map_err(errors::database)?;
        tracing::info!(intent = %row.id, "payment refunded");
        Ok(Response::new(pb::RefundPaymentIntentResponse {
            refunded: true,
        }))
    }
}

// Interim: the idempotency kernel's errors as statuses, until payments has its error enum.
struct Shim(Status);
impl From<Status> for Shim {
    fn from(s: Status) -> Self {
        Shim(s)
    }
}
impl From<idempotency::Error> for Shim {
    fn from(e: idempotency::Error) -> Self {
        Shim(idem(e))
    }
}
fn idem(e: idempotency::Error) -> Status {
    crate::orders::OrderError::from(e).into()
}

//! `PaymentsService` over gRPC: decode the request into domain values, authorize
//! (a signed-in user for the public RPCs, an internal token for the orders service's),
//! call the use case ([`super::app`]), encode ([`super::wire`]).

use prost::Message as _;
use tonic::{Request, Response, Status};

use super::app::PaymentsService;
use super::domain::{NewIntent, PaymentMethod};
use super::error::PaymentsError;
use super::wire;
use crate::authn;
use crate::idempotency::{self, Outcome};
use crate::proto::ecom::payments::v1 as pb;
use crate::validation::Violations;

/// The idempotency scope of POST /payments/intents.
const CREATE_SCOPE: &str = "payments.create_intent";

#[tonic::async_trait]
impl pb::payments_service_server::PaymentsService for PaymentsService {
    /// Creates an intent (amount in cents, currency usd by default); honours
    /// Idempotency-Key. metadata.orderId ties it to the caller's unpaid order, whose
    /// total it must be.
    #[tracing::instrument(skip_all)]
    async fn create_payment_intent(
        &self,
        request: Request<pb::CreatePaymentIntentRequest>,
    ) -> Result<Response<pb::CreatePaymentIntentResponse>, Status> {
        let user_id = authn::require_user(&request)?.user_id;
        let r = request.get_ref();
        let new = NewIntent::parse(r.amount, &r.currency, r.metadata.clone())
            .map_err(PaymentsError::from)?;
        let body = r.encode_to_vec();
        let key = idempotency::key_of(&request, user_id, CREATE_SCOPE, &body)
            .map_err(PaymentsError::from)?;
        let encode = |row: &_| wire::created(row).encode_to_vec();
        match self
            .create_intent(user_id, new, key.as_ref(), encode)
            .await?
        {
            Outcome::Ran(row) => Ok(Response::new(wire::created(&row))),
            Outcome::Replayed(bytes) => {
                Ok(idempotency::replayed(&bytes).map_err(PaymentsError::from)?)
            }
        }
    }

    /// Confirms an intent with a payment method through the provider.
    /// The intent row is locked for the call, so it is never charged twice.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn confirm_payment_intent(
        &self,
        request: Request<pb::ConfirmPaymentIntentRequest>,
    ) -> Result<Response<pb::ConfirmPaymentIntentResponse>, Status> {
        let user_id = authn::require_user(&request)?.user_id;
        let r = request.into_inner();
        let method = PaymentMethod::parse(&r.payment_method_id)
            .map_err(|m| PaymentsError::from(Violations::one("paymentMethodId", m)))?;
        let intent = self.confirm(user_id, &r.id, &method).await?;
        Ok(Response::new(wire::confirmed(&intent)))
    }

    /// An intent's status; only its owner sees it.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn get_payment_intent_status(
        &self,
        request: Request<pb::GetPaymentIntentStatusRequest>,
    ) -> Result<Response<pb::GetPaymentIntentStatusResponse>, Status> {
        let user_id = authn::require_user(&request)?.user_id;
        let status = self.status(user_id, &request.get_ref().id).await?;
        Ok(Response::new(pb::GetPaymentIntentStatusResponse {
            status: status.to_wire() as i32,
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
        let signature = request
            .metadata()
            .get("stripe-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = request
            .into_inner()
            .body
            .map(|b| b.data)
            .unwrap_or_default();
        self.handle_webhook(signature.as_deref(), &body).await?;
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
        let intent = self.intent_for_order(&r.id, r.user_id).await?;
        Ok(Response::new(wire::for_order(intent)))
    }

    /// Internal (orders): refunds a paid intent in full, once.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn refund_payment_intent(
        &self,
        request: Request<pb::RefundPaymentIntentRequest>,
    ) -> Result<Response<pb::RefundPaymentIntentResponse>, Status> {
        authn::require_admin(&request)?;
        let refunded = self.refund(&request.get_ref().id).await?;
        Ok(Response::new(pb::RefundPaymentIntentResponse { refunded }))
    }
}

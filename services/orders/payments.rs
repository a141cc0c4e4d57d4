//! Orders and payments agree: the link between an order and the payment
//! intent that pays it, and the orders service's client of the payments
//! service.
//!
//! Where the link lives, and why: on the order (`orders.payment_intent_id`,
//! UNIQUE, and `orders.payment_status`), owned by the orders service. The
//! order is what a customer, an admin and the state machine look at, so its
//! payment state is changed in the orders database, in the same transaction
//! as its status and history. Each side asks the other over internal RPCs
//! (no REST route, internal service token of role admin, in-process or over a
//! channel in mesh mode through [`crate::internal`]):
//!
//! - orders → payments `GetIntentForOrder`: an order created with a
//!   `paymentIntentId` checks that the intent is the caller's and of the
//!   order's total; `RefundPaymentIntent`: cancelling a paid order refunds it
//!   through the provider before the order is cancelled (while the order's
//!   row is locked, so it is refunded once; the refund is idempotent, so a
//!   retried cancel is safe).
//! - payments → orders `GetOrderForPayment`: an intent created with
//!   `metadata.orderId` must be for the caller's order and of its total;
//!   `RecordPayment`: after an intent's state changed (confirmation, webhook),
//!   payments tells orders the intent's whole current state (succeeded,
//!   refunded), not an event, so replays and out-of-order deliveries
//!   converge: unpaid → paid (a pending order moves to processing with a
//!   "Payment received" history entry by the system), anything → refunded,
//!   and refunded is never turned back into paid.
//!
//! Payments never holds an intent's row lock while calling orders, and orders
//! calls payments with an order's row locked only to refund, so no two
//! transactions wait on each other across the services. Lost messages heal:
//! a confirmation whose `RecordPayment` failed is repeated by the provider's
//! webhook (whose event is applied again when orders could not be told), and
//! an order created while its intent was being confirmed checks the intent
//! again after committing.

use futures::future::BoxFuture;

use super::domain::PayingIntent;
use super::error::OrderError;
use crate::internal::{ServiceToken, Transport};
use crate::proto::ecom::payments::v1 as pb;
use crate::proto::ecom::payments::v1::payments_service_client::PaymentsServiceClient;
use crate::tokens::Tokens;

/// A payments client for the orders service. Cheap to clone.
#[derive(Clone)]
pub struct Payments {
    client: PaymentsServiceClient<Transport>,
    token: ServiceToken,
}

impl Payments {
    /// A client over `transport` (in-process or to PAYMENTS_URL).
    pub fn new(transport: Transport, tokens: Tokens) -> Payments {
        Payments {
            client: PaymentsServiceClient::new(transport),
            token: ServiceToken::new(tokens, super::catalog::SERVICE_EMAIL),
        }
    }

    /// The intent `id` of `user_id`; another user's is 404 PAYMENT_INTENT_NOT_FOUND.
    // Boxed `Send + 'static` futures over owned values, as in [`super::Catalog`].
    pub fn intent(
        &self,
        id: String,
        user_id: i64,
    ) -> BoxFuture<'static, Result<PayingIntent, OrderError>> {
        let mut client = self.client.clone();
        let request = self
            .token
            .request(pb::GetIntentForOrderRequest { id, user_id });
        Box::pin(async move {
            let found = client
                .get_intent_for_order(request)
                .await
                .map_err(OrderError::Upstream)?
                .into_inner();
            Ok(PayingIntent {
                succeeded: found.status() == pb::PaymentStatus::Succeeded,
                amount_cents: found.amount_cents,
                currency: found.currency,
                refunded: found.refunded,
            })
        })
    }

    /// Refunds the intent `id` if it was paid; true when it is refunded.
    pub fn refund(&self, id: String) -> BoxFuture<'static, Result<bool, OrderError>> {
        let mut client = self.client.clone();
        let request = self.token.request(pb::RefundPaymentIntentRequest { id });
        Box::pin(async move {
            Ok(client
                .refund_payment_intent(request)
                .await
                .map_err(OrderError::Upstream)?
                .into_inner()
                .refunded)
        })
    }
}

//! The payments service's client of the orders service: checks the order an
//! intent is created for, and tells orders an intent's state after it changed.
//! Services meet only through generated gRPC clients: this module is the one place
//! payments names the orders API. Why the link lives on the order: the orders
//! service's `payments` module.

use futures::future::BoxFuture;
use tonic::Status;

use super::domain::{IntentStatus, OrderToPay};
use super::store::IntentRow;
use crate::internal::{ServiceToken, Transport};
use crate::proto::ecom::orders::v1 as pb;
use crate::proto::ecom::orders::v1::orders_service_client::OrdersServiceClient;
use crate::tokens::Tokens;

/// The email claim of the payments service's internal token.
const SERVICE_EMAIL: &str = "payments@service.internal";

/// An orders client for the payments service. Cheap to clone.
#[derive(Clone)]
pub struct Orders {
    client: OrdersServiceClient<Transport>,
    token: ServiceToken,
}

impl Orders {
    /// A client over `transport` (in-process or to ORDERS_URL).
    pub fn new(transport: Transport, tokens: Tokens) -> Orders {
        Orders {
            client: OrdersServiceClient::new(transport),
            token: ServiceToken::new(tokens, SERVICE_EMAIL),
        }
    }

    /// The order `order_id` of `user_id`; another user's is 404 ORDER_NOT_FOUND.
    // Boxed `Send + 'static` futures over owned values, as in the orders'
    // catalog client (a rustc higher-ranked lifetime limitation).
    pub fn order(
        &self,
        order_id: String,
        user_id: i64,
    ) -> BoxFuture<'static, Result<OrderToPay, Status>> {
        let mut client = self.client.clone();
        let request = self
            .token
            .request(pb::GetOrderForPaymentRequest { order_id, user_id });
        Box::pin(async move {
            let order = client.get_order_for_payment(request).await?.into_inner();
            Ok(OrderToPay {
                total_cents: order.total_cents,
                cancelled: order.status() == pb::OrderStatus::Cancelled,
                unpaid: order.payment_status() == pb::PaymentState::Unpaid,
            })
        })
    }

    /// Tells orders the current state of `intent`.
    pub fn record(
        &self,
        intent: &IntentRow,
    ) -> BoxFuture<'static, Result<pb::RecordPaymentResponse, Status>> {
        let mut client = self.client.clone();
        let request = self.token.request(pb::RecordPaymentRequest {
            payment_intent_id: intent.id.clone(),
            order_id: intent.order_id.clone(),
            user_id: intent.user_id,
            amount_cents: intent.amount_cents,
            succeeded: intent.status == IntentStatus::Succeeded,
            refunded: intent.refunded_at.is_some(),
        });
        Box::pin(async move { Ok(client.record_payment(request).await?.into_inner()) })
    }
}

//! Domain values and store rows to the wire types of `ecom.payments.v1`: the only
//! place payments encodes its own API (the orders client encodes the orders API).

use super::domain::IntentStatus;
use super::store::IntentRow;
use crate::proto::ecom::payments::v1 as pb;

impl IntentStatus {
    /// The proto enum value of the status.
    pub fn to_wire(self) -> pb::PaymentStatus {
        match self {
            IntentStatus::RequiresPaymentMethod => pb::PaymentStatus::RequiresPaymentMethod,
            IntentStatus::RequiresConfirmation => pb::PaymentStatus::RequiresConfirmation,
            IntentStatus::Processing => pb::PaymentStatus::Processing,
            IntentStatus::Succeeded => pb::PaymentStatus::Succeeded,
            IntentStatus::Failed => pb::PaymentStatus::Failed,
        }
    }
}

/// An intent as its owner sees it (with the client secret).
pub fn intent(row: &IntentRow) -> pb::PaymentIntent {
    pb::PaymentIntent {
        id: row.id.clone(),
        client_secret: row.client_secret.clone(),
        amount: row.amount_cents,
        currency: row.currency.clone(),
        status: row.status.to_wire() as i32,
        created_at: Some(crate::clock::timestamp(row.created_at)),
    }
}

/// The answer to CreatePaymentIntent (also what an Idempotency-Key stores).
pub fn created(row: &IntentRow) -> pb::CreatePaymentIntentResponse {
    pb::CreatePaymentIntentResponse {
        payment_intent: Some(intent(row)),
    }
}

/// The answer to ConfirmPaymentIntent.
pub fn confirmed(row: &IntentRow) -> pb::ConfirmPaymentIntentResponse {
    pb::ConfirmPaymentIntentResponse {
        id: row.id.clone(),
        status: row.status.to_wire() as i32,
        amount: row.amount_cents,
        currency: row.currency.clone(),
    }
}

/// The answer to GetIntentForOrder.
pub fn for_order(row: IntentRow) -> pb::GetIntentForOrderResponse {
    pb::GetIntentForOrderResponse {
        amount_cents: row.amount_cents,
        status: row.status.to_wire() as i32,
        currency: row.currency,
        refunded: row.refunded_at.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_its_own_wire_value() {
        let wire: std::collections::HashSet<_> =
            IntentStatus::ALL.into_iter().map(|s| s.to_wire()).collect();
        assert_eq!(wire.len(), IntentStatus::ALL.len());
        assert!(!wire.contains(&pb::PaymentStatus::Unspecified));
        assert_eq!(IntentStatus::Failed.to_wire(), pb::PaymentStatus::Failed);
    }
}

//! Payment providers behind one trait: the sandbox (default; no network) and,
//! later, Stripe's Payment Intents API. The service never sees card data: the
//! client hands a payment method id (`pm_card_visa`) straight to the provider.

use async_trait::async_trait;

/// What a provider answers to a confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The payment went through.
    Succeeded,
    /// The card was declined, with the provider's reason.
    Failed(String),
}

/// A payment provider.
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    /// The provider's name, stored with each intent.
    fn name(&self) -> &'static str;
    /// Creates an intent at the provider; returns the provider's reference.
    async fn create_intent(
        &self,
        id: &str,
        amount_cents: i64,
        currency: &str,
    ) -> anyhow::Result<String>;
    /// Confirms an intent with a payment method.
    async fn confirm(&self, reference: &str, payment_method: &str) -> anyhow::Result<Outcome>;
    /// Refunds a succeeded intent in full.
    async fn refund(&self, reference: &str) -> anyhow::Result<()>;
}

/// The sandbox: Stripe's test payment methods, decided locally.
/// `pm_card_visa` (and any other `pm_card_*`) succeeds; `pm_card_chargeDeclined`
/// and `pm_card_visa_chargeDeclined` fail.
#[derive(Debug, Default, Clone)]
pub struct Sandbox;

#[async_trait]
impl PaymentProvider for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn create_intent(
        &self,
        id: &str,
        _amount_cents: i64,
        _currency: &str,
    ) -> anyhow::Result<String> {
        Ok(id.to_owned())
    }

    async fn confirm(&self, _reference: &str, payment_method: &str) -> anyhow::Result<Outcome> {
        Ok(match payment_method {
            "pm_card_chargeDeclined" | "pm_card_visa_chargeDeclined" => {
                Outcome::Failed("Your card was declined.".to_owned())
            }
            pm if pm.starts_with("pm_card_") => Outcome::Succeeded,
            _ => Outcome::Failed("Unknown payment method.".to_owned()),
        })
    }

    async fn refund(&self, _reference: &str) -> anyhow::Result<()> {
        Ok(())
    }
}

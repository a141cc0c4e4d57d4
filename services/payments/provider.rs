//! Payment providers behind one trait: the sandbox (default; no network) and
//! Stripe's Payment Intents API ([`Stripe`]). The service never sees card data:
//! the client hands a payment method id (`pm_card_visa`) straight to the
//! provider, and only the provider's ids and the card's last four digits (when
//! the provider gives them) come back.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use super::domain::IntentStatus;

/// What a provider answers to a confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The payment went through; the card's last four digits when known.
    Succeeded { card_last4: Option<String> },
    /// The provider is still working on it (e.g. a bank transfer); a webhook
    /// event will tell the end.
    Processing,
    /// The card was declined, with the provider's reason.
    Failed(String),
}

/// Why a provider call did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or did not answer in time (503).
    #[error("payment provider unreachable: {0:#}")]
    Unavailable(anyhow::Error),
    /// The provider refused the request (bad key, unknown id, invalid
    /// parameters, its own failure): 502, the cause is logged, never shown.
    #[error("payment provider refused the request: {0:#}")]
    Refused(anyhow::Error),
}

/// A payment provider.
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    /// The provider's name, stored with each intent.
    fn name(&self) -> &'static str;
    /// Creates an intent at the provider; returns the provider's reference.
    /// `id` is ours, and makes a retried creation idempotent.
    async fn create_intent(
        &self,
        id: &str,
        amount_cents: i64,
        currency: &str,
    ) -> Result<String, ProviderError>;
    /// Confirms an intent with a payment method.
    async fn confirm(
        &self,
        reference: &str,
        payment_method: &str,
    ) -> Result<Outcome, ProviderError>;
    /// The provider's current status of an intent, in our vocabulary; None when the
    /// provider keeps no state of its own (the sandbox).
    async fn retrieve(&self, reference: &str) -> Result<Option<IntentStatus>, ProviderError>;
    /// Cancels an intent that was not paid (its order was cancelled).
    async fn cancel(&self, reference: &str) -> Result<(), ProviderError>;
    /// Refunds a succeeded intent in full. Idempotent per intent.
    async fn refund(&self, reference: &str) -> Result<(), ProviderError>;
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
    ) -> Result<String, ProviderError> {
        Ok(id.to_owned())
    }

    async fn confirm(
        &self,
        _reference: &str,
        payment_method: &str,
    ) -> Result<Outcome, ProviderError> {
        Ok(match payment_method {
            "pm_card_chargeDeclined" | "pm_card_visa_chargeDeclined" => {
                Outcome::Failed("Your card was declined.".to_owned())
            }
            "pm_card_visa" => Outcome::Succeeded {
                card_last4: Some("4242".to_owned()),
            },
            pm if pm.starts_with("pm_card_") => Outcome::Succeeded { card_last4: None },
            _ => Outcome::Failed("Unknown payment method.".to_owned()),
        })
    }

    async fn retrieve(&self, _reference: &str) -> Result<Option<IntentStatus>, ProviderError> {
        // The sandbox keeps no state: the stored status is the truth.
        Ok(None)
    }

    async fn cancel(&self, _reference: &str) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn refund(&self, _reference: &str) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// Stripe's Payment Intents API over HTTPS (or plain HTTP to a loopback fake
/// in tests): form-encoded requests, Bearer authentication with the secret
/// key, an `Idempotency-Key` on every call that creates something, and a
/// timeout on each call. The key is never logged.
#[derive(Clone)]
pub struct Stripe {
    client: crate::https::HttpsClient,
    base: String,
    secret_key: SecretString,
    /// How long one call may take (STRIPE_TIMEOUT) before it is unavailable.
    timeout: Duration,
}

impl Stripe {
    /// A client of the API at `base` (e.g. `https://api.stripe.com`), each
    /// call limited to `timeout`.
    pub fn new(base: &str, secret_key: SecretString, timeout: Duration) -> anyhow::Result<Stripe> {
        let base = base.trim_end_matches('/').to_owned();
        anyhow::ensure!(
            base.starts_with("https://") || base.starts_with("http://"),
            "STRIPE_API_BASE must be an http(s) URL"
        );
        Ok(Stripe {
            client: crate::https::client(crate::https::Targets::Any)?,
            base,
            secret_key,
            timeout,
        })
    }

    /// One call: `form` as the body of a POST (None: a GET). Answers the JSON
    /// of a 2xx, or the error by Stripe's error object.
    async fn call(
        &self,
        method: http::Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        idempotency_key: Option<&str>,
    ) -> Result<Result<Value, StripeError>, ProviderError> {
        let body = match form {
            Some(form) => {
                serde_urlencoded::to_string(form).map_err(|e| ProviderError::Refused(e.into()))?
            }
            None => String::new(),
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.secret_key.expose_secret()),
            )
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ProviderError::Refused(e.into()))?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ProviderError::Unavailable(anyhow::anyhow!("Stripe timed out")))?
            .map_err(|e| ProviderError::Unavailable(e.context("calling Stripe")))?;
        let json: Value = serde_json::from_slice(&body).map_err(|_| {
            ProviderError::Refused(anyhow::anyhow!(
                "Stripe answered {status} with a body that is not JSON"
            ))
        })?;
        if status.is_success() {
            return Ok(Ok(json));
        }
        let error = &json["error"];
        let error = StripeError {
            status: status.as_u16(),
            kind: error["type"].as_str().unwrap_or_default().to_owned(),
            code: error["code"].as_str().unwrap_or_default().to_owned(),
            message: error["message"].as_str().unwrap_or_default().to_owned(),
        };
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(ProviderError::Unavailable(anyhow::anyhow!("{error}")));
        }
        Ok(Err(error))
    }

    /// A call whose every error is a refusal (no decline possible).
    async fn call_ok(
        &self,
        method: http::Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, ProviderError> {
        self.call(method, path, form, idempotency_key)
            .await?
            .map_err(|e| ProviderError::Refused(anyhow::anyhow!("{e}")))
    }
}

/// Stripe's error object (https://docs.stripe.com/api/errors), without secrets.
#[derive(Debug)]
struct StripeError {
    status: u16,
    kind: String,
    code: String,
    message: String,
}

impl std::fmt::Display for StripeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Stripe {} {} ({}): {}",
            self.status, self.kind, self.code, self.message
        )
    }
}

/// Stripe's intent status in our vocabulary (the five statuses of the contract).
fn status_from_stripe(status: &str) -> IntentStatus {
    match status {
        "succeeded" => IntentStatus::Succeeded,
        "processing" | "requires_capture" => IntentStatus::Processing,
        "requires_confirmation" | "requires_action" => IntentStatus::RequiresConfirmation,
        "canceled" => IntentStatus::Failed,
        _ => IntentStatus::RequiresPaymentMethod,
    }
}

/// The last four digits of the card of an intent whose `latest_charge` is expanded.
fn card_last4(intent: &Value) -> Option<String> {
    let last4 = intent["latest_charge"]["payment_method_details"]["card"]["last4"].as_str()?;
    (last4.len() == 4 && last4.bytes().all(|b| b.is_ascii_digit())).then(|| last4.to_owned())
}

/// An id that may go into a URL path as it is (Stripe ids are `[A-Za-z0-9_]`).
fn path_id(reference: &str) -> Result<&str, ProviderError> {
    if !reference.is_empty()
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(reference)
    } else {
        Err(ProviderError::Refused(anyhow::anyhow!(
            "not a Stripe id: {reference:?}"
        )))
    }
}

#[async_trait]
impl PaymentProvider for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    async fn create_intent(
        &self,
        id: &str,
        amount_cents: i64,
        currency: &str,
    ) -> Result<String, ProviderError> {
        let amount = amount_cents.to_string();
        let form = [
            ("amount", amount.as_str()),
            ("currency", currency),
            // Cards are confirmed on the server: no redirecting methods.
            ("automatic_payment_methods[enabled]", "true"),
            ("automatic_payment_methods[allow_redirects]", "never"),
            ("metadata[ecom_intent_id]", id),
        ];
        let key = format!("ecom-create-{id}");
        let intent = self
            .call_ok(
                http::Method::POST,
                "/v1/payment_intents",
                Some(&form),
                Some(&key),
            )
            .await?;
        intent["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ProviderError::Refused(anyhow::anyhow!("Stripe intent without an id")))
    }

    async fn confirm(
        &self,
        reference: &str,
        payment_method: &str,
    ) -> Result<Outcome, ProviderError> {
        let form = [
            ("payment_method", payment_method),
            ("expand[]", "latest_charge"),
        ];
        let path = format!("/v1/payment_intents/{}/confirm", path_id(reference)?);
        match self
            .call(http::Method::POST, &path, Some(&form), None)
            .await?
        {
            Ok(intent) => Ok(
                match status_from_stripe(intent["status"].as_str().unwrap_or_default()) {
                    IntentStatus::Succeeded => Outcome::Succeeded {
                        card_last4: card_last4(&intent),
                    },
                    IntentStatus::Processing => Outcome::Processing,
                    other => Outcome::Failed(format!("The payment was not completed ({other}).")),
                },
            ),
            // A decline: Stripe's message is meant for the customer.
            Err(error) if error.kind == "card_error" => {
                Ok(Outcome::Failed(if error.message.is_empty() {
                    "Your card was declined.".to_owned()
                } else {
                    error.message
                }))
            }
            Err(error) => Err(ProviderError::Refused(anyhow::anyhow!("{error}"))),
        }
    }

    async fn retrieve(&self, reference: &str) -> Result<Option<IntentStatus>, ProviderError> {
        let path = format!("/v1/payment_intents/{}", path_id(reference)?);
        let intent = self.call_ok(http::Method::GET, &path, None, None).await?;
        Ok(Some(status_from_stripe(
            intent["status"].as_str().unwrap_or_default(),
        )))
    }

    async fn cancel(&self, reference: &str) -> Result<(), ProviderError> {
        let path = format!("/v1/payment_intents/{}/cancel", path_id(reference)?);
        self.call_ok(http::Method::POST, &path, Some(&[]), None)
            .await?;
        Ok(())
    }

    async fn refund(&self, reference: &str) -> Result<(), ProviderError> {
        let key = format!("ecom-refund-{reference}");
        self.call_ok(
            http::Method::POST,
            "/v1/refunds",
            Some(&[("payment_intent", reference)]),
            Some(&key),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_statuses_map_to_the_five_of_the_contract() {
        assert_eq!(status_from_stripe("succeeded"), IntentStatus::Succeeded);
        assert_eq!(status_from_stripe("processing"), IntentStatus::Processing);
        assert_eq!(
            status_from_stripe("requires_capture"),
            IntentStatus::Processing
        );
        assert_eq!(
            status_from_stripe("requires_action"),
            IntentStatus::RequiresConfirmation
        );
        assert_eq!(
            status_from_stripe("requires_confirmation"),
            IntentStatus::RequiresConfirmation
        );
        assert_eq!(status_from_stripe("canceled"), IntentStatus::Failed);
        assert_eq!(
            status_from_stripe("requires_payment_method"),
            IntentStatus::RequiresPaymentMethod
        );
    }

    #[test]
    fn only_four_digits_are_kept_of_a_card() {
        let intent = serde_json::json!({"latest_charge": {"payment_method_details": {"card": {"last4": "4242"}}}});
        assert_eq!(card_last4(&intent).as_deref(), Some("4242"));
        let odd = serde_json::json!({"latest_charge": {"payment_method_details": {"card": {"last4": "4242424242424242"}}}});
        assert_eq!(card_last4(&odd), None);
        assert!(path_id("pi_123/../x").is_err());
    }
}

//! The payments domain: an intent's status and what may change it, the amount and
//! currency of a new intent, and when an order may be paid. Pure values and rules:
//! no SQL, no proto, no provider calls (their conversions live in `wire.rs` and
//! `store.rs`; app.rs applies these rules inside its transactions).

use std::collections::HashMap;

use crate::validation::Violations;

/// The status of a payment intent (the five of the contract; the DB's check constraint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntentStatus {
    /// Created; waits for a payment method.
    RequiresPaymentMethod,
    /// Has a payment method; waits for a confirmation step at the provider.
    RequiresConfirmation,
    /// The provider is working on it; a webhook event (or a refresh) tells the end.
    Processing,
    /// Paid.
    Succeeded,
    /// Declined, or cancelled with its order ([`CANCELED`] as the failure reason).
    Failed,
}

impl IntentStatus {
    /// Every status, in the order of the contract.
    pub const ALL: [IntentStatus; 5] = [
        IntentStatus::RequiresPaymentMethod,
        IntentStatus::RequiresConfirmation,
        IntentStatus::Processing,
        IntentStatus::Succeeded,
        IntentStatus::Failed,
    ];

    /// The stored (and Stripe's) name.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentStatus::RequiresPaymentMethod => "requires_payment_method",
            IntentStatus::RequiresConfirmation => "requires_confirmation",
            IntentStatus::Processing => "processing",
            IntentStatus::Succeeded => "succeeded",
            IntentStatus::Failed => "failed",
        }
    }

    /// The status a stored name means; None for a name no code writes.
    pub fn parse(s: &str) -> Option<IntentStatus> {
        IntentStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
    }

    /// Whether the provider may know more than the stored status: the intent is in
    /// flight (`processing`, or waiting for a confirmation step at the provider).
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            IntentStatus::Processing | IntentStatus::RequiresConfirmation
        )
    }

    /// Whether the intent can take no further step at the provider.
    pub fn is_final(self) -> bool {
        matches!(self, IntentStatus::Succeeded | IntentStatus::Failed)
    }
}

impl std::fmt::Display for IntentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The failure reason of an intent cancelled because its order was: it can
/// no longer be confirmed.
pub const CANCELED: &str = "canceled";

/// The smallest amount of one intent, in cents.
const MIN_AMOUNT_CENTS: i64 = 50;
/// The largest amount of one intent, in cents (Stripe's limit).
const MAX_AMOUNT_CENTS: i64 = 99_999_999;

/// An amount an intent may be created for, in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(i64);

impl Amount {
    /// 50 to 99,999,999 cents.
    pub fn parse(cents: i64) -> Result<Amount, String> {
        if (MIN_AMOUNT_CENTS..=MAX_AMOUNT_CENTS).contains(&cents) {
            Ok(Amount(cents))
        } else {
            Err("must be between 50 and 99999999 cents".to_owned())
        }
    }

    /// The amount in cents.
    pub fn cents(self) -> i64 {
        self.0
    }
}

/// A three-letter ISO currency code, lowercase (`usd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency(String);

impl Currency {
    /// The currency orders are priced in.
    pub fn usd() -> Currency {
        Currency("usd".to_owned())
    }

    /// Three ASCII letters in any case, trimmed; blank is usd.
    pub fn parse(s: &str) -> Result<Currency, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Currency::usd());
        }
        let code = s.to_lowercase();
        if code.len() == 3 && code.chars().all(|c| c.is_ascii_lowercase()) {
            Ok(Currency(code))
        } else {
            Err("must be a three-letter ISO code".to_owned())
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// At most 50 keys of 40 bytes, values of 500.
fn check_metadata(metadata: &HashMap<String, String>) -> Result<(), String> {
    if metadata.len() > 50 || metadata.iter().any(|(k, v)| k.len() > 40 || v.len() > 500) {
        Err("at most 50 keys of 40 characters, values of 500".to_owned())
    } else {
        Ok(())
    }
}

/// A request for a new intent, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIntent {
    pub amount: Amount,
    pub currency: Currency,
    /// The client's metadata, stored as it came.
    pub metadata: HashMap<String, String>,
    /// The order it pays (metadata.orderId, trimmed).
    pub order_id: Option<String>,
}

impl NewIntent {
    /// Checks amount, currency and metadata in that order; the first bad field is the
    /// one violation reported.
    pub fn parse(
        amount: i64,
        currency: &str,
        metadata: HashMap<String, String>,
    ) -> Result<NewIntent, Violations> {
        let amount = Amount::parse(amount).map_err(|m| Violations::one("amount", m))?;
        let currency = Currency::parse(currency).map_err(|m| Violations::one("currency", m))?;
        check_metadata(&metadata).map_err(|m| Violations::one("metadata", m))?;
        let order_id = metadata.get("orderId").map(|id| id.trim().to_owned());
        Ok(NewIntent {
            amount,
            currency,
            metadata,
            order_id,
        })
    }
}

/// The payment method a client confirms with (`pm_card_visa`), handed to the provider
/// as it is: payments never sees card data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentMethod(String);

impl PaymentMethod {
    /// 1 to 100 bytes, trimmed.
    pub fn parse(s: &str) -> Result<PaymentMethod, String> {
        let s = s.trim();
        if s.is_empty() || s.len() > 100 {
            Err("is required".to_owned())
        } else {
            Ok(PaymentMethod(s.to_owned()))
        }
    }

    /// The provider's id of the method.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What payments knows of the order an intent is created for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderToPay {
    pub total_cents: i64,
    pub cancelled: bool,
    pub unpaid: bool,
}

/// Why an order cannot be paid by a new intent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotPayable {
    #[error("the order is cancelled")]
    Cancelled,
    #[error("the order is already paid")]
    AlreadyPaid,
    #[error("the amount {amount} {currency} does not match the order total {order_total}")]
    AmountMismatch {
        order_total: i64,
        amount: i64,
        currency: String,
    },
}

/// Whether an intent of `amount` in `currency` may pay `order`: the order takes
/// payments, is unpaid, and the intent is of its total in US dollars (orders are priced
/// in them), so a client cannot choose its price.
pub fn check_payable(
    order: &OrderToPay,
    amount: Amount,
    currency: &Currency,
) -> Result<(), NotPayable> {
    if order.cancelled {
        return Err(NotPayable::Cancelled);
    }
    if !order.unpaid {
        return Err(NotPayable::AlreadyPaid);
    }
    if order.total_cents != amount.cents() || *currency != Currency::usd() {
        return Err(NotPayable::AmountMismatch {
            order_total: order.total_cents,
            amount: amount.cents(),
            currency: currency.as_str().to_owned(),
        });
    }
    Ok(())
}

/// What confirming an intent does, from its stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// Already paid: answer `succeeded`, charge nothing.
    AlreadySucceeded,
    /// Cancelled with its order: it takes no payment any more (422 PAYMENT_FAILED).
    Canceled,
    /// Ask the provider (a failed or processing intent may be confirmed again).
    AskProvider,
}

/// What confirming an intent in `status` (failed for `failure_reason`) does.
pub fn confirmation(status: IntentStatus, failure_reason: Option<&str>) -> Confirmation {
    if status == IntentStatus::Succeeded {
        Confirmation::AlreadySucceeded
    } else if failure_reason == Some(CANCELED) {
        Confirmation::Canceled
    } else {
        Confirmation::AskProvider
    }
}

/// The stored status after a refresh from the provider, when it changes: only an
/// intent in flight is refreshed, and only an end (succeeded, failed) is stored; the
/// webhook tells anything else.
pub fn refreshed(stored: IntentStatus, provider: IntentStatus) -> Option<IntentStatus> {
    (stored.in_flight() && provider.is_final() && provider != stored).then_some(provider)
}

/// A provider event that changes an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderEvent {
    /// `payment_intent.succeeded`.
    Succeeded,
    /// `payment_intent.payment_failed`.
    PaymentFailed,
    /// `charge.refunded`.
    Refunded,
}

impl ProviderEvent {
    /// The event a provider's event type means; None for types that change nothing.
    pub fn parse(event_type: &str) -> Option<ProviderEvent> {
        match event_type {
            "payment_intent.succeeded" => Some(ProviderEvent::Succeeded),
            "payment_intent.payment_failed" => Some(ProviderEvent::PaymentFailed),
            "charge.refunded" => Some(ProviderEvent::Refunded),
            _ => None,
        }
    }
}

/// What an event writes to an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventEffect {
    /// The status afterwards.
    pub status: IntentStatus,
    /// Whether the failure reason is cleared (the intent is paid).
    pub clears_failure: bool,
    /// Whether the refund is recorded (kept when it already was).
    pub refunds: bool,
}

/// What `event` does to an intent in `status`; None when it changes nothing. Any order
/// of delivery converges: a late `payment_failed` never undoes `succeeded`, and a
/// refund implies the payment, so a refund delivered before the success still leaves
/// the intent succeeded and refunded.
pub fn event_effect(status: IntentStatus, event: ProviderEvent) -> Option<EventEffect> {
    match event {
        ProviderEvent::Succeeded => Some(EventEffect {
            status: IntentStatus::Succeeded,
            clears_failure: true,
            refunds: false,
        }),
        ProviderEvent::PaymentFailed if status == IntentStatus::Succeeded => None,
        ProviderEvent::PaymentFailed => Some(EventEffect {
            status: IntentStatus::Failed,
            clears_failure: false,
            refunds: false,
        }),
        ProviderEvent::Refunded => Some(EventEffect {
            status: IntentStatus::Succeeded,
            clears_failure: true,
            refunds: true,
        }),
    }
}

/// What a refund request (orders cancelling the order) does to an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStep {
    /// Refunded before: answer refunded, do nothing.
    AlreadyRefunded,
    /// Paid: refund it at the provider, then record it.
    Refund,
    /// Never paid and still confirmable: cancel it (best effort at the provider; stored
    /// as failed with [`CANCELED`]) so it cannot pay a cancelled order later.
    Cancel,
    /// Never paid and not confirmable through a new payment method (processing,
    /// failed): nothing to refund.
    NothingToRefund,
}

/// What refunding an intent in `status` (`refunded` before, or not) does.
pub fn refund_step(status: IntentStatus, refunded: bool) -> RefundStep {
    if refunded {
        return RefundStep::AlreadyRefunded;
    }
    match status {
        IntentStatus::Succeeded => RefundStep::Refund,
        IntentStatus::RequiresPaymentMethod | IntentStatus::RequiresConfirmation => {
            RefundStep::Cancel
        }
        IntentStatus::Processing | IntentStatus::Failed => RefundStep::NothingToRefund,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use IntentStatus::*;

    #[test]
    fn every_status_round_trips_and_unknown_names_do_not_parse() {
        for status in IntentStatus::ALL {
            assert_eq!(IntentStatus::parse(status.as_str()), Some(status));
        }
        for bad in [
            "",
            "canceled",
            "Succeeded",
            "unspecified",
            "requires_action",
        ] {
            assert_eq!(IntentStatus::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn amounts_are_between_50_cents_and_stripes_limit() {
        assert!(Amount::parse(49).is_err());
        assert_eq!(Amount::parse(50).unwrap().cents(), 50);
        assert_eq!(Amount::parse(99_999_999).unwrap().cents(), 99_999_999);
        assert!(Amount::parse(100_000_000).is_err());
        assert!(Amount::parse(-100).is_err());
    }

    #[test]
    fn currencies_are_three_letters_and_default_to_usd() {
        assert_eq!(Currency::parse("").unwrap(), Currency::usd());
        assert_eq!(Currency::parse("  ").unwrap(), Currency::usd());
        assert_eq!(Currency::parse(" EUR ").unwrap().as_str(), "eur");
        for bad in ["us", "usdd", "u$d", "12a", "éur"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_new_intent_reports_its_first_bad_field() {
        let first = |amount, currency: &str, metadata: HashMap<String, String>| {
            NewIntent::parse(amount, currency, metadata)
                .unwrap_err()
                .into_inner()[0]
                .0
                .clone()
        };
        assert_eq!(first(1, "x", HashMap::new()), "amount");
        assert_eq!(first(100, "x", HashMap::new()), "currency");
        let long = HashMap::from([("k".repeat(41), "v".to_owned())]);
        assert_eq!(first(100, "usd", long), "metadata");
        let many: HashMap<_, _> = (0..51).map(|i| (i.to_string(), String::new())).collect();
        assert_eq!(first(100, "usd", many), "metadata");
        let ok = NewIntent::parse(
            100,
            "",
            HashMap::from([("orderId".to_owned(), " 7 ".to_owned())]),
        )
        .unwrap();
        assert_eq!(ok.order_id.as_deref(), Some("7"));
        assert_eq!(ok.currency, Currency::usd());
    }

    #[test]
    fn a_payment_method_is_required_and_bounded() {
        assert_eq!(
            PaymentMethod::parse(" pm_card_visa ").unwrap().as_str(),
            "pm_card_visa"
        );
        assert!(PaymentMethod::parse("  ").is_err());
        assert!(PaymentMethod::parse(&"p".repeat(101)).is_err());
        assert!(PaymentMethod::parse(&"p".repeat(100)).is_ok());
    }

    #[test]
    fn only_an_unpaid_live_order_of_the_same_usd_total_is_payable() {
        let order = OrderToPay {
            total_cents: 1000,
            cancelled: false,
            unpaid: true,
        };
        let usd = Currency::usd();
        let amount = Amount::parse(1000).unwrap();
        assert_eq!(check_payable(&order, amount, &usd), Ok(()));
        let cancelled = OrderToPay {
            cancelled: true,
            unpaid: false,
            ..order
        };
        assert_eq!(
            check_payable(&cancelled, amount, &usd),
            Err(NotPayable::Cancelled)
        );
        let paid = OrderToPay {
            unpaid: false,
            ..order
        };
        assert_eq!(
            check_payable(&paid, amount, &usd),
            Err(NotPayable::AlreadyPaid)
        );
        assert!(matches!(
            check_payable(&order, Amount::parse(999).unwrap(), &usd),
            Err(NotPayable::AmountMismatch {
                order_total: 1000,
                amount: 999,
                ..
            })
        ));
        let eur = Currency::parse("eur").unwrap();
        assert!(matches!(
            check_payable(&order, amount, &eur),
            Err(NotPayable::AmountMismatch { .. })
        ));
    }

    #[test]
    fn confirming_charges_nothing_when_paid_and_refuses_a_cancelled_intent() {
        assert_eq!(
            confirmation(Succeeded, None),
            Confirmation::AlreadySucceeded
        );
        // Paid wins over a stale reason.
        assert_eq!(
            confirmation(Succeeded, Some(CANCELED)),
            Confirmation::AlreadySucceeded
        );
        assert_eq!(confirmation(Failed, Some(CANCELED)), Confirmation::Canceled);
        for status in [RequiresPaymentMethod, RequiresConfirmation, Processing] {
            assert_eq!(confirmation(status, None), Confirmation::AskProvider);
        }
        // A declined intent may be confirmed again with another card.
        assert_eq!(
            confirmation(Failed, Some("Your card was declined.")),
            Confirmation::AskProvider
        );
    }

    #[test]
    fn a_refresh_stores_only_an_end_of_an_intent_in_flight() {
        for stored in IntentStatus::ALL {
            for provider in IntentStatus::ALL {
                let expected = match (stored, provider) {
                    (Processing | RequiresConfirmation, Succeeded | Failed) => Some(provider),
                    _ => None,
                };
                assert_eq!(
                    refreshed(stored, provider),
                    expected,
                    "{stored} -> {provider}"
                );
            }
        }
    }

    #[test]
    fn events_converge_in_any_order() {
        assert_eq!(
            ProviderEvent::parse("payment_intent.succeeded"),
            Some(ProviderEvent::Succeeded)
        );
        assert_eq!(
            ProviderEvent::parse("payment_intent.payment_failed"),
            Some(ProviderEvent::PaymentFailed)
        );
        assert_eq!(
            ProviderEvent::parse("charge.refunded"),
            Some(ProviderEvent::Refunded)
        );
        assert_eq!(ProviderEvent::parse("payment_intent.created"), None);
        let paid = EventEffect {
            status: Succeeded,
            clears_failure: true,
            refunds: false,
        };
        let refunded = EventEffect {
            refunds: true,
            ..paid
        };
        let failed = EventEffect {
            status: Failed,
            clears_failure: false,
            refunds: false,
        };
        for status in IntentStatus::ALL {
            assert_eq!(
                event_effect(status, ProviderEvent::Succeeded),
                Some(paid),
                "{status}"
            );
            assert_eq!(
                event_effect(status, ProviderEvent::Refunded),
                Some(refunded),
                "{status}"
            );
            let expected = (status != Succeeded).then_some(failed);
            assert_eq!(
                event_effect(status, ProviderEvent::PaymentFailed),
                expected,
                "{status}"
            );
        }
    }

    #[test]
    fn a_refund_refunds_the_paid_cancels_the_confirmable_and_happens_once() {
        for status in IntentStatus::ALL {
            assert_eq!(refund_step(status, true), RefundStep::AlreadyRefunded);
        }
        assert_eq!(refund_step(Succeeded, false), RefundStep::Refund);
        assert_eq!(
            refund_step(RequiresPaymentMethod, false),
            RefundStep::Cancel
        );
        assert_eq!(refund_step(RequiresConfirmation, false), RefundStep::Cancel);
        assert_eq!(refund_step(Processing, false), RefundStep::NothingToRefund);
        assert_eq!(refund_step(Failed, false), RefundStep::NothingToRefund);
    }
}

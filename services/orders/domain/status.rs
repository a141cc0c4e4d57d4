//! The states of an order and the pure rules that move them: fulfilment
//! ([`OrderStatus`]), payment ([`PaymentState`]) and returns ([`ReturnStatus`]).
//! Each is stored as its lowercase name; a stored name that does not parse is a
//! [`Corrupt`] row, never read as some default state.

/// A stored state name that is none of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct Corrupt {
    pub kind: &'static str,
    pub value: String,
}

fn corrupt(kind: &'static str, value: &str) -> Corrupt {
    Corrupt {
        kind,
        value: value.to_owned(),
    }
}

/// Fulfilment status of an order (JSON `status`), moved by [`OrderStatus::can_become`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Processing,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Pending,
        OrderStatus::Processing,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
    ];

    /// The stored and JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Processing => "processing",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<OrderStatus, Corrupt> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| corrupt("order status", s))
    }

    /// The status machine: pending -> processing -> shipped -> delivered;
    /// cancelled from pending or processing only.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Pending, Processing)
                | (Processing, Shipped)
                | (Shipped, Delivered)
                | (Pending | Processing, Cancelled)
        )
    }

    /// Whether the buyer may still cancel.
    pub fn cancellable(self) -> bool {
        self.can_become(OrderStatus::Cancelled)
    }

    /// The carrier's word for the status, as the tracking page shows it.
    pub fn carrier_status(self) -> &'static str {
        match self {
            OrderStatus::Pending => "order_placed",
            OrderStatus::Processing => "processing",
            OrderStatus::Shipped => "in_transit",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

/// Whether an order is paid (`orders.payment_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentState {
    Unpaid,
    Paid,
    Refunded,
}

/// What the payments service says of the intent paying an order: its whole
/// current state, not an event, so that replays converge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntentState {
    pub succeeded: bool,
    pub refunded: bool,
}

impl PaymentState {
    pub const ALL: [PaymentState; 3] = [
        PaymentState::Unpaid,
        PaymentState::Paid,
        PaymentState::Refunded,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::Unpaid => "unpaid",
            PaymentState::Paid => "paid",
            PaymentState::Refunded => "refunded",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<PaymentState, Corrupt> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| corrupt("payment state", s))
    }

    /// The state after the intent's `intent` state is applied, whatever the
    /// order in which the calls arrive: refunded wins, and paid only replaces
    /// unpaid (a refunded order is never paid again).
    pub fn apply(self, intent: IntentState) -> PaymentState {
        match self {
            _ if intent.refunded => PaymentState::Refunded,
            PaymentState::Unpaid if intent.succeeded => PaymentState::Paid,
            state => state,
        }
    }
}

/// The fulfilment status an order moves to when its payment state becomes
/// `payment`: a pending order that becomes paid is being prepared.
pub fn status_after_payment(status: OrderStatus, payment: PaymentState) -> Option<OrderStatus> {
    (payment == PaymentState::Paid && status == OrderStatus::Pending)
        .then_some(OrderStatus::Processing)
}

/// Where a return stands (`order_returns.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnStatus {
    Requested,
    Approved,
    Rejected,
    Completed,
}

impl ReturnStatus {
    pub const ALL: [ReturnStatus; 4] = [
        ReturnStatus::Requested,
        ReturnStatus::Approved,
        ReturnStatus::Rejected,
        ReturnStatus::Completed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReturnStatus::Requested => "requested",
            ReturnStatus::Approved => "approved",
            ReturnStatus::Rejected => "rejected",
            ReturnStatus::Completed => "completed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<ReturnStatus, Corrupt> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| corrupt("return status", s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_order_status_transition_is_allowed_or_refused_as_the_machine_says() {
        use OrderStatus::*;
        let allowed = [
            (Pending, Processing),
            (Processing, Shipped),
            (Shipped, Delivered),
            (Pending, Cancelled),
            (Processing, Cancelled),
        ];
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
            assert_eq!(from.cancellable(), matches!(from, Pending | Processing));
        }
    }

    #[test]
    fn every_payment_state_and_intent_state_converge() {
        use PaymentState::*;
        let intent = |succeeded, refunded| IntentState {
            succeeded,
            refunded,
        };
        for from in PaymentState::ALL {
            // Refunded wins, from anywhere.
            assert_eq!(from.apply(intent(true, true)), Refunded);
            assert_eq!(from.apply(intent(false, true)), Refunded);
            // Nothing happened: nothing changes.
            assert_eq!(from.apply(intent(false, false)), from);
        }
        assert_eq!(Unpaid.apply(intent(true, false)), Paid);
        assert_eq!(Paid.apply(intent(true, false)), Paid);
        // A refunded order is never paid again.
        assert_eq!(Refunded.apply(intent(true, false)), Refunded);
    }

    #[test]
    fn only_a_pending_order_that_becomes_paid_moves_on() {
        for status in OrderStatus::ALL {
            for payment in PaymentState::ALL {
                let expected = (status == OrderStatus::Pending && payment == PaymentState::Paid)
                    .then_some(OrderStatus::Processing);
                assert_eq!(status_after_payment(status, payment), expected);
            }
        }
    }

    #[test]
    fn stored_names_round_trip_and_unknown_ones_are_corrupt() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Ok(s));
        }
        for s in PaymentState::ALL {
            assert_eq!(PaymentState::parse(s.as_str()), Ok(s));
        }
        for s in ReturnStatus::ALL {
            assert_eq!(ReturnStatus::parse(s.as_str()), Ok(s));
        }
        assert_eq!(
            OrderStatus::parse("Pending").unwrap_err().to_string(),
            "unknown order status `Pending`"
        );
        assert!(PaymentState::parse("").is_err());
        assert!(ReturnStatus::parse("open").is_err());
    }
}

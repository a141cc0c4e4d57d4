//! What a stock reservation asks for and what state it is in: the checked
//! values of the internal reservation RPCs (see `catalog::reservations`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::Violations;

/// How long a reservation holds when the caller does not say (15 minutes).
const DEFAULT_TTL_SECONDS: i32 = 900;
/// The longest reservation a caller may ask for (1 hour).
const MAX_TTL_SECONDS: i32 = 3600;
/// Most lines (distinct products) in one reservation, and most ids in one pricing read.
const MAX_LINES: usize = 100;

/// The key of a reservation: the order id it holds stock for, trimmed, 1 to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey(String);

impl OrderKey {
    /// The key, or the violation on `orderKey`.
    pub fn parse(raw: &str) -> Result<OrderKey, Violations> {
        let key = raw.trim();
        if key.is_empty() || key.len() > 100 {
            return Err(Violations::one("orderKey", "must be 1 to 100 characters"));
        }
        Ok(OrderKey(key.to_owned()))
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A reservation to take: every line or none.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReservation {
    pub key: OrderKey,
    pub ttl_seconds: i32,
    /// Quantities per product, in id order (the order the product rows are locked in);
    /// lines naming the same product are added up.
    pub lines: BTreeMap<i64, i32>,
}

impl NewReservation {
    /// Checks a request: the key, then the TTL (0 is the default), then every line's
    /// quantity, then the number of products. The first bad value is the one reported.
    pub fn parse(
        order_key: &str,
        ttl_seconds: i32,
        lines: impl IntoIterator<Item = (i64, i32)>,
    ) -> Result<NewReservation, Violations> {
        let key = OrderKey::parse(order_key)?;
        let ttl_seconds = match ttl_seconds {
            0 => DEFAULT_TTL_SECONDS,
            t if (1..=MAX_TTL_SECONDS).contains(&t) => t,
            _ => return Err(Violations::one("ttlSeconds", "must be between 1 and 3600")),
        };
        let mut quantities: BTreeMap<i64, i32> = BTreeMap::new();
        for (product_id, quantity) in lines {
            if quantity < 1 {
                return Err(Violations::one("quantity", "must be at least 1"));
            }
            let q = quantities.entry(product_id).or_default();
            *q = q
                .checked_add(quantity)
                .ok_or_else(|| Violations::one("quantity", "is too large"))?;
        }
        if quantities.is_empty() || quantities.len() > MAX_LINES {
            return Err(Violations::one("lines", "must name 1 to 100 products"));
        }
        Ok(NewReservation {
            key,
            ttl_seconds,
            lines: quantities,
        })
    }
}

/// The ids of a pricing read: sorted, each once, at most 100.
pub fn pricing_ids(mut ids: Vec<i64>) -> Result<Vec<i64>, Violations> {
    ids.sort_unstable();
    ids.dedup();
    if ids.len() > MAX_LINES {
        return Err(Violations::one("ids", "at most 100 products"));
    }
    Ok(ids)
}

/// Where a reservation is in its life: reserved, then committed (the order was
/// recorded) or released (its units given back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationState {
    Reserved,
    Committed,
    Released,
}

impl ReservationState {
    /// The state a stored status names, if it names one.
    pub fn parse(status: &str) -> Option<ReservationState> {
        match status {
            "reserved" => Some(ReservationState::Reserved),
            "committed" => Some(ReservationState::Committed),
            "released" => Some(ReservationState::Released),
            _ => None,
        }
    }
}

/// A reservation as the reservation RPCs answer it. `state` is `None` when there is no
/// such reservation (or its stored status names no state), which the wire answers as
/// "unspecified".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub state: Option<ReservationState>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(result: Result<NewReservation, Violations>) -> String {
        result.expect_err("refused").into_inner().remove(0).0
    }

    #[test]
    fn a_reservation_adds_up_lines_of_one_product_in_id_order() {
        let new = NewReservation::parse(" order-1 ", 0, [(7, 2), (3, 1), (7, 1)]).unwrap();
        assert_eq!(new.key.as_str(), "order-1");
        assert_eq!(new.ttl_seconds, DEFAULT_TTL_SECONDS);
        assert_eq!(new.lines.into_iter().collect::<Vec<_>>(), [(3, 1), (7, 3)]);
    }

    #[test]
    fn the_first_bad_value_is_reported() {
        assert_eq!(field(NewReservation::parse(" ", -1, [(1, 0)])), "orderKey");
        assert_eq!(
            field(NewReservation::parse("k", 3601, [(1, 0)])),
            "ttlSeconds"
        );
        assert_eq!(field(NewReservation::parse("k", 60, [(1, 0)])), "quantity");
        assert_eq!(
            field(NewReservation::parse("k", 60, [(1, i32::MAX), (1, 1)])),
            "quantity"
        );
        assert_eq!(field(NewReservation::parse("k", 60, [])), "lines");
        let many = (0..101).map(|id| (id, 1));
        assert_eq!(field(NewReservation::parse("k", 3600, many)), "lines");
        assert_eq!(
            field(NewReservation::parse(&"k".repeat(101), 1, [(1, 1)])),
            "orderKey"
        );
    }

    #[test]
    fn pricing_ids_are_sorted_once_each_and_at_most_100() {
        assert_eq!(pricing_ids(vec![5, 1, 5]).unwrap(), [1, 5]);
        assert!(pricing_ids((0..100).chain(0..100).collect()).is_ok());
        assert!(pricing_ids((0..101).collect()).is_err());
    }

    #[test]
    fn stored_statuses_name_states() {
        assert_eq!(
            ReservationState::parse("reserved"),
            Some(ReservationState::Reserved)
        );
        assert_eq!(
            ReservationState::parse("committed"),
            Some(ReservationState::Committed)
        );
        assert_eq!(
            ReservationState::parse("released"),
            Some(ReservationState::Released)
        );
        assert_eq!(ReservationState::parse("lost"), None);
    }
}

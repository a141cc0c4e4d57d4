//! Domain events: what happened in one service, told to the others.
//!
//! A service records an event with [`record`] **in the transaction of the change it tells of**
//! (the transactional outbox, table `event_outbox`): the event exists exactly when the change
//! committed. A relay publishes the outbox to NATS JetStream (at-least-once); without
//! `NATS_URL` the consumers read the outbox in-process. Either way a [`Consumer`] sees each
//! event at least once, and the runner makes that exactly-once *in effect*: it inserts
//! `(consumer, event id)` into `event_consumptions` in the same transaction as the consumer's
//! effect, so a redelivered event is skipped.
//!
//! Payloads are typed ([`EventData`]); the stored and published JSON is
//! `{"id", "type", "occurredAt", "data"}` ([`Event`]), the shape webhooks receive too.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

mod runner;

pub use runner::{Broker, Purged, apply, purge, run};

/// An event as stored, published and delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// `type` and `data` side by side.
    #[serde(flatten)]
    pub data: EventData,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        self.data.kind()
    }
}

/// What happened, with what the consumers need to act on it without reading another
/// service's tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EventData {
    #[serde(rename = "order.placed")]
    OrderPlaced(OrderEvent),
    #[serde(rename = "order.paid")]
    OrderPaid(OrderEvent),
    /// Any change of status other than those with an event of their own (e.g. processing).
    #[serde(rename = "order.status_changed")]
    OrderStatusChanged(OrderEvent),
    /// Carries the carrier and tracking number.
    #[serde(rename = "order.shipped")]
    OrderShipped(OrderEvent),
    #[serde(rename = "order.delivered")]
    OrderDelivered(OrderEvent),
    #[serde(rename = "order.cancelled")]
    OrderCancelled(OrderEvent),
    #[serde(rename = "order.refunded")]
    OrderRefunded(OrderEvent),
    /// A product's stock fell to or below the low-stock threshold (once per crossing).
    #[serde(rename = "product.stock_low")]
    StockLow(StockLow),
    #[serde(rename = "review.created")]
    ReviewCreated(ReviewCreated),
}

/// The kind of an event, without its data: what consumers and webhook endpoints subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    OrderPlaced,
    OrderPaid,
    OrderStatusChanged,
    OrderShipped,
    OrderDelivered,
    OrderCancelled,
    OrderRefunded,
    StockLow,
    ReviewCreated,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::OrderPlaced,
        EventKind::OrderPaid,
        EventKind::OrderStatusChanged,
        EventKind::OrderShipped,
        EventKind::OrderDelivered,
        EventKind::OrderCancelled,
        EventKind::OrderRefunded,
        EventKind::StockLow,
        EventKind::ReviewCreated,
    ];

    /// The dotted name stored, published (as the NATS subject's last tokens) and subscribed to.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::OrderPlaced => "order.placed",
            EventKind::OrderPaid => "order.paid",
            EventKind::OrderStatusChanged => "order.status_changed",
            EventKind::OrderShipped => "order.shipped",
            EventKind::OrderDelivered => "order.delivered",
            EventKind::OrderCancelled => "order.cancelled",
            EventKind::OrderRefunded => "order.refunded",
            EventKind::StockLow => "product.stock_low",
            EventKind::ReviewCreated => "review.created",
        }
    }

    /// The kind named `name`, if any.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl EventData {
    pub fn kind(&self) -> EventKind {
        match self {
            EventData::OrderPlaced(_) => EventKind::OrderPlaced,
            EventData::OrderPaid(_) => EventKind::OrderPaid,
            EventData::OrderStatusChanged(_) => EventKind::OrderStatusChanged,
            EventData::OrderShipped(_) => EventKind::OrderShipped,
            EventData::OrderDelivered(_) => EventKind::OrderDelivered,
            EventData::OrderCancelled(_) => EventKind::OrderCancelled,
            EventData::OrderRefunded(_) => EventKind::OrderRefunded,
            EventData::StockLow(_) => EventKind::StockLow,
            EventData::ReviewCreated(_) => EventKind::ReviewCreated,
        }
    }
}

/// An order as its events carry it: enough for a confirmation mail, a notification or a
/// webhook receiver. Amounts in cents of the shop currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEvent {
    pub order_id: String,
    pub user_id: i64,
    /// The order's status after the change (`pending`, `shipped`, ...).
    pub status: String,
    pub items: Vec<OrderLine>,
    pub subtotal_cents: i64,
    #[serde(default)]
    pub discount_cents: i64,
    pub shipping_cents: i64,
    pub tax_cents: i64,
    pub total_cents: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<TrackingInfo>,
    /// Why it was cancelled or refunded, when a reason was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub product_id: i64,
    pub title: String,
    pub quantity: i32,
    pub price_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackingInfo {
    pub carrier: String,
    pub tracking_number: String,
    /// The carrier's tracking page for this parcel, when the carrier is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockLow {
    pub product_id: i64,
    pub title: String,
    pub stock: i32,
    pub threshold: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewCreated {
    pub review_id: i64,
    pub product_id: i64,
    pub user_id: i64,
    pub rating: i32,
}

/// Records `data` as a new event in the caller's transaction; returns its id.
pub async fn record(
    conn: &mut PgConnection,
    occurred_at: DateTime<Utc>,
    data: EventData,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    let kind = data.kind().as_str();
    let json = match serde_json::to_value(&data) {
        Ok(serde_json::Value::Object(mut map)) => map.remove("data").unwrap_or_default(),
        // Every variant serializes to {"type", "data"}; anything else is a bug here.
        other => unreachable!("event data serializes to an object, got {other:?}"),
    };
    sqlx::query!(
        r#"INSERT INTO event_outbox (id, kind, data, occurred_at) VALUES ($1, $2, $3, $4)"#,
        id,
        kind,
        json,
        occurred_at
    )
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Something that acts on events: a durable consumer, shared by every instance under its
/// [`name`](Consumer::name) (each event reaches one instance's copy, at least once).
#[async_trait::async_trait]
pub trait Consumer: Send + Sync + 'static {
    /// The durable name: unique among consumers, the same on every instance, never renamed
    /// (it keys `event_consumptions` and the JetStream durable consumer).
    fn name(&self) -> &'static str;

    /// Whether this consumer acts on events of `kind` (others are acknowledged unseen).
    fn wants(&self, kind: EventKind) -> bool;

    /// Applies the event's effect in `tx`, the transaction that also records the event as
    /// handled: an error rolls both back and the event is delivered again later.
    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> anyhow::Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_by_name() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("order.unknown"), None);
    }

    #[test]
    fn an_event_is_id_type_occurred_at_and_data() {
        let event = Event {
            id: Uuid::nil(),
            occurred_at: DateTime::from_timestamp(0, 0).unwrap(),
            data: EventData::ReviewCreated(ReviewCreated {
                review_id: 1,
                product_id: 2,
                user_id: 3,
                rating: 5,
            }),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "00000000-0000-0000-0000-000000000000",
                "occurredAt": "1970-01-01T00:00:00Z",
                "type": "review.created",
                "data": {"reviewId": 1, "productId": 2, "userId": 3, "rating": 5}
            })
        );
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), event);
        assert_eq!(event.kind(), EventKind::ReviewCreated);
    }
}

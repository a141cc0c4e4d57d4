//! The users service's event consumers: in-app notifications (`users.notifications`) and
//! webhook deliveries (`users.webhooks`). Each acts in the transaction the runner gives it,
//! the one that records the event as handled, so a redelivered event has no second effect;
//! the unique keys (event, user) and (endpoint, event) are the backstop.

use anyhow::Context as _;
use sqlx::PgConnection;

use super::notices::{self, Audience, RETRY_WINDOW};
use super::store;
use crate::events::{Consumer, Event, EventKind};

/// Order updates to the order's user; low stock to every admin.
pub struct NotificationsConsumer;

#[async_trait::async_trait]
impl Consumer for NotificationsConsumer {
    fn name(&self) -> &'static str {
        "users.notifications"
    }

    fn wants(&self, kind: EventKind) -> bool {
        notices::notifies(kind)
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> anyhow::Result<()> {
        let Some((audience, draft)) = notices::notification_for(event) else {
            return Ok(());
        };
        // The event's time, not the handling time: a notification is dated by what it tells
        // of, and one delivered late (broker down) still sorts where it belongs.
        match audience {
            Audience::User(user_id) => {
                store::insert_notification(tx, user_id, &draft, event.id, event.occurred_at)
                    .await
                    .context("inserting a notification")?;
            }
            Audience::Admins => {
                store::insert_admin_notifications(tx, &draft, event.id, event.occurred_at)
                    .await
                    .context("inserting the admins' notifications")?;
            }
        }
        Ok(())
    }
}

/// One delivery per enabled endpoint subscribed to the event's kind; the worker
/// ([`super::webhooks`]) sends them.
pub struct WebhooksConsumer;

#[async_trait::async_trait]
impl Consumer for WebhooksConsumer {
    fn name(&self) -> &'static str {
        "users.webhooks"
    }

    fn wants(&self, _kind: EventKind) -> bool {
        true
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> anyhow::Result<()> {
        // The body is fixed here, once: every attempt sends (and signs) the same bytes, and a
        // receiver deduplicates by the event id it carries.
        let body = serde_json::to_string(event).context("serializing the event")?;
        let expires_at = event.occurred_at
            + chrono::Duration::from_std(RETRY_WINDOW).expect("24 h fits a chrono duration");
        store::enqueue_deliveries(
            tx,
            event.id,
            event.kind().as_str(),
            &body,
            event.occurred_at,
            expires_at,
        )
        .await
        .context("enqueueing webhook deliveries")?;
        Ok(())
    }
}

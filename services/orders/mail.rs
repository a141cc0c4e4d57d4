//! Order mails: the confirmation when an order is placed, the shipping notice, the delivery
//! notice, and the cancellation and refund notices. They are written by a domain-event
//! consumer ([`OrderMails`], `orders.mail`) that queues them through the kernel's outbox
//! ([`crate::mail`]) in the transaction that records the event as handled: each event's mail
//! is queued exactly once, and only for a change that committed.
//!
//! The buyer is addressed by account ([`crate::mail::to_account`]): an admin ships the
//! order, so the caller's token cannot tell the buyer's address. An order of an account that
//! no longer exists (or was purged) gets no mail.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::domain::{Address, DELIVERY_DAYS, Order};
use super::invoice::money;
use crate::accounts::store::Contact;
use crate::events::{Consumer, Event, EventData, EventKind, OrderEvent};
use crate::mail::{self, Mail};

fn greeting(contact: &Contact) -> String {
    match contact.first_name.trim() {
        "" => "Hello,".to_owned(),
        name => format!("Hello {name},"),
    }
}

fn address_block(a: &Address) -> String {
    let lines = [
        format!("{} {}", a.first_name, a.last_name),
        a.address.clone(),
        format!("{}, {} {}", a.city, a.state, a.zip_code),
        a.country.clone(),
    ];
    lines
        .iter()
        .map(|l| l.trim().trim_matches(',').trim())
        .filter(|l| !l.is_empty())
        .map(|l| format!("  {l}\n"))
        .collect()
}

/// The confirmation of a just-placed order.
fn confirmation(contact: &Contact, order: &Order) -> Mail {
    let mut body = format!(
        "{}\n\nthank you for your order {}, placed on {}.\n\n",
        greeting(contact),
        order.id,
        order.created_at.format("%Y-%m-%d")
    );
    for line in &order.lines {
        body.push_str(&format!(
            "  {} x {}: {}\n",
            line.quantity,
            line.title,
            money(line.discounted_total_cents)
        ));
    }
    let t = order.totals;
    let discount = match (&order.coupon_code, t.discount_cents) {
        (_, 0) => String::new(),
        (Some(code), d) => format!("Discount ({code}): -{}\n", money(d)),
        (None, d) => format!("Discount: -{}\n", money(d)),
    };
    body.push_str(&format!(
        "\nSubtotal: {}\n{discount}Tax: {}\nShipping: {}\nTotal: {}\n\nIt ships to:\n{}\n\
         We will write again when it ships.\n",
        money(t.subtotal_cents),
        money(t.tax_cents),
        money(t.shipping_cents),
        money(t.total_cents),
        address_block(&order.shipping_address)
    ));
    Mail {
        subject: format!("Order {} confirmed", order.id),
        body,
    }
}

/// What the shipping notice tells.
struct Shipment<'a> {
    order_id: &'a str,
    carrier: &'a str,
    tracking_number: &'a str,
    tracking_url: &'a str,
    estimated_delivery: DateTime<Utc>,
}

fn shipped(contact: &Contact, s: &Shipment<'_>) -> Mail {
    Mail {
        subject: format!("Order {} has shipped", s.order_id),
        body: format!(
            "{}\n\nyour order {} has shipped.\n\nCarrier: {}\nTracking number: {}\n\
             Track it at: {}\nEstimated delivery: {}\n",
            greeting(contact),
            s.order_id,
            s.carrier,
            s.tracking_number,
            s.tracking_url,
            s.estimated_delivery.format("%Y-%m-%d")
        ),
    }
}

fn delivered(contact: &Contact, order: &OrderEvent) -> Mail {
    Mail {
        subject: format!("Order {} was delivered", order.order_id),
        body: format!(
            "{}\n\nyour order {} was delivered. We hope you enjoy it.\n",
            greeting(contact),
            order.order_id
        ),
    }
}

fn cancelled(contact: &Contact, order: &OrderEvent) -> Mail {
    let reason = order
        .reason
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .map(|r| format!("\nReason: {r}\n"))
        .unwrap_or_default();
    Mail {
        subject: format!("Order {} was cancelled", order.order_id),
        body: format!(
            "{}\n\nyour order {} was cancelled.\n{reason}",
            greeting(contact),
            order.order_id
        ),
    }
}

fn refunded(contact: &Contact, order: &OrderEvent) -> Mail {
    Mail {
        subject: format!("Order {} was refunded", order.order_id),
        body: format!(
            "{}\n\nthe payment of your order {} ({}) was refunded.\n",
            greeting(contact),
            order.order_id,
            money(order.total_cents)
        ),
    }
}

/// The consumer `orders.mail`: the buyer's mail for each order event that warrants one.
pub struct OrderMails {
    /// Reads the placed order in full for its confirmation (committed before its event).
    db: PgPool,
}

impl OrderMails {
    pub fn new(db: PgPool) -> Self {
        OrderMails { db }
    }
}

#[async_trait::async_trait]
impl Consumer for OrderMails {
    fn name(&self) -> &'static str {
        "orders.mail"
    }

    fn wants(&self, kind: EventKind) -> bool {
        matches!(
            kind,
            EventKind::OrderPlaced
                | EventKind::OrderShipped
                | EventKind::OrderDelivered
                | EventKind::OrderCancelled
                | EventKind::OrderRefunded
        )
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> anyhow::Result<()> {
        let queued = match &event.data {
            EventData::OrderPlaced(o) => {
                let Some(order) = super::store::load_order(&self.db, &o.order_id).await? else {
                    return Ok(());
                };
                mail::to_account(tx, order.user_id, |c| confirmation(c, &order)).await?
            }
            EventData::OrderShipped(o) => {
                let Some(tracking) = &o.tracking else {
                    return Ok(());
                };
                let shipment = Shipment {
                    order_id: &o.order_id,
                    carrier: &tracking.carrier,
                    tracking_number: &tracking.tracking_number,
                    tracking_url: tracking.tracking_url.as_deref().unwrap_or_default(),
                    estimated_delivery: event.occurred_at + chrono::Duration::days(DELIVERY_DAYS),
                };
                mail::to_account(tx, o.user_id, |c| shipped(c, &shipment)).await?
            }
            EventData::OrderDelivered(o) => {
                mail::to_account(tx, o.user_id, |c| delivered(c, o)).await?
            }
            EventData::OrderCancelled(o) => {
                mail::to_account(tx, o.user_id, |c| cancelled(c, o)).await?
            }
            EventData::OrderRefunded(o) => {
                mail::to_account(tx, o.user_id, |c| refunded(c, o)).await?
            }
            _ => return Ok(()),
        };
        if !queued {
            tracing::debug!(event = %event.id, "buyer has no account row; no mail");
        }
        Ok(())
    }
}

/// The consumer `mail.stock_alerts`: an inventory alert mail to every admin when a product's
/// stock falls to the low-stock threshold.
pub struct StockAlertMails;

#[async_trait::async_trait]
impl Consumer for StockAlertMails {
    fn name(&self) -> &'static str {
        "mail.stock_alerts"
    }

    fn wants(&self, kind: EventKind) -> bool {
        kind == EventKind::StockLow
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Event) -> anyhow::Result<()> {
        let EventData::StockLow(low) = &event.data else {
            return Ok(());
        };
        let admins = crate::accounts::store::admin_contacts(&mut *tx)
            .await
            .context("reading the admins")?;
        for admin in admins {
            let alert = Mail {
                subject: format!("Low stock: {} ({} left)", low.title, low.stock),
                body: format!(
                    "{}\n\nproduct {} \"{}\" is down to {} in stock (alert threshold {}).\n",
                    greeting(&admin),
                    low.product_id,
                    low.title,
                    low.stock,
                    low.threshold
                ),
            };
            mail::enqueue(&mut *tx, &admin.email, &alert).await?;
        }
        Ok(())
    }
}

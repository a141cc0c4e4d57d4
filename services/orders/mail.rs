//! Order mails: the confirmation when an order is placed and the shipping
//! notice when it ships.
//!
//! Both are rows of the identity schema's `mail_outbox`, inserted in the
//! transaction that places the order or records the shipment: the mail exists
//! if and only if the change does, and the outbox sender (services/auth/mail.rs,
//! which runs in the process that serves auth) delivers each row once.
//!
//! The buyer's address comes from the `users` table, read with the one query
//! of [`buyer`]: the services share one database, and an admin ships the
//! order, so the caller's token cannot tell the buyer's address. An order of an
//! account that no longer exists (or was purged) gets no mail.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::error::OrderError;
use super::invoice::money;
use super::store::PlacedOrder;
use crate::proto::ecom::common::v1::ShippingAddress;

/// The buyer as the mails and the invoice name them.
#[derive(Clone, Debug)]
pub struct Contact {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

impl Contact {
    /// "First Last", trimmed.
    pub fn name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_owned()
    }
}

/// The email and name of account `user_id`; `None` when it does not exist or
/// was purged (its email is anonymised then). The only read of the identity
/// service's `users` table by the orders service.
pub async fn buyer(db: &mut PgConnection, user_id: i64) -> Result<Option<Contact>, OrderError> {
    Ok(sqlx::query_as!(
        Contact,
        "SELECT email, first_name, last_name FROM users WHERE id = $1 AND purged_at IS NULL",
        user_id
    )
    .fetch_optional(db)
    .await?)
}

async fn enqueue(
    tx: &mut PgConnection,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<(), OrderError> {
    sqlx::query!(
        "INSERT INTO mail_outbox (recipient, subject, body) VALUES ($1, $2, $3)",
        to,
        subject,
        body
    )
    .execute(tx)
    .await?;
    Ok(())
}

fn greeting(contact: &Contact) -> String {
    match contact.first_name.trim() {
        "" => "Hello,".to_owned(),
        name => format!("Hello {name},"),
    }
}

fn address_block(a: &ShippingAddress) -> String {
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

/// Queues the confirmation of `order` in the transaction that inserts it.
pub async fn queue_confirmation(
    tx: &mut PgConnection,
    order: &PlacedOrder<'_>,
) -> Result<(), OrderError> {
    let Some(contact) = buyer(tx, order.user_id).await? else {
        tracing::debug!(order = %order.id, "buyer has no account row; no confirmation mail");
        return Ok(());
    };
    let mut body = format!(
        "{}\n\nthank you for your order {}, placed on {}.\n\n",
        greeting(&contact),
        order.id,
        order.now.format("%Y-%m-%d")
    );
    for line in order.lines {
        body.push_str(&format!(
            "  {} x {}: {}\n",
            line.quantity,
            line.title,
            money(line.discounted_total_cents)
        ));
    }
    let t = order.totals;
    body.push_str(&format!(
        "\nSubtotal: {}\nTax: {}\nShipping: {}\nTotal: {}\n\nIt ships to:\n{}\n\
         We will write again when it ships.\n",
        money(t.subtotal_cents),
        money(t.tax_cents),
        money(t.shipping_cents),
        money(t.total_cents),
        address_block(order.shipping_address)
    ));
    enqueue(
        tx,
        &contact.email,
        &format!("Order {} confirmed", order.id),
        &body,
    )
    .await
}

/// What the shipping notice tells.
pub struct Shipment<'a> {
    pub order_id: &'a str,
    pub user_id: i64,
    pub carrier: &'a str,
    pub tracking_number: &'a str,
    pub tracking_url: &'a str,
    pub estimated_delivery: DateTime<Utc>,
}

/// Queues the shipping notice in the transaction that marks the order shipped.
pub async fn queue_shipped(tx: &mut PgConnection, s: &Shipment<'_>) -> Result<(), OrderError> {
    let Some(contact) = buyer(tx, s.user_id).await? else {
        tracing::debug!(order = %s.order_id, "buyer has no account row; no shipping mail");
        return Ok(());
    };
    let body = format!(
        "{}\n\nyour order {} has shipped.\n\nCarrier: {}\nTracking number: {}\n\
         Track it at: {}\nEstimated delivery: {}\n",
        greeting(&contact),
        s.order_id,
        s.carrier,
        s.tracking_number,
        s.tracking_url,
        s.estimated_delivery.format("%Y-%m-%d")
    );
    enqueue(
        tx,
        &contact.email,
        &format!("Order {} has shipped", s.order_id),
        &body,
    )
    .await
}

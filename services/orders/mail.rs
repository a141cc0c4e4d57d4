//! Order mails: the confirmation when an order is placed and the shipping
//! notice when it ships, written here and queued through the kernel's outbox
//! ([`crate::mail`]) in the transaction that places the order or records the
//! shipment: the mail exists if and only if the change does.
//!
//! The buyer is addressed by account ([`crate::mail::to_account`]): an admin
//! ships the order, so the caller's token cannot tell the buyer's address. An
//! order of an account that no longer exists (or was purged) gets no mail.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::domain::{Address, Order};
use super::error::OrderError;
use super::invoice::money;
use crate::accounts::store::Contact;
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
    body.push_str(&format!(
        "\nSubtotal: {}\nTax: {}\nShipping: {}\nTotal: {}\n\nIt ships to:\n{}\n\
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

/// Queues the confirmation of `order` in the transaction that inserts it.
pub async fn queue_confirmation(tx: &mut PgConnection, order: &Order) -> Result<(), OrderError> {
    if !mail::to_account(tx, order.user_id, |c| confirmation(c, order)).await? {
        tracing::debug!(order = %order.id, "buyer has no account row; no confirmation mail");
    }
    Ok(())
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

/// Queues the shipping notice in the transaction that marks the order shipped.
pub async fn queue_shipped(tx: &mut PgConnection, s: &Shipment<'_>) -> Result<(), OrderError> {
    if !mail::to_account(tx, s.user_id, |c| shipped(c, s)).await? {
        tracing::debug!(order = %s.order_id, "buyer has no account row; no shipping mail");
    }
    Ok(())
}

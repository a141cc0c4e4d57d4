//! The orders service's SQL (tables of migrations/20261127000300_orders.sql).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::domain::{OrderStatus, PricedLine, Totals};
use super::error::OrderError;
use crate::money;
use crate::proto::ecom::common::v1::ShippingAddress;
use crate::proto::ecom::orders::v1 as pb;

/// A protobuf timestamp.
pub use crate::clock::timestamp;

fn address_to_json(a: &ShippingAddress) -> serde_json::Value {
    json!({
        "firstName": a.first_name, "lastName": a.last_name, "address": a.address, "city": a.city,
        "state": a.state, "zipCode": a.zip_code, "country": a.country, "phone": a.phone,
    })
}

fn address_from_json(v: &serde_json::Value) -> ShippingAddress {
    let s = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    ShippingAddress {
        first_name: s("firstName"),
        last_name: s("lastName"),
        address: s("address"),
        city: s("city"),
        state: s("state"),
        zip_code: s("zipCode"),
        country: s("country"),
        phone: s("phone"),
    }
}

/// An order's stored payment status on the wire.
pub fn payment_state(s: &str) -> pb::PaymentState {
    match s {
        "paid" => pb::PaymentState::Paid,
        "refunded" => pb::PaymentState::Refunded,
        _ => pb::PaymentState::Unpaid,
    }
}

fn status_wire(s: &str) -> i32 {
    OrderStatus::parse(s)
        .map(|s| s.to_wire() as i32)
        .unwrap_or_default()
}

/// Takes the next order number of `day` (its own statement: never reused, gaps allowed).
pub async fn next_order_id(db: &PgPool, day: NaiveDate) -> Result<String, OrderError> {
    let n = sqlx::query_scalar!(
        r#"INSERT INTO order_numbers (day, last) VALUES ($1, 1)
           ON CONFLICT (day) DO UPDATE SET last = order_numbers.last + 1
           RETURNING last"#,
        day
    )
    .fetch_one(db)
    .await?;
    Ok(format!("ORD-{}{:02}", day.format("%Y%m%d"), n))
}

/// Everything needed to insert a placed order.
pub struct PlacedOrder<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub lines: &'a [PricedLine],
    pub totals: Totals,
    pub shipping_address: &'a ShippingAddress,
    pub billing_address: &'a ShippingAddress,
    pub payment_method: &'a str,
    pub payment_intent_id: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Inserts an order, its lines and its first history entry.
pub async fn insert_order(tx: &mut PgConnection, o: &PlacedOrder<'_>) -> Result<(), OrderError> {
    sqlx::query!(
        r#"INSERT INTO orders (id, user_id, status, subtotal_cents, tax_cents, shipping_cents, total_cents,
                               shipping_address, billing_address, payment_method, payment_intent_id,
                               created_at, updated_at)
           VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)"#,
        o.id,
        o.user_id,
        o.totals.subtotal_cents,
        o.totals.tax_cents,
        o.totals.shipping_cents,
        o.totals.total_cents,
        address_to_json(o.shipping_address),
        address_to_json(o.billing_address),
        o.payment_method,
        o.payment_intent_id,
        o.now
    )
    .execute(&mut *tx)
    .await?;
    for (position, l) in o.lines.iter().enumerate() {
        sqlx::query!(
            r#"INSERT INTO order_items (order_id, position, product_id, title, price_cents, quantity, total_cents,
                                        discount_basis_points, discounted_total_cents, thumbnail)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"#,
            o.id,
            position as i32,
            l.product_id,
            l.title,
            l.price_cents,
            l.quantity,
            l.total_cents,
            l.discount_bp,
            l.discounted_total_cents,
            l.thumbnail
        )
        .execute(&mut *tx)
        .await?;
    }
    add_history(
        &mut *tx,
        o.id,
        OrderStatus::Pending,
        "Order placed",
        o.user_id,
        o.now,
    )
    .await
}

/// Appends a history entry.
pub async fn add_history(
    db: &mut PgConnection,
    id: &str,
    status: OrderStatus,
    note: &str,
    by: i64,
    at: DateTime<Utc>,
) -> Result<(), OrderError> {
    sqlx::query!(
        "INSERT INTO order_history (order_id, status, note, by_user_id, at) VALUES ($1, $2, $3, $4, $5)",
        id,
        status.as_str(),
        note,
        by,
        at
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Converts a line to the wire.
pub fn line_to_wire(l: &PricedLine) -> pb::CartItem {
    pb::CartItem {
        id: l.product_id,
        title: l.title.clone(),
        price: money::to_wire(l.price_cents),
        quantity: l.quantity,
        total: money::to_wire(l.total_cents),
        discount_percentage: l.discount_bp as f64 / 100.0,
        discounted_total: money::to_wire(l.discounted_total_cents),
        thumbnail: l.thumbnail.clone(),
    }
}

/// The owner of an order and its status, locking the row in a transaction.
pub async fn lock_order(
    tx: &mut PgConnection,
    id: &str,
) -> Result<Option<(i64, OrderStatus, String)>, OrderError> {
    let row = sqlx::query!(
        "SELECT user_id, status, payment_status FROM orders WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(|r| {
        (
            r.user_id,
            OrderStatus::parse(&r.status).unwrap_or(OrderStatus::Pending),
            r.payment_status,
        )
    }))
}

/// The owner of an order, if it exists.
pub async fn owner_of(db: &PgPool, id: &str) -> Result<Option<i64>, OrderError> {
    Ok(
        sqlx::query_scalar!("SELECT user_id FROM orders WHERE id = $1", id)
            .fetch_optional(db)
            .await?,
    )
}

/// One order in full.
pub async fn load_order(db: &PgPool, id: &str) -> Result<Option<pb::Order>, OrderError> {
    let Some(o) = sqlx::query!(
        r#"SELECT id, user_id, status, subtotal_cents, tax_cents, shipping_cents, total_cents,
                  shipping_address, billing_address, payment_method, payment_intent_id, payment_status,
                  tracking_number, carrier, cancel_reason, cancelled_at, created_at, updated_at
           FROM orders WHERE id = $1"#,
        id
    )
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    let items = sqlx::query!(
        r#"SELECT product_id, title, price_cents, quantity, total_cents, discount_basis_points,
                  discounted_total_cents, thumbnail
           FROM order_items WHERE order_id = $1 ORDER BY position"#,
        id
    )
    .fetch_all(db)
    .await?;
    let history = sqlx::query!(
        "SELECT status, note, by_user_id, at FROM order_history WHERE order_id = $1 ORDER BY id",
        id
    )
    .fetch_all(db)
    .await?;
    let notes = sqlx::query!(
        "SELECT id, note, by_user_id, created_at FROM order_notes WHERE order_id = $1 ORDER BY id",
        id
    )
    .fetch_all(db)
    .await?;
    Ok(Some(pb::Order {
        id: o.id,
        user_id: o.user_id,
        products: items
            .into_iter()
            .map(|i| {
                line_to_wire(&PricedLine {
                    product_id: i.product_id,
                    title: i.title,
                    price_cents: i.price_cents,
                    quantity: i.quantity,
                    total_cents: i.total_cents,
                    discount_bp: i.discount_basis_points,
                    discounted_total_cents: i.discounted_total_cents,
                    thumbnail: i.thumbnail,
                })
            })
            .collect(),
        subtotal: money::to_wire(o.subtotal_cents),
        tax: money::to_wire(o.tax_cents),
        shipping: money::to_wire(o.shipping_cents),
        total: money::to_wire(o.total_cents),
        status: status_wire(&o.status),
        shipping_address: Some(address_from_json(&o.shipping_address)),
        billing_address: Some(address_from_json(&o.billing_address)),
        payment_method: o.payment_method,
        payment_intent_id: o.payment_intent_id,
        tracking_number: o.tracking_number,
        carrier: o.carrier,
        cancel_reason: o.cancel_reason,
        cancelled_at: o.cancelled_at.map(timestamp),
        created_at: Some(timestamp(o.created_at)),
        updated_at: Some(timestamp(o.updated_at)),
        payment_status: payment_state(&o.payment_status) as i32,
        history: history
            .into_iter()
            .map(|h| pb::StatusChange {
                status: status_wire(&h.status),
                note: h.note,
                by_user_id: h.by_user_id,
                at: Some(timestamp(h.at)),
            })
            .collect(),
        notes: notes
            .into_iter()
            .map(|n| pb::OrderNote {
                id: n.id,
                note: n.note,
                by_user_id: n.by_user_id,
                created_at: Some(timestamp(n.created_at)),
            })
            .collect(),
        return_request: super::returns::latest(db, id).await?,
    }))
}

/// A page of a user's orders as summaries, newest first, and their number.
pub async fn list_user_orders(
    db: &PgPool,
    user_id: i64,
    skip: i64,
    limit: i64,
) -> Result<(Vec<pb::OrderSummary>, i64), OrderError> {
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM orders WHERE user_id = $1"#,
        user_id
    )
    .fetch_one(db)
    .await?;
    let rows = sqlx::query!(
        r#"SELECT id, status, total_cents, created_at FROM orders WHERE user_id = $1
           ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT $3"#,
        user_id,
        skip,
        limit
    )
    .fetch_all(db)
    .await?;
    let summaries = rows
        .into_iter()
        .map(|r| pb::OrderSummary {
            id: r.id,
            status: status_wire(&r.status),
            total: money::to_wire(r.total_cents),
            created_at: Some(timestamp(r.created_at)),
        })
        .collect();
    Ok((summaries, total))
}

/// Filters of the admin listing.
pub struct AllOrdersQuery {
    pub status: Option<OrderStatus>,
    pub user_id: Option<i64>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub skip: i64,
    pub limit: i64,
}

/// Ids of a page of all orders matching `q`, newest first, and their number.
pub async fn list_all_order_ids(
    db: &PgPool,
    q: &AllOrdersQuery,
) -> Result<(Vec<String>, i64), OrderError> {
    let status = q.status.map(OrderStatus::as_str);
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM orders
           WHERE ($1::text IS NULL OR status = $1) AND ($2::bigint IS NULL OR user_id = $2)
             AND ($3::timestamptz IS NULL OR created_at >= $3) AND ($4::timestamptz IS NULL OR created_at < $4)"#,
        status,
        q.user_id,
        q.from,
        q.to
    )
    .fetch_one(db)
    .await?;
    let ids = sqlx::query_scalar!(
        r#"SELECT id FROM orders
           WHERE ($1::text IS NULL OR status = $1) AND ($2::bigint IS NULL OR user_id = $2)
             AND ($3::timestamptz IS NULL OR created_at >= $3) AND ($4::timestamptz IS NULL OR created_at < $4)
           ORDER BY created_at DESC, id DESC OFFSET $5 LIMIT $6"#,
        status,
        q.user_id,
        q.from,
        q.to,
        q.skip,
        q.limit
    )
    .fetch_all(db)
    .await?;
    Ok((ids, total))
}

/// Sets the status (and shipping or cancellation details) of a locked order.
#[allow(clippy::too_many_arguments)]
pub async fn set_status(
    tx: &mut PgConnection,
    id: &str,
    status: OrderStatus,
    tracking_number: Option<&str>,
    carrier: Option<&str>,
    cancel_reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    let cancelled_at = (status == OrderStatus::Cancelled).then_some(now);
    sqlx::query!(
        r#"UPDATE orders SET status = $2,
               tracking_number = COALESCE($3, tracking_number),
               carrier = COALESCE($4, carrier),
               cancel_reason = COALESCE($5, cancel_reason),
               cancelled_at = COALESCE($6, cancelled_at),
               updated_at = $7
           WHERE id = $1"#,
        id,
        status.as_str(),
        tracking_number,
        carrier,
        cancel_reason,
        cancelled_at,
        now
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Takes the transaction-scoped advisory lock of order `id` (its id hashed to 64 bits).
/// Recording an order holds it until its COMMIT has ended, so [`order_stored`] waits for
/// a commit still in flight instead of reading around it.
pub async fn lock_order_id(tx: &mut PgConnection, id: &str) -> Result<(), OrderError> {
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", id)
        .execute(tx)
        .await?;
    Ok(())
}

/// Whether order `id` is stored, asked after a COMMIT whose answer was lost: once the
/// transaction that recorded it has ended (its lock, waited for at most a second), the
/// row is there or it never will be.
pub async fn order_stored(db: &PgPool, id: &str) -> Result<bool, OrderError> {
    let mut tx = db.begin().await?;
    sqlx::query!("SET LOCAL lock_timeout = '1s'")
        .execute(&mut *tx)
        .await?;
    lock_order_id(&mut tx, id).await?;
    let stored = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM orders WHERE id = $1) AS "stored!""#,
        id
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.rollback().await?;
    Ok(stored)
}

/// Records that the catalog committed the order's stock reservation.
pub async fn mark_stock_committed(db: &PgPool, id: &str) -> Result<(), OrderError> {
    sqlx::query!("UPDATE orders SET stock_committed = true WHERE id = $1", id)
        .execute(db)
        .await?;
    Ok(())
}

/// Orders whose reservation commit was not confirmed, placed before `before`.
pub async fn uncommitted_orders(
    db: &PgPool,
    before: DateTime<Utc>,
) -> Result<Vec<String>, OrderError> {
    Ok(sqlx::query_scalar!(
        "SELECT id FROM orders WHERE NOT stock_committed AND status <> 'cancelled' AND created_at < $1 ORDER BY created_at LIMIT 100",
        before
    )
    .fetch_all(db)
    .await?)
}

/// Adds a note.
pub async fn add_note(
    db: &PgPool,
    id: &str,
    note: &str,
    by: i64,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    sqlx::query!(
        "INSERT INTO order_notes (order_id, note, by_user_id, created_at) VALUES ($1, $2, $3, $4)",
        id,
        note,
        by,
        now
    )
    .execute(db)
    .await?;
    Ok(())
}

/// What a payment needs of an order: owner, status, total, payment state, intent.
pub struct PaymentView {
    pub id: String,
    pub user_id: i64,
    pub status: OrderStatus,
    pub total_cents: i64,
    pub payment_status: String,
    pub payment_intent_id: Option<String>,
}

/// An order's payment view by id.
pub async fn payment_view(db: &PgPool, id: &str) -> Result<Option<PaymentView>, OrderError> {
    let row = sqlx::query!(
        "SELECT id, user_id, status, total_cents, payment_status, payment_intent_id FROM orders WHERE id = $1",
        id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| PaymentView {
        id: r.id,
        user_id: r.user_id,
        status: OrderStatus::parse(&r.status).unwrap_or(OrderStatus::Pending),
        total_cents: r.total_cents,
        payment_status: r.payment_status,
        payment_intent_id: r.payment_intent_id,
    }))
}

/// The order paid by `intent`, else (when `id` is given) the order `id`, locked.
pub async fn lock_payment_view(
    tx: &mut PgConnection,
    intent: &str,
    id: Option<&str>,
) -> Result<Option<PaymentView>, OrderError> {
    let by_intent = sqlx::query!(
        "SELECT id FROM orders WHERE payment_intent_id = $1 FOR UPDATE",
        intent
    )
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| r.id);
    let Some(id) = by_intent.or(id.map(str::to_owned)) else {
        return Ok(None);
    };
    let row = sqlx::query!(
        "SELECT id, user_id, status, total_cents, payment_status, payment_intent_id FROM orders WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(|r| PaymentView {
        id: r.id,
        user_id: r.user_id,
        status: OrderStatus::parse(&r.status).unwrap_or(OrderStatus::Pending),
        total_cents: r.total_cents,
        payment_status: r.payment_status,
        payment_intent_id: r.payment_intent_id,
    }))
}

/// Whether an order already uses the intent.
pub async fn intent_in_use(db: &PgPool, intent: &str) -> Result<bool, OrderError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM orders WHERE payment_intent_id = $1) AS "used!""#,
        intent
    )
    .fetch_one(db)
    .await?)
}

/// Links an order to the intent that pays it.
pub async fn set_payment_intent(
    tx: &mut PgConnection,
    id: &str,
    intent: &str,
) -> Result<(), OrderError> {
    sqlx::query!(
        "UPDATE orders SET payment_intent_id = $2 WHERE id = $1",
        id,
        intent
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Applies an intent's state to its (locked) order, converging whatever the
/// order of the calls: refunded wins, paid only replaces unpaid. A pending
/// order that becomes paid moves to processing, by the system (user id 0).
/// Returns the order's payment state afterwards.
pub async fn apply_payment(
    tx: &mut PgConnection,
    order: &PaymentView,
    succeeded: bool,
    refunded: bool,
    now: DateTime<Utc>,
) -> Result<&'static str, OrderError> {
    let next = match order.payment_status.as_str() {
        _ if refunded => "refunded",
        "unpaid" if succeeded => "paid",
        "paid" => "paid",
        "refunded" => "refunded",
        _ => "unpaid",
    };
    if next == order.payment_status {
        return Ok(next);
    }
    sqlx::query!(
        "UPDATE orders SET payment_status = $2, updated_at = $3 WHERE id = $1",
        order.id,
        next,
        now
    )
    .execute(&mut *tx)
    .await?;
    if next == "paid" && order.status == OrderStatus::Pending {
        set_status(
            &mut *tx,
            &order.id,
            OrderStatus::Processing,
            None,
            None,
            None,
            now,
        )
        .await?;
        add_history(
            &mut *tx,
            &order.id,
            OrderStatus::Processing,
            "Payment received",
            0,
            now,
        )
        .await?;
    }
    Ok(next)
}

/// The intent paying an order, if any (in the caller's transaction).
pub async fn payment_intent_of(
    tx: &mut PgConnection,
    id: &str,
) -> Result<Option<String>, OrderError> {
    Ok(
        sqlx::query_scalar!("SELECT payment_intent_id FROM orders WHERE id = $1", id)
            .fetch_optional(&mut *tx)
            .await?
            .flatten(),
    )
}

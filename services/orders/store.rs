//! All of the orders service's SQL: orders, their lines, history, notes and
//! returns (migrations/20261127000300_orders.sql, 20261127000700_order_returns_mail.sql)
//! and carts. Reads return domain values; a stored state that does not parse
//! is [`OrderError::Corrupt`], naming the row.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::domain::coupon::{CouponKind, CouponTerms};
use super::domain::shipping::{ShippingMethod, ZoneRate};
use super::domain::{
    Address, Corrupt, Coupon, Note, Order, OrderStatus, OrderSummary, PaymentState, PaymentView,
    PricedLine, ReturnRequest, ReturnStatus, StatusChange, TaxRate, Totals,
};
use super::error::OrderError;

/// A parsed stored value, or the error naming the row it came from.
fn parsed<T>(row: &str, value: Result<T, Corrupt>) -> Result<T, OrderError> {
    value.map_err(|source| OrderError::Corrupt {
        row: row.to_owned(),
        source,
    })
}

fn address_to_json(a: &Address) -> serde_json::Value {
    json!({
        "firstName": a.first_name, "lastName": a.last_name, "address": a.address, "city": a.city,
        "state": a.state, "zipCode": a.zip_code, "country": a.country, "phone": a.phone,
    })
}

fn address_from_json(v: &serde_json::Value) -> Address {
    let s = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    Address {
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

/// Inserts a placed order: its row, its lines and its history.
pub async fn insert_order(tx: &mut PgConnection, o: &Order) -> Result<(), OrderError> {
    sqlx::query!(
        r#"INSERT INTO orders (id, user_id, status, payment_status, subtotal_cents, tax_cents,
                               shipping_cents, total_cents, shipping_address, billing_address,
                               payment_method, payment_intent_id, created_at, updated_at,
                               discount_cents, coupon_code, shipping_method, tax_rate_ppm)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"#,
        o.id,
        o.user_id,
        o.status.as_str(),
        o.payment_status.as_str(),
        o.totals.subtotal_cents,
        o.totals.tax_cents,
        o.totals.shipping_cents,
        o.totals.total_cents,
        address_to_json(&o.shipping_address),
        address_to_json(&o.billing_address),
        o.payment_method,
        o.payment_intent_id,
        o.created_at,
        o.updated_at,
        o.totals.discount_cents,
        o.coupon_code,
        o.shipping_method,
        o.tax_rate.map(|r| r.ppm() as i32)
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
    for change in &o.history {
        add_history(&mut *tx, &o.id, change).await?;
    }
    Ok(())
}

/// Appends a history entry.
pub async fn add_history(
    db: &mut PgConnection,
    id: &str,
    change: &StatusChange,
) -> Result<(), OrderError> {
    sqlx::query!(
        "INSERT INTO order_history (order_id, status, note, by_user_id, at) VALUES ($1, $2, $3, $4, $5)",
        id,
        change.status.as_str(),
        change.note,
        change.by_user_id,
        change.at
    )
    .execute(db)
    .await?;
    Ok(())
}

/// What a change of an order reads under its row lock.
#[derive(Debug, Clone, Copy)]
pub struct Locked {
    pub user_id: i64,
    pub status: OrderStatus,
    pub payment_status: PaymentState,
}

/// The owner and states of an order, locking its row in a transaction.
pub async fn lock_order(tx: &mut PgConnection, id: &str) -> Result<Option<Locked>, OrderError> {
    let Some(r) = sqlx::query!(
        "SELECT user_id, status, payment_status FROM orders WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(Locked {
        user_id: r.user_id,
        status: parsed(id, OrderStatus::parse(&r.status))?,
        payment_status: parsed(id, PaymentState::parse(&r.payment_status))?,
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
pub async fn load_order(db: &PgPool, id: &str) -> Result<Option<Order>, OrderError> {
    Ok(load_orders(db, &[id.to_owned()]).await?.pop())
}

/// The orders `ids` in full, in that order (unknown ids left out): five queries
/// however many orders.
pub async fn load_orders(db: &PgPool, ids: &[String]) -> Result<Vec<Order>, OrderError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query!(
        r#"SELECT id, user_id, status, subtotal_cents, tax_cents, shipping_cents, total_cents,
                  shipping_address, billing_address, payment_method, payment_intent_id, payment_status,
                  tracking_number, carrier, cancel_reason, cancelled_at, created_at, updated_at,
                  discount_cents, coupon_code, shipping_method, tax_rate_ppm
           FROM orders WHERE id = ANY($1)"#,
        ids
    )
    .fetch_all(db)
    .await?;
    let mut lines: HashMap<String, Vec<PricedLine>> = HashMap::new();
    for i in sqlx::query!(
        r#"SELECT order_id, product_id, title, price_cents, quantity, total_cents, discount_basis_points,
                  discounted_total_cents, thumbnail
           FROM order_items WHERE order_id = ANY($1) ORDER BY order_id, position"#,
        ids
    )
    .fetch_all(db)
    .await?
    {
        lines.entry(i.order_id).or_default().push(PricedLine {
            product_id: i.product_id,
            title: i.title,
            price_cents: i.price_cents,
            quantity: i.quantity,
            total_cents: i.total_cents,
            discount_bp: i.discount_basis_points,
            discounted_total_cents: i.discounted_total_cents,
            thumbnail: i.thumbnail,
        });
    }
    let mut history: HashMap<String, Vec<StatusChange>> = HashMap::new();
    for h in sqlx::query!(
        "SELECT order_id, status, note, by_user_id, at FROM order_history WHERE order_id = ANY($1) ORDER BY id",
        ids
    )
    .fetch_all(db)
    .await?
    {
        let status = parsed(&h.order_id, OrderStatus::parse(&h.status))?;
        history.entry(h.order_id).or_default().push(StatusChange {
            status,
            note: h.note,
            by_user_id: h.by_user_id,
            at: h.at,
        });
    }
    let mut notes: HashMap<String, Vec<Note>> = HashMap::new();
    for n in sqlx::query!(
        "SELECT order_id, id, note, by_user_id, created_at FROM order_notes WHERE order_id = ANY($1) ORDER BY id",
        ids
    )
    .fetch_all(db)
    .await?
    {
        notes.entry(n.order_id).or_default().push(Note {
            id: n.id,
            note: n.note,
            by_user_id: n.by_user_id,
            created_at: n.created_at,
        });
    }
    let mut returns = latest_returns(db, ids).await?;
    let mut orders: HashMap<String, Order> = HashMap::with_capacity(rows.len());
    for o in rows {
        let status = parsed(&o.id, OrderStatus::parse(&o.status))?;
        let payment_status = parsed(&o.id, PaymentState::parse(&o.payment_status))?;
        let order = Order {
            lines: lines.remove(&o.id).unwrap_or_default(),
            totals: Totals {
                subtotal_cents: o.subtotal_cents,
                discount_cents: o.discount_cents,
                tax_cents: o.tax_cents,
                shipping_cents: o.shipping_cents,
                total_cents: o.total_cents,
            },
            coupon_code: o.coupon_code,
            shipping_method: o.shipping_method,
            tax_rate: match o.tax_rate_ppm {
                None => None,
                Some(ppm) => Some(parsed(
                    &o.id,
                    TaxRate::from_ppm(ppm.into()).ok_or(Corrupt {
                        kind: "tax rate",
                        value: ppm.to_string(),
                    }),
                )?),
            },
            status,
            payment_status,
            shipping_address: address_from_json(&o.shipping_address),
            billing_address: address_from_json(&o.billing_address),
            payment_method: o.payment_method,
            payment_intent_id: o.payment_intent_id,
            tracking_number: o.tracking_number,
            carrier: o.carrier,
            cancel_reason: o.cancel_reason,
            cancelled_at: o.cancelled_at,
            created_at: o.created_at,
            updated_at: o.updated_at,
            history: history.remove(&o.id).unwrap_or_default(),
            notes: notes.remove(&o.id).unwrap_or_default(),
            return_request: returns.remove(&o.id),
            user_id: o.user_id,
            id: o.id.clone(),
        };
        orders.insert(o.id, order);
    }
    Ok(ids.iter().filter_map(|id| orders.remove(id)).collect())
}

/// A page of a user's orders as summaries, newest first, and their number.
pub async fn list_user_orders(
    db: &PgPool,
    user_id: i64,
    skip: i64,
    limit: i64,
) -> Result<(Vec<OrderSummary>, i64), OrderError> {
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
        .map(|r| {
            Ok(OrderSummary {
                status: parsed(&r.id, OrderStatus::parse(&r.status))?,
                id: r.id,
                total_cents: r.total_cents,
                created_at: r.created_at,
            })
        })
        .collect::<Result<_, OrderError>>()?;
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

/// A change of a locked order's status.
pub struct StatusWrite<'a> {
    pub status: OrderStatus,
    /// (tracking number, carrier) of a shipment.
    pub shipment: Option<(&'a str, &'a str)>,
    pub cancel_reason: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Sets the status (and shipping or cancellation details) of a locked order.
pub async fn set_status(
    tx: &mut PgConnection,
    id: &str,
    w: &StatusWrite<'_>,
) -> Result<(), OrderError> {
    let cancelled_at = (w.status == OrderStatus::Cancelled).then_some(w.now);
    sqlx::query!(
        r#"UPDATE orders SET status = $2,
               tracking_number = COALESCE($3, tracking_number),
               carrier = COALESCE($4, carrier),
               cancel_reason = COALESCE($5, cancel_reason),
               cancelled_at = COALESCE($6, cancelled_at),
               updated_at = $7
           WHERE id = $1"#,
        id,
        w.status.as_str(),
        w.shipment.map(|(tracking, _)| tracking),
        w.shipment.map(|(_, carrier)| carrier),
        w.cancel_reason,
        cancelled_at,
        w.now
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Sets the payment state of a locked order.
pub async fn set_payment_status(
    tx: &mut PgConnection,
    id: &str,
    state: PaymentState,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    sqlx::query!(
        "UPDATE orders SET payment_status = $2, updated_at = $3 WHERE id = $1",
        id,
        state.as_str(),
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

/// An order's payment columns as stored.
struct PaymentRow {
    id: String,
    user_id: i64,
    status: String,
    total_cents: i64,
    payment_status: String,
    payment_intent_id: Option<String>,
}

impl PaymentRow {
    fn parse(self) -> Result<PaymentView, OrderError> {
        Ok(PaymentView {
            status: parsed(&self.id, OrderStatus::parse(&self.status))?,
            payment_status: parsed(&self.id, PaymentState::parse(&self.payment_status))?,
            id: self.id,
            user_id: self.user_id,
            total_cents: self.total_cents,
            payment_intent_id: self.payment_intent_id,
        })
    }
}

/// An order's payment view by id.
pub async fn find_payment_view(db: &PgPool, id: &str) -> Result<Option<PaymentView>, OrderError> {
    sqlx::query_as!(
        PaymentRow,
        "SELECT id, user_id, status, total_cents, payment_status, payment_intent_id FROM orders WHERE id = $1",
        id
    )
    .fetch_optional(db)
    .await?
    .map(PaymentRow::parse)
    .transpose()
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
    sqlx::query_as!(
        PaymentRow,
        "SELECT id, user_id, status, total_cents, payment_status, payment_intent_id FROM orders WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .map(PaymentRow::parse)
    .transpose()
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

// Returns (order_returns).

/// When the order was (last) delivered, from its history.
pub async fn delivered_at(
    tx: &mut PgConnection,
    order_id: &str,
) -> Result<Option<DateTime<Utc>>, OrderError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT max(at) AS "at" FROM order_history WHERE order_id = $1 AND status = 'delivered'"#,
        order_id
    )
    .fetch_one(tx)
    .await?)
}

/// Whether a return of the order is open (requested or approved).
pub async fn open_return_exists(tx: &mut PgConnection, order_id: &str) -> Result<bool, OrderError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM order_returns
                          WHERE order_id = $1 AND status IN ('requested', 'approved')) AS "open!""#,
        order_id
    )
    .fetch_one(tx)
    .await?)
}

/// The order's lines as (product id, quantity).
pub async fn ordered_lines(
    tx: &mut PgConnection,
    order_id: &str,
) -> Result<Vec<(i64, i32)>, OrderError> {
    Ok(sqlx::query!(
        "SELECT product_id, quantity FROM order_items WHERE order_id = $1 ORDER BY position",
        order_id
    )
    .fetch_all(tx)
    .await?
    .into_iter()
    .map(|r| (r.product_id, r.quantity))
    .collect())
}

/// Records a requested return (the partial unique index of `order_returns`
/// keeps one open return per order: a second is [`OrderError::ReturnExists`])
/// and touches the order.
pub async fn insert_return(
    tx: &mut PgConnection,
    order_id: &str,
    reason: &str,
    items: &[(i64, i32)],
    by: i64,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    let items_json: Vec<serde_json::Value> = items
        .iter()
        .map(|(id, quantity)| json!({"id": id, "quantity": quantity}))
        .collect();
    let inserted = sqlx::query!(
        r#"INSERT INTO order_returns (order_id, reason, items, requested_by, requested_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $5)"#,
        order_id,
        reason,
        serde_json::Value::Array(items_json),
        by,
        now
    )
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        // The partial unique index: another return was opened meanwhile.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(OrderError::ReturnExists);
        }
        Err(e) => return Err(e.into()),
    }
    sqlx::query!(
        "UPDATE orders SET updated_at = $2 WHERE id = $1",
        order_id,
        now
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The latest return of each of the orders `ids` that has one.
async fn latest_returns(
    db: &PgPool,
    ids: &[String],
) -> Result<HashMap<String, ReturnRequest>, OrderError> {
    let rows = sqlx::query!(
        r#"SELECT DISTINCT ON (order_id) order_id, status, reason, items, requested_at, updated_at
           FROM order_returns WHERE order_id = ANY($1) ORDER BY order_id, id DESC"#,
        ids
    )
    .fetch_all(db)
    .await?;
    let mut returns = HashMap::with_capacity(rows.len());
    for r in rows {
        let items = r
            .items
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|i| {
                        (
                            i["id"].as_i64().unwrap_or_default(),
                            i["quantity"]
                                .as_i64()
                                .and_then(|q| i32::try_from(q).ok())
                                .unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let status = parsed(&r.order_id, ReturnStatus::parse(&r.status))?;
        returns.insert(
            r.order_id,
            ReturnRequest {
                status,
                reason: r.reason,
                items,
                requested_at: r.requested_at,
                updated_at: r.updated_at,
            },
        );
    }
    Ok(returns)
}

// Carts (carts, cart_items).

/// A stored cart.
#[derive(Debug, Clone)]
pub struct CartRow {
    pub id: i64,
    pub user_id: i64,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// The user's active cart, created empty on first access.
pub async fn active_cart(
    db: &PgPool,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<CartRow, OrderError> {
    loop {
        let found = sqlx::query_as!(
            CartRow,
            "SELECT id, user_id, deleted_at FROM carts WHERE user_id = $1 AND is_active AND deleted_at IS NULL",
            user_id
        )
        .fetch_optional(db)
        .await?;
        if let Some(cart) = found {
            return Ok(cart);
        }
        // A concurrent first access may win the unique index; then read its cart.
        let created = sqlx::query_as!(
            CartRow,
            r#"INSERT INTO carts (user_id, created_at, updated_at) VALUES ($1, $2, $2)
               ON CONFLICT DO NOTHING RETURNING id, user_id, deleted_at"#,
            user_id,
            now
        )
        .fetch_optional(db)
        .await?;
        if let Some(cart) = created {
            return Ok(cart);
        }
    }
}

/// A cart that is not deleted, by id.
pub async fn find_cart(db: &PgPool, id: i64) -> Result<Option<CartRow>, OrderError> {
    Ok(sqlx::query_as!(
        CartRow,
        "SELECT id, user_id, deleted_at FROM carts WHERE id = $1 AND deleted_at IS NULL",
        id
    )
    .fetch_optional(db)
    .await?)
}

/// Replaces a cart's lines (`merge` false) or sets the given ones, 0 removing
/// (`merge` true), in one transaction; refused when the cart would then hold
/// more than `max_lines` products.
pub async fn write_cart_lines(
    db: &PgPool,
    cart_id: i64,
    lines: impl Iterator<Item = (i64, i32)>,
    merge: bool,
    max_lines: usize,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    let mut tx = db.begin().await?;
    sqlx::query!("SELECT id FROM carts WHERE id = $1 FOR UPDATE", cart_id)
        .fetch_optional(&mut *tx)
        .await?;
    if !merge {
        sqlx::query!("DELETE FROM cart_items WHERE cart_id = $1", cart_id)
            .execute(&mut *tx)
            .await?;
    }
    for (product_id, quantity) in lines {
        if quantity == 0 {
            sqlx::query!(
                "DELETE FROM cart_items WHERE cart_id = $1 AND product_id = $2",
                cart_id,
                product_id
            )
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query!(
                r#"INSERT INTO cart_items (cart_id, product_id, quantity) VALUES ($1, $2, $3)
                   ON CONFLICT (cart_id, product_id) DO UPDATE SET quantity = EXCLUDED.quantity"#,
                cart_id,
                product_id,
                quantity
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM cart_items WHERE cart_id = $1"#,
        cart_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if count as usize > max_lines {
        return Err(crate::validation::Violations::one(
            "products",
            format!("at most {max_lines} products"),
        )
        .into());
    }
    sqlx::query!(
        "UPDATE carts SET updated_at = $2 WHERE id = $1",
        cart_id,
        now
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Creates a new active cart for `user_id` (the previous one stays readable, inactive).
pub async fn create_cart(
    db: &PgPool,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<CartRow, OrderError> {
    let mut tx = db.begin().await?;
    sqlx::query!(
        "UPDATE carts SET is_active = false WHERE user_id = $1 AND is_active AND deleted_at IS NULL",
        user_id
    )
    .execute(&mut *tx)
    .await?;
    let cart = sqlx::query_as!(
        CartRow,
        "INSERT INTO carts (user_id, created_at, updated_at) VALUES ($1, $2, $2) RETURNING id, user_id, deleted_at",
        user_id,
        now
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(cart)
}

/// Soft-deletes a cart.
pub async fn delete_cart(db: &PgPool, id: i64, now: DateTime<Utc>) -> Result<(), OrderError> {
    sqlx::query!(
        "UPDATE carts SET deleted_at = $2, is_active = false WHERE id = $1",
        id,
        now
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Empties the user's active cart (after an order), inside the order's transaction.
pub async fn empty_active_cart(tx: &mut PgConnection, user_id: i64) -> Result<(), OrderError> {
    sqlx::query!(
        "DELETE FROM cart_items WHERE cart_id IN (SELECT id FROM carts WHERE user_id = $1 AND is_active AND deleted_at IS NULL)",
        user_id
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A cart's lines as (product id, quantity), in the order they were added.
pub async fn cart_lines(db: &PgPool, cart_id: i64) -> Result<Vec<(i64, i32)>, OrderError> {
    Ok(sqlx::query!(
        "SELECT product_id, quantity FROM cart_items WHERE cart_id = $1 ORDER BY position",
        cart_id
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|r| (r.product_id, r.quantity))
    .collect())
}

/// The coupon code applied to a cart, if any.
pub async fn cart_coupon(db: &PgPool, cart_id: i64) -> Result<Option<String>, OrderError> {
    Ok(
        sqlx::query_scalar!("SELECT coupon_code FROM carts WHERE id = $1", cart_id)
            .fetch_optional(db)
            .await?
            .flatten(),
    )
}

/// Applies (`Some`) or removes (`None`) a cart's coupon code.
pub async fn set_cart_coupon(
    db: &PgPool,
    cart_id: i64,
    code: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    sqlx::query!(
        "UPDATE carts SET coupon_code = $2, updated_at = $3 WHERE id = $1",
        cart_id,
        code,
        now
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The coupon applied to the user's active cart, if any (what POST /orders redeems when
/// the order names none).
pub async fn active_cart_coupon(db: &PgPool, user_id: i64) -> Result<Option<String>, OrderError> {
    Ok(sqlx::query_scalar!(
        "SELECT coupon_code FROM carts WHERE user_id = $1 AND is_active AND deleted_at IS NULL",
        user_id
    )
    .fetch_optional(db)
    .await?
    .flatten())
}

/// Takes the coupon off the user's active cart (inside the order that redeemed it).
pub async fn clear_active_cart_coupon(
    tx: &mut PgConnection,
    user_id: i64,
) -> Result<(), OrderError> {
    sqlx::query!(
        "UPDATE carts SET coupon_code = NULL WHERE user_id = $1 AND is_active AND deleted_at IS NULL AND coupon_code IS NOT NULL",
        user_id
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

// Coupons (coupons, coupon_redemptions).

/// A coupon row as stored.
struct CouponRow {
    id: i64,
    code: String,
    kind: String,
    percent_off: Option<i32>,
    amount_off_cents: Option<i64>,
    min_subtotal_cents: Option<i64>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    usage_limit: Option<i32>,
    per_user_limit: Option<i32>,
    used: i32,
    product_ids: Vec<i64>,
    categories: Vec<String>,
    active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl CouponRow {
    fn parse(self) -> Result<Coupon, OrderError> {
        let kind = CouponKind::from_columns(&self.kind, self.percent_off, self.amount_off_cents)
            .ok_or_else(|| OrderError::Corrupt {
                row: format!("coupon {}", self.id),
                source: Corrupt {
                    kind: "coupon kind",
                    value: self.kind.clone(),
                },
            })?;
        Ok(Coupon {
            id: self.id,
            code: self.code,
            terms: CouponTerms {
                kind,
                min_subtotal_cents: self.min_subtotal_cents,
                starts_at: self.starts_at,
                ends_at: self.ends_at,
                usage_limit: self.usage_limit,
                per_user_limit: self.per_user_limit,
                product_ids: self.product_ids,
                categories: self.categories,
                active: self.active,
            },
            used: self.used,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Inserts a coupon; `None` when its code is taken.
pub async fn insert_coupon(
    db: &PgPool,
    code: &str,
    t: &CouponTerms,
    now: DateTime<Utc>,
) -> Result<Option<Coupon>, OrderError> {
    sqlx::query_as!(
        CouponRow,
        r#"INSERT INTO coupons (code, kind, percent_off, amount_off_cents, min_subtotal_cents, starts_at,
                               ends_at, usage_limit, per_user_limit, product_ids, categories, active,
                               created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
           ON CONFLICT (code) DO NOTHING
           RETURNING id, code, kind, percent_off, amount_off_cents, min_subtotal_cents, starts_at, ends_at,
                     usage_limit, per_user_limit, used, product_ids, categories, active, created_at, updated_at"#,
        code,
        t.kind.as_str(),
        t.kind.percent_off(),
        t.kind.amount_off_cents(),
        t.min_subtotal_cents,
        t.starts_at,
        t.ends_at,
        t.usage_limit,
        t.per_user_limit,
        &t.product_ids,
        &t.categories,
        t.active,
        now
    )
    .fetch_optional(db)
    .await?
    .map(CouponRow::parse)
    .transpose()
}

/// Replaces a coupon's terms; `None` when there is no such code.
pub async fn update_coupon(
    db: &PgPool,
    code: &str,
    t: &CouponTerms,
    now: DateTime<Utc>,
) -> Result<Option<Coupon>, OrderError> {
    sqlx::query_as!(
        CouponRow,
        r#"UPDATE coupons SET kind = $2, percent_off = $3, amount_off_cents = $4, min_subtotal_cents = $5,
                  starts_at = $6, ends_at = $7, usage_limit = $8, per_user_limit = $9, product_ids = $10,
                  categories = $11, active = $12, updated_at = $13
           WHERE code = $1
           RETURNING id, code, kind, percent_off, amount_off_cents, min_subtotal_cents, starts_at, ends_at,
                     usage_limit, per_user_limit, used, product_ids, categories, active, created_at, updated_at"#,
        code,
        t.kind.as_str(),
        t.kind.percent_off(),
        t.kind.amount_off_cents(),
        t.min_subtotal_cents,
        t.starts_at,
        t.ends_at,
        t.usage_limit,
        t.per_user_limit,
        &t.product_ids,
        &t.categories,
        t.active,
        now
    )
    .fetch_optional(db)
    .await?
    .map(CouponRow::parse)
    .transpose()
}

/// Deletes a coupon (its redemptions with it); whether it existed.
pub async fn delete_coupon(db: &PgPool, code: &str) -> Result<bool, OrderError> {
    let done = sqlx::query!("DELETE FROM coupons WHERE code = $1", code)
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// A coupon by its (upper-case) code.
pub async fn find_coupon(db: &PgPool, code: &str) -> Result<Option<Coupon>, OrderError> {
    sqlx::query_as!(
        CouponRow,
        r#"SELECT id, code, kind, percent_off, amount_off_cents, min_subtotal_cents, starts_at, ends_at,
                  usage_limit, per_user_limit, used, product_ids, categories, active, created_at, updated_at
           FROM coupons WHERE code = $1"#,
        code
    )
    .fetch_optional(db)
    .await?
    .map(CouponRow::parse)
    .transpose()
}

/// A page of coupons, newest first, and their number.
pub async fn list_coupons(
    db: &PgPool,
    skip: i64,
    limit: i64,
) -> Result<(Vec<Coupon>, i64), OrderError> {
    let total = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM coupons"#)
        .fetch_one(db)
        .await?;
    let coupons = sqlx::query_as!(
        CouponRow,
        r#"SELECT id, code, kind, percent_off, amount_off_cents, min_subtotal_cents, starts_at, ends_at,
                  usage_limit, per_user_limit, used, product_ids, categories, active, created_at, updated_at
           FROM coupons ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT $2"#,
        skip,
        limit
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(CouponRow::parse)
    .collect::<Result<_, _>>()?;
    Ok((coupons, total))
}

/// How many live redemptions of the coupon the user has.
pub async fn redemptions_by(
    db: impl sqlx::PgExecutor<'_>,
    coupon_id: i64,
    user_id: i64,
) -> Result<i64, OrderError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM coupon_redemptions WHERE coupon_id = $1 AND user_id = $2"#,
        coupon_id,
        user_id
    )
    .fetch_one(db)
    .await?)
}

/// Takes one use of the coupon in the order's transaction, if its total limit allows:
/// one conditional UPDATE, so concurrent orders (on any instance) never take more than the
/// limit; its row lock, held to COMMIT, also serializes the per-user count that follows.
/// `None` when the limit is reached (or the coupon is gone or disabled meanwhile).
pub async fn take_coupon_use(
    tx: &mut PgConnection,
    coupon_id: i64,
    now: DateTime<Utc>,
) -> Result<Option<Option<i32>>, OrderError> {
    Ok(sqlx::query_scalar!(
        r#"UPDATE coupons SET used = used + 1, updated_at = $2
           WHERE id = $1 AND active AND (usage_limit IS NULL OR used < usage_limit)
           RETURNING per_user_limit"#,
        coupon_id,
        now
    )
    .fetch_optional(&mut *tx)
    .await?)
}

/// Records the order's redemption (after [`take_coupon_use`]).
pub async fn insert_redemption(
    tx: &mut PgConnection,
    order_id: &str,
    coupon_id: i64,
    user_id: i64,
    discount_cents: i64,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    sqlx::query!(
        r#"INSERT INTO coupon_redemptions (order_id, coupon_id, user_id, discount_cents, redeemed_at)
           VALUES ($1, $2, $3, $4, $5)"#,
        order_id,
        coupon_id,
        user_id,
        discount_cents,
        now
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Gives back the redemption of a cancelled order, in the cancellation's transaction: its
/// row goes and the coupon's count comes down (nothing when the order redeemed none, or
/// when it was given back already).
pub async fn release_redemption(tx: &mut PgConnection, order_id: &str) -> Result<(), OrderError> {
    sqlx::query!(
        r#"WITH gone AS (DELETE FROM coupon_redemptions WHERE order_id = $1 RETURNING coupon_id)
           UPDATE coupons SET used = used - 1 WHERE id IN (SELECT coupon_id FROM gone) AND used > 0"#,
        order_id
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

// Shipping (shipping_methods, shipping_rates) and tax (tax_rates).

/// Every shipping method, in the order they are offered.
pub async fn shipping_methods(db: &PgPool) -> Result<Vec<ShippingMethod>, OrderError> {
    Ok(sqlx::query_as!(
        ShippingMethod,
        "SELECT code, name, free_over_threshold FROM shipping_methods ORDER BY position, code"
    )
    .fetch_all(db)
    .await?)
}

/// The rates of every method to `country` (any state).
pub async fn shipping_rates(db: &PgPool, country: &str) -> Result<Vec<ZoneRate>, OrderError> {
    Ok(sqlx::query_as!(
        ZoneRate,
        r#"SELECT method, country, state, base_cents, per_kg_cents, min_days, max_days
           FROM shipping_rates WHERE country = $1"#,
        country
    )
    .fetch_all(db)
    .await?)
}

/// The tax rate of a state of `country` (its own row, else the country's), if the table has one.
pub async fn tax_rate(
    db: &PgPool,
    country: &str,
    state: &str,
) -> Result<Option<TaxRate>, OrderError> {
    let ppm = sqlx::query_scalar!(
        r#"SELECT rate_ppm FROM tax_rates WHERE country = $1 AND state IN ($2, '')
           ORDER BY state DESC LIMIT 1"#,
        country,
        state
    )
    .fetch_optional(db)
    .await?;
    ppm.map(|ppm| {
        TaxRate::from_ppm(ppm.into()).ok_or_else(|| OrderError::Corrupt {
            row: format!("tax rate {country}/{state}"),
            source: Corrupt {
                kind: "tax rate",
                value: ppm.to_string(),
            },
        })
    })
    .transpose()
}

/// Every tax rate as (country, state, rate), by country then state.
pub async fn tax_rates(db: &PgPool) -> Result<Vec<(String, String, TaxRate)>, OrderError> {
    sqlx::query!("SELECT country, state, rate_ppm FROM tax_rates ORDER BY country, state")
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|r| {
            let rate = TaxRate::from_ppm(r.rate_ppm.into()).ok_or_else(|| OrderError::Corrupt {
                row: format!("tax rate {}/{}", r.country, r.state),
                source: Corrupt {
                    kind: "tax rate",
                    value: r.rate_ppm.to_string(),
                },
            })?;
            Ok((r.country, r.state, rate))
        })
        .collect()
}

/// Sets the rate of a country ('' state) or a state.
pub async fn set_tax_rate(
    db: &PgPool,
    country: &str,
    state: &str,
    rate: TaxRate,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    sqlx::query!(
        r#"INSERT INTO tax_rates (country, state, rate_ppm, updated_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (country, state) DO UPDATE SET rate_ppm = EXCLUDED.rate_ppm, updated_at = EXCLUDED.updated_at"#,
        country,
        state,
        rate.ppm() as i32,
        now
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Order `id` as its domain events carry it, read in the transaction that changes it (so the
/// event tells the state that commits).
pub async fn order_event(
    tx: &mut PgConnection,
    id: &str,
) -> Result<Option<crate::events::OrderEvent>, OrderError> {
    let Some(o) = sqlx::query!(
        r#"SELECT user_id, status, subtotal_cents, discount_cents, shipping_cents, tax_cents,
                  total_cents, coupon_code, carrier, tracking_number, cancel_reason
           FROM orders WHERE id = $1"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let items = sqlx::query!(
        r#"SELECT product_id, title, quantity, price_cents FROM order_items
           WHERE order_id = $1 ORDER BY position"#,
        id
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|i| crate::events::OrderLine {
        product_id: i.product_id,
        title: i.title,
        quantity: i.quantity,
        price_cents: i.price_cents,
    })
    .collect();
    let tracking = match (o.carrier, o.tracking_number) {
        (Some(carrier), Some(number)) if !number.is_empty() => {
            let url = super::domain::tracking_url(&carrier, &number);
            Some(crate::events::TrackingInfo {
                tracking_url: (!url.is_empty()).then_some(url),
                carrier,
                tracking_number: number,
            })
        }
        _ => None,
    };
    Ok(Some(crate::events::OrderEvent {
        order_id: id.to_owned(),
        user_id: o.user_id,
        status: o.status,
        items,
        subtotal_cents: o.subtotal_cents,
        discount_cents: o.discount_cents,
        shipping_cents: o.shipping_cents,
        tax_cents: o.tax_cents,
        total_cents: o.total_cents,
        coupon_code: o.coupon_code,
        tracking,
        reason: o.cancel_reason,
    }))
}

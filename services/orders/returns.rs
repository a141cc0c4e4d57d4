//! Returns (POST /orders/:id/return): the buyer asks to send back all or some
//! units of a delivered order, within the return window after delivery.
//!
//! Checked in this order, so each refusal names the first thing wrong:
//! the request's shape (400), the order is the caller's (404, or 403 for an
//! admin, who may see it but does not buy it), it is delivered (422
//! RETURN_NOT_ALLOWED), no return is open (409 RETURN_EXISTS), the window after
//! the delivery recorded in the history has not passed (422
//! RETURN_WINDOW_EXPIRED), and the items are lines of the order in quantities
//! it had (400). The return and a history entry are written in one
//! transaction, under the order's row lock; the partial unique index of
//! `order_returns` keeps a single open return even so.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;

use super::domain::OrderStatus;
use super::error::OrderError;
use crate::proto::ecom::orders::v1 as pb;

/// Longest reason, in characters.
pub const MAX_REASON: usize = 500;

/// The checked reason: trimmed, 1..=500 characters.
pub fn reason(raw: &str) -> Result<String, OrderError> {
    let reason = raw.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(OrderError::Invalid(vec![(
            "reason".into(),
            format!("must be 1 to {MAX_REASON} characters"),
        )]));
    }
    Ok(reason.to_owned())
}

/// The units to return per product: the given items, or every line in full.
/// Each item must name a line of the order once, with 1..=ordered units;
/// every violation is reported with its field (`items[2].quantity`).
pub fn items(
    requested: &[pb::LineItem],
    ordered: &[(i64, i32)],
) -> Result<Vec<(i64, i32)>, OrderError> {
    let mut per_product: BTreeMap<i64, i32> = BTreeMap::new();
    for (id, quantity) in ordered {
        *per_product.entry(*id).or_default() += quantity;
    }
    if requested.is_empty() {
        return Ok(per_product.into_iter().collect());
    }
    let mut violations = Vec::new();
    let mut seen = BTreeMap::new();
    for (i, item) in requested.iter().enumerate() {
        match per_product.get(&item.id) {
            None => violations.push((
                format!("items[{i}].id"),
                format!("product {} is not in this order", item.id),
            )),
            Some(_) if seen.insert(item.id, i).is_some() => violations.push((
                format!("items[{i}].id"),
                format!("product {} is listed twice", item.id),
            )),
            Some(&max) if !(1..=max).contains(&item.quantity) => violations.push((
                format!("items[{i}].quantity"),
                format!("must be between 1 and {max}"),
            )),
            Some(_) => {}
        }
    }
    if !violations.is_empty() {
        return Err(OrderError::Invalid(violations));
    }
    Ok(requested.iter().map(|i| (i.id, i.quantity)).collect())
}

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
pub async fn open_exists(tx: &mut PgConnection, order_id: &str) -> Result<bool, OrderError> {
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

/// Records a requested return and its history entry (the order stays
/// `delivered`: a return is not a fulfilment status).
pub async fn insert(
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
    super::store::add_history(
        &mut *tx,
        order_id,
        OrderStatus::Delivered,
        &format!("Return requested: {reason}"),
        by,
        now,
    )
    .await?;
    sqlx::query!(
        "UPDATE orders SET updated_at = $2 WHERE id = $1",
        order_id,
        now
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The latest return of an order, for the order's `return` field.
pub async fn latest(
    db: &sqlx::PgPool,
    order_id: &str,
) -> Result<Option<pb::ReturnRequest>, OrderError> {
    let Some(r) = sqlx::query!(
        r#"SELECT status, reason, items, requested_at, updated_at FROM order_returns
           WHERE order_id = $1 ORDER BY id DESC LIMIT 1"#,
        order_id
    )
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    let items = r
        .items
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| pb::LineItem {
                    id: i["id"].as_i64().unwrap_or_default(),
                    quantity: i["quantity"]
                        .as_i64()
                        .and_then(|q| i32::try_from(q).ok())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let status = match r.status.as_str() {
        "approved" => pb::ReturnStatus::Approved,
        "rejected" => pb::ReturnStatus::Rejected,
        "completed" => pb::ReturnStatus::Completed,
        _ => pb::ReturnStatus::Requested,
    };
    Ok(Some(pb::ReturnRequest {
        status: status as i32,
        reason: r.reason,
        items,
        requested_at: Some(super::store::timestamp(r.requested_at)),
        updated_at: Some(super::store::timestamp(r.updated_at)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: i64, quantity: i32) -> pb::LineItem {
        pb::LineItem { id, quantity }
    }

    #[test]
    fn no_items_means_the_whole_order() {
        assert_eq!(items(&[], &[(7, 2), (9, 1)]).unwrap(), vec![(7, 2), (9, 1)]);
    }

    #[test]
    fn items_must_be_lines_in_ordered_quantities() {
        let ordered = [(7, 2), (9, 1)];
        assert_eq!(items(&[item(7, 1)], &ordered).unwrap(), vec![(7, 1)]);
        let Err(OrderError::Invalid(v)) =
            items(&[item(7, 3), item(8, 1), item(9, 0), item(7, 1)], &ordered)
        else {
            panic!("invalid items accepted");
        };
        let fields: Vec<&str> = v.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "items[0].quantity",
                "items[1].id",
                "items[2].quantity",
                "items[3].id"
            ]
        );
        assert_eq!(v[0].1, "must be between 1 and 2");
    }

    #[test]
    fn reasons_are_required_and_bounded() {
        assert!(reason("  ").is_err());
        assert!(reason(&"x".repeat(501)).is_err());
        assert_eq!(reason(" Too small ").unwrap(), "Too small");
    }
}

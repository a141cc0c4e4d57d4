//! `OrdersService` over gRPC: convert the request into domain values,
//! authorize, call the catalog and the store, convert back.

use chrono::{DateTime, SubsecRound as _, Utc};
use prost::Message as _;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use super::carts;
use super::catalog::Catalog;
use super::domain::{NewOrder, OrderStatus, PricedLine, PricingRules};
use super::error::OrderError;
use super::idempotency::{self, Claim};
use super::invoice::{self, Buyer, Seller};
use super::mail;
use super::payments::Payments;
use super::returns;
use super::store::{self, PlacedOrder, timestamp};
use crate::authn::{self, Principal};
use crate::clock::Clock;
use crate::proto::ecom::catalog::v1::ReservationState;
use crate::proto::ecom::orders::v1 as pb;
use crate::proto::ecom::payments::v1::PaymentStatus as IntentStatus;
use crate::proto::google::api::HttpBody;

/// Default and largest page of the order lists.
const DEFAULT_LIMIT: i32 = 10;
const MAX_LIMIT: i32 = 100;
/// The idempotency scope of POST /orders.
const CREATE_SCOPE: &str = "orders.create";
/// How long a request waits to learn whether its order was stored after the answer
/// to COMMIT was lost: long enough to ride out a PostgreSQL restart, shorter than
/// the edge's default deadline (10 s).
const IN_DOUBT_WAIT: std::time::Duration = std::time::Duration::from_secs(8);

/// Why an order was not (surely) recorded.
enum NotRecorded {
    /// The transaction failed before or at COMMIT: the order does not exist.
    Failed(OrderError),
    /// The connection broke while COMMIT was under way: the order may exist.
    InDoubt(OrderError),
}

/// The carriers the shop ships with, and their tracking pages.
const CARRIERS: &[(&str, &str)] = &[
    ("UPS", "https://www.ups.com/track?tracknum="),
    ("FedEx", "https://www.fedex.com/fedextrack/?trknbr="),
    (
        "USPS",
        "https://tools.usps.com/go/TrackConfirmAction?tLabels=",
    ),
    ("DHL", "https://www.dhl.com/en/express/tracking.html?AWB="),
];
/// Days from shipping to the estimated delivery.
const DELIVERY_DAYS: i64 = 3;

/// Settings of invoices and returns.
#[derive(Clone, Debug)]
pub struct AfterSales {
    /// Who the invoices name as the seller (SELLER_NAME, SELLER_ADDRESS).
    pub seller: Seller,
    /// Days after delivery during which a return may be requested (RETURN_WINDOW_DAYS).
    pub return_window_days: u32,
}

impl Default for AfterSales {
    fn default() -> Self {
        AfterSales {
            seller: Seller {
                name: "ecom".to_owned(),
                address: vec!["123 Commerce Street".to_owned()],
            },
            return_window_days: 30,
        }
    }
}

/// The orders service's gRPC implementation. Cheap to clone.
#[derive(Clone)]
pub struct OrdersService {
    db: PgPool,
    catalog: Catalog,
    payments: Payments,
    clock: Clock,
    pricing: PricingRules,
    after_sales: AfterSales,
}

impl OrdersService {
    /// A service over `db`, pricing with `pricing`, reserving stock through
    /// `catalog`, checking and refunding payment intents through `payments`.
    pub fn new(
        db: PgPool,
        catalog: Catalog,
        payments: Payments,
        clock: Clock,
        pricing: PricingRules,
    ) -> Self {
        OrdersService {
            db,
            catalog,
            payments,
            clock,
            pricing,
            after_sales: AfterSales::default(),
        }
    }

    /// The same service with these invoice and return settings.
    pub fn with_after_sales(mut self, after_sales: AfterSales) -> Self {
        self.after_sales = after_sales;
        self
    }

    /// Now, to the microsecond PostgreSQL keeps, so a stored time reads back equal.
    fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(6)
    }

    /// An order the caller may see: their own, or any for an admin; else 404.
    async fn visible_order(&self, caller: &Principal, id: &str) -> Result<pb::Order, OrderError> {
        let order = store::load_order(&self.db, id)
            .await?
            .ok_or(OrderError::NotFound)?;
        if !caller.may_access(order.user_id) {
            return Err(OrderError::NotFound);
        }
        Ok(order)
    }

    /// Prices, reserves and records an order (contract 6.2.1); see the module doc of
    /// `orders` for the order of the steps and what happens when one fails.
    async fn place_order(
        &self,
        user_id: i64,
        order: NewOrder,
        key: Option<&idempotency::Key>,
    ) -> Result<pb::CreateOrderResponse, OrderError> {
        let products = self.catalog.pricing(order.lines.ids()).await?;
        let lines: Vec<PricedLine> = order
            .lines
            .iter()
            .map(|(id, quantity)| {
                let p = products
                    .iter()
                    .find(|p| p.id == id)
                    .expect("pricing answers every id or fails");
                PricedLine::new(
                    id,
                    p.title.clone(),
                    p.price_cents,
                    p.discount_basis_points,
                    quantity,
                    p.thumbnail.clone(),
                )
            })
            .collect();
        let totals = self.pricing.totals(&lines);
        // The intent that pays it: the caller's, unused, of the order's total.
        let mut paid = false;
        if let Some(intent) = &order.payment_intent_id {
            let found = self.payments.intent(intent.clone(), user_id).await?;
            // Orders are priced in US dollars.
            if found.amount_cents != totals.total_cents || found.currency != "usd" {
                return Err(OrderError::AmountMismatch {
                    order_cents: totals.total_cents,
                    intent_cents: found.amount_cents,
                });
            }
            // A refunded intent paid something once: it pays nothing more.
            if found.refunded || store::intent_in_use(&self.db, intent).await? {
                return Err(OrderError::IntentInUse);
            }
            paid = found.status() == IntentStatus::Succeeded && !found.refunded;
        }
        let now = self.now();
        let id = store::next_order_id(&self.db, now.date_naive()).await?;
        self.catalog
            .reserve(id.clone(), order.lines.iter().collect())
            .await?;

        let placed = PlacedOrder {
            id: &id,
            user_id,
            lines: &lines,
            totals,
            shipping_address: &order.shipping_address,
            billing_address: &order.billing_address,
            payment_method: &order.payment_method,
            payment_intent_id: order.payment_intent_id.as_deref(),
            now,
        };
        let mut wire = placed_to_wire(&placed);
        if paid {
            wire.status = pb::OrderStatus::Processing as i32;
            wire.payment_status = pb::PaymentState::Paid as i32;
            wire.history.push(pb::StatusChange {
                status: pb::OrderStatus::Processing as i32,
                note: "Payment received".to_owned(),
                by_user_id: 0,
                at: Some(timestamp(now)),
            });
        }
        let response = pb::CreateOrderResponse { order: Some(wire) };
        match self
            .record_order(&placed, paid, key, &response.encode_to_vec())
            .await
        {
            Ok(()) => {}
            Err(NotRecorded::Failed(err)) => {
                self.release_unrecorded(&id).await;
                return Err(err);
            }
            Err(NotRecorded::InDoubt(err)) => match self.settle_in_doubt(&id).await {
                Some(true) => {
                    tracing::warn!(order = %id, "the answer to COMMIT was lost, but the order is stored")
                }
                Some(false) => {
                    self.release_unrecorded(&id).await;
                    return Err(err);
                }
                // Unknown: the reservation stays. If the order exists the reconciler
                // commits it; if not, the sweeper releases it at expiry.
                None => {
                    tracing::warn!(order = %id, "order in doubt: the reconciler or the sweeper settles its stock");
                    return Err(err);
                }
            },
        }
        self.confirm_stock(&id).await;
        tracing::info!(order = %id, user_id, total_cents = totals.total_cents, "order placed");
        if let (Some(intent), false) = (&order.payment_intent_id, paid) {
            // Confirmed while this order was being placed? Its RecordPayment may
            // have come before the order existed: look again, now that it does.
            self.sync_payment(intent, user_id).await;
        }
        Ok(response)
    }

    /// Inserts the order and stores the idempotent response, in one transaction.
    async fn record_order(
        &self,
        placed: &PlacedOrder<'_>,
        paid: bool,
        key: Option<&idempotency::Key>,
        response: &[u8],
    ) -> Result<(), NotRecorded> {
        let tx = self
            .write_order(placed, paid, key, response)
            .await
            .map_err(NotRecorded::Failed)?;
        match tx.commit().await {
            Ok(()) => Ok(()),
            // PostgreSQL answered, and refused: nothing was written.
            Err(err) if err.as_database_error().is_some() => Err(NotRecorded::Failed(err.into())),
            // The connection broke around COMMIT: it may have been applied.
            Err(err) => Err(NotRecorded::InDoubt(err.into())),
        }
    }

    /// The writes of [`Self::record_order`], left uncommitted.
    async fn write_order(
        &self,
        placed: &PlacedOrder<'_>,
        paid: bool,
        key: Option<&idempotency::Key>,
        response: &[u8],
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, OrderError> {
        let mut tx = self.db.begin().await?;
        // Held until COMMIT ends, so that `settle_in_doubt` cannot read around it.
        store::lock_order_id(&mut tx, placed.id).await?;
        store::insert_order(&mut tx, placed).await?;
        if paid {
            let view = store::PaymentView {
                id: placed.id.to_owned(),
                user_id: placed.user_id,
                status: OrderStatus::Pending,
                total_cents: placed.totals.total_cents,
                payment_status: "unpaid".to_owned(),
                payment_intent_id: placed.payment_intent_id.map(str::to_owned),
            };
            store::apply_payment(&mut tx, &view, true, false, placed.now).await?;
        }
        // The confirmation mail is committed with the order, or not at all.
        mail::queue_confirmation(&mut tx, placed).await?;
        // A placed order empties the buyer's active cart.
        carts::empty_active_cart(&mut tx, placed.user_id).await?;
        if let Some(key) = key {
            idempotency::finish(&mut tx, key, response).await?;
        }
        Ok(tx)
    }

    /// After a COMMIT whose answer was lost, asks PostgreSQL whether order `id` is
    /// stored, retrying while it is unreachable, for at most [`IN_DOUBT_WAIT`]; `None`
    /// if it could not tell by then.
    async fn settle_in_doubt(&self, id: &str) -> Option<bool> {
        let deadline = tokio::time::Instant::now() + IN_DOUBT_WAIT;
        loop {
            match store::order_stored(&self.db, id).await {
                Ok(stored) => return Some(stored),
                Err(err) if tokio::time::Instant::now() >= deadline => {
                    tracing::warn!(order = %id, error = %err, "could not tell whether the order is stored");
                    return None;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
            }
        }
    }

    /// Gives back now the stock of an order that does not exist (the sweeper would,
    /// at the reservation's expiry).
    async fn release_unrecorded(&self, id: &str) {
        if let Err(err) = self.catalog.release(id.to_owned()).await {
            tracing::warn!(order = %id, error = %err, "releasing the reservation of a failed order");
        }
    }

    /// Reads the intent `intent` again and applies its state to the order it
    /// pays; a failure is logged (the provider's webhook tells it again).
    async fn sync_payment(&self, intent: &str, user_id: i64) {
        let result = async {
            let found = self.payments.intent(intent.to_owned(), user_id).await?;
            let succeeded = found.status() == IntentStatus::Succeeded;
            if succeeded || found.refunded {
                let mut tx = self.db.begin().await?;
                if let Some(order) = store::lock_payment_view(&mut tx, intent, None).await? {
                    store::apply_payment(&mut tx, &order, succeeded, found.refunded, self.now())
                        .await?;
                }
                tx.commit().await?;
            }
            Ok::<_, OrderError>(())
        }
        .await;
        if let Err(err) = result {
            tracing::warn!(intent, error = %err, "checking the intent of a new order");
        }
    }

    /// Commits an order's reservation; on failure the reconciler retries it.
    async fn confirm_stock(&self, id: &str) {
        match self.catalog.commit(id.to_owned()).await {
            Ok(ReservationState::Committed) => {
                if let Err(err) = store::mark_stock_committed(&self.db, id).await {
                    tracing::warn!(order = %id, error = %err, "recording the stock commit");
                }
            }
            Ok(state) => tracing::warn!(order = %id, ?state, "reservation not committed"),
            Err(err) => {
                tracing::warn!(order = %id, error = %err, "committing the reservation; will retry")
            }
        }
    }

    /// The reconciler: commits the reservations of orders a crash left
    /// unconfirmed; cancels the orders whose reservation expired meanwhile.
    pub async fn reconcile(&self) -> anyhow::Result<()> {
        let before = self.clock.now() - chrono::Duration::seconds(30);
        for id in store::uncommitted_orders(&self.db, before).await? {
            match self.catalog.commit(id.clone()).await {
                Ok(ReservationState::Committed) => {
                    store::mark_stock_committed(&self.db, &id).await?
                }
                Ok(_) => {
                    // The stock went back to the shelf: the order cannot be served.
                    let now = self.now();
                    let mut tx = self.db.begin().await?;
                    if let Some((_, status, _)) = store::lock_order(&mut tx, &id).await?
                        && status.cancellable()
                    {
                        let reason = "Stock reservation expired";
                        store::set_status(
                            &mut tx,
                            &id,
                            OrderStatus::Cancelled,
                            None,
                            None,
                            Some(reason),
                            now,
                        )
                        .await?;
                        store::add_history(&mut tx, &id, OrderStatus::Cancelled, reason, 0, now)
                            .await?;
                    }
                    tx.commit().await?;
                    store::mark_stock_committed(&self.db, &id).await?;
                    tracing::warn!(order = %id, "order cancelled: its reservation expired before the commit");
                }
                Err(err) => {
                    tracing::warn!(order = %id, error = %err, "reconciling the reservation")
                }
            }
        }
        Ok(())
    }
}

/// The wire form of an order just placed (what GET /orders/:id then reads).
fn placed_to_wire(o: &PlacedOrder<'_>) -> pb::Order {
    let money = crate::money::to_wire;
    pb::Order {
        id: o.id.to_owned(),
        user_id: o.user_id,
        products: o.lines.iter().map(store::line_to_wire).collect(),
        subtotal: money(o.totals.subtotal_cents),
        tax: money(o.totals.tax_cents),
        shipping: money(o.totals.shipping_cents),
        total: money(o.totals.total_cents),
        status: pb::OrderStatus::Pending as i32,
        shipping_address: Some(o.shipping_address.clone()),
        billing_address: Some(o.billing_address.clone()),
        payment_method: o.payment_method.to_owned(),
        payment_intent_id: o.payment_intent_id.map(str::to_owned),
        tracking_number: None,
        carrier: None,
        cancel_reason: None,
        cancelled_at: None,
        created_at: Some(timestamp(o.now)),
        updated_at: Some(timestamp(o.now)),
        payment_status: pb::PaymentState::Unpaid as i32,
        history: vec![pb::StatusChange {
            status: pb::OrderStatus::Pending as i32,
            note: "Order placed".to_owned(),
            by_user_id: o.user_id,
            at: Some(timestamp(o.now)),
        }],
        notes: Vec::new(),
        return_request: None,
    }
}

/// The carrier's tracking page of a shipment; empty for an unknown carrier or no number.
fn tracking_url(carrier: &str, tracking_number: &str) -> String {
    CARRIERS
        .iter()
        .find(|(name, _)| *name == carrier)
        .filter(|_| !tracking_number.is_empty())
        .map(|(_, base)| format!("{base}{tracking_number}"))
        .unwrap_or_default()
}

/// skip and limit of a list request, checked.
fn page(skip: i32, limit: i32) -> Result<(i32, i32), OrderError> {
    if skip < 0 {
        return Err(OrderError::Invalid(vec![(
            "skip".into(),
            "must not be negative".into(),
        )]));
    }
    let limit = match limit {
        0 => DEFAULT_LIMIT,
        l if (1..=MAX_LIMIT).contains(&l) => l,
        _ => {
            return Err(OrderError::Invalid(vec![(
                "limit".into(),
                format!("must be between 1 and {MAX_LIMIT}"),
            )]));
        }
    };
    Ok((skip, limit))
}

fn datetime(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
}

fn status_name(order: &pb::Order) -> &'static str {
    OrderStatus::from_wire(order.status)
        .map(OrderStatus::as_str)
        .unwrap_or("unknown")
}

#[tonic::async_trait]
impl pb::orders_service_server::OrdersService for OrdersService {
    /// Contract 6.2.1: prices on the server, reserves stock through the
    /// catalog (all lines or none), honours Idempotency-Key.
    #[tracing::instrument(skip_all)]
    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::CreateOrderResponse>, Status> {
        let user_id = authn::require_user(&request)?.user_id;
        let order = NewOrder::try_from(request.get_ref()).map_err(OrderError::Invalid)?;
        let body = request.get_ref().encode_to_vec();
        let key = idempotency::key_of(&request, user_id, CREATE_SCOPE, &body)?;
        if let Some(key) = &key {
            match idempotency::claim(&self.db, key, self.now()).await? {
                Claim::Replay(bytes) => {
                    let replayed =
                        pb::CreateOrderResponse::decode(bytes.as_slice()).map_err(|e| {
                            OrderError::Unexpected(
                                anyhow::Error::new(e).context("decoding a stored response"),
                            )
                        })?;
                    let mut response = Response::new(replayed);
                    idempotency::mark_replayed(&mut response);
                    return Ok(response);
                }
                Claim::Owner => {}
            }
        }
        match self.place_order(user_id, order, key.as_ref()).await {
            Ok(placed) => Ok(Response::new(placed)),
            Err(err) => {
                if let Some(key) = &key {
                    idempotency::abandon(&self.db, key).await;
                }
                Err(err.into())
            }
        }
    }

    /// Contract 6.2.2: the caller's orders, newest first.
    #[tracing::instrument(skip_all)]
    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let user_id = authn::require_user(&request)?.user_id;
        let (skip, limit) = page(request.get_ref().skip, request.get_ref().limit)?;
        let (products, total) =
            store::list_user_orders(&self.db, user_id, skip.into(), limit.into()).await?;
        Ok(Response::new(pb::ListOrdersResponse {
            products,
            total: total.try_into().unwrap_or(i32::MAX),
            skip,
            limit,
        }))
    }

    /// All orders with filters; admin only.
    #[tracing::instrument(skip_all)]
    async fn list_all_orders(
        &self,
        request: Request<pb::ListAllOrdersRequest>,
    ) -> Result<Response<pb::ListAllOrdersResponse>, Status> {
        authn::require_admin(&request)?;
        let r = request.get_ref();
        let (skip, limit) = page(r.skip, r.limit)?;
        let query = store::AllOrdersQuery {
            status: OrderStatus::from_wire(r.status),
            user_id: r.user_id,
            from: r.from.as_ref().and_then(datetime),
            to: r.to.as_ref().and_then(datetime),
            skip: skip.into(),
            limit: limit.into(),
        };
        let (ids, total) = store::list_all_order_ids(&self.db, &query).await?;
        let mut products = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(order) = store::load_order(&self.db, &id).await? {
                products.push(order);
            }
        }
        Ok(Response::new(pb::ListAllOrdersResponse {
            products,
            total: total.try_into().unwrap_or(i32::MAX),
            skip,
            limit,
        }))
    }

    /// Contract 6.2.3: own order; another user's is 404 ORDER_NOT_FOUND; admins see all.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        let caller = authn::require_user(&request)?;
        let order = self.visible_order(caller, &request.get_ref().id).await?;
        Ok(Response::new(pb::GetOrderResponse { order: Some(order) }))
    }

    /// Contract 6.2.4, admin only: the status machine; shipped needs a
    /// tracking number and a carrier; every change goes to the history.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn update_order_status(
        &self,
        request: Request<pb::UpdateOrderStatusRequest>,
    ) -> Result<Response<pb::UpdateOrderStatusResponse>, Status> {
        let admin = authn::require_admin(&request)?.user_id;
        let r = request.get_ref();
        let next = OrderStatus::from_wire(r.status).ok_or_else(|| {
            OrderError::Invalid(vec![(
                "status".into(),
                "must be a known order status".into(),
            )])
        })?;
        let tracking = r
            .tracking_number
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let carrier = match r
            .carrier
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(c) => Some(
                CARRIERS
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(c))
                    .map(|(name, _)| *name)
                    .ok_or_else(|| {
                        OrderError::Invalid(vec![(
                            "carrier".into(),
                            "must be one of UPS, FedEx, USPS, DHL".into(),
                        )])
                    })?,
            ),
            None => None,
        };
        if next == OrderStatus::Shipped && (tracking.is_none() || carrier.is_none()) {
            let mut violations = Vec::new();
            if tracking.is_none() {
                violations.push((
                    "trackingNumber".to_owned(),
                    "is required when shipping".to_owned(),
                ));
            }
            if carrier.is_none() {
                violations.push(("carrier".to_owned(), "is required when shipping".to_owned()));
            }
            return Err(OrderError::Invalid(violations).into());
        }
        if tracking.is_some_and(|t| t.len() > 100) {
            return Err(
                OrderError::Invalid(vec![("trackingNumber".into(), "is too long".into())]).into(),
            );
        }
        let note = r.note.as_deref().map(str::trim).unwrap_or_default();
        if note.len() > 2000 {
            return Err(OrderError::Invalid(vec![("note".into(), "is too long".into())]).into());
        }
        let now = self.now();
        let mut tx = self.db.begin().await.map_err(OrderError::from)?;
        let (owner, current, _) = store::lock_order(&mut tx, &r.id)
            .await?
            .ok_or(OrderError::NotFound)?;
        if !current.can_become(next) {
            return Err(OrderError::InvalidTransition(current.as_str(), next.as_str()).into());
        }
        let note = if note.is_empty() {
            format!("Status changed to {}", next.as_str())
        } else {
            note.to_owned()
        };
        let (tracking, carrier) = if next == OrderStatus::Shipped {
            (tracking, carrier)
        } else {
            (None, None)
        };
        let reason = (next == OrderStatus::Cancelled).then_some(note.as_str());
        store::set_status(&mut tx, &r.id, next, tracking, carrier, reason, now).await?;
        store::add_history(&mut tx, &r.id, next, &note, admin, now).await?;
        if let (OrderStatus::Shipped, Some(tracking), Some(carrier)) = (next, tracking, carrier) {
            // The shipping notice is committed with the status change, or not at all.
            let shipment = mail::Shipment {
                order_id: &r.id,
                user_id: owner,
                carrier,
                tracking_number: tracking,
                tracking_url: &tracking_url(carrier, tracking),
                estimated_delivery: now + chrono::Duration::days(DELIVERY_DAYS),
            };
            mail::queue_shipped(&mut tx, &shipment).await?;
        }
        tx.commit().await.map_err(OrderError::from)?;
        if next == OrderStatus::Cancelled {
            self.release_stock(&r.id).await;
        }
        tracing::info!(admin, order = %r.id, from = current.as_str(), to = next.as_str(), "order status changed");
        let order = store::load_order(&self.db, &r.id)
            .await?
            .ok_or(OrderError::NotFound)?;
        Ok(Response::new(pb::UpdateOrderStatusResponse {
            order: Some(order),
        }))
    }

    /// Contract 6.2.5: the owner cancels a pending or processing order; the
    /// stock goes back to the catalog.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::CancelOrderResponse>, Status> {
        let caller = authn::require_user(&request)?.clone();
        let r = request.into_inner();
        let reason = r.reason.trim().to_owned();
        if reason.len() > 2000 {
            return Err(OrderError::Invalid(vec![("reason".into(), "is too long".into())]).into());
        }
        let reason = if reason.is_empty() {
            "Cancelled by the customer".to_owned()
        } else {
            reason
        };
        let reason = reason.as_str();
        let now = self.now();
        let mut tx = self.db.begin().await.map_err(OrderError::from)?;
        let (owner, current, payment_status) = store::lock_order(&mut tx, &r.id)
            .await?
            .ok_or(OrderError::NotFound)?;
        if !caller.may_access(owner) {
            return Err(OrderError::NotFound.into());
        }
        if !current.cancellable() {
            return Err(OrderError::CannotCancel(current.as_str()).into());
        }
        if let Some(intent) = store::payment_intent_of(&mut tx, &r.id).await? {
            if payment_status == "paid" {
                // Refunded with the order's row locked: a concurrent cancel
                // waits, then finds it cancelled. A failure leaves the order as
                // it was (the refund is idempotent, so cancelling again is safe).
                if self.payments.refund(intent.clone()).await? {
                    let view = store::PaymentView {
                        id: r.id.clone(),
                        user_id: owner,
                        status: current,
                        total_cents: 0,
                        payment_status,
                        payment_intent_id: Some(intent),
                    };
                    store::apply_payment(&mut tx, &view, true, true, now).await?;
                }
            } else if let Err(err) = self.payments.refund(intent.clone()).await {
                // Unpaid: its intent is cancelled so it cannot pay later; the
                // order is cancelled even when that fails.
                tracing::warn!(order = %r.id, intent, error = %err, "cancelling the intent of a cancelled order");
            }
        }
        store::set_status(
            &mut tx,
            &r.id,
            OrderStatus::Cancelled,
            None,
            None,
            Some(reason),
            now,
        )
        .await?;
        store::add_history(
            &mut tx,
            &r.id,
            OrderStatus::Cancelled,
            reason,
            caller.user_id,
            now,
        )
        .await?;
        tx.commit().await.map_err(OrderError::from)?;
        self.release_stock(&r.id).await;
        tracing::info!(order = %r.id, user_id = caller.user_id, "order cancelled");
        Ok(Response::new(pb::CancelOrderResponse {
            id: r.id,
            status: pb::OrderStatus::Cancelled as i32,
            cancelled_at: Some(timestamp(now)),
            cancel_reason: reason.to_owned(),
        }))
    }

    /// Contract 6.2.6: carrier, tracking number and page, estimated delivery,
    /// and the events of the order's history.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn get_tracking(
        &self,
        request: Request<pb::GetTrackingRequest>,
    ) -> Result<Response<pb::GetTrackingResponse>, Status> {
        let caller = authn::require_user(&request)?;
        let order = self.visible_order(caller, &request.get_ref().id).await?;
        let carrier = order.carrier.clone().unwrap_or_default();
        let tracking_number = order.tracking_number.clone().unwrap_or_default();
        let tracking_url = tracking_url(&carrier, &tracking_number);
        let status_at = |status: pb::OrderStatus| {
            order
                .history
                .iter()
                .rev()
                .find(|h| h.status == status as i32)
                .and_then(|h| h.at.as_ref())
                .and_then(datetime)
        };
        let estimated_delivery = status_at(pb::OrderStatus::Delivered)
            .or_else(|| {
                status_at(pb::OrderStatus::Shipped)
                    .map(|at| at + chrono::Duration::days(DELIVERY_DAYS))
            })
            .map(|at| at.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let carrier_status = |s: i32| match pb::OrderStatus::try_from(s).unwrap_or_default() {
            pb::OrderStatus::Pending => "order_placed",
            pb::OrderStatus::Processing => "processing",
            pb::OrderStatus::Shipped => "in_transit",
            pb::OrderStatus::Delivered => "delivered",
            pb::OrderStatus::Cancelled => "cancelled",
            pb::OrderStatus::Unspecified => "unknown",
        };
        let location = order
            .shipping_address
            .as_ref()
            .map(|a| {
                if a.state.is_empty() {
                    a.city.clone()
                } else {
                    format!("{}, {}", a.city, a.state)
                }
            })
            .unwrap_or_default();
        let events = order
            .history
            .iter()
            .map(|h| pb::TrackingEvent {
                status: carrier_status(h.status).to_owned(),
                location: if h.status == pb::OrderStatus::Delivered as i32 {
                    location.clone()
                } else {
                    String::new()
                },
                timestamp: h.at,
                description: h.note.clone(),
            })
            .collect();
        Ok(Response::new(pb::GetTrackingResponse {
            order_id: order.id.clone(),
            status: carrier_status(order.status).to_owned(),
            carrier,
            tracking_number,
            tracking_url,
            estimated_delivery,
            events,
        }))
    }

    /// Adds a note by the owner or an admin; returns the order with its notes.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn add_order_note(
        &self,
        request: Request<pb::AddOrderNoteRequest>,
    ) -> Result<Response<pb::AddOrderNoteResponse>, Status> {
        let caller = authn::require_user(&request)?;
        let r = request.get_ref();
        let note = r.note.trim();
        if note.is_empty() || note.chars().count() > 2000 {
            return Err(OrderError::Invalid(vec![(
                "note".into(),
                "must be 1 to 2000 characters".into(),
            )])
            .into());
        }
        let owner = store::owner_of(&self.db, &r.id)
            .await?
            .ok_or(OrderError::NotFound)?;
        if !caller.may_access(owner) {
            return Err(OrderError::NotFound.into());
        }
        store::add_note(&self.db, &r.id, note, caller.user_id, self.now()).await?;
        let order = store::load_order(&self.db, &r.id)
            .await?
            .ok_or(OrderError::NotFound)?;
        tracing::debug!(order = %r.id, status = status_name(&order), "note added");
        Ok(Response::new(pb::AddOrderNoteResponse {
            order: Some(order),
        }))
    }

    /// Contract 6.2.7: the invoice PDF of an order the caller may see (own, or
    /// any for an admin), with `content-disposition` naming the file.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn get_invoice(
        &self,
        request: Request<pb::GetInvoiceRequest>,
    ) -> Result<Response<HttpBody>, Status> {
        let caller = authn::require_user(&request)?;
        let order = self.visible_order(caller, &request.get_ref().id).await?;
        let mut conn = self.db.acquire().await.map_err(OrderError::from)?;
        let buyer = match mail::buyer(&mut conn, order.user_id).await? {
            Some(contact) => Buyer {
                name: contact.name(),
                email: contact.email,
            },
            // The account is gone: the invoice still names whom it billed.
            None => {
                let billing = order.billing_address.clone().unwrap_or_default();
                Buyer {
                    name: format!("{} {}", billing.first_name, billing.last_name)
                        .trim()
                        .to_owned(),
                    email: String::new(),
                }
            }
        };
        drop(conn);
        let pdf = invoice::render(&order, &self.after_sales.seller, &buyer);
        let mut response = Response::new(HttpBody {
            content_type: "application/pdf".to_owned(),
            data: pdf,
            extensions: Vec::new(),
        });
        // Order ids are [A-Z0-9-], so the header value is always valid ASCII.
        let disposition = format!("attachment; filename=\"invoice-{}.pdf\"", order.id);
        response.metadata_mut().insert(
            "content-disposition",
            disposition.parse().map_err(|_| {
                OrderError::Unexpected(anyhow::anyhow!("order id is not a header value"))
            })?,
        );
        Ok(response)
    }

    /// POST /orders/:id/return: the buyer returns all or part of a delivered
    /// order within the return window; see [`returns`] for the checks.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn request_return(
        &self,
        request: Request<pb::RequestReturnRequest>,
    ) -> Result<Response<pb::RequestReturnResponse>, Status> {
        let caller = authn::require_user(&request)?.clone();
        let r = request.into_inner();
        let reason = returns::reason(&r.reason)?;
        let now = self.now();
        let mut tx = self.db.begin().await.map_err(OrderError::from)?;
        let (owner, status, _) = store::lock_order(&mut tx, &r.id)
            .await?
            .ok_or(OrderError::NotFound)?;
        if owner != caller.user_id {
            return Err(if caller.is_admin() {
                OrderError::Forbidden("Only the buyer can request a return")
            } else {
                OrderError::NotFound
            }
            .into());
        }
        if status != OrderStatus::Delivered {
            return Err(OrderError::NotReturnable(status.as_str()).into());
        }
        if returns::open_exists(&mut tx, &r.id).await? {
            return Err(OrderError::ReturnExists.into());
        }
        let window = self.after_sales.return_window_days;
        let delivered = returns::delivered_at(&mut tx, &r.id)
            .await?
            .ok_or_else(|| {
                OrderError::Unexpected(anyhow::anyhow!(
                    "delivered order without a delivery in its history"
                ))
            })?;
        if now > delivered + chrono::Duration::days(window.into()) {
            return Err(OrderError::ReturnWindowExpired(window).into());
        }
        let ordered = returns::ordered_lines(&mut tx, &r.id).await?;
        let items = returns::items(&r.items, &ordered)?;
        returns::insert(&mut tx, &r.id, &reason, &items, caller.user_id, now).await?;
        tx.commit().await.map_err(OrderError::from)?;
        tracing::info!(order = %r.id, user_id = caller.user_id, "return requested");
        let order = store::load_order(&self.db, &r.id)
            .await?
            .ok_or(OrderError::NotFound)?;
        Ok(Response::new(pb::RequestReturnResponse {
            order: Some(order),
        }))
    }

    /// GET /cart: the caller's active cart (created empty on first access).
    #[tracing::instrument(skip_all)]
    async fn get_cart(
        &self,
        request: Request<pb::GetCartRequest>,
    ) -> Result<Response<pb::GetCartResponse>, Status> {
        let user_id = authn::require_user(&request)?.user_id;
        let cart = carts::active_cart(&self.db, user_id, self.now()).await?;
        let cart = carts::render(&self.db, &self.catalog, &cart).await?;
        Ok(Response::new(pb::GetCartResponse { cart: Some(cart) }))
    }

    /// POST /cart: replaces the caller's active cart's lines.
    #[tracing::instrument(skip_all)]
    async fn replace_cart(
        &self,
        request: Request<pb::ReplaceCartRequest>,
    ) -> Result<Response<pb::ReplaceCartResponse>, Status> {
        let user_id = authn::require_user(&request)?.user_id;
        let lines = carts::parse_lines(&request.get_ref().products, false)?;
        carts::check_products(&self.catalog, &lines).await?;
        let now = self.now();
        let cart = carts::active_cart(&self.db, user_id, now).await?;
        carts::write_lines(&self.db, cart.id, &lines, false, now).await?;
        let cart = carts::render(&self.db, &self.catalog, &cart).await?;
        Ok(Response::new(pb::ReplaceCartResponse { cart: Some(cart) }))
    }

    /// GET /carts/user/:userId: the user's active cart; oneself, or anyone for an admin.
    #[tracing::instrument(skip_all, fields(user_id = request.get_ref().user_id))]
    async fn get_user_cart(
        &self,
        request: Request<pb::GetUserCartRequest>,
    ) -> Result<Response<pb::GetUserCartResponse>, Status> {
        let caller = authn::require_user(&request)?.clone();
        let user_id = request.get_ref().user_id;
        if !caller.may_access(user_id) {
            return Err(carts::forbidden().into());
        }
        let cart = carts::active_cart(&self.db, user_id, self.now()).await?;
        let cart = carts::render(&self.db, &self.catalog, &cart).await?;
        Ok(Response::new(pb::GetUserCartResponse {
            carts: vec![cart],
            total: 1,
            skip: 0,
            limit: 1,
        }))
    }

    /// GET /carts/:id: own cart, or any for an admin; else 404 CART_NOT_FOUND.
    #[tracing::instrument(skip_all, fields(id = request.get_ref().id))]
    async fn get_cart_by_id(
        &self,
        request: Request<pb::GetCartByIdRequest>,
    ) -> Result<Response<pb::GetCartByIdResponse>, Status> {
        let caller = authn::require_user(&request)?.clone();
        let cart = carts::visible_cart(&self.db, &caller, request.get_ref().id).await?;
        let cart = carts::render(&self.db, &self.catalog, &cart).await?;
        Ok(Response::new(pb::GetCartByIdResponse { cart: Some(cart) }))
    }

    /// POST /carts/add (201): a new active cart for oneself (or any user, for an admin).
    #[tracing::instrument(skip_all)]
    async fn add_cart(
        &self,
        request: Request<pb::AddCartRequest>,
    ) -> Result<Response<pb::AddCartResponse>, Status> {
        let caller = authn::require_user(&request)?.clone();
        let r = request.into_inner();
        let user_id = if r.user_id == 0 {
            caller.user_id
        } else {
            r.user_id
        };
        if !caller.may_access(user_id) {
            return Err(carts::forbidden().into());
        }
        let lines = carts::parse_lines(&r.products, false)?;
        carts::check_products(&self.catalog, &lines).await?;
        let now = self.now();
        let cart = carts::create_cart(&self.db, user_id, now).await?;
        carts::write_lines(&self.db, cart.id, &lines, false, now).await?;
        let cart = carts::render(&self.db, &self.catalog, &cart).await?;
        Ok(Response::new(pb::AddCartResponse { cart: Some(cart) }))
    }

    /// PUT/PATCH /carts/:id: merge (quantity 0 removes a line) or replace the lines.
    #[tracing::instrument(skip_all, fields(id = request.get_ref().id))]
    async fn update_cart(
        &self,
        request: Request<pb::UpdateCartRequest>,
    ) -> Result<Response<pb::UpdateCartResponse>, Status> {
        let caller = authn::require_user(&request)?.clone();
        let r = request.into_inner();
        let cart = carts::visible_cart(&self.db, &caller, r.id).await?;
        let lines = carts::parse_lines(&r.products, true)?;
        carts::check_products(&self.catalog, &lines).await?;
        carts::write_lines(&self.db, cart.id, &lines, r.merge, self.now()).await?;
        let cart = carts::render(&self.db, &self.catalog, &cart).await?;
        Ok(Response::new(pb::UpdateCartResponse { cart: Some(cart) }))
    }

    /// DELETE /carts/:id: soft delete; answers the cart with isDeleted and deletedOn.
    #[tracing::instrument(skip_all, fields(id = request.get_ref().id))]
    async fn delete_cart(
        &self,
        request: Request<pb::DeleteCartRequest>,
    ) -> Result<Response<pb::DeleteCartResponse>, Status> {
        let caller = authn::require_user(&request)?.clone();
        let mut cart = carts::visible_cart(&self.db, &caller, request.get_ref().id).await?;
        let mut rendered = carts::render(&self.db, &self.catalog, &cart).await?;
        let now = self.now();
        carts::delete_cart(&self.db, cart.id, now).await?;
        cart.deleted_at = Some(now);
        rendered.is_deleted = true;
        rendered.deleted_on = cart.deleted_at.map(timestamp);
        Ok(Response::new(pb::DeleteCartResponse {
            cart: Some(rendered),
        }))
    }

    /// Internal (payments): the total and payment state of a user's order.
    #[tracing::instrument(skip_all, fields(order = %request.get_ref().order_id))]
    async fn get_order_for_payment(
        &self,
        request: Request<pb::GetOrderForPaymentRequest>,
    ) -> Result<Response<pb::GetOrderForPaymentResponse>, Status> {
        authn::require_admin(&request)?;
        let r = request.into_inner();
        let order = store::payment_view(&self.db, &r.order_id)
            .await?
            .filter(|order| order.user_id == r.user_id)
            .ok_or(OrderError::NotFound)?;
        Ok(Response::new(pb::GetOrderForPaymentResponse {
            total_cents: order.total_cents,
            payment_status: store::payment_state(&order.payment_status) as i32,
            status: order.status.to_wire() as i32,
        }))
    }

    /// Internal (payments): applies an intent's current state to the order it
    /// pays (see [`super::payments`] for why this converges).
    #[tracing::instrument(skip_all, fields(intent = %request.get_ref().payment_intent_id))]
    async fn record_payment(
        &self,
        request: Request<pb::RecordPaymentRequest>,
    ) -> Result<Response<pb::RecordPaymentResponse>, Status> {
        authn::require_admin(&request)?;
        let r = request.into_inner();
        let now = self.now();
        let mut tx = self.db.begin().await.map_err(OrderError::from)?;
        let order = store::lock_payment_view(&mut tx, &r.payment_intent_id, r.order_id.as_deref())
            .await?
            // An order named by metadata.orderId only: the intent's owner's, of its total.
            .filter(|order| {
                order.payment_intent_id.as_deref() == Some(r.payment_intent_id.as_str())
                    || (order.user_id == r.user_id && order.total_cents == r.amount_cents)
            });
        let Some(order) = order else {
            return Ok(Response::new(pb::RecordPaymentResponse {
                order_id: None,
                payment_status: pb::PaymentState::Unspecified as i32,
            }));
        };
        if order.payment_intent_id.as_deref() != Some(r.payment_intent_id.as_str()) {
            if !r.succeeded || order.payment_status != "unpaid" {
                // Another intent paid it already (or this one did not pay): leave it.
                if r.succeeded {
                    tracing::warn!(order = %order.id, "a second intent paid an order; refund it by hand");
                }
                return Ok(Response::new(pb::RecordPaymentResponse {
                    order_id: None,
                    payment_status: store::payment_state(&order.payment_status) as i32,
                }));
            }
            store::set_payment_intent(&mut tx, &order.id, &r.payment_intent_id).await?;
        }
        let state = store::apply_payment(&mut tx, &order, r.succeeded, r.refunded, now).await?;
        tx.commit().await.map_err(OrderError::from)?;
        tracing::info!(order = %order.id, payment_status = state, "payment recorded");
        Ok(Response::new(pb::RecordPaymentResponse {
            order_id: Some(order.id),
            payment_status: store::payment_state(state) as i32,
        }))
    }
}

impl OrdersService {
    /// Gives a cancelled order's stock back; a failure is logged (the units stay
    /// off the shelf, never oversold) for an operator to release again.
    async fn release_stock(&self, id: &str) {
        if let Err(err) = self.catalog.release(id.to_owned()).await {
            tracing::error!(order = %id, error = %err, "releasing the stock of a cancelled order failed");
        }
    }
}

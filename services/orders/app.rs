//! The orders service's use cases: each takes checked domain values, runs its
//! transaction, calls the catalog and payments clients, and answers domain
//! values. No protobuf here (grpc.rs decodes and encodes); the steps of placing
//! an order, and what happens when one fails, are in the module doc of `orders`.

use chrono::{DateTime, SubsecRound as _, Utc};
use sqlx::{PgConnection, PgPool};

use super::catalog::Catalog;
use super::domain::{
    CouponChoice, CouponCode, Destination, IntentState, NewOrder, Order, OrderStatus, OrderSummary,
    PaymentState, PaymentView, PricedLine, PricingRules, StatusChange, StatusUpdate, Tracking,
    return_items, status::status_after_payment,
};
use super::error::OrderError;
use super::invoice::{self, Buyer, Seller};
use super::payments::Payments;
use super::store::{self, AllOrdersQuery, Locked, StatusWrite};
use crate::authn::Principal;
use crate::clock::Clock;
use crate::db::Database;
use crate::events::{self, EventData};
use crate::idempotency::{self, Key, Outcome};

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

/// Settings of invoices and returns.
#[derive(Clone, Debug)]
pub struct AfterSales {
    /// Who the invoices name as the seller (SELLER_NAME, SELLER_ADDRESS).
    pub seller: Seller,
    /// Days after delivery during which a return may be requested (RETURN_WINDOW_DAYS).
    pub return_window_days: u32,
}

impl Default for AfterSales {
    /// The settings' defaults.
    fn default() -> Self {
        use crate::config::{
            DEFAULT_RETURN_WINDOW_DAYS, DEFAULT_SELLER_ADDRESS, DEFAULT_SELLER_NAME, address_lines,
        };
        AfterSales {
            seller: Seller {
                name: DEFAULT_SELLER_NAME.to_owned(),
                address: address_lines(DEFAULT_SELLER_ADDRESS),
            },
            return_window_days: DEFAULT_RETURN_WINDOW_DAYS,
        }
    }
}

/// How an idempotent answer is stored: the use case stores it in the
/// transaction of its effect, encoded by the transport that will replay it.
pub type Encode = fn(&Order) -> Vec<u8>;

/// A page of a list.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub skip: i64,
    pub limit: i64,
}

/// The use cases. Cheap to clone.
#[derive(Clone)]
pub struct OrdersApp {
    /// The primary: writes, and reads inside them.
    db: PgPool,
    /// Where history reads go (a replica that has the caller's last write, or the primary).
    replicas: Database,
    pub(super) catalog: Catalog,
    payments: Payments,
    clock: Clock,
    pricing: PricingRules,
    after_sales: AfterSales,
}

impl OrdersApp {
    pub fn new(
        db: Database,
        catalog: Catalog,
        payments: Payments,
        clock: Clock,
        pricing: PricingRules,
        after_sales: AfterSales,
    ) -> Self {
        OrdersApp {
            db: db.primary().clone(),
            replicas: db,
            catalog,
            payments,
            clock,
            pricing,
            after_sales,
        }
    }

    pub(super) fn db(&self) -> &PgPool {
        &self.db
    }

    pub(super) fn pricing(&self) -> &PricingRules {
        &self.pricing
    }

    pub(super) fn set_after_sales(&mut self, after_sales: AfterSales) {
        self.after_sales = after_sales;
    }

    /// Now, to the microsecond PostgreSQL keeps, so a stored time reads back equal.
    pub(super) fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(6)
    }

    /// An order the caller may see: their own, or any for an admin; else 404.
    pub async fn visible_order(&self, caller: &Principal, id: &str) -> Result<Order, OrderError> {
        let order = store::load_order(&self.replicas.reads().await, id)
            .await?
            .ok_or(OrderError::NotFound)?;
        if !caller.may_access(order.user_id) {
            return Err(OrderError::NotFound);
        }
        Ok(order)
    }

    /// An order after a change.
    async fn reload(&self, id: &str) -> Result<Order, OrderError> {
        store::load_order(&self.db, id)
            .await?
            .ok_or(OrderError::NotFound)
    }

    /// POST /orders under an Idempotency-Key: the first request with `key` places
    /// the order (storing its answer, encoded by `encode`, with it); a duplicate
    /// gets the stored answer back.
    pub async fn place_order_once(
        &self,
        user_id: i64,
        order: NewOrder,
        key: Option<&Key>,
        encode: Encode,
    ) -> Result<Outcome<Order>, OrderError> {
        idempotency::run(&self.db, key, self.now(), async || {
            self.place_order(user_id, order, key.map(|key| (key, encode)))
                .await
        })
        .await
    }

    /// Prices (on the server), reserves and records an order (POST /orders).
    async fn place_order(
        &self,
        user_id: i64,
        new: NewOrder,
        answer: Option<(&Key, Encode)>,
    ) -> Result<Order, OrderError> {
        let products = self.catalog.pricing(new.lines.ids()).await?;
        let lines: Vec<PricedLine> = new
            .lines
            .iter()
            .map(|(id, quantity)| {
                products
                    .iter()
                    .find(|p| p.id == id)
                    .expect("pricing answers every id or fails")
                    .line(quantity)
            })
            .collect();
        // The coupon named, or the one applied to the cart; checked (and its discount
        // computed) here, redeemed in the order's transaction below.
        let coupon = match &new.coupon {
            CouponChoice::Code(code) => Some(self.coupon(code).await?),
            CouponChoice::None => None,
            CouponChoice::FromCart => {
                match store::active_cart_coupon(&self.db, user_id).await? {
                    Some(code) => Some(
                        self.coupon(&CouponCode::parse(&code).map_err(|_| {
                            OrderError::Coupon(super::domain::CouponRefusal::NotFound)
                        })?)
                        .await?,
                    ),
                    None => None,
                }
            }
        };
        let to = Destination::of(&new.shipping_address);
        let priced = self
            .price(
                user_id,
                &lines,
                &products,
                coupon.as_ref(),
                Some(&to),
                &new.shipping_method,
            )
            .await?;
        let totals = priced.totals;
        // The intent that pays it: the caller's, unused, of the order's total.
        let mut paid = false;
        if let Some(intent) = &new.payment_intent_id {
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
            paid = found.succeeded;
        }
        let now = self.now();
        let id = store::next_order_id(&self.db, now.date_naive()).await?;
        self.catalog
            .reserve(id.clone(), new.lines.iter().collect())
            .await?;

        let mut order = Order {
            id: id.clone(),
            user_id,
            lines,
            totals,
            coupon_code: coupon.as_ref().map(|c| c.code.clone()),
            shipping_method: priced.shipping_method,
            tax_rate: Some(priced.tax_rate),
            status: OrderStatus::Pending,
            payment_status: PaymentState::Unpaid,
            shipping_address: new.shipping_address,
            billing_address: new.billing_address,
            payment_method: new.payment_method,
            payment_intent_id: new.payment_intent_id,
            tracking_number: None,
            carrier: None,
            cancel_reason: None,
            cancelled_at: None,
            created_at: now,
            updated_at: now,
            history: vec![StatusChange {
                status: OrderStatus::Pending,
                note: "Order placed".to_owned(),
                by_user_id: user_id,
                at: now,
            }],
            notes: Vec::new(),
            return_request: None,
        };
        if paid {
            order.paid_at_placement(now);
        }
        let redemption = coupon.as_ref().map(|c| c.id);
        match self.record_order(&order, answer, redemption).await {
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
        Ok(order)
    }

    /// Inserts the order, redeems its coupon `redemption` and stores the idempotent
    /// answer, in one transaction.
    async fn record_order(
        &self,
        order: &Order,
        answer: Option<(&Key, Encode)>,
        redemption: Option<i64>,
    ) -> Result<(), NotRecorded> {
        let tx = self
            .write_order(order, answer, redemption)
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
        order: &Order,
        answer: Option<(&Key, Encode)>,
        redemption: Option<i64>,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, OrderError> {
        let mut tx = self.db.begin().await?;
        // Held until COMMIT ends, so that `settle_in_doubt` cannot read around it.
        store::lock_order_id(&mut tx, &order.id).await?;
        store::insert_order(&mut tx, order).await?;
        if let Some(coupon_id) = redemption {
            // A refusal (limit reached meanwhile) rolls the whole order back.
            let discount = order.totals.discount_cents;
            Self::redeem(
                &mut tx,
                coupon_id,
                &order.id,
                order.user_id,
                discount,
                order.created_at,
            )
            .await?;
        }
        // order.placed is committed with the order, or not at all (its confirmation mail
        // is the mail consumer's).
        record_event(&mut tx, &order.id, order.created_at, EventData::OrderPlaced).await?;
        // A placed order empties the buyer's active cart.
        store::empty_active_cart(&mut tx, order.user_id).await?;
        store::clear_active_cart_coupon(&mut tx, order.user_id).await?;
        if let Some((key, encode)) = answer {
            idempotency::finish(&mut tx, key, &encode(order)).await?;
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

    /// Gives a cancelled order's stock back; a failure is logged (the units stay
    /// off the shelf, never oversold) for an operator to release again.
    async fn release_stock(&self, id: &str) {
        if let Err(err) = self.catalog.release(id.to_owned()).await {
            tracing::error!(order = %id, error = %err, "releasing the stock of a cancelled order failed");
        }
    }

    /// Reads the intent `intent` again and applies its state to the order it
    /// pays; a failure is logged (the provider's webhook tells it again).
    async fn sync_payment(&self, intent: &str, user_id: i64) {
        let result = async {
            let found = self.payments.intent(intent.to_owned(), user_id).await?;
            if found.succeeded || found.refunded {
                let mut tx = self.db.begin().await?;
                if let Some(order) = store::lock_payment_view(&mut tx, intent, None).await? {
                    let state = IntentState {
                        succeeded: found.succeeded,
                        refunded: found.refunded,
                    };
                    apply_payment(&mut tx, &order, state, self.now()).await?;
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
            Ok(true) => {
                if let Err(err) = store::mark_stock_committed(&self.db, id).await {
                    tracing::warn!(order = %id, error = %err, "recording the stock commit");
                }
            }
            Ok(false) => tracing::warn!(order = %id, "reservation not committed"),
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
                Ok(true) => store::mark_stock_committed(&self.db, &id).await?,
                Ok(false) => {
                    // The stock went back to the shelf: the order cannot be served.
                    let now = self.now();
                    let mut tx = self.db.begin().await?;
                    if let Some(locked) = store::lock_order(&mut tx, &id).await?
                        && locked.status.cancellable()
                    {
                        let reason = "Stock reservation expired";
                        cancel(&mut tx, &id, reason, 0, now).await?;
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

    /// A page of the user's orders, newest first, and their number.
    pub async fn list_orders(
        &self,
        user_id: i64,
        page: Page,
    ) -> Result<(Vec<OrderSummary>, i64), OrderError> {
        let pool = self.replicas.reads().await;
        store::list_user_orders(&pool, user_id, page.skip, page.limit).await
    }

    /// A page of all orders matching `query`, in full, and their number: a
    /// constant number of queries however long the page.
    pub async fn list_all_orders(
        &self,
        query: &AllOrdersQuery,
    ) -> Result<(Vec<Order>, i64), OrderError> {
        let pool = self.replicas.reads().await;
        let (ids, total) = store::list_all_order_ids(&pool, query).await?;
        Ok((store::load_orders(&pool, &ids).await?, total))
    }

    /// PUT /orders/{id}/status, by admin `admin`: the status machine; a shipment is mailed
    /// to the buyer with the change; a cancellation gives the stock back.
    pub async fn update_status(
        &self,
        admin: i64,
        id: &str,
        update: StatusUpdate,
    ) -> Result<Order, OrderError> {
        let now = self.now();
        let next = update.next;
        let mut tx = self.db.begin().await?;
        let locked = store::lock_order(&mut tx, id)
            .await?
            .ok_or(OrderError::NotFound)?;
        let current = locked.status;
        if !current.can_become(next) {
            return Err(OrderError::InvalidTransition(
                current.as_str(),
                next.as_str(),
            ));
        }
        let shipment = update
            .shipment
            .as_ref()
            .map(|(tracking, carrier)| (tracking.as_str(), *carrier));
        let reason = (next == OrderStatus::Cancelled).then_some(update.note.as_str());
        let write = StatusWrite {
            status: next,
            shipment,
            cancel_reason: reason,
            now,
        };
        store::set_status(&mut tx, id, &write).await?;
        let change = StatusChange {
            status: next,
            note: update.note.clone(),
            by_user_id: admin,
            at: now,
        };
        store::add_history(&mut tx, id, &change).await?;
        if next == OrderStatus::Cancelled {
            // Its coupon use comes back with the cancellation, or not at all.
            store::release_redemption(&mut tx, id).await?;
        }
        // The change's event commits with it (the shipping notice is the mail consumer's).
        let event = match next {
            OrderStatus::Shipped => EventData::OrderShipped,
            OrderStatus::Delivered => EventData::OrderDelivered,
            OrderStatus::Cancelled => EventData::OrderCancelled,
            _ => EventData::OrderStatusChanged,
        };
        record_event(&mut tx, id, now, event).await?;
        tx.commit().await?;
        if next == OrderStatus::Cancelled {
            self.release_stock(id).await;
        }
        tracing::info!(admin, order = %id, from = current.as_str(), to = next.as_str(), "order status changed");
        self.reload(id).await
    }

    /// PUT /orders/{id}/cancel: the owner (or an admin) cancels a pending or processing
    /// order; a paid one is refunded first; the stock goes back to the catalog.
    /// Answers when it was cancelled.
    pub async fn cancel_order(
        &self,
        caller: &Principal,
        id: &str,
        reason: &str,
    ) -> Result<DateTime<Utc>, OrderError> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let locked = store::lock_order(&mut tx, id)
            .await?
            .ok_or(OrderError::NotFound)?;
        if !caller.may_access(locked.user_id) {
            return Err(OrderError::NotFound);
        }
        if !locked.status.cancellable() {
            return Err(OrderError::CannotCancel(locked.status.as_str()));
        }
        self.refund_for_cancel(&mut tx, id, &locked, now).await?;
        cancel(&mut tx, id, reason, caller.user_id, now).await?;
        tx.commit().await?;
        self.release_stock(id).await;
        tracing::info!(order = %id, user_id = caller.user_id, "order cancelled");
        Ok(now)
    }

    /// The refund of an order being cancelled (its row locked by `tx`).
    async fn refund_for_cancel(
        &self,
        tx: &mut PgConnection,
        id: &str,
        locked: &Locked,
        now: DateTime<Utc>,
    ) -> Result<(), OrderError> {
        let Some(intent) = store::payment_intent_of(tx, id).await? else {
            return Ok(());
        };
        if locked.payment_status == PaymentState::Paid {
            // Refunded with the order's row locked: a concurrent cancel
            // waits, then finds it cancelled. A failure leaves the order as
            // it was (the refund is idempotent, so cancelling again is safe).
            if self.payments.refund(intent.clone()).await? {
                let view = PaymentView {
                    id: id.to_owned(),
                    user_id: locked.user_id,
                    status: locked.status,
                    total_cents: 0,
                    payment_status: locked.payment_status,
                    payment_intent_id: Some(intent),
                };
                let state = IntentState {
                    succeeded: true,
                    refunded: true,
                };
                apply_payment(tx, &view, state, now).await?;
            }
        } else if let Err(err) = self.payments.refund(intent.clone()).await {
            // Unpaid: its intent is cancelled so it cannot pay later; the
            // order is cancelled even when that fails.
            tracing::warn!(order = %id, intent, error = %err, "cancelling the intent of a cancelled order");
        }
        Ok(())
    }

    /// The tracking page of an order the caller may see.
    pub async fn tracking(&self, caller: &Principal, id: &str) -> Result<Tracking, OrderError> {
        Ok(Tracking::of(&self.visible_order(caller, id).await?))
    }

    /// Adds a note by the owner or an admin; answers the order with its notes.
    pub async fn add_note(
        &self,
        caller: &Principal,
        id: &str,
        note: &str,
    ) -> Result<Order, OrderError> {
        let owner = store::owner_of(&self.db, id)
            .await?
            .ok_or(OrderError::NotFound)?;
        if !caller.may_access(owner) {
            return Err(OrderError::NotFound);
        }
        store::add_note(&self.db, id, note, caller.user_id, self.now()).await?;
        let order = self.reload(id).await?;
        tracing::debug!(order = %id, status = order.status.as_str(), "note added");
        Ok(order)
    }

    /// GET /orders/{id}/invoice: the invoice PDF of an order the caller may see, and the order.
    pub async fn invoice(
        &self,
        caller: &Principal,
        id: &str,
    ) -> Result<(Order, Vec<u8>), OrderError> {
        let order = self.visible_order(caller, id).await?;
        let buyer = match crate::accounts::store::contact(&self.db, order.user_id).await? {
            Some(contact) => Buyer {
                name: contact.name(),
                email: contact.email,
            },
            // The account is gone: the invoice still names whom it billed.
            None => Buyer {
                name: order.billing_address.name(),
                email: String::new(),
            },
        };
        let pdf = invoice::render(&order, &self.after_sales.seller, &buyer);
        Ok((order, pdf))
    }

    /// POST /orders/:id/return: the buyer returns all or part of a delivered
    /// order within the return window. Checked in this order, so each refusal
    /// names the first thing wrong: the order is the caller's (404, or 403 for
    /// an admin, who may see it but does not buy it), it is delivered (422
    /// RETURN_NOT_ALLOWED), no return is open (409 RETURN_EXISTS), the window
    /// after the delivery recorded in the history has not passed (422
    /// RETURN_WINDOW_EXPIRED), and the items are lines of the order in
    /// quantities it had (400). The return and a history entry are written in
    /// one transaction, under the order's row lock; the partial unique index of
    /// `order_returns` keeps a single open return even so.
    pub async fn request_return(
        &self,
        caller: &Principal,
        id: &str,
        reason: &str,
        requested: &[(i64, i32)],
    ) -> Result<Order, OrderError> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let locked = store::lock_order(&mut tx, id)
            .await?
            .ok_or(OrderError::NotFound)?;
        if locked.user_id != caller.user_id {
            return Err(if caller.is_admin() {
                OrderError::Forbidden("Only the buyer can request a return")
            } else {
                OrderError::NotFound
            });
        }
        if locked.status != OrderStatus::Delivered {
            return Err(OrderError::NotReturnable(locked.status.as_str()));
        }
        if store::open_return_exists(&mut tx, id).await? {
            return Err(OrderError::ReturnExists);
        }
        let window = self.after_sales.return_window_days;
        let delivered = store::delivered_at(&mut tx, id).await?.ok_or_else(|| {
            OrderError::Unexpected(anyhow::anyhow!(
                "delivered order without a delivery in its history"
            ))
        })?;
        if now > delivered + chrono::Duration::days(window.into()) {
            return Err(OrderError::ReturnWindowExpired(window));
        }
        let ordered = store::ordered_lines(&mut tx, id).await?;
        let items = return_items(requested, &ordered)?;
        store::insert_return(&mut tx, id, reason, &items, caller.user_id, now).await?;
        // The order stays delivered: a return is not a fulfilment status.
        let change = StatusChange {
            status: OrderStatus::Delivered,
            note: format!("Return requested: {reason}"),
            by_user_id: caller.user_id,
            at: now,
        };
        store::add_history(&mut tx, id, &change).await?;
        tx.commit().await?;
        tracing::info!(order = %id, user_id = caller.user_id, "return requested");
        self.reload(id).await
    }

    /// Internal (payments): the total and states of `user_id`'s order `id`.
    pub async fn order_for_payment(
        &self,
        id: &str,
        user_id: i64,
    ) -> Result<PaymentView, OrderError> {
        store::find_payment_view(&self.db, id)
            .await?
            .filter(|order| order.user_id == user_id)
            .ok_or(OrderError::NotFound)
    }

    /// Internal (payments): applies intent `intent`'s current state to the order
    /// it pays, or (when no order names it yet) to order `order_id` of the
    /// intent's owner `user_id` and of its amount. Answers the order it applied
    /// to, if any, and that order's payment state.
    pub async fn record_payment(
        &self,
        intent: &str,
        order_id: Option<&str>,
        user_id: i64,
        amount_cents: i64,
        state: IntentState,
    ) -> Result<(Option<String>, Option<PaymentState>), OrderError> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let order = store::lock_payment_view(&mut tx, intent, order_id)
            .await?
            // An order named by metadata.orderId only: the intent's owner's, of its total.
            .filter(|order| {
                order.payment_intent_id.as_deref() == Some(intent)
                    || (order.user_id == user_id && order.total_cents == amount_cents)
            });
        let Some(order) = order else {
            return Ok((None, None));
        };
        if order.payment_intent_id.as_deref() != Some(intent) {
            if !state.succeeded || order.payment_status != PaymentState::Unpaid {
                // Another intent paid it already (or this one did not pay): leave it.
                if state.succeeded {
                    tracing::warn!(order = %order.id, "a second intent paid an order; refund it by hand");
                }
                return Ok((None, Some(order.payment_status)));
            }
            store::set_payment_intent(&mut tx, &order.id, intent).await?;
        }
        let after = apply_payment(&mut tx, &order, state, now).await?;
        tx.commit().await?;
        tracing::info!(order = %order.id, payment_status = after.as_str(), "payment recorded");
        Ok((Some(order.id), Some(after)))
    }
}

/// Cancels a locked order: status, reason and time, the history entry by `by`, and
/// gives back its coupon redemption (in the same transaction).
async fn cancel(
    tx: &mut PgConnection,
    id: &str,
    reason: &str,
    by: i64,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    let write = StatusWrite {
        status: OrderStatus::Cancelled,
        shipment: None,
        cancel_reason: Some(reason),
        now,
    };
    store::set_status(tx, id, &write).await?;
    let change = StatusChange {
        status: OrderStatus::Cancelled,
        note: reason.to_owned(),
        by_user_id: by,
        at: now,
    };
    store::add_history(tx, id, &change).await?;
    store::release_redemption(tx, id).await?;
    record_event(tx, id, now, EventData::OrderCancelled).await
}

/// Records the event `make` builds from order `id` as `tx` sees it, in `tx`.
async fn record_event(
    tx: &mut PgConnection,
    id: &str,
    now: DateTime<Utc>,
    make: fn(events::OrderEvent) -> EventData,
) -> Result<(), OrderError> {
    let order = store::order_event(tx, id)
        .await?
        .ok_or(OrderError::NotFound)?;
    events::record(tx, now, make(order)).await?;
    Ok(())
}

/// Applies an intent's state to its (locked) order ([`PaymentState::apply`]):
/// a pending order that becomes paid moves to processing, by the system (user
/// id 0). Answers the order's payment state afterwards.
async fn apply_payment(
    tx: &mut PgConnection,
    order: &PaymentView,
    intent: IntentState,
    now: DateTime<Utc>,
) -> Result<PaymentState, OrderError> {
    let next = order.payment_status.apply(intent);
    if next == order.payment_status {
        return Ok(next);
    }
    store::set_payment_status(tx, &order.id, next, now).await?;
    if let Some(status) = status_after_payment(order.status, next) {
        let write = StatusWrite {
            status,
            shipment: None,
            cancel_reason: None,
            now,
        };
        store::set_status(tx, &order.id, &write).await?;
        let change = StatusChange {
            status,
            note: super::domain::order::PAYMENT_RECEIVED.to_owned(),
            by_user_id: 0,
            at: now,
        };
        store::add_history(tx, &order.id, &change).await?;
    }
    match next {
        PaymentState::Paid => record_event(tx, &order.id, now, EventData::OrderPaid).await?,
        PaymentState::Refunded => {
            record_event(tx, &order.id, now, EventData::OrderRefunded).await?
        }
        PaymentState::Unpaid => {}
    }
    Ok(next)
}

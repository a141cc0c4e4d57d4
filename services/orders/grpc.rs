//! `OrdersService` over gRPC: decode the request into domain values, authorize,
//! call the use case ([`super::app`]), encode the answer ([`super::wire`]).

use prost::Message as _;
use tonic::{Request, Response, Status};

use super::app::{AfterSales, OrdersApp, Page};
use super::catalog::Catalog;
use super::domain::shipping::method_code;
use super::domain::{
    CartLines, CouponCode, Destination, IntentState, NewCoupon, NewOrder, Order, PricingRules,
    StatusUpdate, cancel_reason, note, return_reason,
};
use super::error::OrderError;
use super::payments::Payments;
use super::store::AllOrdersQuery;
use super::wire;
use crate::authn;
use crate::clock::{Clock, from_timestamp, timestamp};
use crate::idempotency::{self, Outcome};
use crate::proto::ecom::orders::v1 as pb;
use crate::proto::google::api::HttpBody;
use crate::validation::Violations;

/// Default and largest page of the order lists.
const DEFAULT_LIMIT: i32 = 10;
const MAX_LIMIT: i32 = 100;
/// The idempotency scope of POST /orders.
const CREATE_SCOPE: &str = "orders.create";

/// The orders service's gRPC implementation. Cheap to clone.
#[derive(Clone)]
pub struct OrdersService {
    app: OrdersApp,
}

impl OrdersService {
    /// A service over `db`, pricing with `pricing`, reserving stock through
    /// `catalog`, checking and refunding payment intents through `payments`.
    pub fn new(
        db: crate::db::Database,
        catalog: Catalog,
        payments: Payments,
        clock: Clock,
        pricing: PricingRules,
    ) -> Self {
        OrdersService {
            app: OrdersApp::new(db, catalog, payments, clock, pricing, AfterSales::default()),
        }
    }

    /// The same service with these invoice and return settings.
    pub fn with_after_sales(mut self, after_sales: AfterSales) -> Self {
        self.app.set_after_sales(after_sales);
        self
    }

    /// The reconciler (see [`OrdersApp::reconcile`]).
    pub async fn reconcile(&self) -> anyhow::Result<()> {
        self.app.reconcile().await
    }
}

/// skip and limit of a list request, checked.
fn page(skip: i32, limit: i32) -> Result<(i32, i32), OrderError> {
    if skip < 0 {
        return Err(Violations::one("skip", "must not be negative").into());
    }
    let limit = match limit {
        0 => DEFAULT_LIMIT,
        l if (1..=MAX_LIMIT).contains(&l) => l,
        _ => {
            return Err(
                Violations::one("limit", format!("must be between 1 and {MAX_LIMIT}")).into(),
            );
        }
    };
    Ok((skip, limit))
}

fn total(n: i64) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

/// The stored answer of POST /orders.
fn create_response(order: &Order) -> pb::CreateOrderResponse {
    pb::CreateOrderResponse {
        order: Some(wire::order(order)),
    }
}

#[tonic::async_trait]
impl pb::orders_service_server::OrdersService for OrdersService {
    /// POST /orders: prices on the server, reserves stock through the
    /// catalog (all lines or none), honours Idempotency-Key.
    #[tracing::instrument(skip_all)]
    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::CreateOrderResponse>, Status> {
        let user_id = authn::require_user(&request)?.user_id;
        let order =
            NewOrder::parse(wire::order_form(request.get_ref())).map_err(OrderError::from)?;
        let body = request.get_ref().encode_to_vec();
        let key = idempotency::key_of(&request, user_id, CREATE_SCOPE, &body)
            .map_err(OrderError::from)?;
        let encode = |order: &Order| create_response(order).encode_to_vec();
        let outcome = self
            .app
            .place_order_once(user_id, order, key.as_ref(), encode)
            .await?;
        Ok(match outcome {
            Outcome::Ran(order) => Response::new(create_response(&order)),
            Outcome::Replayed(bytes) => idempotency::replayed(&bytes).map_err(OrderError::from)?,
        })
    }

    /// GET /orders: the caller's orders as summaries, newest first.
    #[tracing::instrument(skip_all)]
    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let user_id = authn::require_user(&request)?.user_id;
        let (skip, limit) = page(request.get_ref().skip, request.get_ref().limit)?;
        let page = Page {
            skip: skip.into(),
            limit: limit.into(),
        };
        let (orders, n) = self.app.list_orders(user_id, page).await?;
        Ok(Response::new(pb::ListOrdersResponse {
            products: orders.iter().map(wire::summary).collect(),
            total: total(n),
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
        let query = AllOrdersQuery {
            status: wire::status_from_wire(r.status),
            user_id: r.user_id,
            from: r.from.as_ref().and_then(from_timestamp),
            to: r.to.as_ref().and_then(from_timestamp),
            skip: skip.into(),
            limit: limit.into(),
        };
        let (orders, n) = self.app.list_all_orders(&query).await?;
        Ok(Response::new(pb::ListAllOrdersResponse {
            products: orders.iter().map(wire::order).collect(),
            total: total(n),
            skip,
            limit,
        }))
    }

    /// GET /orders/{id}: own order; another user's is 404 ORDER_NOT_FOUND; admins see all.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        let caller = authn::require_user(&request)?;
        let order = self
            .app
            .visible_order(caller, &request.get_ref().id)
            .await?;
        Ok(Response::new(pb::GetOrderResponse {
            order: Some(wire::order(&order)),
        }))
    }

    /// PUT /orders/{id}/status, admin only: the status machine; shipped needs a
    /// tracking number and a carrier; every change goes to the history.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn update_order_status(
        &self,
        request: Request<pb::UpdateOrderStatusRequest>,
    ) -> Result<Response<pb::UpdateOrderStatusResponse>, Status> {
        let admin = authn::require_admin(&request)?.user_id;
        let r = request.get_ref();
        let update = StatusUpdate::parse(wire::status_form(r)).map_err(OrderError::from)?;
        let order = self.app.update_status(admin, &r.id, update).await?;
        Ok(Response::new(pb::UpdateOrderStatusResponse {
            order: Some(wire::order(&order)),
        }))
    }

    /// PUT /orders/{id}/cancel: the owner cancels a pending or processing order; the
    /// stock goes back to the catalog.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::CancelOrderResponse>, Status> {
        let caller = authn::require_user(&request)?.clone();
        let r = request.into_inner();
        let reason = cancel_reason(&r.reason).map_err(OrderError::from)?;
        let cancelled_at = self.app.cancel_order(&caller, &r.id, &reason).await?;
        Ok(Response::new(pb::CancelOrderResponse {
            id: r.id,
            status: pb::OrderStatus::Cancelled as i32,
            cancelled_at: Some(timestamp(cancelled_at)),
            cancel_reason: reason,
        }))
    }

    /// GET /orders/{id}/tracking: carrier, tracking number and page, estimated delivery,
    /// and the events of the order's history.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn get_tracking(
        &self,
        request: Request<pb::GetTrackingRequest>,
    ) -> Result<Response<pb::GetTrackingResponse>, Status> {
        let caller = authn::require_user(&request)?;
        let tracking = self.app.tracking(caller, &request.get_ref().id).await?;
        Ok(Response::new(wire::tracking(tracking)))
    }

    /// Adds a note by the owner or an admin; returns the order with its notes.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn add_order_note(
        &self,
        request: Request<pb::AddOrderNoteRequest>,
    ) -> Result<Response<pb::AddOrderNoteResponse>, Status> {
        let caller = authn::require_user(&request)?;
        let r = request.get_ref();
        let note = note(&r.note).map_err(OrderError::from)?;
        let order = self.app.add_note(caller, &r.id, &note).await?;
        Ok(Response::new(pb::AddOrderNoteResponse {
            order: Some(wire::order(&order)),
        }))
    }

    /// GET /orders/{id}/invoice: the invoice PDF of an order the caller may see (own, or
    /// any for an admin), with `content-disposition` naming the file.
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn get_invoice(
        &self,
        request: Request<pb::GetInvoiceRequest>,
    ) -> Result<Response<HttpBody>, Status> {
        let caller = authn::require_user(&request)?;
        let (order, pdf) = self.app.invoice(caller, &request.get_ref().id).await?;
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
    /// order within the return window; see [`OrdersApp::request_return`].
    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn request_return(
        &self,
        request: Request<pb::RequestReturnRequest>,
    ) -> Result<Response<pb::RequestReturnResponse>, Status> {
        let caller = authn::require_user(&request)?.clone();
        let r = request.into_inner();
        let reason = return_reason(&r.reason).map_err(OrderError::from)?;
        let items = wire::line_items(&r.items);
        let order = self
            .app
            .request_return(&caller, &r.id, &reason, &items)
            .await?;
        Ok(Response::new(pb::RequestReturnResponse {
            order: Some(wire::order(&order)),
        }))
    }

    /// GET /cart: the caller's active cart (created empty on first access).
    #[tracing::instrument(skip_all)]
    async fn get_cart(
        &self,
        request: Request<pb::GetCartRequest>,
    ) -> Result<Response<pb::GetCartResponse>, Status> {
        let user_id = authn::require_user(&request)?.user_id;
        let cart = self.app.active_cart(user_id).await?;
        Ok(Response::new(pb::GetCartResponse {
            cart: Some(wire::cart(&cart)),
        }))
    }

    /// POST /cart: replaces the caller's active cart's lines.
    #[tracing::instrument(skip_all)]
    async fn replace_cart(
        &self,
        request: Request<pb::ReplaceCartRequest>,
    ) -> Result<Response<pb::ReplaceCartResponse>, Status> {
        let user_id = authn::require_user(&request)?.user_id;
        let items = wire::line_items(&request.get_ref().products);
        let lines = CartLines::parse(items, false).map_err(OrderError::from)?;
        let cart = self.app.replace_active_cart(user_id, lines).await?;
        Ok(Response::new(pb::ReplaceCartResponse {
            cart: Some(wire::cart(&cart)),
        }))
    }

    /// GET /carts/user/:userId: the user's active cart; oneself, or anyone for an admin.
    #[tracing::instrument(skip_all, fields(user_id = request.get_ref().user_id))]
    async fn get_user_cart(
        &self,
        request: Request<pb::GetUserCartRequest>,
    ) -> Result<Response<pb::GetUserCartResponse>, Status> {
        let caller = authn::require_user(&request)?;
        let cart = self
            .app
            .user_cart(caller, request.get_ref().user_id)
            .await?;
        Ok(Response::new(pb::GetUserCartResponse {
            carts: vec![wire::cart(&cart)],
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
        let caller = authn::require_user(&request)?;
        let cart = self.app.cart(caller, request.get_ref().id).await?;
        Ok(Response::new(pb::GetCartByIdResponse {
            cart: Some(wire::cart(&cart)),
        }))
    }

    /// POST /carts/add (201): a new active cart for oneself (or any user, for an admin).
    #[tracing::instrument(skip_all)]
    async fn add_cart(
        &self,
        request: Request<pb::AddCartRequest>,
    ) -> Result<Response<pb::AddCartResponse>, Status> {
        let caller = authn::require_user(&request)?;
        let r = request.get_ref();
        let items = wire::line_items(&r.products);
        let cart = self.app.add_cart(caller, r.user_id, &items).await?;
        Ok(Response::new(pb::AddCartResponse {
            cart: Some(wire::cart(&cart)),
        }))
    }

    /// PUT/PATCH /carts/:id: merge (quantity 0 removes a line) or replace the lines.
    #[tracing::instrument(skip_all, fields(id = request.get_ref().id))]
    async fn update_cart(
        &self,
        request: Request<pb::UpdateCartRequest>,
    ) -> Result<Response<pb::UpdateCartResponse>, Status> {
        let caller = authn::require_user(&request)?;
        let r = request.get_ref();
        let items = wire::line_items(&r.products);
        let cart = self.app.update_cart(caller, r.id, &items, r.merge).await?;
        Ok(Response::new(pb::UpdateCartResponse {
            cart: Some(wire::cart(&cart)),
        }))
    }

    /// DELETE /carts/:id: soft delete; answers the cart with isDeleted and deletedOn.
    #[tracing::instrument(skip_all, fields(id = request.get_ref().id))]
    async fn delete_cart(
        &self,
        request: Request<pb::DeleteCartRequest>,
    ) -> Result<Response<pb::DeleteCartResponse>, Status> {
        let caller = authn::require_user(&request)?;
        let cart = self.app.delete_cart(caller, request.get_ref().id).await?;
        Ok(Response::new(pb::DeleteCartResponse {
            cart: Some(wire::cart(&cart)),
        }))
    }

    /// POST /admin/coupons (201), admin only.
    #[tracing::instrument(skip_all)]
    async fn create_coupon(
        &self,
        request: Request<pb::CreateCouponRequest>,
    ) -> Result<Response<pb::CreateCouponResponse>, Status> {
        authn::require_admin(&request)?;
        let input = request.get_ref().coupon.clone().unwrap_or_default();
        let new = NewCoupon::parse(wire::coupon_form(&input, None)).map_err(OrderError::from)?;
        let coupon = self.app.create_coupon(&new).await?;
        Ok(Response::new(pb::CreateCouponResponse {
            coupon: Some(wire::coupon(&coupon)),
        }))
    }

    /// GET /admin/coupons, admin only.
    #[tracing::instrument(skip_all)]
    async fn list_coupons(
        &self,
        request: Request<pb::ListCouponsRequest>,
    ) -> Result<Response<pb::ListCouponsResponse>, Status> {
        authn::require_admin(&request)?;
        let (skip, limit) = page(request.get_ref().skip, request.get_ref().limit)?;
        let page = Page {
            skip: skip.into(),
            limit: limit.into(),
        };
        let (coupons, n) = self.app.list_coupons(page).await?;
        Ok(Response::new(pb::ListCouponsResponse {
            coupons: coupons.iter().map(wire::coupon).collect(),
            total: total(n),
            skip,
            limit,
        }))
    }

    /// GET /admin/coupons/{code}, admin only.
    #[tracing::instrument(skip_all)]
    async fn get_coupon(
        &self,
        request: Request<pb::GetCouponRequest>,
    ) -> Result<Response<pb::GetCouponResponse>, Status> {
        authn::require_admin(&request)?;
        let coupon = self.app.get_coupon(&request.get_ref().code).await?;
        Ok(Response::new(pb::GetCouponResponse {
            coupon: Some(wire::coupon(&coupon)),
        }))
    }

    /// PUT /admin/coupons/{code}, admin only: the terms replaced.
    #[tracing::instrument(skip_all)]
    async fn update_coupon(
        &self,
        request: Request<pb::UpdateCouponRequest>,
    ) -> Result<Response<pb::UpdateCouponResponse>, Status> {
        authn::require_admin(&request)?;
        let r = request.get_ref();
        // A path that cannot be a code names no coupon.
        let code = CouponCode::parse(&r.code)
            .map_err(|_| OrderError::Coupon(super::domain::CouponRefusal::NotFound))?;
        let input = r.coupon.clone().unwrap_or_default();
        let new = NewCoupon::parse(wire::coupon_form(&input, Some(code.as_str())))
            .map_err(OrderError::from)?;
        let coupon = self.app.update_coupon(&new).await?;
        Ok(Response::new(pb::UpdateCouponResponse {
            coupon: Some(wire::coupon(&coupon)),
        }))
    }

    /// DELETE /admin/coupons/{code}, admin only.
    #[tracing::instrument(skip_all)]
    async fn delete_coupon(
        &self,
        request: Request<pb::DeleteCouponRequest>,
    ) -> Result<Response<pb::DeleteCouponResponse>, Status> {
        authn::require_admin(&request)?;
        let code = self.app.delete_coupon(&request.get_ref().code).await?;
        Ok(Response::new(pb::DeleteCouponResponse {
            code,
            deleted: true,
        }))
    }

    /// POST /checkout/apply-coupon: the caller's cart priced with the coupon.
    #[tracing::instrument(skip_all)]
    async fn apply_coupon(
        &self,
        request: Request<pb::ApplyCouponRequest>,
    ) -> Result<Response<pb::ApplyCouponResponse>, Status> {
        let user_id = authn::require_user(&request)?.user_id;
        let r = request.get_ref();
        let mut v = Violations::default();
        let code = v.check("code", CouponCode::parse(&r.code));
        let method = v.check(
            "shippingMethod",
            method_code(&r.shipping_method)
                .map_err(|_| "must be a shipping method code, e.g. standard".to_owned()),
        );
        let (Some(code), Some(method)) = (code, method) else {
            return Err(OrderError::from(v).into());
        };
        let to = r
            .shipping_address
            .as_ref()
            .map(|a| Destination::of(&wire::address_from_wire(a)));
        let cart = self
            .app
            .apply_coupon(user_id, &code, to.as_ref(), &method)
            .await?;
        Ok(Response::new(pb::ApplyCouponResponse {
            cart: Some(wire::priced_cart(&cart)),
        }))
    }

    /// DELETE /checkout/remove-coupon: the caller's cart re-priced without a coupon.
    #[tracing::instrument(skip_all)]
    async fn remove_coupon(
        &self,
        request: Request<pb::RemoveCouponRequest>,
    ) -> Result<Response<pb::RemoveCouponResponse>, Status> {
        let user_id = authn::require_user(&request)?.user_id;
        let cart = self.app.remove_coupon(user_id).await?;
        Ok(Response::new(pb::RemoveCouponResponse {
            cart: Some(wire::priced_cart(&cart)),
        }))
    }

    /// GET /shipping/methods: anyone.
    #[tracing::instrument(skip_all)]
    async fn list_shipping_methods(
        &self,
        _request: Request<pb::ListShippingMethodsRequest>,
    ) -> Result<Response<pb::ListShippingMethodsResponse>, Status> {
        let methods = self.app.shipping_methods().await?;
        Ok(Response::new(pb::ListShippingMethodsResponse {
            methods: methods.iter().map(wire::shipping_method).collect(),
        }))
    }

    /// POST /shipping/rates: anyone; the caller's cart when signed in and no items are given.
    /// A token that is sent must be valid (a bad one is 401, not silently anonymous).
    #[tracing::instrument(skip_all)]
    async fn get_shipping_rates(
        &self,
        request: Request<pb::GetShippingRatesRequest>,
    ) -> Result<Response<pb::GetShippingRatesResponse>, Status> {
        let caller = match request.extensions().get::<authn::Caller>() {
            None | Some(authn::Caller::Anonymous) => None,
            other => Some(authn::principal_of(other).map_err(Status::from)?.user_id),
        };
        let r = request.get_ref();
        let Some(address) = &r.address else {
            return Err(OrderError::from(Violations::one("address", "is required")).into());
        };
        let mut v = Violations::default();
        for (field, value) in [
            ("address.country", &address.country),
            ("address.state", &address.state),
        ] {
            if value.len() > 100 {
                v.push(field, "is too long");
            }
        }
        if address.country.trim().is_empty() {
            v.push("address.country", "is required");
        }
        if r.items.len() > super::domain::request::MAX_LINES {
            v.push(
                "items",
                format!("at most {} products", super::domain::request::MAX_LINES),
            );
        }
        v.finish(|| ()).map_err(OrderError::from)?;
        let to = Destination::new(&address.country, &address.state);
        let rates = self
            .app
            .shipping_rates(
                caller,
                &to,
                r.items.iter().map(|i| (i.product_id, i.quantity)).collect(),
            )
            .await?;
        Ok(Response::new(wire::rates(&rates)))
    }

    /// GET /admin/tax-rates, admin only.
    #[tracing::instrument(skip_all)]
    async fn list_tax_rates(
        &self,
        request: Request<pb::ListTaxRatesRequest>,
    ) -> Result<Response<pb::ListTaxRatesResponse>, Status> {
        authn::require_admin(&request)?;
        let (rates, fallback) = self.app.tax_rates().await?;
        Ok(Response::new(pb::ListTaxRatesResponse {
            rates: rates
                .iter()
                .map(|(country, state, rate)| wire::tax_rate(country, state, *rate))
                .collect(),
            fallback_rate: fallback.fraction(),
        }))
    }

    /// PUT /admin/tax-rates, admin only.
    #[tracing::instrument(skip_all)]
    async fn set_tax_rate(
        &self,
        request: Request<pb::SetTaxRateRequest>,
    ) -> Result<Response<pb::SetTaxRateResponse>, Status> {
        authn::require_admin(&request)?;
        let r = request.get_ref();
        let (country, state, rate) = self.app.set_tax_rate(&r.country, &r.state, r.rate).await?;
        Ok(Response::new(pb::SetTaxRateResponse {
            tax_rate: Some(wire::tax_rate(&country, &state, rate)),
        }))
    }

    /// Internal (payments): the total and payment state of a user's order.
    #[tracing::instrument(skip_all, fields(order = %request.get_ref().order_id))]
    async fn get_order_for_payment(
        &self,
        request: Request<pb::GetOrderForPaymentRequest>,
    ) -> Result<Response<pb::GetOrderForPaymentResponse>, Status> {
        authn::require_admin(&request)?;
        let r = request.get_ref();
        let order = self.app.order_for_payment(&r.order_id, r.user_id).await?;
        Ok(Response::new(pb::GetOrderForPaymentResponse {
            total_cents: order.total_cents,
            payment_status: wire::payment_state(order.payment_status) as i32,
            status: wire::status(order.status) as i32,
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
        let r = request.get_ref();
        let state = IntentState {
            succeeded: r.succeeded,
            refunded: r.refunded,
        };
        let (order_id, payment_status) = self
            .app
            .record_payment(
                &r.payment_intent_id,
                r.order_id.as_deref(),
                r.user_id,
                r.amount_cents,
                state,
            )
            .await?;
        Ok(Response::new(pb::RecordPaymentResponse {
            order_id,
            payment_status: payment_status
                .map(|s| wire::payment_state(s) as i32)
                .unwrap_or_default(),
        }))
    }
}

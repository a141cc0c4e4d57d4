//! The orders service's view of the catalog: a generated `CatalogServiceClient`
//! over the catalog server in this process (no socket), or over a `Channel` to
//! `CATALOG_URL` in mesh mode. Every call carries the internal service token
//! (role admin, signed with the shared JWT secret) that the catalog's internal
//! RPCs require; the transport and the token are [`crate::internal`]'s.

use futures::future::BoxFuture;

use super::domain::ProductPrice;
use super::error::OrderError;
use crate::errors;
use crate::internal::{ServiceToken, Transport};
use crate::proto::ecom::catalog::v1 as pb;
use crate::proto::ecom::catalog::v1::catalog_service_client::CatalogServiceClient;
use crate::tokens::Tokens;

/// The email claim of the orders service's internal token.
pub const SERVICE_EMAIL: &str = "orders@service.internal";
/// How long a reservation holds before the catalog's sweeper releases it.
pub const RESERVATION_TTL_SECONDS: i32 = 900;

/// A catalog client for the orders service. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    client: CatalogServiceClient<Transport>,
    token: ServiceToken,
}

impl Catalog {
    /// A client over `transport`: the catalog server in this process, or a
    /// channel to CATALOG_URL ([`crate::internal`]).
    pub fn new(transport: Transport, tokens: Tokens) -> Catalog {
        Catalog {
            client: CatalogServiceClient::new(transport),
            token: ServiceToken::new(tokens, SERVICE_EMAIL),
        }
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        self.token.request(message)
    }

    /// Current prices of `ids`; an unknown id is 404 PRODUCT_NOT_FOUND naming it.
    // Each call is boxed as a `Send + 'static` future over owned values: the
    // generic client's bounds otherwise defeat the Send check of the async
    // trait methods calling it (a rustc higher-ranked lifetime limitation).
    pub fn pricing(
        &self,
        ids: Vec<i64>,
    ) -> BoxFuture<'static, Result<Vec<ProductPrice>, OrderError>> {
        let mut client = self.client.clone();
        let request = self.request(pb::GetProductsForPricingRequest { ids });
        Box::pin(async move {
            let response = client
                .get_products_for_pricing(request)
                .await
                .map_err(OrderError::Upstream)?
                .into_inner();
            if !response.missing_ids.is_empty() {
                return Err(OrderError::Upstream(errors::products_not_found(
                    &response.missing_ids,
                )));
            }
            Ok(response.products.into_iter().map(price).collect())
        })
    }

    /// Current prices of the live products among `ids`; unknown ids are left out.
    pub fn pricing_lenient(
        &self,
        ids: Vec<i64>,
    ) -> BoxFuture<'static, Result<Vec<ProductPrice>, OrderError>> {
        let mut client = self.client.clone();
        let request = self.request(pb::GetProductsForPricingRequest { ids });
        Box::pin(async move {
            let response = client
                .get_products_for_pricing(request)
                .await
                .map_err(OrderError::Upstream)?;
            Ok(response
                .into_inner()
                .products
                .into_iter()
                .map(price)
                .collect())
        })
    }

    /// Reserves every line under `order_key`, or none (422 INSUFFICIENT_STOCK).
    pub fn reserve(
        &self,
        order_key: String,
        lines: Vec<(i64, i32)>,
    ) -> BoxFuture<'static, Result<(), OrderError>> {
        let mut client = self.client.clone();
        let lines = lines
            .into_iter()
            .map(|(product_id, quantity)| pb::StockLine {
                product_id,
                quantity,
            })
            .collect();
        let request = self.request(pb::ReserveStockRequest {
            order_key,
            lines,
            ttl_seconds: RESERVATION_TTL_SECONDS,
        });
        Box::pin(async move {
            let response = client
                .reserve_stock(request)
                .await
                .map_err(OrderError::Upstream)?;
            match response.into_inner().state() {
                pb::ReservationState::Reserved | pb::ReservationState::Committed => Ok(()),
                // A key already released is never reserved again: order ids are not reused.
                state => Err(OrderError::Unexpected(anyhow::anyhow!(
                    "reservation is {state:?}"
                ))),
            }
        })
    }

    /// Commits the reservation of `order_key`; whether it is committed afterwards
    /// (`false`: it expired or was released, so its units went back to the shelf).
    pub fn commit(&self, order_key: String) -> BoxFuture<'static, Result<bool, OrderError>> {
        let mut client = self.client.clone();
        let request = self.request(pb::CommitReservationRequest { order_key });
        Box::pin(async move {
            let response = client
                .commit_reservation(request)
                .await
                .map_err(OrderError::Upstream)?;
            let state = response.into_inner().state();
            if state != pb::ReservationState::Committed {
                tracing::debug!(?state, "reservation not committed");
            }
            Ok(state == pb::ReservationState::Committed)
        })
    }

    /// Gives the stock of `order_key` back.
    pub fn release(&self, order_key: String) -> BoxFuture<'static, Result<(), OrderError>> {
        let mut client = self.client.clone();
        let request = self.request(pb::ReleaseReservationRequest { order_key });
        Box::pin(async move {
            client
                .release_reservation(request)
                .await
                .map_err(OrderError::Upstream)?;
            Ok(())
        })
    }
}

fn price(p: pb::PricedProduct) -> ProductPrice {
    ProductPrice {
        id: p.id,
        title: p.title,
        price_cents: p.price_cents,
        discount_bp: p.discount_basis_points,
        thumbnail: p.thumbnail,
        // Kilograms on the wire (the catalog's unit), grams here.
        weight_grams: if p.weight.is_finite() && p.weight > 0.0 {
            (p.weight * 1000.0).round() as i64
        } else {
            0
        },
        category: p.category,
    }
}

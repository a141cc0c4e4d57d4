//! The orders service's view of the catalog: a generated `CatalogServiceClient`
//! over the catalog server in this process (no socket), or over a `Channel` to
//! `CATALOG_URL` in mesh mode. Every call carries the internal service token
//! (role admin, signed with the shared JWT secret) that the catalog's internal
//! RPCs require.

use std::time::Duration;

use anyhow::Context as _;
use tonic::transport::Endpoint;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder, ServiceExt as _};

use super::error::OrderError;
use crate::authn::{Authenticate, Authenticator};
use crate::catalog::CatalogService;
use crate::catalog::reservations;
use crate::proto::ecom::catalog::v1 as pb;
use crate::proto::ecom::catalog::v1::catalog_service_client::CatalogServiceClient;
use crate::proto::ecom::catalog::v1::catalog_service_server::CatalogServiceServer;
use crate::tokens::{Role, Tokens};

/// The transport under the client: in-process service or channel, boxed.
type Transport = BoxCloneSyncService<http::Request<tonic::body::Body>, http::Response<tonic::body::Body>, BoxError>;

/// The user id of the internal service token (no such user exists).
const SERVICE_USER_ID: i64 = 0;
/// The email claim of the internal service token.
const SERVICE_EMAIL: &str = "orders@service.internal";
/// How long a reservation holds before the catalog's sweeper releases it.
pub const RESERVATION_TTL_SECONDS: i32 = 900;

/// A catalog client for the orders service. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    client: CatalogServiceClient<Transport>,
    tokens: Tokens,
}

impl Catalog {
    /// A client over `service` in this process, behind the same authentication
    /// layer the gRPC server has.
    pub fn in_process(service: CatalogService, authenticator: Authenticator, tokens: Tokens) -> Catalog {
        let stack = ServiceBuilder::new()
            .layer(Authenticate::layer(authenticator))
            .service(CatalogServiceServer::new(service))
            .map_err(|never| -> BoxError { match never {} });
        Catalog {
            client: CatalogServiceClient::new(BoxCloneSyncService::new(stack)),
            tokens,
        }
    }

    /// A client over a lazily connected channel to `url`.
    pub fn remote(url: &str, tokens: Tokens) -> anyhow::Result<Catalog> {
        let channel = Endpoint::from_shared(url.to_owned())
            .with_context(|| format!("invalid CATALOG_URL `{url}`"))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy();
        let transport = BoxCloneSyncService::new(channel.map_err(BoxError::from));
        Ok(Catalog {
            client: CatalogServiceClient::new(transport),
            tokens,
        })
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let (token, _) = self
            .tokens
            .mint(SERVICE_USER_ID, SERVICE_EMAIL, Role::Admin, Some(Duration::from_secs(60)));
        let mut request = tonic::Request::new(message);
        let value = format!("Bearer {token}").parse().expect("a JWT is valid metadata");
        request.metadata_mut().insert("authorization", value);
        request
    }

    /// Current prices of `ids`; an unknown id is 404 PRODUCT_NOT_FOUND naming it.
    pub async fn pricing(&self, ids: Vec<i64>) -> Result<Vec<pb::PricedProduct>, OrderError> {
        let response = self
            .client
            .clone()
            .get_products_for_pricing(self.request(pb::GetProductsForPricingRequest { ids }))
            .await
            .map_err(OrderError::Upstream)?
            .into_inner();
        if !response.missing_ids.is_empty() {
            return Err(OrderError::Upstream(reservations::products_not_found(&response.missing_ids)));
        }
        Ok(response.products)
    }

    /// Reserves every line under `order_key`, or none (422 INSUFFICIENT_STOCK).
    pub async fn reserve(&self, order_key: &str, lines: impl Iterator<Item = (i64, i32)>) -> Result<(), OrderError> {
        let lines = lines
            .map(|(product_id, quantity)| pb::StockLine { product_id, quantity })
            .collect();
        self.client
            .clone()
            .reserve_stock(self.request(pb::ReserveStockRequest {
                order_key: order_key.to_owned(),
                lines,
                ttl_seconds: RESERVATION_TTL_SECONDS,
            }))
            .await
            .map_err(OrderError::Upstream)?;
        Ok(())
    }

    /// Commits the reservation of `order_key`; its state afterwards.
    pub async fn commit(&self, order_key: &str) -> Result<pb::ReservationState, OrderError> {
        let response = self
            .client
            .clone()
            .commit_reservation(self.request(pb::CommitReservationRequest {
                order_key: order_key.to_owned(),
            }))
            .await
            .map_err(OrderError::Upstream)?;
        Ok(response.into_inner().state())
    }

    /// Gives the stock of `order_key` back.
    pub async fn release(&self, order_key: &str) -> Result<(), OrderError> {
        self.client
            .clone()
            .release_reservation(self.request(pb::ReleaseReservationRequest {
                order_key: order_key.to_owned(),
            }))
            .await
            .map_err(OrderError::Upstream)?;
        Ok(())
    }
}

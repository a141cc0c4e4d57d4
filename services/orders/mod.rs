//! The orders service. Its RPCs are declared in proto/ecom/orders/v1/orders.proto; until they are
//! built, the generated default stubs answer UNIMPLEMENTED (the REST edge says 501).

use crate::proto::ecom::orders::v1::orders_service_server::OrdersService;

/// The orders service's gRPC implementation.
#[derive(Debug, Default, Clone)]
pub struct OrdersApi;

#[tonic::async_trait]
impl OrdersService for OrdersApi {}

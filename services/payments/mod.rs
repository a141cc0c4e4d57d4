//! The payments service. Its RPCs are declared in proto/ecom/payments/v1/payments.proto; until they are
//! built, the generated default stubs answer UNIMPLEMENTED (the REST edge says 501).

use crate::proto::ecom::payments::v1::payments_service_server::PaymentsService;

/// The payments service's gRPC implementation.
#[derive(Debug, Default, Clone)]
pub struct PaymentsApi;

#[tonic::async_trait]
impl PaymentsService for PaymentsApi {}

//! The auth service. Its RPCs are declared in proto/ecom/auth/v1/auth.proto; until they are
//! built, the generated default stubs answer UNIMPLEMENTED (the REST edge says 501).

use crate::proto::ecom::auth::v1::auth_service_server::AuthService;

/// The auth service's gRPC implementation.
#[derive(Debug, Default, Clone)]
pub struct AuthApi;

#[tonic::async_trait]
impl AuthService for AuthApi {}

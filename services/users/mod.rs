//! The users service. Its RPCs are declared in proto/ecom/users/v1/users.proto; until they are
//! built, the generated default stubs answer UNIMPLEMENTED (the REST edge says 501).

use crate::proto::ecom::users::v1::users_service_server::UsersService;

/// The users service's gRPC implementation.
#[derive(Debug, Default, Clone)]
pub struct UsersApi;

#[tonic::async_trait]
impl UsersService for UsersApi {}

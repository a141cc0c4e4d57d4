//! Service-to-service calls: the transport under a generated tonic client, and
//! the internal service token every call carries.
//!
//! A service reaches another one either in this process (no socket: the
//! other's tonic server behind the same authentication layer the gRPC server
//! has) or over a `Channel` to its URL in mesh mode (`CATALOG_URL`,
//! `ORDERS_URL`, `PAYMENTS_URL`). The code above the transport is the same in
//! both cases. Two services that call each other (orders and payments) cannot
//! each own the other at construction: a [`Late`] transport is created first
//! and bound to the in-process service once that exists.
//!
//! Internal RPCs have no google.api.http rule (the edge never routes them)
//! and require the admin role, which the internal service token has: a JWT
//! signed with the shared secret for user id 0 (no such user exists), valid
//! for one minute.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use tonic::transport::Endpoint;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

use crate::authn::{Authenticate, Authenticator};
use crate::db::consistency::ReadYourWritesLayer;
use crate::tokens::{Role, Tokens};

/// The transport under a client: in-process service or channel, boxed.
pub type Transport = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    TransportError,
>;

/// A transport failure. A concrete error type (not `BoxError` itself): a boxed
/// trait object here trips rustc's higher-ranked Send check in the handlers.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct TransportError(BoxError);

/// The user id of the internal service token (no such user exists).
pub const SERVICE_USER_ID: i64 = 0;

/// A transport to `server` (a generated `...ServiceServer`) in this process,
/// behind the same authentication and read-consistency layers the gRPC server has.
pub fn in_process<S>(
    server: S,
    authenticator: Authenticator,
    read_your_writes: ReadYourWritesLayer,
) -> Transport
where
    S: Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let stack = ServiceBuilder::new()
        .layer(Authenticate::layer(authenticator))
        .layer(read_your_writes)
        .service(server);
    let stack = ServiceExt::<http::Request<tonic::body::Body>>::map_err(
        stack,
        |never: Infallible| -> TransportError { match never {} },
    );
    BoxCloneSyncService::new(stack)
}

/// A transport over a lazily connected channel to `url` (the setting `name` says
/// where it came from, for the error).
pub fn remote(url: &str, name: &str) -> anyhow::Result<Transport> {
    let channel = Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("invalid {name} `{url}`"))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .connect_lazy();
    Ok(BoxCloneSyncService::new(
        channel.map_err(|e| TransportError(BoxError::from(e))),
    ))
}

/// A transport bound after its users were built (two services calling each
/// other in one process). Its users hold it weakly, so the two services do not
/// keep each other alive: whoever runs them keeps the `Late` until shutdown.
/// Before [`Late::bind`] and after the `Late` is dropped, calls fail.
#[derive(Clone, Default)]
pub struct Late(Arc<OnceLock<Transport>>);

impl Late {
    /// An unbound transport.
    pub fn new() -> Late {
        Late::default()
    }

    /// Binds the transport; a second binding is ignored.
    pub fn bind(&self, transport: Transport) {
        let _ = self.0.set(transport);
    }

    /// The transport its users call through.
    pub fn transport(&self) -> Transport {
        let cell = Arc::downgrade(&self.0);
        BoxCloneSyncService::new(tower::service_fn(
            move |request: http::Request<tonic::body::Body>| {
                let bound = cell.upgrade().and_then(|cell| cell.get().cloned());
                async move {
                    match bound {
                        Some(transport) => transport.oneshot(request).await,
                        None => Err(TransportError(BoxError::from(
                            "internal transport not bound (starting or stopped)",
                        ))),
                    }
                }
            },
        ))
    }
}

/// Mints the internal service token onto requests. Cheap to clone.
#[derive(Clone)]
pub struct ServiceToken {
    tokens: Tokens,
    email: &'static str,
}

impl ServiceToken {
    /// Tokens for the service named by `email` (e.g. `orders@service.internal`).
    pub fn new(tokens: Tokens, email: &'static str) -> ServiceToken {
        ServiceToken { tokens, email }
    }

    /// `message` as a request carrying a fresh internal service token.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let (token, _) = self.tokens.mint(
            SERVICE_USER_ID,
            self.email,
            Role::Admin,
            Some(Duration::from_secs(60)),
        );
        let mut request = tonic::Request::new(message);
        let value = format!("Bearer {token}")
            .parse()
            .expect("a JWT is valid metadata");
        request.metadata_mut().insert("authorization", value);
        request
    }
}

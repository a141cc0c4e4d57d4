//! Read-your-writes over replicas: a tower layer on the gRPC server that decides, per RPC, what
//! its reads must see, and records the WAL position of every successful write.
//!
//! - A read RPC (its `google.api.http` rule is a GET) runs in a [`ReadScope`] (a task-local)
//!   that [`super::Database::reads`] consults: the reads may go to a replica that has replayed
//!   the caller's last write (the user's key below), and for the catalog, whose answers fill a
//!   cache every caller shares, also the last catalog write of anyone (the catalog key).
//! - Any other RPC runs with no scope, so all of it is on the primary. When it succeeds, the
//!   primary's WAL insert position, taken after its COMMIT, is written under the caller's
//!   key, and under the catalog key for a catalog RPC, for twice DATABASE_READ_MAX_LAG: by
//!   then every replica still in rotation has replayed it.
//! - A read that failed (INTERNAL or UNAVAILABLE) after a replica served part of it is run once
//!   more on the primary, and that replica is left out until the monitor sees it healthy: a
//!   replica dying mid-read is not an error for the caller.
//!
//! The keys live in the shared store, so the rule holds across instances. If the store cannot
//! be read, a read goes to the primary (what the caller wrote is unknown). Nothing here runs
//! without DATABASE_READ_URLS.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::Either;
use http_body_util::BodyExt as _;
use tower::{Layer, Service, ServiceExt as _};

use super::replicas::{Database, Lsn};
use crate::authn::Caller;
use crate::kv::Kv;

tokio::task_local! {
    static SCOPE: Arc<ReadScope>;
}

/// The read-consistency scope of the current read RPC, if any.
pub(super) fn current() -> Option<Arc<ReadScope>> {
    SCOPE.try_with(Arc::clone).ok()
}

/// What the reads of one read RPC must see.
pub(super) struct ReadScope {
    kv: Kv,
    /// The signed-in caller, whose own last write must be visible.
    user: Option<i64>,
    /// A catalog RPC: the last catalog write must be visible too.
    catalog: bool,
    /// The position resolved from the store (once per RPC); `None`: the primary only.
    required: tokio::sync::OnceCell<Option<Lsn>>,
    /// 1 + the index of the replica a read used, 0 for none.
    used: AtomicUsize,
}

impl ReadScope {
    /// The WAL position a replica must have replayed to serve this RPC's reads; `None` when
    /// only the primary will do.
    pub(super) async fn required_lsn(&self) -> Option<Lsn> {
        *self
            .required
            .get_or_init(|| async {
                let mut min = Lsn(0);
                let keys = self
                    .user
                    .map(user_key)
                    .into_iter()
                    .chain(self.catalog.then(|| CATALOG_KEY.to_owned()));
                for key in keys {
                    match self.kv.get(&key).await {
                        Ok(Some(value)) => {
                            let lsn = std::str::from_utf8(&value).ok()?.parse().ok()?;
                            min = min.max(Lsn(lsn));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            metrics::counter!("db_read_consistency_errors_total").increment(1);
                            tracing::warn!(error = %e, "last write position unknown: reading the primary");
                            return None;
                        }
                    }
                }
                tracing::debug!(%min, user = ?self.user, catalog = self.catalog, "a read's required WAL position");
                Some(min)
            })
            .await
    }

    /// Notes that replica `index` served a read of this RPC.
    pub(super) fn used_replica(&self, index: usize) {
        self.used.store(index + 1, Ordering::Relaxed);
    }

    fn replica_used(&self) -> Option<usize> {
        self.used.load(Ordering::Relaxed).checked_sub(1)
    }
}

/// The key of a user's last write position.
fn user_key(user_id: i64) -> String {
    format!("db:written:user:{user_id}")
}

/// The key of the last catalog write position (any admin's, and stock reservations').
const CATALOG_KEY: &str = "db:written:catalog";

/// How the layer treats an RPC, from its descriptor.
#[derive(Debug, Clone, Copy)]
struct Rpc {
    /// Its google.api.http rule is a GET.
    read: bool,
    /// A CatalogService RPC.
    catalog: bool,
}

/// Every RPC by its gRPC path (`/package.Service/Method`), from the descriptor pool, once.
fn rpcs() -> &'static HashMap<String, Rpc> {
    static RPCS: OnceLock<HashMap<String, Rpc>> = OnceLock::new();
    RPCS.get_or_init(|| {
        let pool = crate::proto::descriptor_pool();
        let http = pool.get_extension_by_name("google.api.http");
        pool.services()
            .flat_map(|service| service.methods().collect::<Vec<_>>())
            .map(|method| {
                let read = http.as_ref().is_some_and(|ext| {
                    let options = method.options();
                    options.has_extension(ext)
                        && options
                            .get_extension(ext)
                            .as_message()
                            .is_some_and(|rule| rule.has_field_by_name("get"))
                });
                let catalog =
                    method.parent_service().full_name() == "ecom.catalog.v1.CatalogService";
                let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
                (path, Rpc { read, catalog })
            })
            .collect()
    })
}

/// Tower layer giving each RPC its read consistency (see the module doc).
#[derive(Clone)]
pub struct ReadYourWritesLayer {
    db: Database,
    kv: Kv,
}

/// The service made by [`ReadYourWritesLayer`].
#[derive(Clone)]
pub struct ReadYourWrites<S> {
    inner: S,
    db: Database,
    kv: Kv,
}

impl ReadYourWrites<()> {
    /// The layer over `db`, keeping write positions in `kv`. It must sit inside the
    /// authentication layer: it reads the caller that layer found.
    pub fn layer(db: Database, kv: Kv) -> ReadYourWritesLayer {
        ReadYourWritesLayer { db, kv }
    }
}

impl<S> Layer<S> for ReadYourWritesLayer {
    type Service = ReadYourWrites<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReadYourWrites {
            inner,
            db: self.db.clone(),
            kv: self.kv.clone(),
        }
    }
}

type Req = http::Request<tonic::body::Body>;

impl<S, B, RB> Service<http::Request<B>> for ReadYourWrites<S>
where
    S: Service<Req, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    RB: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    /// The inner future as it is when there is nothing to decide (no replicas, or an RPC the
    /// descriptors do not name), so that path costs no allocation; boxed otherwise.
    type Future =
        Either<S::Future, Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let req = req.map(tonic::body::Body::new);
        let rpc = if self.db.has_replicas() {
            rpcs().get(req.uri().path()).copied()
        } else {
            None
        };
        let Some(rpc) = rpc else {
            return Either::Left(self.inner.call(req));
        };
        // The clone is the one that was not polled ready; swap so the ready one serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let user = match req.extensions().get::<Caller>() {
            Some(Caller::User(p)) if p.user_id != crate::internal::SERVICE_USER_ID => {
                Some(p.user_id)
            }
            _ => None,
        };
        let (db, kv) = (self.db.clone(), self.kv.clone());
        if rpc.read {
            Either::Right(Box::pin(read(inner, req, db, kv, user, rpc.catalog)))
        } else {
            Either::Right(Box::pin(async move {
                let response = inner.call(req).await?;
                if succeeded(&response) && (user.is_some() || rpc.catalog) {
                    record_write(&db, &kv, user, rpc.catalog).await;
                }
                Ok(response)
            }))
        }
    }
}

/// A read RPC in its scope; once more on the primary when it failed after a replica served it.
async fn read<S, RB>(
    inner: S,
    req: Req,
    db: Database,
    kv: Kv,
    user: Option<i64>,
    catalog: bool,
) -> Result<http::Response<RB>, S::Error>
where
    S: Service<Req, Response = http::Response<RB>> + Clone,
{
    // Unary requests are small; kept so the request can be sent again.
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            // The client's body broke off: let the service answer that, on the primary.
            return inner
                .oneshot(http::Request::from_parts(parts, tonic::body::Body::empty()))
                .await;
        }
    };
    let again = http::Request::from_parts(parts.clone(), full(body.clone()));
    let scope = Arc::new(ReadScope {
        kv,
        user,
        catalog,
        required: tokio::sync::OnceCell::new(),
        used: AtomicUsize::new(0),
    });
    let first = SCOPE
        .scope(
            scope.clone(),
            inner
                .clone()
                .oneshot(http::Request::from_parts(parts, full(body))),
        )
        .await?;
    match scope.replica_used() {
        Some(index) if failed_transiently(&first) => {
            metrics::counter!("db_replica_read_retries_total").increment(1);
            db.suspect_replica(index);
            // No scope: every read of the second attempt is on the primary.
            inner.oneshot(again).await
        }
        _ => Ok(first),
    }
}

fn full(bytes: Bytes) -> tonic::body::Body {
    tonic::body::Body::new(http_body_util::Full::new(bytes))
}

/// The gRPC status of a unary response: errors come as trailers-only responses, so the status
/// is in the headers; a missing grpc-status in the headers means the body will say OK.
fn status<RB>(response: &http::Response<RB>) -> tonic::Code {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map_or(tonic::Code::Ok, |c| tonic::Code::from_bytes(c.as_bytes()))
}

fn succeeded<RB>(response: &http::Response<RB>) -> bool {
    response.status().is_success() && status(response) == tonic::Code::Ok
}

fn failed_transiently<RB>(response: &http::Response<RB>) -> bool {
    matches!(
        status(response),
        tonic::Code::Internal | tonic::Code::Unavailable | tonic::Code::Unknown
    )
}

/// Writes the primary's current position under the caller's key and, for the catalog, the
/// catalog key. A failure is logged and counted: the write stands, and the caller's next read
/// may then miss it on a replica for up to DATABASE_READ_MAX_LAG.
async fn record_write(db: &Database, kv: &Kv, user: Option<i64>, catalog: bool) {
    let lsn = match db.written_lsn().await {
        Ok(lsn) => lsn,
        Err(e) => {
            metrics::counter!("db_read_consistency_errors_total").increment(1);
            return tracing::warn!(error = %e, "could not read the primary's WAL position after a write");
        }
    };
    tracing::debug!(%lsn, ?user, catalog, "recorded a write's WAL position");
    let ttl = db.max_lag() * 2;
    let keys = user
        .map(user_key)
        .into_iter()
        .chain(catalog.then(|| CATALOG_KEY.to_owned()));
    for key in keys {
        // The greatest position stays: a slower concurrent write of the same caller, whose
        // position is lower, must not replace a faster one's.
        if let Err(e) = kv.raise(&key, lsn.0, ttl).await {
            metrics::counter!("db_read_consistency_errors_total").increment(1);
            tracing::warn!(error = %e, key = %key, "could not record a write's WAL position");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_the_get_rpcs() {
        let rpcs = rpcs();
        let get = |path: &str| rpcs.get(path).copied().unwrap_or_else(|| panic!("{path}"));
        assert!(get("/ecom.catalog.v1.CatalogService/GetProduct").read);
        assert!(get("/ecom.catalog.v1.CatalogService/GetProduct").catalog);
        assert!(get("/ecom.catalog.v1.CatalogService/ListProducts").read);
        assert!(!get("/ecom.catalog.v1.CatalogService/UpdateProduct").read);
        assert!(!get("/ecom.catalog.v1.CatalogService/ReserveStock").read);
        assert!(get("/ecom.orders.v1.OrdersService/ListOrders").read);
        assert!(!get("/ecom.orders.v1.OrdersService/ListOrders").catalog);
        assert!(!get("/ecom.orders.v1.OrdersService/CreateOrder").read);
        assert!(get("/ecom.users.v1.UsersService/ListAddresses").read);
    }
}

//! A panic anywhere below becomes a 500 `INTERNAL_ERROR` in the contract's
//! shape, with nothing of the panic in the body; the panic message is
//! logged, and the process keeps serving.

use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::body::Body;
use crate::error::{INTERNAL_MESSAGE, error_response};

/// The panic-catching layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanic;

impl CatchPanic {
    /// The layer.
    pub fn layer() -> CatchPanic {
        CatchPanic
    }
}

impl<S> Layer<S> for CatchPanic {
    type Service = CatchPanicService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanicService { inner }
    }
}

/// The service of [`CatchPanic`].
#[derive(Debug, Clone)]
pub struct CatchPanicService<S> {
    inner: S,
}

fn panic_response(panic: Box<dyn std::any::Any + Send>) -> Response<Body> {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string panic payload>".to_owned());
    tracing::error!(panic = %message, "request handler panicked");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        INTERNAL_MESSAGE,
        serde_json::Map::new(),
    )
}

impl<S, ReqB> Service<Request<ReqB>> for CatchPanicService<S>
where
    S: Service<Request<ReqB>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(fut) => Box::pin(async move {
                match AssertUnwindSafe(fut).catch_unwind().await {
                    Ok(result) => result,
                    Err(panic) => Ok(panic_response(panic)),
                }
            }),
            Err(panic) => {
                let response = panic_response(panic);
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

/// The gRPC-side twin of [`CatchPanic`], for a tonic server
/// (`Server::builder().layer(GrpcCatchPanic::layer())`) or an in-process
/// upstream: a panicking handler answers gRPC `INTERNAL` instead of leaving
/// its stream open, so a remote upstream's panic also reaches the client as
/// a prompt 500 rather than as the edge's deadline.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcCatchPanic;

impl GrpcCatchPanic {
    /// The layer.
    pub fn layer() -> GrpcCatchPanic {
        GrpcCatchPanic
    }
}

impl<S> Layer<S> for GrpcCatchPanic {
    type Service = GrpcCatchPanicService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcCatchPanicService { inner }
    }
}

/// The service of [`GrpcCatchPanic`].
#[derive(Debug, Clone)]
pub struct GrpcCatchPanicService<S> {
    inner: S,
}

fn grpc_panic_response(panic: Box<dyn std::any::Any + Send>) -> Response<tonic::body::Body> {
    drop(panic_response(panic));
    tonic::Status::internal(INTERNAL_MESSAGE).into_http()
}

impl<S, ReqB> Service<Request<ReqB>> for GrpcCatchPanicService<S>
where
    S: Service<Request<ReqB>, Response = Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<tonic::body::Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(fut) => Box::pin(async move {
                match AssertUnwindSafe(fut).catch_unwind().await {
                    Ok(result) => result,
                    Err(panic) => Ok(grpc_panic_response(panic)),
                }
            }),
            Err(panic) => {
                let response = grpc_panic_response(panic);
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

//! A panic anywhere below becomes a 500 `INTERNAL_ERROR` in the contract's
//! shape, with nothing of the panic in the body; the panic message is
//! logged, and the process keeps serving.
//!
//! tower-http's `CatchPanic` does the catching; this module supplies the
//! answer and maps its boxed body back to the edge's [`Body`] (or tonic's).

use std::any::Any;

use bytes::Bytes;
use http::{Response, StatusCode};
use tower::Layer;
use tower_http::body::UnsyncBoxBody;
use tower_http::catch_panic::CatchPanic as CatchPanicService;
use tower_http::map_response_body::MapResponseBody;

use crate::body::{Body, BoxError};
use crate::error::{INTERNAL_MESSAGE, error_response};

type Panic = Box<dyn Any + Send + 'static>;
type CaughtBody = UnsyncBoxBody<Bytes, BoxError>;

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
    type Service =
        MapResponseBody<CatchPanicService<S, fn(Panic) -> Response<Body>>, fn(CaughtBody) -> Body>;

    fn layer(&self, inner: S) -> Self::Service {
        MapResponseBody::new(
            CatchPanicService::custom(inner, panic_response as fn(Panic) -> Response<Body>),
            Body::new,
        )
    }
}

/// Logs the panic's message and answers the contract's 500.
fn panic_response(panic: Panic) -> Response<Body> {
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
    type Service = MapResponseBody<
        CatchPanicService<S, fn(Panic) -> Response<tonic::body::Body>>,
        fn(CaughtBody) -> tonic::body::Body,
    >;

    fn layer(&self, inner: S) -> Self::Service {
        MapResponseBody::new(
            CatchPanicService::custom(
                inner,
                grpc_panic_response as fn(Panic) -> Response<tonic::body::Body>,
            ),
            tonic::body::Body::new,
        )
    }
}

/// Logs the panic as [`CatchPanic`] does and answers gRPC `INTERNAL`.
fn grpc_panic_response(panic: Panic) -> Response<tonic::body::Body> {
    drop(panic_response(panic));
    tonic::Status::internal(INTERNAL_MESSAGE).into_http()
}

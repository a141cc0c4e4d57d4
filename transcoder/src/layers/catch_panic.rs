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

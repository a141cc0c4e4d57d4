//! One tracing span per request, with `http.method`, `http.route` (the
//! matched pattern), `request_id`, `http.status_code` and `latency_ms`, and
//! one event when the response is ready.

use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use http::{Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::field::Empty;

use super::request_id::RequestIdValue;
use crate::service::MatchedRoute;

/// The tracing layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Trace;

impl Trace {
    /// The layer.
    pub fn layer() -> Trace {
        Trace
    }
}

impl<S> Layer<S> for Trace {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService { inner }
    }
}

/// The service of [`Trace`].
#[derive(Debug, Clone)]
pub struct TraceService<S> {
    inner: S,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for TraceService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let request_id = req
            .extensions()
            .get::<RequestIdValue>()
            .map(|v| v.0.clone())
            .or_else(|| req.headers().get("x-request-id").cloned());
        let span = tracing::info_span!(
            "http.request",
            http.method = %req.method(),
            http.route = Empty,
            request_id = Empty,
            http.status_code = Empty,
            latency_ms = Empty,
        );
        if let Some(id) = request_id.as_ref().and_then(|v| v.to_str().ok()) {
            span.record("request_id", id);
        }
        let start = Instant::now();
        let fut = {
            let _enter = span.enter();
            self.inner.call(req)
        };
        let span2 = span.clone();
        Box::pin(
            async move {
                let result = fut.await;
                span2.record("latency_ms", start.elapsed().as_secs_f64() * 1000.0);
                match &result {
                    Ok(response) => {
                        let route = response
                            .extensions()
                            .get::<MatchedRoute>()
                            .map_or("unmatched", |r| &r.0);
                        span2.record("http.route", route);
                        span2.record("http.status_code", response.status().as_u16());
                        if request_id.is_none()
                            && let Some(id) = response
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                        {
                            span2.record("request_id", id);
                        }
                        tracing::info!("request finished");
                    }
                    Err(e) => tracing::error!(error = %e, "request failed"),
                }
                result
            }
            .instrument(span),
        )
    }
}

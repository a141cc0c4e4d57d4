//! Per-RPC telemetry on the gRPC server: one tracing span per call carrying the request id
//! the edge sent (`x-request-id` metadata), and metrics: count by method and status,
//! latency histogram.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};

/// Tower layer recording `grpc_requests_total{method,code}` and
/// `grpc_request_duration_seconds{method}`.
#[derive(Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

/// The service made by [`GrpcMetricsLayer`].
#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl GrpcMetrics<()> {
    /// The layer.
    pub fn layer() -> GrpcMetricsLayer {
        GrpcMetricsLayer
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

impl<S, B, RB> Service<http::Request<B>> for GrpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().to_owned();
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let span = tracing::info_span!("rpc", rpc.method = %method, request_id = %request_id);
        let started = Instant::now();
        let future = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        Box::pin(tracing::Instrument::instrument(
            async move {
                let result = future.await;
                // Errors of unary RPCs come as trailers-only responses, so the status is in the
                // headers; a missing grpc-status in the headers means the body will say OK.
                let code = match &result {
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .map(|c| tonic::Code::from_bytes(c.as_bytes()))
                        .unwrap_or(tonic::Code::Ok),
                    Err(_) => tonic::Code::Unknown,
                };
                metrics::counter!("grpc_requests_total", "method" => method.clone(), "code" => format!("{code:?}"))
                .increment(1);
                let elapsed = started.elapsed();
                metrics::histogram!("grpc_request_duration_seconds", "method" => method)
                    .record(elapsed.as_secs_f64());
                tracing::debug!(code = ?code, latency_ms = elapsed.as_secs_f64() * 1000.0, "rpc finished");
                result
            },
            span,
        ))
    }
}

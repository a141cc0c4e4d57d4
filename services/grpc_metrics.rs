//! Per-RPC telemetry on the gRPC server: one tracing span per call carrying the request id
//! the edge sent (`x-request-id` metadata), and metrics: count by method and status,
//! latency histogram.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use metrics::{Counter, Histogram};
use tower::{Layer, Service};

/// Tower layer recording `grpc_requests_total{method,code}` and
/// `grpc_request_duration_seconds{method}`.
#[derive(Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

/// The service made by [`GrpcMetricsLayer`].
#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    handles: Arc<Handles>,
}

/// Each method's metrics, registered at its first call: looking a metric up by its labels in
/// the recorder allocates and hashes them, on every call otherwise (docs/BENCHMARKS.md,
/// 2026-12-07). The key is the request's path, which any client picks: past [`MAX_METHODS`]
/// paths a new one is looked up on every call, as before, instead of growing the map.
#[derive(Default)]
struct Handles {
    by_method: RwLock<HashMap<String, Arc<MethodHandles>>>,
}

/// One method's latency histogram and its counters by status code (0..=16).
struct MethodHandles {
    method: String,
    duration: Histogram,
    requests: [OnceLock<Counter>; 17],
}

/// More distinct paths than the services have methods (76 routed RPCs, plus the internal ones,
/// health and reflection).
const MAX_METHODS: usize = 1024;

impl Handles {
    fn method(&self, method: &str) -> Arc<MethodHandles> {
        if let Some(handles) = self.by_method.read().expect("poisoned").get(method) {
            return handles.clone();
        }
        let handles = Arc::new(MethodHandles {
            method: method.to_owned(),
            duration: metrics::histogram!("grpc_request_duration_seconds", "method" => method.to_owned()),
            requests: Default::default(),
        });
        let mut by_method = self.by_method.write().expect("poisoned");
        if by_method.len() < MAX_METHODS {
            by_method.insert(method.to_owned(), handles.clone());
        }
        handles
    }
}

impl MethodHandles {
    fn requests(&self, code: tonic::Code) -> &Counter {
        self.requests[(code as usize).min(16)].get_or_init(|| {
            metrics::counter!("grpc_requests_total", "method" => self.method.clone(), "code" => format!("{code:?}"))
        })
    }
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
        GrpcMetrics {
            inner,
            handles: Arc::default(),
        }
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
        let handles = self.handles.method(req.uri().path());
        let span = tracing::info_span!(
            "rpc",
            rpc.method = %req.uri().path(),
            request_id = %req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or(""),
        );
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
                handles.requests(code).increment(1);
                let elapsed = started.elapsed();
                handles.duration.record(elapsed.as_secs_f64());
                tracing::debug!(code = ?code, latency_ms = elapsed.as_secs_f64() * 1000.0, "rpc finished");
                result
            },
            span,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths are the client's to pick: the handles kept stop at MAX_METHODS, and a path past
    /// that still gets its metrics (looked up afresh).
    #[test]
    fn the_handles_kept_are_bounded() {
        let handles = Handles::default();
        for n in 0..MAX_METHODS + 10 {
            let h = handles.method(&format!("/x.Y/M{n}"));
            assert_eq!(h.method, format!("/x.Y/M{n}"));
        }
        assert_eq!(handles.by_method.read().unwrap().len(), MAX_METHODS);
        let kept = handles.method("/x.Y/M0");
        assert!(
            Arc::ptr_eq(&kept, &handles.method("/x.Y/M0")),
            "a kept one is reused"
        );
    }
}

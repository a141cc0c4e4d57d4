//! Per-route request metrics through the `metrics` facade (the application
//! installs the recorder/exporter): counter `http_requests_total{method,
//! route,status}` and histogram `http_request_duration_seconds{method,
//! route}`. `route` is the matched pattern from the response's
//! [`MatchedRoute`] extension, or `unmatched`, so label
//! cardinality is bounded by the route table, never by raw paths.
//!
//! Ours: tower-http's metrics module has an in-flight gauge only, nothing per route.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use http::{Method, Request, Response};
use metrics::{Counter, Histogram};
use tower::{Layer, Service};

use crate::service::MatchedRoute;

/// The metrics layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Metrics;

impl Metrics {
    /// The layer.
    pub fn layer() -> Metrics {
        Metrics
    }
}

impl<S> Layer<S> for Metrics {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            handles: Arc::default(),
        }
    }
}

/// The service of [`Metrics`].
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    handles: Arc<Handles>,
}

/// The counter and histogram of each (method, route, status) seen, registered once: looking a
/// metric up by its labels in the recorder allocates the labels and hashes them, on every
/// request otherwise (docs/BENCHMARKS.md, 2026-12-07). Bounded like the labels themselves.
#[derive(Debug, Default)]
struct Handles {
    by_labels: RwLock<HashMap<Labels, (Counter, Histogram)>>,
}

/// Method, route pattern, status.
type Labels = (&'static str, Arc<str>, u16);

impl Handles {
    fn record(&self, method: &'static str, route: &Arc<str>, status: u16, seconds: f64) {
        let key = (method, route.clone(), status);
        let hit = self
            .by_labels
            .read()
            .expect("metrics handles poisoned")
            .get(&key)
            .cloned();
        let (requests, duration) = hit.unwrap_or_else(|| {
            let route: metrics::SharedString = route.to_string().into();
            let handles = (
                metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status.to_string()),
                metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route),
            );
            self.by_labels
                .write()
                .expect("metrics handles poisoned")
                .insert(key, handles.clone());
            handles
        });
        requests.increment(1);
        duration.record(seconds);
    }
}

/// The method label: the standard methods by name, anything else `OTHER`
/// (a client must not be able to create label values).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for MetricsService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let method = method_label(req.method());
        let start = Instant::now();
        let fut = self.inner.call(req);
        let handles = self.handles.clone();
        Box::pin(async move {
            let result = fut.await;
            if let Ok(response) = &result {
                static UNMATCHED: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("unmatched"));
                let route = match response.extensions().get::<MatchedRoute>() {
                    Some(MatchedRoute(pattern)) => pattern,
                    None => &*UNMATCHED,
                };
                let seconds = start.elapsed().as_secs_f64();
                handles.record(method, route, response.status().as_u16(), seconds);
            }
            result
        })
    }
}

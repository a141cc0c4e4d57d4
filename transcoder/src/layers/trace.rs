//! One tracing span per request, with `http.method`, `http.route` (the
//! matched pattern), `request_id`, `http.status_code` and `latency_ms`, and
//! one event when the response is ready (or the service failed).
//!
//! tower-http's `TraceLayer` runs it; this module says what the span holds.
//! No header value but the request id is recorded, so secrets such as
//! `Authorization` never reach the logs. The request id is read from the
//! request, so the layer sits below [`RequestId`](super::RequestId).

use std::time::Duration;

use http::{Request, Response};
use tower_http::classify::{ServerErrorsAsFailures, ServerErrorsFailureClass, SharedClassifier};
use tower_http::trace::{MakeSpan, OnResponse, TraceLayer};
use tracing::Span;
use tracing::field::Empty;

use crate::service::MatchedRoute;

/// tower-http's `TraceLayer` with this module's span and events. It wraps
/// the response body in tower-http's trace body; map it back with
/// [`Body::new`](crate::Body::new) where an outermost `crate::Body` is needed.
pub type TraceEdgeLayer = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    RequestSpan,
    (),
    RequestFinished,
    (),
    (),
    fn(ServerErrorsFailureClass, Duration, &Span),
>;

/// The tracing layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Trace;

impl Trace {
    /// The layer.
    pub fn layer() -> TraceEdgeLayer {
        TraceLayer::new_for_http()
            .make_span_with(RequestSpan)
            .on_request(())
            .on_response(RequestFinished)
            .on_body_chunk(())
            .on_eos(())
            .on_failure(request_failed as fn(ServerErrorsFailureClass, Duration, &Span))
    }
}

/// Makes the `http.request` span.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &Request<B>) -> Span {
        let span = tracing::info_span!(
            "http.request",
            http.method = %req.method(),
            http.route = Empty,
            request_id = Empty,
            http.status_code = Empty,
            latency_ms = Empty,
        );
        let request_id = req
            .extensions()
            .get::<tower_http::request_id::RequestId>()
            .map(|id| id.header_value())
            .or_else(|| req.headers().get("x-request-id"));
        if let Some(id) = request_id.and_then(|v| v.to_str().ok()) {
            span.record("request_id", id);
        }
        span
    }
}

/// Records the route, status and latency, and logs `request finished`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFinished;

impl<B> OnResponse<B> for RequestFinished {
    fn on_response(self, response: &Response<B>, latency: Duration, span: &Span) {
        let route = response
            .extensions()
            .get::<MatchedRoute>()
            .map_or("unmatched", |r| &r.0);
        span.record("latency_ms", latency.as_secs_f64() * 1000.0);
        span.record("http.route", route);
        span.record("http.status_code", response.status().as_u16());
        tracing::info!("request finished");
    }
}

/// Logs a failed service call or body. A 5xx answer is not logged here: it
/// is a response, already in `request finished` with its status. The
/// latency goes in the event, not the span: after a body error the span has
/// it already.
fn request_failed(failure: ServerErrorsFailureClass, latency: Duration, _span: &Span) {
    if let ServerErrorsFailureClass::Error(error) = failure {
        let latency_ms = latency.as_secs_f64() * 1000.0;
        tracing::error!(error = %error, latency_ms, "request failed");
    }
}

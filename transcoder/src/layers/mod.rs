//! Edge concerns as tower layers, each with a `X::layer(..)` constructor.
//!
//! They wrap the [`Transcoder`](crate::Transcoder) (or anything answering
//! `http::Response<crate::Body>`); none of them knows about routes or
//! protobuf. A typical stack, outermost first (order matters where noted):
//!
//! ```text
//! Trace          one span per request; outermost so it times everything
//! Metrics        count / status / latency per matched route
//! CatchPanic     a panic below becomes a 500 that Metrics and Trace still see
//!                (GrpcCatchPanic does the same on the gRPC server side)
//! RequestId      before Cors/SecurityHeaders so every answer carries the id
//! SecurityHeaders
//! Cors           answers preflights itself, so it sits just above the edge
//! Transcoder
//! ```
//!
//! Futures are boxed (one small allocation per layer per request); that is
//! noise next to the JSON and HTTP work of a request.

pub mod catch_panic;
pub mod cors;
pub mod metrics;
pub mod request_id;
pub mod security;
pub mod trace;

pub use catch_panic::{CatchPanic, GrpcCatchPanic};
pub use cors::{Cors, CorsConfig};
pub use metrics::Metrics;
pub use request_id::{RequestId, RequestIdValue};
pub use security::SecurityHeaders;
pub use trace::Trace;

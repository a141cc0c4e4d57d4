//! Edge concerns as tower layers, each with a `X::layer(..)` constructor.
//!
//! They wrap the [`Transcoder`](crate::Transcoder) (or anything answering
//! `http::Response<crate::Body>`); none of them knows about routes or
//! protobuf. Where tower-http has the layer, it does the work (panic
//! catching, request id, tracing) and the module only says what the answer
//! or span holds; CORS, metrics and the security headers are ours (see their
//! modules for why). The stack, outermost first, as an application builds it
//! in one function (ecom: `router` in `services/edge.rs`):
//!
//! ```text
//! CatchPanic     outermost: a panic anywhere below becomes the contract's 500;
//!                it is logged here, so Trace and Metrics never see it
//!                (GrpcCatchPanic does the same on the gRPC server side)
//! RequestId      above Trace, so every span and every answer carries the id
//! Trace          one span per request
//! Metrics        count / status / latency per matched route
//! SecurityHeaders
//! Cors           answers preflights itself, so it sits just above the edge
//!                (and above anything that should not count a preflight)
//! Transcoder
//! ```

pub mod catch_panic;
pub mod cors;
pub mod metrics;
pub mod request_id;
pub mod security;
pub mod trace;

pub use catch_panic::{CatchPanic, GrpcCatchPanic};
pub use cors::{Cors, CorsConfig};
pub use metrics::Metrics;
pub use request_id::RequestId;
pub use security::SecurityHeaders;
pub use trace::Trace;

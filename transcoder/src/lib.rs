//! A generic REST/JSON edge for tonic gRPC services, driven by `google.api.http` annotations.
#![forbid(unsafe_code)]

pub mod codec;
pub mod openapi;
pub mod routes;
pub mod template;

//! A generic REST/JSON edge for tonic gRPC services.
//!
//! The [`Transcoder`] maps HTTP requests onto unary gRPC calls using only the
//! protobuf descriptors of the services and their `google.api.http`
//! annotations (plus the few options of `transcoder/v1/options.proto`), in
//! the manner of grpc-gateway's runtime. It knows nothing about any
//! particular API: any set of annotated tonic services can be served.
//!
//! Modules: [`service`] (the builder and the request pipeline), [`upstream`]
//! (in-process and channel upstreams), [`error`] (the gRPC -> HTTP error
//! contract), [`codec`] (JSON mapping), [`routes`] and [`template`] (route
//! table), [`openapi`] (the OpenAPI document), [`multipart`]
//! (form uploads), [`layers`] (edge concerns as tower layers), [`body`];
//! privately, `memo` (the response memo, protobuf bytes -> JSON body).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod body;
pub mod codec;
pub mod error;
pub mod frame;
pub mod layers;
mod memo;
pub mod multipart;
pub mod openapi;
pub mod routes;
pub mod service;
pub mod template;
pub mod upstream;

pub use body::{Body, BoxError};
pub use error::error_response;
pub use memo::ResponseMemoStats;
pub use openapi::OpenApiInfo;
pub use service::{BuildError, ClientAddr, MatchedRoute, Transcoder, TranscoderBuilder};
pub use upstream::Upstream;

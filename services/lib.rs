//! ecom: the backend of an online shop. Five gRPC services (auth, catalog, orders, users,
//! payments) defined in proto/, served by tonic, and a REST/JSON edge (the `transcoder` crate)
//! that serves the contract of shared/spec from the same descriptors.
//!
//! Shared parts live at the top (configuration, database, key-value store, cache, tokens,
//! authentication, errors, telemetry, the server assembly); each service has its own module.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod auth_alias;
pub mod authn;
pub mod balancer;
pub mod cache;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod db;
pub mod edge;
pub mod errors;
pub mod events;
pub mod grpc_metrics;
pub mod https;
pub mod idempotency;
pub mod internal;
pub mod kv;
pub mod mail;
pub mod money;
pub mod proto;
pub mod ratelimit;
pub mod readiness;
pub mod server;
pub mod telemetry;
pub mod tokens;
pub mod validation;

pub mod auth;
pub mod catalog;
pub mod orders;
pub mod payments;
pub mod users;

//! The integration tests, one module per area, in one binary so the app and the harness link
//! once (zero-to-production's layout). Every test talks to the real HTTP edge and the real gRPC
//! server, with its own PostgreSQL database and Redis key prefix (`common::spawn_app`).
//!
//! Run one area with `cargo test --test api orders::`, one test with its full path.

mod common;

mod after_sales;
mod auth;
mod carts;
mod catalog;
mod checkout;
mod cursor;
mod deploy;
mod events;
mod faults;
mod instances;
mod journey;
mod mesh;
mod notifications;
mod orders;
mod payments;
mod phase2;
mod replicas;
mod reviews;
mod spine;
mod users;
mod webhooks;
mod wishlist;

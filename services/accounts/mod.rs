//! The identity kernel: what the auth and users services genuinely share, since both own the
//! `users` table. The account row and its reads ([`store`]), identity's domain types
//! ([`domain`]: Email, Username, passwords...), password hashing ([`password`]) and the
//! profile cache ([`profiles`]); their wire forms, shared by both services' grpc.rs, are in
//! [`wire`], the one file here that sees protobuf. It never imports a service module; services
//! import it.

pub mod domain;
pub mod password;
pub mod profiles;
pub mod store;
pub mod wire;

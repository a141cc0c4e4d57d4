//! The auth service: registration, logins, tokens and passwords (contract section 4), behind
//! `ecom.auth.v1.AuthService`.
//!
//! With the users service it owns the identity tables (migrations/20261127000200_identity.sql):
//! `users`, `refresh_tokens`, `password_resets`, `mail_outbox`, and the `users:profile:*`
//! cache keys. Access tokens are JWTs ([`crate::tokens`]); refresh and reset tokens are opaque
//! random strings stored only as digests. Passwords are argon2id ([`password`]). Mail goes
//! through the outbox and the background sender ([`mail`]); the service never talks SMTP
//! inside an RPC. It must never log a password or a token.

pub mod domain;
mod error;
mod grpc;
pub mod mail;
pub mod password;
mod secret_token;
pub mod seed;
pub mod store;

pub use error::AuthError;
pub use grpc::{AuthApi, PROFILE_TTL, cache_profile, load_profile, profile_key};

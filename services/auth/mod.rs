//! The auth service: registration, logins, tokens and passwords (the /auth routes), behind
//! `ecom.auth.v1.AuthService`.
//!
//! With the users service it owns the identity tables (migrations/20261127000200_identity.sql):
//! `users`, `refresh_tokens`, `password_resets`, `mail_outbox`, and the `users:profile:*`
//! cache keys. Access tokens are JWTs ([`crate::tokens`]); refresh and reset tokens are opaque
//! random strings stored only as digests. Passwords are argon2id ([`password`]). Mail goes
//! through the kernel's outbox and sender ([`crate::mail`]); the service never talks SMTP
//! inside an RPC. It must never log a password or a token.

mod app;
mod error;
mod grpc;
mod secret_token;
pub mod seed;
pub mod store;

use std::time::Duration;

pub use crate::accounts::{domain, password};
pub use app::AuthApi;
pub use error::AuthError;

use crate::config::Settings;

/// The settings the auth service reads.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// JWT_EXPIRES_IN: the default access token lifetime.
    pub jwt_expires_in: Duration,
    /// JWT_REFRESH_EXPIRES_IN.
    pub jwt_refresh_expires_in: Duration,
    /// The longest `expiresInMins` a client may ask for.
    pub jwt_max_expires_in_mins: u32,
    /// How long a deleted account may still be restored by logging in.
    pub account_deletion_grace: Duration,
    pub login_lockout_threshold: i32,
    pub login_lockout_window: Duration,
    pub login_lockout_duration: Duration,
    /// Where password reset links point.
    pub frontend_url: String,
    /// RATE_LIMIT_ENABLED: the per-account limits follow the edge's.
    pub rate_limit_enabled: bool,
}

impl AuthSettings {
    /// The auth slice of the process settings.
    pub fn from_settings(s: &Settings) -> AuthSettings {
        AuthSettings {
            jwt_expires_in: s.jwt_expires_in,
            jwt_refresh_expires_in: s.jwt_refresh_expires_in,
            jwt_max_expires_in_mins: s.jwt_max_expires_in_mins,
            account_deletion_grace: s.account_deletion_grace,
            login_lockout_threshold: s.login_lockout_threshold,
            login_lockout_window: s.login_lockout_window,
            login_lockout_duration: s.login_lockout_duration,
            frontend_url: s.frontend_url.clone(),
            rate_limit_enabled: s.rate_limit_enabled,
        }
    }
}

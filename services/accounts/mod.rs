//! The identity kernel: what the auth and users services genuinely share, since both own the
//! `users` table. The account row and its reads ([`store`]), identity's domain types
//! ([`domain`]: Email, Username, passwords...), password hashing ([`password`]) and the
//! profile cache ([`profiles`]). It never imports a service module; services import it.

pub mod domain;
pub mod password;
pub mod profiles;
pub mod store;

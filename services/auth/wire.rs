//! Domain values to the wire (proto/ecom/auth/v1): the only room of the auth service, with
//! grpc.rs, that sees protobuf types. The profile's own wire form is the identity kernel's
//! ([`crate::accounts::wire`]), shared with users.

use super::app::{Session, SignedIn};
pub use crate::accounts::wire::user;
use crate::clock::timestamp;
use crate::proto::ecom::auth::v1 as pb;

/// A login's answer: the session's tokens, DummyJSON's flat profile fields and the profile.
pub fn login(SignedIn { session, profile }: SignedIn) -> pb::LoginResponse {
    pb::LoginResponse {
        token: session.access.clone(),
        access_token: session.access,
        refresh_token: session.refresh,
        expires_at: Some(timestamp(session.expires_at)),
        id: profile.id,
        username: profile.username.clone(),
        email: profile.email.clone(),
        first_name: profile.first_name.clone(),
        last_name: profile.last_name.clone(),
        gender: profile.gender.clone(),
        image: profile.image.clone(),
        user: Some(user(&profile)),
    }
}

/// A registration's answer: the new account's profile and its first session.
pub fn register(SignedIn { session, profile }: SignedIn) -> pb::RegisterResponse {
    pb::RegisterResponse {
        user: Some(user(&profile)),
        token: session.access,
        refresh_token: session.refresh,
        expires_at: Some(timestamp(session.expires_at)),
    }
}

/// A refresh's answer: the rotated session.
pub fn refresh(session: Session) -> pb::RefreshResponse {
    pb::RefreshResponse {
        token: session.access.clone(),
        access_token: session.access,
        refresh_token: session.refresh,
        expires_at: Some(timestamp(session.expires_at)),
    }
}

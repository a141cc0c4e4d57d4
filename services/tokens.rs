//! Access tokens: minting and verifying the JWTs that carry a caller's identity ([`Claims`]:
//! `sub` the numeric user id, email, role, a jti for revocation).
//!
//! The algorithm is pinned (HS256 with JWT_SECRET): a token with `alg: none` or any other
//! algorithm is rejected before its signature is looked at. Issuer, audience, expiry and the
//! token type are checked on every verification. Revocation (the jti deny-list) is checked by
//! [`crate::authn`], which has the store.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;

/// The role of a signed-in caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: i64,
    pub email: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    /// Token id, for revocation.
    pub jti: String,
    pub iss: String,
    pub aud: String,
    /// The refresh token family (login session) this token belongs to, so that
    /// "sign out my other sessions" can spare the caller's own. Absent on
    /// internal service tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<uuid::Uuid>,
    /// Always "access": refresh and reset tokens are opaque strings, never JWTs, but the type
    /// is pinned anyway so that no other JWT we might issue later passes as an access token.
    pub typ: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token was valid but its `exp` has passed.
    #[error("token expired")]
    Expired,
    /// Anything else: bad signature, wrong algorithm, issuer, audience or type, malformed.
    #[error("invalid token")]
    Invalid,
}

/// Mints and verifies access tokens. Cheap to clone: every request's authentication layer
/// clones it, so the keys, the validation rules (sets of claims, issuer and audience) and the
/// names, each on the heap, are shared rather than copied.
#[derive(Clone)]
pub struct Tokens {
    keys: Arc<Keys>,
    ttl: Duration,
    clock: Clock,
}

/// What [`Tokens`] shares between its clones.
struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl Tokens {
    /// Tokens signed with `secret`, valid for `ttl`.
    pub fn new(
        secret: &SecretString,
        issuer: &str,
        audience: &str,
        ttl: Duration,
        clock: Clock,
    ) -> Tokens {
        let key = secret.expose_secret().as_bytes();
        // Only HS256 is accepted, whatever the token's header says.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        // `sub` is the numeric user id here, and the library's `sub` check only
        // understands strings; serde requires it when decoding `Claims` instead.
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        // Expiry is checked against our clock below, so tests can move time.
        validation.validate_exp = false;
        validation.leeway = 0;
        Tokens {
            keys: Arc::new(Keys {
                encoding: EncodingKey::from_secret(key),
                decoding: DecodingKey::from_secret(key),
                validation,
                issuer: issuer.to_owned(),
                audience: audience.to_owned(),
            }),
            ttl,
            clock,
        }
    }

    /// Signs an access token for a user; `ttl` overrides the configured lifetime.
    pub fn mint(
        &self,
        user_id: i64,
        email: &str,
        role: Role,
        ttl: Option<Duration>,
    ) -> (String, Claims) {
        self.mint_session(user_id, email, role, ttl, None)
    }

    /// Like [`Tokens::mint`], for the login session (refresh token family) `sid`.
    pub fn mint_session(
        &self,
        user_id: i64,
        email: &str,
        role: Role,
        ttl: Option<Duration>,
        sid: Option<uuid::Uuid>,
    ) -> (String, Claims) {
        let now = self.clock.now();
        let ttl = ttl.unwrap_or(self.ttl);
        let claims = Claims {
            sub: user_id,
            email: email.to_owned(),
            role,
            iat: now.timestamp(),
            exp: (now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX))
                .timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
            iss: self.keys.issuer.clone(),
            aud: self.keys.audience.clone(),
            sid,
            typ: "access".to_owned(),
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.keys.encoding)
                .expect("HS256 signing with an in-memory key cannot fail");
        (token, claims)
    }

    /// Verifies signature, algorithm, issuer, audience, type and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.keys.decoding, &self.keys.validation)
                .map_err(|e| match e.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                })?;
        let claims = data.claims;
        if claims.typ != "access" {
            return Err(TokenError::Invalid);
        }
        if claims.exp <= self.clock.now().timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// When a token with these claims stops being valid.
    pub fn expires_at(claims: &Claims) -> DateTime<Utc> {
        DateTime::from_timestamp(claims.exp, 0).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn tokens(clock: Clock) -> Tokens {
        let secret = SecretString::from("0123456789abcdef0123456789abcdef");
        Tokens::new(&secret, "ecom", "ecom-api", Duration::from_secs(900), clock)
    }

    #[test]
    fn a_minted_token_verifies() {
        let t = tokens(Clock::system());
        let (token, claims) = t.mint(7, "a@b.co", Role::Admin, None);
        assert_eq!(t.verify(&token), Ok(claims));
    }

    #[test]
    fn expired_tokens_say_so() {
        let clock = Clock::fixed(Utc::now());
        let t = tokens(clock.clone());
        let (token, _) = t.mint(7, "a@b.co", Role::User, None);
        clock.advance(chrono::Duration::seconds(901));
        assert_eq!(t.verify(&token), Err(TokenError::Expired));
    }

    #[test]
    fn alg_none_and_tampering_are_rejected() {
        let t = tokens(Clock::system());
        let (token, _) = t.mint(7, "a@b.co", Role::User, None);
        let mut parts: Vec<&str> = token.split('.').collect();
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        parts[0] = &none;
        assert_eq!(
            t.verify(&format!("{}.{}.", parts[0], parts[1])),
            Err(TokenError::Invalid)
        );

        let payload = String::from_utf8(
            URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        let forged = URL_SAFE_NO_PAD.encode(payload.replace("\"user\"", "\"admin\""));
        let sig = token.split('.').nth(2).unwrap();
        let head = token.split('.').next().unwrap();
        assert_eq!(
            t.verify(&format!("{head}.{forged}.{sig}")),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn another_key_or_audience_is_rejected() {
        let t = tokens(Clock::system());
        let other = Tokens::new(
            &SecretString::from("another-secret-another-secret-1234"),
            "ecom",
            "ecom-api",
            Duration::from_secs(900),
            Clock::system(),
        );
        let (token, _) = other.mint(1, "a@b.co", Role::Admin, None);
        assert_eq!(t.verify(&token), Err(TokenError::Invalid));

        let wrong_aud = Tokens::new(
            &SecretString::from("0123456789abcdef0123456789abcdef"),
            "ecom",
            "someone-else",
            Duration::from_secs(900),
            Clock::system(),
        );
        let (token, _) = wrong_aud.mint(1, "a@b.co", Role::Admin, None);
        assert_eq!(t.verify(&token), Err(TokenError::Invalid));
    }
}

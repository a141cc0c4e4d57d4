//! Authentication inside the services: a tower layer on the gRPC server that turns the
//! `authorization` metadata into a [`Caller`] in the request extensions, and the two checks
//! every RPC uses, [`require_user`] and [`require_admin`].
//!
//! It sits on the gRPC server, not on the edge, so gRPC callers meet exactly the rules REST
//! callers meet. Public RPCs ignore the caller; a bad token only fails the RPCs that need one.
//!
//! Revocation policy: the jti deny-list lives in the shared store. When that store cannot be
//! reached the check fails open (the token's signature and expiry still hold, and access tokens
//! live 15 minutes by default); the failure is logged and counted so it is seen.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::Status;
use tower::{Layer, Service};

use crate::errors::{self, ErrorReason};
use crate::kv::Kv;
use crate::tokens::{Claims, Role, TokenError, Tokens};

/// A signed-in caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: i64,
    pub email: String,
    pub role: Role,
    /// The token's id and expiry, for logout.
    pub jti: String,
    pub expires_at: i64,
    /// The refresh token family (login session) the token was minted for, if any.
    pub session: Option<uuid::Uuid>,
}

impl Principal {
    /// True for admins.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The one owner-or-admin check: whether this caller may see or change an object owned
    /// by `owner_id` (an order, a cart, an account). Callers answer 404 when it may not, so
    /// ids cannot be probed.
    pub fn may_access(&self, owner_id: i64) -> bool {
        self.user_id == owner_id || self.is_admin()
    }
}

/// Who is calling, as the layer found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No `authorization` metadata.
    Anonymous,
    /// A valid, unrevoked access token.
    User(Principal),
    /// A well-signed, unexpired token that was revoked (logged out, or every token of the
    /// user before a cutoff). Refused like any other bad token, except by logout, which
    /// must be safe to repeat.
    Revoked(Principal),
    /// A token was sent but refused.
    Refused(TokenError),
}

/// Verifies tokens and checks the deny-list. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    tokens: Tokens,
    kv: Kv,
}

impl Authenticator {
    /// An authenticator over `tokens` with the deny-list in `kv`.
    pub fn new(tokens: Tokens, kv: Kv) -> Authenticator {
        Authenticator { tokens, kv }
    }

    /// The caller named by an `authorization` header value, if any.
    pub async fn caller(&self, authorization: Option<&[u8]>) -> Caller {
        let Some(value) = authorization else {
            return Caller::Anonymous;
        };
        let token = std::str::from_utf8(value)
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let Some(token) = token else {
            return Caller::Refused(TokenError::Invalid);
        };
        let claims = match self.tokens.verify(token) {
            Ok(claims) => claims,
            Err(e) => return Caller::Refused(e),
        };
        match self.kv.exists(&revoked_key(&claims.jti)).await {
            Ok(true) => return Caller::Revoked(principal(claims)),
            Ok(false) => {}
            Err(e) => {
                metrics::counter!("auth_denylist_errors_total").increment(1);
                tracing::warn!(error = %e, "token deny-list unavailable; failing open");
            }
        }
        // Identity: every token of the user issued before a cutoff (password reset, deletion).
        match self.kv.get(&revoked_before_key(claims.sub)).await {
            Ok(Some(cutoff)) => {
                let cutoff = std::str::from_utf8(&cutoff)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok());
                if cutoff.is_some_and(|cutoff| claims.iat < cutoff) {
                    return Caller::Revoked(principal(claims));
                }
            }
            Ok(None) => {}
            Err(e) => {
                metrics::counter!("auth_denylist_errors_total").increment(1);
                tracing::warn!(error = %e, "token deny-list unavailable; failing open");
            }
        }
        Caller::User(principal(claims))
    }

    /// Puts a token's id on the deny-list until it would have expired anyway.
    pub async fn revoke(&self, principal: &Principal) -> anyhow::Result<()> {
        let left = principal.expires_at - chrono::Utc::now().timestamp();
        if left > 0 {
            self.kv
                .set(
                    &revoked_key(&principal.jti),
                    b"1",
                    Duration::from_secs(left as u64),
                )
                .await?;
        }
        Ok(())
    }
}

impl Authenticator {
    /// Identity: revokes every access token of `user_id` issued before `at` (whole seconds;
    /// a token minted in the same second survives). Kept for `ttl`, the longest token life.
    pub async fn revoke_user(
        &self,
        user_id: i64,
        at: chrono::DateTime<chrono::Utc>,
        ttl: Duration,
    ) -> anyhow::Result<()> {
        self.kv
            .set(
                &revoked_before_key(user_id),
                at.timestamp().to_string().as_bytes(),
                ttl,
            )
            .await
    }
}

fn revoked_before_key(user_id: i64) -> String {
    format!("auth:revoked-before:{user_id}")
}

fn revoked_key(jti: &str) -> String {
    format!("auth:revoked:{jti}")
}

fn principal(claims: Claims) -> Principal {
    Principal {
        user_id: claims.sub,
        email: claims.email,
        role: claims.role,
        jti: claims.jti,
        expires_at: claims.exp,
        session: claims.sid,
    }
}

/// Why a request has no signed-in caller: the error code and message every service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub reason: ErrorReason,
    pub message: &'static str,
}

impl From<Refusal> for Status {
    fn from(r: Refusal) -> Status {
        errors::status(tonic::Code::Unauthenticated, r.reason, r.message)
    }
}

/// The signed-in caller the layer found, or why there is none.
pub fn principal_of(caller: Option<&Caller>) -> Result<&Principal, Refusal> {
    match caller {
        Some(Caller::User(p)) => Ok(p),
        Some(Caller::Refused(TokenError::Expired)) => Err(Refusal {
            reason: ErrorReason::TokenExpired,
            message: "Invalid or expired token",
        }),
        Some(Caller::Refused(TokenError::Invalid) | Caller::Revoked(_)) => Err(Refusal {
            reason: ErrorReason::Unauthorized,
            message: "Invalid or expired token",
        }),
        Some(Caller::Anonymous) | None => Err(Refusal {
            reason: ErrorReason::Unauthorized,
            message: "Authentication required",
        }),
    }
}

/// The signed-in caller, or UNAUTHENTICATED (UNAUTHORIZED / TOKEN_EXPIRED).
pub fn require_user<T>(req: &tonic::Request<T>) -> Result<&Principal, Status> {
    principal_of(req.extensions().get::<Caller>()).map_err(Status::from)
}

/// The caller's token even when it was already revoked, for logout: logging out twice is not
/// an error. A forged, expired or missing token is still refused.
pub fn require_token_owner<T>(req: &tonic::Request<T>) -> Result<&Principal, Status> {
    match req.extensions().get::<Caller>() {
        Some(Caller::Revoked(p)) => Ok(p),
        other => principal_of(other).map_err(Status::from),
    }
}

/// The signed-in admin, or UNAUTHENTICATED, or PERMISSION_DENIED (FORBIDDEN).
pub fn require_admin<T>(req: &tonic::Request<T>) -> Result<&Principal, Status> {
    let principal = require_user(req)?;
    if principal.is_admin() {
        Ok(principal)
    } else {
        Err(errors::status(
            tonic::Code::PermissionDenied,
            ErrorReason::Forbidden,
            "Admin role required",
        ))
    }
}

/// Tower layer that authenticates every request to the gRPC server.
#[derive(Clone)]
pub struct AuthenticateLayer {
    authenticator: Authenticator,
}

/// The service made by [`AuthenticateLayer`].
#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    authenticator: Authenticator,
}

impl Authenticate<()> {
    /// The layer.
    pub fn layer(authenticator: Authenticator) -> AuthenticateLayer {
        AuthenticateLayer { authenticator }
    }
}

impl<S> Layer<S> for AuthenticateLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

impl<S, B> Service<http::Request<B>> for Authenticate<S>
where
    S: Service<http::Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The clone is the one that was not polled ready; swap so the ready one serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            let header = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes().to_vec());
            let caller = authenticator.caller(header.as_deref()).await;
            req.extensions_mut().insert(caller);
            inner.call(req).await
        })
    }
}

//! `AuthService` over gRPC (contract section 4): convert the request into domain values,
//! authorize, call the store, convert back. Every rule holds over gRPC exactly as over REST.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::AuthSettings;
use super::domain::{Email, NewPassword, NewUser, PersonName, Username, Violations};
use super::error::AuthError;
use super::store::{self, Redemption, Rotation, UserRow};
use super::{password, secret_token};
use crate::accounts::profiles::Profiles;
use crate::authn;
use crate::authn::Authenticator;
use crate::clock::Clock;
use crate::kv::Kv;
use crate::proto::ecom::auth::v1 as pb;
use crate::proto::ecom::auth::v1::auth_service_server::AuthService;
use crate::proto::ecom::common::v1 as common;
use crate::tokens::Tokens;
use sqlx::PgPool;

/// How long a password reset token is valid.
pub const RESET_TOKEN_TTL: chrono::Duration = chrono::Duration::minutes(30);
/// Login attempts per account (whatever the client address) per window.
const LOGIN_PER_ACCOUNT: (u64, Duration) = (10, Duration::from_secs(15 * 60));
/// Password reset requests per account per window.
const RESET_PER_ACCOUNT: (u64, Duration) = (3, Duration::from_secs(3600));

/// The auth service; cheap to clone.
#[derive(Clone)]
pub struct AuthApi {
    db: PgPool,
    kv: Kv,
    profiles: Profiles,
    tokens: Tokens,
    authenticator: Authenticator,
    clock: Clock,
    settings: AuthSettings,
}

/// A fresh session: an access token and a refresh token.
struct Session {
    access: String,
    refresh: String,
    expires_at: DateTime<Utc>,
}

impl AuthApi {
    /// The service over its accounts (`db`), per-account limits (`kv`), the profile cache,
    /// token minting and revocation, the clock and its settings.
    pub fn new(
        db: PgPool,
        kv: Kv,
        profiles: Profiles,
        tokens: Tokens,
        authenticator: Authenticator,
        clock: Clock,
        settings: AuthSettings,
    ) -> Self {
        AuthApi {
            db,
            kv,
            profiles,
            tokens,
            authenticator,
            clock,
            settings,
        }
    }

    /// Counts a hit on a per-account limit; `Err(RateLimited)` over it. Off with
    /// RATE_LIMIT_ENABLED=false, like the edge's limits (the lockout after failed logins stays).
    /// Fails open when the store is down (as the edge limiter does).
    async fn account_limit(
        &self,
        group: &str,
        account: &str,
        (max, window): (u64, Duration),
    ) -> Result<(), AuthError> {
        if !self.settings.rate_limit_enabled {
            return Ok(());
        }
        let key = format!("rl:{group}:{}", account.trim().to_lowercase());
        match self.kv.hit(&key, window).await {
            Ok((count, _)) if count <= max => Ok(()),
            Ok((_, left)) => Err(AuthError::RateLimited(left)),
            Err(e) => {
                tracing::warn!(error = %e, "per-account rate limit unavailable; failing open");
                Ok(())
            }
        }
    }

    /// The signed-in user's profile (through the cache); 404 when the account is gone.
    async fn load_profile(&self, id: i64) -> Result<common::User, AuthError> {
        self.profiles.load(id).await?.ok_or(AuthError::UserNotFound)
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The access token lifetime a client asked for (DummyJSON `expiresInMins`), bounded.
    fn ttl(&self, expires_in_mins: Option<i32>, v: &mut Violations) -> Option<Duration> {
        let max = self.settings.jwt_max_expires_in_mins;
        match expires_in_mins {
            None => None,
            Some(m) if m >= 1 => Some(Duration::from_secs(60 * u64::from((m as u32).min(max)))),
            Some(_) => {
                v.push("expiresInMins", "Must be a positive number of minutes");
                None
            }
        }
    }

    /// Mints an access token and starts a refresh token family (or continues `family`).
    async fn session(
        &self,
        ex: impl sqlx::PgExecutor<'_>,
        user: &UserRow,
        ttl: Option<Duration>,
        family: Option<Uuid>,
    ) -> Result<Session, AuthError> {
        let family = family.unwrap_or_else(Uuid::new_v4);
        let (access, claims) =
            self.tokens
                .mint_session(user.id, &user.email, user.role(), ttl, Some(family));
        let refresh = secret_token::generate();
        let refresh_ttl = chrono::Duration::from_std(self.settings.jwt_refresh_expires_in)
            .context("JWT_REFRESH_EXPIRES_IN out of range")?;
        store::insert_refresh_token(
            ex,
            &secret_token::digest(&refresh),
            family,
            user.id,
            self.now() + refresh_ttl,
        )
        .await?;
        Ok(Session {
            access,
            refresh,
            expires_at: crate::tokens::Tokens::expires_at(&claims),
        })
    }

    /// Whether a deleted account is past its grace period (then it cannot log in any more).
    fn past_grace(&self, user: &UserRow) -> bool {
        let grace = chrono::Duration::from_std(self.settings.account_deletion_grace)
            .unwrap_or(chrono::Duration::MAX);
        user.deletion_requested_at
            .is_some_and(|at| at + grace <= self.now())
    }

    async fn login_inner(&self, r: pb::LoginRequest) -> Result<pb::LoginResponse, AuthError> {
        let mut v = Violations::default();
        let login = if r.email.trim().is_empty() {
            r.username.trim()
        } else {
            r.email.trim()
        };
        if login.is_empty() {
            v.push("email", "Email or username is required");
        }
        if r.password.is_empty() {
            v.push("password", "Password is required");
        }
        let ttl = self.ttl(r.expires_in_mins, &mut v);
        v.finish(|| ())?;
        self.account_limit("login-account", login, LOGIN_PER_ACCOUNT)
            .await?;

        let settings = &self.settings;
        let password = SecretString::from(r.password);
        let user = store::find_by_login(&self.db, login).await?;
        let user = match user {
            Some(u) if !self.past_grace(&u) => u,
            _ => {
                // The same work as a wrong password, so timing does not tell accounts apart.
                let _ = password::verify(password, password::dummy_hash().await).await;
                return Err(AuthError::InvalidCredentials);
            }
        };
        let now = self.now();
        if let Some(until) = user.locked_until.filter(|until| *until > now) {
            return Err(AuthError::AccountLocked(
                (until - now).to_std().unwrap_or_default(),
            ));
        }
        if !password::verify(password, user.password_hash.clone()).await? {
            let locked = store::record_failed_login(
                &self.db,
                user.id,
                now,
                settings.login_lockout_window.as_secs_f64(),
                settings.login_lockout_threshold,
                settings.login_lockout_duration.as_secs_f64(),
            )
            .await?;
            return Err(match locked {
                Some(until) => AuthError::AccountLocked((until - now).to_std().unwrap_or_default()),
                None => AuthError::InvalidCredentials,
            });
        }
        let mut tx = self.db.begin().await?;
        store::record_successful_login(&mut *tx, user.id).await?;
        let session = self.session(&mut *tx, &user, ttl, None).await?;
        tx.commit().await?;
        let row = store::find_user(&self.db, user.id)
            .await?
            .ok_or(AuthError::UserNotFound)?;
        let u = self.profiles.store(&row).await;
        Ok(pb::LoginResponse {
            token: session.access.clone(),
            access_token: session.access,
            refresh_token: session.refresh,
            expires_at: Some(store::timestamp(session.expires_at)),
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            gender: u.gender.clone(),
            image: u.image.clone(),
            user: Some(u),
        })
    }

    async fn register_inner(
        &self,
        r: pb::RegisterRequest,
    ) -> Result<pb::RegisterResponse, AuthError> {
        let mut v = Violations::default();
        let email = v.check("email", Email::parse(&r.email));
        let password = v.check("password", NewPassword::parse(&r.password));
        let first_name = v.check("firstName", PersonName::parse(&r.first_name));
        let last_name = v.check("lastName", PersonName::parse(&r.last_name));
        let username = match r.username.as_deref() {
            Some(u) => v.check("username", Username::parse(u)).map(Some),
            None => Some(None),
        };
        let new = v.finish(|| NewUser {
            email: email.expect("checked"),
            password: password.expect("checked"),
            first_name: first_name.expect("checked"),
            last_name: last_name.expect("checked"),
            username: username.expect("checked"),
        })?;
        let hash = password::hash(new.password.secret().clone()).await?;

        let chosen = new.username.is_some();
        let base = new
            .username
            .clone()
            .unwrap_or_else(|| Username::from_email(&new.email));
        let mut attempt = 0u32;
        let user = loop {
            let username = if attempt == 0 {
                base.clone()
            } else {
                base.with_suffix(rand::random::<u32>() % 100_000)
            };
            let inserted = store::insert_user(
                &self.db,
                new.email.as_str(),
                username.as_str(),
                &hash,
                new.first_name.as_str(),
                new.last_name.as_str(),
                "user",
            )
            .await;
            match inserted {
                Ok(user) => break user,
                Err(e) => match e.as_database_error().and_then(|d| d.constraint()) {
                    Some("users_email_key") => return Err(AuthError::EmailExists),
                    Some("users_username_key") if chosen => {
                        return Err(Violations::one("username", "Username is already taken").into());
                    }
                    Some("users_username_key") if attempt < 5 => attempt += 1,
                    _ => return Err(e.into()),
                },
            }
        };
        let session = self.session(&self.db, &user, None, None).await?;
        let u = self.profiles.store(&user).await;
        Ok(pb::RegisterResponse {
            user: Some(u),
            token: session.access,
            refresh_token: session.refresh,
            expires_at: Some(store::timestamp(session.expires_at)),
        })
    }

    async fn refresh_inner(&self, r: pb::RefreshRequest) -> Result<pb::RefreshResponse, AuthError> {
        let mut v = Violations::default();
        if r.refresh_token.trim().is_empty() {
            v.push("refreshToken", "Refresh token is required");
        }
        let ttl = self.ttl(r.expires_in_mins, &mut v);
        v.finish(|| ())?;
        let digest = secret_token::digest(r.refresh_token.trim());
        let mut tx = self.db.begin().await?;
        let rotation = store::rotate_refresh_token(&mut tx, &digest, self.now()).await?;
        let Rotation::Rotated { user_id, family } = rotation else {
            // Commit: a reuse revoked the family, and that must stick.
            tx.commit().await?;
            return Err(AuthError::InvalidRefreshToken);
        };
        let user = match store::find_user(&mut *tx, user_id).await? {
            Some(u) if u.deletion_requested_at.is_none() => u,
            _ => return Err(AuthError::InvalidRefreshToken),
        };
        let session = self.session(&mut *tx, &user, ttl, Some(family)).await?;
        tx.commit().await?;
        Ok(pb::RefreshResponse {
            token: session.access.clone(),
            access_token: session.access,
            refresh_token: session.refresh,
            expires_at: Some(store::timestamp(session.expires_at)),
        })
    }

    async fn forgot_inner(
        &self,
        r: pb::ForgotPasswordRequest,
    ) -> Result<pb::ForgotPasswordResponse, AuthError> {
        let email = Email::parse(&r.email).map_err(|m| {
            let mut v = Violations::default();
            v.check::<(), _>("email", Err(m));
            AuthError::Invalid(v)
        })?;
        self.account_limit("forgot-account", email.as_str(), RESET_PER_ACCOUNT)
            .await?;
        let user = store::find_by_login(&self.db, email.as_str()).await?;
        // Only an exact email match counts (not a username), and never a deleted account.
        if let Some(user) = user.filter(|u| {
            u.email.eq_ignore_ascii_case(email.as_str()) && u.deletion_requested_at.is_none()
        }) {
            let token = secret_token::generate();
            let link = format!(
                "{}/reset-password?token={token}",
                self.settings.frontend_url.trim_end_matches('/')
            );
            let body = format!(
                "Hello {},\r\n\r\nSomeone asked to reset the password of your account. If it was you, open this link within 30 minutes:\r\n\r\n{link}\r\n\r\nYour reset token:\r\n{token}\r\n\r\nIf it was not you, ignore this mail; your password stays as it is.\r\n",
                user.first_name
            );
            let mut tx = self.db.begin().await?;
            store::insert_password_reset(
                &mut *tx,
                &secret_token::digest(&token),
                user.id,
                self.now() + RESET_TOKEN_TTL,
            )
            .await?;
            store::enqueue_mail(&mut *tx, &user.email, "Reset your password", &body).await?;
            tx.commit().await?;
        }
        Ok(pb::ForgotPasswordResponse {
            message: "Password reset email sent".to_owned(),
        })
    }

    async fn reset_inner(
        &self,
        r: pb::ResetPasswordRequest,
    ) -> Result<pb::ResetPasswordResponse, AuthError> {
        let mut v = Violations::default();
        if r.token.trim().is_empty() {
            v.push("token", "Reset token is required");
        }
        let password = v.check("newPassword", NewPassword::parse(&r.new_password));
        let password = v.finish(|| password.expect("checked"))?;
        self.account_limit(
            "reset-token",
            &hex_prefix(r.token.trim()),
            RESET_PER_ACCOUNT,
        )
        .await?;
        let hash = password::hash(password.secret().clone()).await?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let user_id =
            match store::redeem_password_reset(&mut tx, &secret_token::digest(r.token.trim()), now)
                .await?
            {
                Redemption::Redeemed(id) => id,
                Redemption::Invalid => return Err(AuthError::InvalidResetToken),
                Redemption::Expired => return Err(AuthError::ResetTokenExpired),
            };
        let user = store::find_user(&mut *tx, user_id)
            .await?
            .ok_or(AuthError::InvalidResetToken)?;
        store::set_password(&mut *tx, user_id, &hash).await?;
        store::revoke_refresh_tokens(&mut *tx, user_id, None, now).await?;
        store::enqueue_mail(
            &mut *tx,
            &user.email,
            "Your password was changed",
            &format!("Hello {},\r\n\r\nThe password of your account was just reset. If this was not you, contact us at once.\r\n", user.first_name),
        )
        .await?;
        tx.commit().await?;
        self.revoke_access_tokens(user_id).await;
        Ok(pb::ResetPasswordResponse {
            message: "Password reset successfully".to_owned(),
        })
    }

    /// Revokes every access token of a user issued before now (best effort: logged on failure).
    async fn revoke_access_tokens(&self, user_id: i64) {
        let ttl = Duration::from_secs(60 * u64::from(self.settings.jwt_max_expires_in_mins))
            .max(self.settings.jwt_expires_in);
        if let Err(e) = self
            .authenticator
            .revoke_user(user_id, self.now(), ttl)
            .await
        {
            tracing::error!(error = ?e, user_id, "could not revoke the user's access tokens");
        }
    }

    async fn change_inner(
        &self,
        principal: authn::Principal,
        r: pb::ChangePasswordRequest,
    ) -> Result<pb::ChangePasswordResponse, AuthError> {
        let mut v = Violations::default();
        if r.current_password.is_empty() {
            v.push("currentPassword", "Current password is required");
        }
        let password = v.check("newPassword", NewPassword::parse(&r.new_password));
        let password = v.finish(|| password.expect("checked"))?;
        let user = store::find_user(&self.db, principal.user_id)
            .await?
            .ok_or(AuthError::UserNotFound)?;
        if !password::verify(
            SecretString::from(r.current_password),
            user.password_hash.clone(),
        )
        .await?
        {
            return Err(AuthError::InvalidCredentials);
        }
        let hash = password::hash(password.secret().clone()).await?;
        let mut tx = self.db.begin().await?;
        store::set_password(&mut *tx, user.id, &hash).await?;
        // The caller's own session survives; every other one must log in again.
        store::revoke_refresh_tokens(&mut *tx, user.id, principal.session, self.now()).await?;
        tx.commit().await?;
        Ok(pb::ChangePasswordResponse {
            message: "Password changed successfully".to_owned(),
        })
    }
}

/// A short, non-secret key for a token (its digest's first bytes), for rate limiting.
fn hex_prefix(token: &str) -> String {
    secret_token::digest(token)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    /// Spec 4.2.1 (plus DummyJSON's username and expiresInMins).
    #[tracing::instrument(skip_all)]
    async fn login(
        &self,
        req: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        Ok(Response::new(self.login_inner(req.into_inner()).await?))
    }

    /// Spec 4.2.2.
    #[tracing::instrument(skip_all)]
    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        Ok(Response::new(self.register_inner(req.into_inner()).await?))
    }

    /// Spec 4.2.3: an invalid token is the standard 401 error (see the report on the body).
    #[tracing::instrument(skip_all)]
    async fn validate(
        &self,
        req: Request<pb::ValidateRequest>,
    ) -> Result<Response<pb::ValidateResponse>, Status> {
        let refusal = match authn::principal_of(req.extensions().get()) {
            Ok(principal) => match self.load_profile(principal.user_id).await {
                Ok(user) => {
                    return Ok(Response::new(pb::ValidateResponse {
                        is_valid: true,
                        user: Some(user),
                        ..Default::default()
                    }));
                }
                // A deleted account's token: as invalid as any other.
                Err(AuthError::UserNotFound) => authn::Refusal {
                    reason: crate::errors::ErrorReason::Unauthorized,
                    message: "Token expired or invalid",
                },
                Err(e) => return Err(e.into()),
            },
            Err(refusal) => refusal,
        };
        // The spec's 401 body is this message, not an error: gRPC callers get an OK call
        // saying "not valid", REST callers a 401 (see ValidateResponse in auth.proto).
        let mut response = Response::new(pb::ValidateResponse {
            is_valid: false,
            user: None,
            message: Some(refusal.message.to_owned()),
            code: Some(crate::errors::reason_name(refusal.reason).to_owned()),
            status: Some(401),
        });
        response.metadata_mut().insert(
            "x-http-status",
            tonic::metadata::MetadataValue::from_static("401"),
        );
        Ok(response)
    }

    /// Spec 4.2.4: ends the session. Revokes the access token's jti and its session's refresh
    /// token family (the token's `sid`), and the family of a `refreshToken` in the body when it
    /// is the caller's. Safe to repeat: a token this logout already revoked is accepted again.
    #[tracing::instrument(skip_all)]
    async fn logout(
        &self,
        req: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let principal = authn::require_token_owner(&req)?.clone();
        let body = req.into_inner();
        // The refresh families first: they are what outlives the access token, and they are
        // in PostgreSQL, which has no fail-open policy.
        let now = self.now();
        let mut tx = self.db.begin().await.map_err(AuthError::from)?;
        if let Some(family) = principal.session {
            store::revoke_family(&mut *tx, family, principal.user_id, now)
                .await
                .map_err(AuthError::from)?;
        }
        if !body.refresh_token.trim().is_empty() {
            store::revoke_family_of(
                &mut *tx,
                &secret_token::digest(body.refresh_token.trim()),
                principal.user_id,
                now,
            )
            .await
            .map_err(AuthError::from)?;
        }
        tx.commit().await.map_err(AuthError::from)?;
        // The deny-list fails open (docs/RELIABILITY.md): with Redis down the access token
        // lives until it expires, but the session is over, as its refresh tokens are.
        if let Err(e) = self.authenticator.revoke(&principal).await {
            metrics::counter!("auth_denylist_errors_total").increment(1);
            tracing::warn!(error = %e, "token deny-list unavailable; access token not revoked");
        }
        Ok(Response::new(pb::LogoutResponse {
            message: "Logged out successfully".to_owned(),
        }))
    }

    /// Spec 4.2.5: rotation with reuse detection.
    #[tracing::instrument(skip_all)]
    async fn refresh(
        &self,
        req: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        Ok(Response::new(self.refresh_inner(req.into_inner()).await?))
    }

    /// Spec 4.2.6: the same answer whether or not the email exists.
    #[tracing::instrument(skip_all)]
    async fn forgot_password(
        &self,
        req: Request<pb::ForgotPasswordRequest>,
    ) -> Result<Response<pb::ForgotPasswordResponse>, Status> {
        Ok(Response::new(self.forgot_inner(req.into_inner()).await?))
    }

    /// Spec 4.2.7.
    #[tracing::instrument(skip_all)]
    async fn reset_password(
        &self,
        req: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        Ok(Response::new(self.reset_inner(req.into_inner()).await?))
    }

    /// Spec 4.2.8.
    #[tracing::instrument(skip_all)]
    async fn change_password(
        &self,
        req: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let principal = authn::require_user(&req)?.clone();
        Ok(Response::new(
            self.change_inner(principal, req.into_inner()).await?,
        ))
    }

    /// DummyJSON's GET /auth/me.
    #[tracing::instrument(skip_all)]
    async fn get_me(
        &self,
        req: Request<pb::GetMeRequest>,
    ) -> Result<Response<pb::GetMeResponse>, Status> {
        let principal = authn::require_user(&req)?;
        let user = self.load_profile(principal.user_id).await?;
        Ok(Response::new(pb::GetMeResponse { user: Some(user) }))
    }
}

//! The auth use cases: log in, register, refresh, log out, reset and change a password. Each
//! takes decoded, validated values (grpc.rs decodes the requests), runs its transaction and
//! answers domain values; the profile it answers is the identity kernel's cached form
//! ([`Profiles`]).

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use uuid::Uuid;

use super::AuthSettings;
use super::domain::{Email, NewPassword, NewUser, Username, Violations};
use super::error::AuthError;
use super::store::{self, Redemption, Rotation, UserRow};
use super::{password, secret_token};
use crate::accounts::domain::Profile;
use crate::accounts::profiles::Profiles;
use crate::authn;
use crate::authn::Authenticator;
use crate::clock::Clock;
use crate::kv::Kv;
use crate::mail::{self, Mail};
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
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub expires_at: DateTime<Utc>,
}

/// A signed-in account: its session and its profile.
pub struct SignedIn {
    pub session: Session,
    pub profile: Profile,
}

/// What a login names: an email or a username, the password, the token lifetime asked for.
pub struct Login {
    pub login: String,
    pub password: SecretString,
    pub ttl: Option<Duration>,
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
    pub async fn load_profile(&self, id: i64) -> Result<Profile, AuthError> {
        self.profiles.load(id).await?.ok_or(AuthError::UserNotFound)
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The access token lifetime a client asked for (DummyJSON `expiresInMins`), bounded.
    pub fn ttl(&self, expires_in_mins: Option<i32>, v: &mut Violations) -> Option<Duration> {
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

    /// Checks the password of the account `login` names (after the per-account limit and the
    /// lockout), then starts a session.
    pub async fn login(
        &self,
        Login {
            login,
            password,
            ttl,
        }: Login,
    ) -> Result<SignedIn, AuthError> {
        let login = login.as_str();
        self.account_limit("login-account", login, LOGIN_PER_ACCOUNT)
            .await?;

        let settings = &self.settings;
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
        let profile = self.profiles.store(&row).await;
        Ok(SignedIn { session, profile })
    }

    /// Creates an account (a username derived from the email when none is chosen) and starts
    /// its first session.
    pub async fn register(&self, new: NewUser) -> Result<SignedIn, AuthError> {
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
        let profile = self.profiles.store(&user).await;
        Ok(SignedIn { session, profile })
    }

    /// Rotates a refresh token into a new session of its family; a reused token revokes the
    /// whole family.
    pub async fn refresh(&self, token: &str, ttl: Option<Duration>) -> Result<Session, AuthError> {
        let digest = secret_token::digest(token);
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
        Ok(session)
    }

    /// Mails a single-use reset link to the account with this exact email, if there is one;
    /// the caller answers the same either way.
    pub async fn forgot_password(&self, email: Email) -> Result<(), AuthError> {
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
            let mail = Mail {
                subject: "Reset your password".to_owned(),
                body,
            };
            mail::enqueue(&mut *tx, &user.email, &mail).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Redeems a reset token: sets the new password, ends every session and access token of
    /// the account, and mails the account.
    pub async fn reset_password(
        &self,
        token: &str,
        password: NewPassword,
    ) -> Result<(), AuthError> {
        self.account_limit("reset-token", &hex_prefix(token), RESET_PER_ACCOUNT)
            .await?;
        let hash = password::hash(password.secret().clone()).await?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let user_id =
            match store::redeem_password_reset(&mut tx, &secret_token::digest(token), now).await? {
                Redemption::Redeemed(id) => id,
                Redemption::Invalid => return Err(AuthError::InvalidResetToken),
                Redemption::Expired => return Err(AuthError::ResetTokenExpired),
            };
        let user = store::find_user(&mut *tx, user_id)
            .await?
            .ok_or(AuthError::InvalidResetToken)?;
        store::set_password(&mut *tx, user_id, &hash).await?;
        store::revoke_refresh_tokens(&mut *tx, user_id, None, now).await?;
        let mail = Mail {
            subject: "Your password was changed".to_owned(),
            body: format!(
                "Hello {},\r\n\r\nThe password of your account was just reset. If this was not you, contact us at once.\r\n",
                user.first_name
            ),
        };
        mail::enqueue(&mut *tx, &user.email, &mail).await?;
        tx.commit().await?;
        self.revoke_access_tokens(user_id).await;
        Ok(())
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

    /// Changes the caller's password after checking the current one; the caller's own session
    /// survives, every other one must log in again.
    pub async fn change_password(
        &self,
        principal: &authn::Principal,
        current: SecretString,
        password: NewPassword,
    ) -> Result<(), AuthError> {
        let user = store::find_user(&self.db, principal.user_id)
            .await?
            .ok_or(AuthError::UserNotFound)?;
        if !password::verify(current, user.password_hash.clone()).await? {
            return Err(AuthError::InvalidCredentials);
        }
        let hash = password::hash(password.secret().clone()).await?;
        let mut tx = self.db.begin().await?;
        store::set_password(&mut *tx, user.id, &hash).await?;
        // The caller's own session survives; every other one must log in again.
        store::revoke_refresh_tokens(&mut *tx, user.id, principal.session, self.now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends the caller's session: its refresh token family (the token's `sid`), the family of
    /// `refresh_token` when it is the caller's, and the access token itself. Safe to repeat.
    pub async fn logout(
        &self,
        principal: &authn::Principal,
        refresh_token: Option<&str>,
    ) -> Result<(), AuthError> {
        // The refresh families first: they are what outlives the access token, and they are
        // in PostgreSQL, which has no fail-open policy.
        let now = self.now();
        let mut tx = self.db.begin().await?;
        if let Some(family) = principal.session {
            store::revoke_family(&mut *tx, family, principal.user_id, now).await?;
        }
        if let Some(token) = refresh_token {
            store::revoke_family_of(
                &mut *tx,
                &secret_token::digest(token),
                principal.user_id,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        // The deny-list fails open (docs/RELIABILITY.md): with Redis down the access token
        // lives until it expires, but the session is over, as its refresh tokens are.
        if let Err(e) = self.authenticator.revoke(principal).await {
            metrics::counter!("auth_denylist_errors_total").increment(1);
            tracing::warn!(error = %e, "token deny-list unavailable; access token not revoked");
        }
        Ok(())
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

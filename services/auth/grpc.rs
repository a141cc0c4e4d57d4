//! `AuthService` over gRPC (the /auth routes): decode the request into domain values,
//! authorize, call the use case ([`super::app`]), encode the answer. Every rule holds over gRPC
//! exactly as over REST.

use secrecy::SecretString;
use tonic::{Request, Response, Status};

use super::app::{AuthApi, Login, Session, SignedIn};
use super::domain::{Email, NewPassword, NewUser, PersonName, Username, Violations};
use super::error::AuthError;
use super::store;
use crate::authn;
use crate::proto::ecom::auth::v1 as pb;
use crate::proto::ecom::auth::v1::auth_service_server::AuthService;

impl AuthApi {
    fn decode_login(&self, r: pb::LoginRequest) -> Result<Login, Violations> {
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
        let login = login.to_owned();
        v.finish(|| Login {
            login,
            password: SecretString::from(r.password),
            ttl,
        })
    }
}

fn decode_register(r: &pb::RegisterRequest) -> Result<NewUser, Violations> {
    let mut v = Violations::default();
    let email = v.check("email", Email::parse(&r.email));
    let password = v.check("password", NewPassword::parse(&r.password));
    let first_name = v.check("firstName", PersonName::parse(&r.first_name));
    let last_name = v.check("lastName", PersonName::parse(&r.last_name));
    let username = match r.username.as_deref() {
        Some(u) => v.check("username", Username::parse(u)).map(Some),
        None => Some(None),
    };
    v.finish(|| NewUser {
        email: email.expect("checked"),
        password: password.expect("checked"),
        first_name: first_name.expect("checked"),
        last_name: last_name.expect("checked"),
        username: username.expect("checked"),
    })
}

/// A required, trimmed token field.
fn required<'a>(field: &str, value: &'a str, message: &str, v: &mut Violations) -> &'a str {
    let value = value.trim();
    if value.is_empty() {
        v.push(field, message);
    }
    value
}

fn login_response(
    SignedIn {
        session,
        profile: u,
    }: SignedIn,
) -> pb::LoginResponse {
    pb::LoginResponse {
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
    }
}

fn refresh_response(session: Session) -> pb::RefreshResponse {
    pb::RefreshResponse {
        token: session.access.clone(),
        access_token: session.access,
        refresh_token: session.refresh,
        expires_at: Some(store::timestamp(session.expires_at)),
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    /// POST /auth/login: email (or DummyJSON's username) and password in, tokens and the user
    /// out; DummyJSON's expiresInMins sets the access token's lifetime.
    #[tracing::instrument(skip_all)]
    async fn login(
        &self,
        req: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let login = self
            .decode_login(req.into_inner())
            .map_err(AuthError::from)?;
        Ok(Response::new(login_response(self.login(login).await?)))
    }

    /// POST /auth/register: creates an account and signs it in (201, tokens and the user).
    #[tracing::instrument(skip_all)]
    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let new = decode_register(req.get_ref()).map_err(AuthError::from)?;
        let SignedIn { session, profile } = self.register(new).await?;
        Ok(Response::new(pb::RegisterResponse {
            user: Some(profile),
            token: session.access,
            refresh_token: session.refresh,
            expires_at: Some(store::timestamp(session.expires_at)),
        }))
    }

    /// POST /auth/validate: the bearer token's user when it is valid. An invalid token is an
    /// OK call with `isValid: false` whose message, code and status 401 make the body an error
    /// like any other; REST answers it with the status 401.
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

    /// POST /auth/logout: ends the session. Revokes the access token's jti and its session's
    /// refresh token family (the token's `sid`), and the family of a `refreshToken` in the body
    /// when it is the caller's. Safe to repeat: a token this logout already revoked is accepted again.
    #[tracing::instrument(skip_all)]
    async fn logout(
        &self,
        req: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let principal = authn::require_token_owner(&req)?.clone();
        let token = req.get_ref().refresh_token.trim();
        self.logout(&principal, Some(token).filter(|t| !t.is_empty()))
            .await?;
        Ok(Response::new(pb::LogoutResponse {
            message: "Logged out successfully".to_owned(),
        }))
    }

    /// POST /auth/refresh: a new access token for a refresh token, which is rotated; reusing
    /// an already rotated refresh token revokes its whole family.
    #[tracing::instrument(skip_all)]
    async fn refresh(
        &self,
        req: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::default();
        let token = required(
            "refreshToken",
            &r.refresh_token,
            "Refresh token is required",
            &mut v,
        );
        let ttl = self.ttl(r.expires_in_mins, &mut v);
        v.finish(|| ()).map_err(AuthError::from)?;
        Ok(Response::new(refresh_response(
            self.refresh(token, ttl).await?,
        )))
    }

    /// POST /auth/forgot-password: mails a reset link; the same answer whether or not the
    /// email exists.
    #[tracing::instrument(skip_all)]
    async fn forgot_password(
        &self,
        req: Request<pb::ForgotPasswordRequest>,
    ) -> Result<Response<pb::ForgotPasswordResponse>, Status> {
        let mut v = Violations::default();
        let email = v.check("email", Email::parse(&req.get_ref().email));
        let email = v
            .finish(|| email.expect("checked"))
            .map_err(AuthError::from)?;
        self.forgot_password(email).await?;
        Ok(Response::new(pb::ForgotPasswordResponse {
            message: "Password reset email sent".to_owned(),
        }))
    }

    /// POST /auth/reset-password: redeems a reset token, setting the new password and ending
    /// every session of the account.
    #[tracing::instrument(skip_all)]
    async fn reset_password(
        &self,
        req: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let r = req.into_inner();
        let mut v = Violations::default();
        let token = required("token", &r.token, "Reset token is required", &mut v);
        let password = v.check("newPassword", NewPassword::parse(&r.new_password));
        let password = v
            .finish(|| password.expect("checked"))
            .map_err(AuthError::from)?;
        self.reset_password(token, password).await?;
        Ok(Response::new(pb::ResetPasswordResponse {
            message: "Password reset successfully".to_owned(),
        }))
    }

    /// POST /auth/change-password: with the current password, sets a new one; every other
    /// session of the account must log in again.
    #[tracing::instrument(skip_all)]
    async fn change_password(
        &self,
        req: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let principal = authn::require_user(&req)?.clone();
        let r = req.into_inner();
        let mut v = Violations::default();
        if r.current_password.is_empty() {
            v.push("currentPassword", "Current password is required");
        }
        let password = v.check("newPassword", NewPassword::parse(&r.new_password));
        let password = v
            .finish(|| password.expect("checked"))
            .map_err(AuthError::from)?;
        self.change_password(&principal, SecretString::from(r.current_password), password)
            .await?;
        Ok(Response::new(pb::ChangePasswordResponse {
            message: "Password changed successfully".to_owned(),
        }))
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

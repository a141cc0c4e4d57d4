//! `UsersService` over gRPC (contract section 7): convert the request into domain values,
//! authorize (owner or admin), call the store, convert back, write the profile cache through.

use anyhow::Context as _;
use secrecy::SecretString;
use tonic::{Request, Response, Status};

use super::UsersSettings;
use super::avatar::{self, AvatarError};
use super::domain::{AddressFields, ProfileFields, ProfilePatch};
use super::error::UsersError;
use super::store;
use crate::accounts::password;
use crate::accounts::profiles::Profiles;
use crate::accounts::store::{self as accounts, UserRow};
use crate::authn::Authenticator;
use crate::authn::{self, Principal};
use crate::clock::Clock;
use crate::proto::ecom::common::v1 as common;
use crate::proto::ecom::users::v1 as pb;
use crate::proto::ecom::users::v1::users_service_server::UsersService;
use crate::validation::Violations;
use sqlx::PgPool;

/// The users service; cheap to clone.
#[derive(Clone)]
pub struct UsersApi {
    db: PgPool,
    profiles: Profiles,
    authenticator: Authenticator,
    clock: Clock,
    settings: UsersSettings,
}

impl UsersApi {
    /// The service over its accounts (`db`), the profile cache, token revocation, the clock
    /// and its settings.
    pub fn new(
        db: PgPool,
        profiles: Profiles,
        authenticator: Authenticator,
        clock: Clock,
        settings: UsersSettings,
    ) -> Self {
        UsersApi {
            db,
            profiles,
            authenticator,
            clock,
            settings,
        }
    }

    /// A user's profile (through the cache); 404 when the account is gone.
    async fn load_profile(&self, id: i64) -> Result<common::User, UsersError> {
        self.profiles
            .load(id)
            .await?
            .ok_or(UsersError::UserNotFound)
    }

    /// Applies a validated patch to user `id`; maps unique violations to 409 / 400.
    async fn apply_patch(&self, id: i64, patch: ProfilePatch) -> Result<common::User, UsersError> {
        let updated = store::update_profile(&self.db, id, &patch).await;
        let row: UserRow = match updated {
            Ok(Some(row)) => row,
            Ok(None) => return Err(UsersError::UserNotFound),
            Err(e) => {
                return Err(match e.as_database_error().and_then(|d| d.constraint()) {
                    Some("users_email_key") => UsersError::EmailExists,
                    Some("users_username_key") => {
                        Violations::one("username", "Username is already taken").into()
                    }
                    _ => e.into(),
                });
            }
        };
        Ok(self.profiles.store(&row).await)
    }

    async fn upload(
        &self,
        principal: &Principal,
        r: pb::UploadAvatarRequest,
    ) -> Result<pb::UploadAvatarResponse, UsersError> {
        let settings = &self.settings;
        if r.image.is_empty() {
            return Err(Violations::one(
                "image",
                "An image file is required (multipart part `image`)",
            )
            .into());
        }
        if r.image.len() > settings.upload_max_size {
            return Err(UsersError::PayloadTooLarge(format!(
                "Image larger than {} bytes",
                settings.upload_max_size
            )));
        }
        let png = tokio::task::spawn_blocking(move || avatar::normalise(&r.image))
            .await
            .context("avatar task panicked")?
            .map_err(|AvatarError::Unsupported| {
                UsersError::UnsupportedMediaType("Image must be a JPEG, PNG or WebP file")
            })?;
        let name = format!(
            "avatar-{}-{}.png",
            principal.user_id,
            uuid::Uuid::new_v4().simple()
        );
        let dir = std::path::PathBuf::from(&settings.upload_dir);
        tokio::fs::create_dir_all(&dir)
            .await
            .context("creating UPLOAD_DIR")?;
        tokio::fs::write(dir.join(&name), &png)
            .await
            .context("writing the avatar")?;
        let url = format!("{}/{name}", settings.uploads_base);
        let row = store::set_image(&self.db, principal.user_id, &url)
            .await?
            .ok_or(UsersError::UserNotFound)?;
        self.profiles.store(&row).await;
        Ok(pb::UploadAvatarResponse {
            id: row.id,
            image: url,
        })
    }

    async fn delete(
        &self,
        principal: &Principal,
        r: pb::DeleteMeRequest,
    ) -> Result<pb::DeleteMeResponse, UsersError> {
        if r.password.is_empty() {
            return Err(Violations::one("password", "Password is required").into());
        }
        if r.reason.chars().count() > 500 {
            return Err(Violations::one("reason", "Must be at most 500 characters").into());
        }
        let user = accounts::find_user(&self.db, principal.user_id)
            .await?
            .ok_or(UsersError::UserNotFound)?;
        if !password::verify(SecretString::from(r.password), user.password_hash.clone()).await? {
            return Err(UsersError::InvalidCredentials);
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        store::request_deletion(&mut *tx, user.id, now, r.reason.trim()).await?;
        accounts::revoke_refresh_tokens(&mut *tx, user.id, None, now).await?;
        tx.commit().await?;
        // Tokens die at once: this one by its jti, older ones by the per-user cutoff.
        let auth = &self.authenticator;
        auth.revoke(principal)
            .await
            .context("revoking the access token")?;
        let ttl =
            std::time::Duration::from_secs(60 * u64::from(self.settings.jwt_max_expires_in_mins))
                .max(self.settings.jwt_expires_in);
        auth.revoke_user(user.id, now, ttl)
            .await
            .context("revoking the user's tokens")?;
        self.profiles.forget(user.id).await;
        Ok(pb::DeleteMeResponse {
            message: "Account scheduled for deletion".to_owned(),
        })
    }

    async fn add_address(
        &self,
        user_id: i64,
        r: pb::AddAddressRequest,
    ) -> Result<pb::Address, UsersError> {
        let fields = AddressFields::parse_new(&r)?;
        let mut tx = self.db.begin().await?;
        if !store::lock_user(&mut tx, user_id).await? {
            return Err(UsersError::UserNotFound);
        }
        // The first address is the default, whatever the request says: exactly one default.
        let is_default = r.is_default || !store::has_addresses(&mut tx, user_id).await?;
        if is_default {
            store::clear_default(&mut tx, user_id).await?;
        }
        let row = store::insert_address(&mut tx, user_id, &fields, is_default).await?;
        tx.commit().await?;
        Ok(row.to_wire())
    }

    async fn update_address(
        &self,
        user_id: i64,
        r: pb::UpdateAddressRequest,
    ) -> Result<pb::Address, UsersError> {
        let mut tx = self.db.begin().await?;
        store::lock_user(&mut tx, user_id).await?;
        let current = store::find_address_for_update(&mut tx, user_id, r.id)
            .await?
            .ok_or(UsersError::AddressNotFound)?;
        let fields = current.fields().apply(&r)?;
        // `isDefault: false` on the default is what an edit form sends with its checkbox
        // untouched: the edit applies and the address stays the default. The default moves
        // only when another address is made the default, or when this one is deleted.
        let is_default = current.is_default || r.is_default == Some(true);
        if is_default && !current.is_default {
            store::clear_default(&mut tx, user_id).await?;
        }
        let row = store::update_address(&mut tx, current.id, &fields, is_default).await?;
        tx.commit().await?;
        Ok(row.to_wire())
    }
}

/// Public fields only (id, names, image): what anyone signed in may see of another user.
fn public_view(u: common::User) -> common::User {
    common::User {
        id: u.id,
        first_name: u.first_name,
        last_name: u.last_name,
        image: u.image,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl UsersService for UsersApi {
    /// Spec 7.2.1.
    #[tracing::instrument(skip_all)]
    async fn get_me(
        &self,
        req: Request<pb::GetMeRequest>,
    ) -> Result<Response<pb::GetMeResponse>, Status> {
        let principal = authn::require_user(&req)?;
        let user = self.load_profile(principal.user_id).await?;
        Ok(Response::new(pb::GetMeResponse { user: Some(user) }))
    }

    /// The full profile for oneself or an admin; public fields for anyone else.
    #[tracing::instrument(skip_all, fields(user.id = req.get_ref().id))]
    async fn get_user(
        &self,
        req: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let principal = authn::require_user(&req)?;
        let id = req.get_ref().id;
        let user = self.load_profile(id).await?;
        let user = if principal.may_access(id) {
            user
        } else {
            public_view(user)
        };
        Ok(Response::new(pb::GetUserResponse { user: Some(user) }))
    }

    /// Spec 7.2.2: partial update; role, id and password are not fields of the request.
    #[tracing::instrument(skip_all)]
    async fn update_me(
        &self,
        req: Request<pb::UpdateMeRequest>,
    ) -> Result<Response<pb::UpdateMeResponse>, Status> {
        let principal = authn::require_user(&req)?.clone();
        let r = req.into_inner();
        let patch = ProfilePatch::parse(ProfileFields {
            first_name: r.first_name.as_deref(),
            last_name: r.last_name.as_deref(),
            email: r.email.as_deref(),
            phone: r.phone.as_deref(),
            age: r.age,
            gender: r.gender.as_deref(),
            username: r.username.as_deref(),
            role: None,
        })
        .map_err(UsersError::from)?;
        let user = self.apply_patch(principal.user_id, patch).await?;
        Ok(Response::new(pb::UpdateMeResponse { user: Some(user) }))
    }

    /// Like UpdateMe for oneself; any user (and the role) for an admin; 403 otherwise.
    #[tracing::instrument(skip_all, fields(user.id = req.get_ref().id))]
    async fn update_user(
        &self,
        req: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let principal = authn::require_user(&req)?.clone();
        let r = req.into_inner();
        if !principal.may_access(r.id) {
            return Err(UsersError::Forbidden("You may only update your own profile").into());
        }
        if r.role.is_some() && !principal.is_admin() {
            return Err(UsersError::Forbidden("Only admins may change roles").into());
        }
        let patch = ProfilePatch::parse(ProfileFields {
            first_name: r.first_name.as_deref(),
            last_name: r.last_name.as_deref(),
            email: r.email.as_deref(),
            phone: r.phone.as_deref(),
            age: r.age,
            gender: r.gender.as_deref(),
            username: r.username.as_deref(),
            role: r.role,
        })
        .map_err(UsersError::from)?;
        let user = self.apply_patch(r.id, patch).await?;
        Ok(Response::new(pb::UpdateUserResponse { user: Some(user) }))
    }

    /// Spec 7.2.4, with the defaults when never set.
    #[tracing::instrument(skip_all)]
    async fn get_preferences(
        &self,
        req: Request<pb::GetPreferencesRequest>,
    ) -> Result<Response<pb::GetPreferencesResponse>, Status> {
        let principal = authn::require_user(&req)?;
        let prefs = store::preferences(&self.db, principal.user_id)
            .await
            .map_err(UsersError::from)?;
        Ok(Response::new(pb::GetPreferencesResponse {
            preferences: Some(prefs.to_wire()),
        }))
    }

    /// Spec 7.2.4: partial update, every field validated.
    #[tracing::instrument(skip_all)]
    async fn update_preferences(
        &self,
        req: Request<pb::UpdatePreferencesRequest>,
    ) -> Result<Response<pb::UpdatePreferencesResponse>, Status> {
        let principal = authn::require_user(&req)?.clone();
        let r = req.into_inner();
        let mut tx = self.db.begin().await.map_err(UsersError::from)?;
        store::lock_user(&mut tx, principal.user_id)
            .await
            .map_err(UsersError::from)?;
        let current = store::preferences(&mut *tx, principal.user_id)
            .await
            .map_err(UsersError::from)?;
        let updated = current.apply(&r).map_err(UsersError::from)?;
        store::save_preferences(&mut *tx, principal.user_id, &updated)
            .await
            .map_err(UsersError::from)?;
        tx.commit().await.map_err(UsersError::from)?;
        Ok(Response::new(pb::UpdatePreferencesResponse {
            preferences: Some(updated.to_wire()),
        }))
    }

    /// Spec 7.2.3.
    #[tracing::instrument(skip_all)]
    async fn upload_avatar(
        &self,
        req: Request<pb::UploadAvatarRequest>,
    ) -> Result<Response<pb::UploadAvatarResponse>, Status> {
        let principal = authn::require_user(&req)?.clone();
        Ok(Response::new(
            self.upload(&principal, req.into_inner()).await?,
        ))
    }

    /// Spec 7.2.6: soft delete with a grace period.
    #[tracing::instrument(skip_all)]
    async fn delete_me(
        &self,
        req: Request<pb::DeleteMeRequest>,
    ) -> Result<Response<pb::DeleteMeResponse>, Status> {
        let principal = authn::require_user(&req)?.clone();
        Ok(Response::new(
            self.delete(&principal, req.into_inner()).await?,
        ))
    }

    /// Spec 7.2.5: a bare array, the default first.
    #[tracing::instrument(skip_all)]
    async fn list_addresses(
        &self,
        req: Request<pb::ListAddressesRequest>,
    ) -> Result<Response<pb::ListAddressesResponse>, Status> {
        let principal = authn::require_user(&req)?;
        let rows = store::list_addresses(&self.db, principal.user_id)
            .await
            .map_err(UsersError::from)?;
        Ok(Response::new(pb::ListAddressesResponse {
            addresses: rows.iter().map(|r| r.to_wire()).collect(),
        }))
    }

    /// Spec 7.2.5.
    #[tracing::instrument(skip_all)]
    async fn add_address(
        &self,
        req: Request<pb::AddAddressRequest>,
    ) -> Result<Response<pb::AddAddressResponse>, Status> {
        let principal = authn::require_user(&req)?.clone();
        let address = self
            .add_address(principal.user_id, req.into_inner())
            .await?;
        Ok(Response::new(pb::AddAddressResponse {
            address: Some(address),
        }))
    }

    /// Spec 7.2.5: only the owner's; another user's address is 404.
    #[tracing::instrument(skip_all, fields(address.id = req.get_ref().id))]
    async fn update_address(
        &self,
        req: Request<pb::UpdateAddressRequest>,
    ) -> Result<Response<pb::UpdateAddressResponse>, Status> {
        let principal = authn::require_user(&req)?.clone();
        let address = self
            .update_address(principal.user_id, req.into_inner())
            .await?;
        Ok(Response::new(pb::UpdateAddressResponse {
            address: Some(address),
        }))
    }

    /// Spec 7.2.5: 204; another user's address is 404.
    #[tracing::instrument(skip_all, fields(address.id = req.get_ref().id))]
    async fn delete_address(
        &self,
        req: Request<pb::DeleteAddressRequest>,
    ) -> Result<Response<pb::DeleteAddressResponse>, Status> {
        let principal = authn::require_user(&req)?.clone();
        let id = req.get_ref().id;
        let mut tx = self.db.begin().await.map_err(UsersError::from)?;
        store::lock_user(&mut tx, principal.user_id)
            .await
            .map_err(UsersError::from)?;
        if !store::delete_address(&mut tx, principal.user_id, id)
            .await
            .map_err(UsersError::from)?
        {
            return Err(UsersError::AddressNotFound.into());
        }
        tx.commit().await.map_err(UsersError::from)?;
        Ok(Response::new(pb::DeleteAddressResponse {}))
    }
}

//! The users use cases: profile patches, avatars, account deletion and addresses, each with
//! its transaction and the profile cache written through. grpc.rs decodes and authorizes.

use anyhow::Context as _;
use secrecy::SecretString;

use super::UsersSettings;
use super::avatar::{self, AvatarError};
use super::domain::{
    AddressFields, AddressForm, AddressPatch, Preferences, PreferencesPatch, ProfilePatch,
};
use super::error::UsersError;
use super::notices::{NewWebhook, Page, WebhookPatch};
use super::store::{
    self, AddressRow, AddressSlot, AttemptRow, DeliveryRow, NotificationRow, WebhookRow,
};
use crate::accounts::domain::Profile;
use crate::accounts::password;
use crate::accounts::profiles::Profiles;
use crate::accounts::store::{self as accounts, UserRow};
use crate::authn::{Authenticator, Principal};
use crate::clock::Clock;
use crate::validation::Violations;
use sqlx::PgPool;

use crate::db::Database;

/// The users service; cheap to clone.
#[derive(Clone)]
pub struct UsersApi {
    /// The primary: writes, and reads inside them.
    pub(super) db: PgPool,
    /// Where the user's own reads go (a replica that has their last write, or the primary).
    pub(super) replicas: Database,
    pub(super) profiles: Profiles,
    authenticator: Authenticator,
    pub(super) clock: Clock,
    pub(super) settings: UsersSettings,
}

impl UsersApi {
    /// The service over its accounts (`db`), the profile cache, token revocation, the clock
    /// and its settings.
    pub fn new(
        db: Database,
        profiles: Profiles,
        authenticator: Authenticator,
        clock: Clock,
        settings: UsersSettings,
    ) -> Self {
        UsersApi {
            db: db.primary().clone(),
            replicas: db,
            profiles,
            authenticator,
            clock,
            settings,
        }
    }

    /// A user's profile (through the cache); 404 when the account is gone.
    pub(super) async fn load_profile(&self, id: i64) -> Result<Profile, UsersError> {
        self.profiles
            .load(id)
            .await?
            .ok_or(UsersError::UserNotFound)
    }

    /// Applies a validated patch to user `id`; maps unique violations to 409 / 400.
    pub(super) async fn apply_patch(
        &self,
        id: i64,
        patch: ProfilePatch,
    ) -> Result<Profile, UsersError> {
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

    /// Stores an uploaded picture (JPEG, PNG or WebP, re-encoded as PNG) as the caller's
    /// avatar; answers its URL.
    pub(super) async fn upload(
        &self,
        principal: &Principal,
        image: Vec<u8>,
    ) -> Result<String, UsersError> {
        let settings = &self.settings;
        if image.is_empty() {
            return Err(Violations::one(
                "image",
                "An image file is required (multipart part `image`)",
            )
            .into());
        }
        if image.len() > settings.upload_max_size {
            return Err(UsersError::PayloadTooLarge(format!(
                "Image larger than {} bytes",
                settings.upload_max_size
            )));
        }
        let png = tokio::task::spawn_blocking(move || avatar::normalise(&image))
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
        Ok(url)
    }

    /// Schedules the caller's account for deletion after checking its password; every token
    /// and session of the account ends at once.
    pub(super) async fn delete(
        &self,
        principal: &Principal,
        password: SecretString,
        reason: &str,
    ) -> Result<(), UsersError> {
        let user = accounts::find_user(&self.db, principal.user_id)
            .await?
            .ok_or(UsersError::UserNotFound)?;
        if !password::verify(password, user.password_hash.clone()).await? {
            return Err(UsersError::InvalidCredentials);
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        store::request_deletion(&mut *tx, user.id, now, reason).await?;
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
        Ok(())
    }

    /// Applies a validated partial update to the user's preferences; answers them.
    pub(super) async fn update_preferences(
        &self,
        user_id: i64,
        patch: PreferencesPatch<'_>,
    ) -> Result<Preferences, UsersError> {
        let mut tx = self.db.begin().await?;
        store::lock_user(&mut tx, user_id).await?;
        let current = store::preferences(&mut *tx, user_id).await?;
        let updated = current.apply(patch)?;
        store::save_preferences(&mut *tx, user_id, &updated).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Adds an address; the first one is the default.
    pub(super) async fn add_address(
        &self,
        user_id: i64,
        form: AddressForm<'_>,
        make_default: bool,
    ) -> Result<AddressRow, UsersError> {
        let fields = AddressFields::parse_new(form)?;
        let mut tx = self.db.begin().await?;
        if !store::lock_user(&mut tx, user_id).await? {
            return Err(UsersError::UserNotFound);
        }
        // The first address is the default, whatever the request says: exactly one default.
        let is_default = make_default || !store::has_addresses(&mut tx, user_id).await?;
        if is_default {
            store::clear_default(&mut tx, user_id).await?;
        }
        let slot = AddressSlot::New { user_id };
        let row = store::save_address(&mut tx, slot, &fields, is_default).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Edits one of the user's addresses (404 for anyone else's); `make_default` is the
    /// request's `isDefault`, when it has one.
    pub(super) async fn update_address(
        &self,
        user_id: i64,
        id: i64,
        patch: AddressPatch<'_>,
        make_default: Option<bool>,
    ) -> Result<AddressRow, UsersError> {
        let mut tx = self.db.begin().await?;
        store::lock_user(&mut tx, user_id).await?;
        let current = store::find_address_for_update(&mut tx, user_id, id)
            .await?
            .ok_or(UsersError::AddressNotFound)?;
        let fields = current.fields().apply(patch)?;
        // `isDefault: false` on the default is what an edit form sends with its checkbox
        // untouched: the edit applies and the address stays the default. The default moves
        // only when another address is made the default, or when this one is deleted.
        let is_default = current.is_default || make_default == Some(true);
        if is_default && !current.is_default {
            store::clear_default(&mut tx, user_id).await?;
        }
        let slot = AddressSlot::Existing { id: current.id };
        let row = store::save_address(&mut tx, slot, &fields, is_default).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Deletes one of the user's addresses (404 for anyone else's); when it was the default,
    /// the oldest remaining one becomes the default.
    pub(super) async fn delete_address(&self, user_id: i64, id: i64) -> Result<(), UsersError> {
        let mut tx = self.db.begin().await?;
        store::lock_user(&mut tx, user_id).await?;
        if !store::delete_address(&mut tx, user_id, id).await? {
            return Err(UsersError::AddressNotFound);
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Notifications and webhook endpoints: each use case one statement (or one transaction),
/// straight on PostgreSQL so every instance sees the same state (no cache).
impl UsersApi {
    /// A page of the user's notifications, the total (with the filter) and the unread count.
    pub(super) async fn list_notifications(
        &self,
        user_id: i64,
        unread: bool,
        page: Page,
    ) -> Result<(Vec<NotificationRow>, i64, i64), UsersError> {
        let reads = self.replicas.reads().await;
        let rows =
            store::list_notifications(&reads, user_id, unread, page.skip.into(), page.limit.into())
                .await?;
        let (total, unread_count) = store::count_notifications(&reads, user_id, unread).await?;
        Ok((rows, total, unread_count))
    }

    /// Marks one of the user's notifications read; read again, it keeps its first read time.
    pub(super) async fn mark_notification_read(
        &self,
        user_id: i64,
        id: i64,
    ) -> Result<NotificationRow, UsersError> {
        store::mark_notification_read(&self.db, user_id, id, self.clock.now())
            .await?
            .ok_or(UsersError::NotificationNotFound)
    }

    pub(super) async fn create_webhook(&self, w: NewWebhook) -> Result<WebhookRow, UsersError> {
        let row = store::insert_webhook(&self.db, &w, self.clock.now()).await?;
        // The URL is not a secret; the secret never reaches the log.
        tracing::info!(webhook.id = row.id, url = %row.url, "webhook endpoint registered");
        Ok(row)
    }

    pub(super) async fn list_webhooks(
        &self,
        page: Page,
    ) -> Result<(Vec<WebhookRow>, i64), UsersError> {
        Ok(store::list_webhooks(&self.db, page.skip.into(), page.limit.into()).await?)
    }

    pub(super) async fn get_webhook(&self, id: i64) -> Result<WebhookRow, UsersError> {
        store::find_webhook(&self.db, id)
            .await?
            .ok_or(UsersError::WebhookNotFound)
    }

    pub(super) async fn update_webhook(
        &self,
        id: i64,
        patch: WebhookPatch,
    ) -> Result<WebhookRow, UsersError> {
        store::update_webhook(&self.db, id, &patch, self.clock.now())
            .await?
            .ok_or(UsersError::WebhookNotFound)
    }

    pub(super) async fn delete_webhook(&self, id: i64) -> Result<(), UsersError> {
        if !store::delete_webhook(&self.db, id).await? {
            return Err(UsersError::WebhookNotFound);
        }
        Ok(())
    }

    /// A page of an endpoint's deliveries with their attempts; 404 for an unknown endpoint.
    pub(super) async fn list_deliveries(
        &self,
        endpoint_id: i64,
        page: Page,
    ) -> Result<(Vec<DeliveryRow>, Vec<AttemptRow>, i64), UsersError> {
        self.get_webhook(endpoint_id).await?;
        Ok(
            store::list_deliveries(&self.db, endpoint_id, page.skip.into(), page.limit.into())
                .await?,
        )
    }
}

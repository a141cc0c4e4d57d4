//! `UsersService` over gRPC (the /users routes): decode the request into domain values,
//! authorize (owner or admin), call the use case ([`super::app`]) or the store, encode
//! ([`super::wire`]).

use secrecy::SecretString;
use tonic::{Request, Response, Status};

use super::app::UsersApi;
use super::domain::ProfilePatch;
use super::error::UsersError;
use super::notices::{NewWebhook, Page, WebhookPatch};
use super::{store, wire};
use crate::authn;
use crate::proto::ecom::users::v1 as pb;
use crate::proto::ecom::users::v1::users_service_server::UsersService;
use crate::validation::Violations;

#[tonic::async_trait]
impl UsersService for UsersApi {
    /// GET /users/me: the signed-in user's full profile.
    #[tracing::instrument(skip_all)]
    async fn get_me(
        &self,
        req: Request<pb::GetMeRequest>,
    ) -> Result<Response<pb::GetMeResponse>, Status> {
        let principal = authn::require_user(&req)?;
        let user = self.load_profile(principal.user_id).await?;
        Ok(Response::new(pb::GetMeResponse {
            user: Some(wire::user(&user)),
        }))
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
            wire::user(&user)
        } else {
            wire::public_user(&user)
        };
        Ok(Response::new(pb::GetUserResponse { user: Some(user) }))
    }

    /// PUT /users/me: partial update of one's own profile; role, id and password are not
    /// fields of the request.
    #[tracing::instrument(skip_all)]
    async fn update_me(
        &self,
        req: Request<pb::UpdateMeRequest>,
    ) -> Result<Response<pb::UpdateMeResponse>, Status> {
        let principal = authn::require_user(&req)?;
        let patch =
            ProfilePatch::parse(wire::update_me(req.get_ref())).map_err(UsersError::from)?;
        let user = self.apply_patch(principal.user_id, patch).await?;
        Ok(Response::new(pb::UpdateMeResponse {
            user: Some(wire::user(&user)),
        }))
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
        let patch = ProfilePatch::parse(wire::update_user(&r)).map_err(UsersError::from)?;
        let user = self.apply_patch(r.id, patch).await?;
        Ok(Response::new(pb::UpdateUserResponse {
            user: Some(wire::user(&user)),
        }))
    }

    /// GET /users/me/preferences: the signed-in user's preferences, with the defaults when
    /// never set.
    #[tracing::instrument(skip_all)]
    async fn get_preferences(
        &self,
        req: Request<pb::GetPreferencesRequest>,
    ) -> Result<Response<pb::GetPreferencesResponse>, Status> {
        let principal = authn::require_user(&req)?;
        let prefs = store::preferences(&self.replicas.reads().await, principal.user_id)
            .await
            .map_err(UsersError::from)?;
        Ok(Response::new(pb::GetPreferencesResponse {
            preferences: Some(wire::preferences(&prefs)),
        }))
    }

    /// PUT /users/me/preferences: partial update, every field validated.
    #[tracing::instrument(skip_all)]
    async fn update_preferences(
        &self,
        req: Request<pb::UpdatePreferencesRequest>,
    ) -> Result<Response<pb::UpdatePreferencesResponse>, Status> {
        let principal = authn::require_user(&req)?;
        let patch = wire::preferences_patch(req.get_ref());
        let updated = self.update_preferences(principal.user_id, patch).await?;
        Ok(Response::new(pb::UpdatePreferencesResponse {
            preferences: Some(wire::preferences(&updated)),
        }))
    }

    /// POST /users/me/avatar: stores the uploaded image as the signed-in user's avatar and
    /// answers its URL.
    #[tracing::instrument(skip_all)]
    async fn upload_avatar(
        &self,
        req: Request<pb::UploadAvatarRequest>,
    ) -> Result<Response<pb::UploadAvatarResponse>, Status> {
        let principal = authn::require_user(&req)?.clone();
        let url = self.upload(&principal, req.into_inner().image).await?;
        Ok(Response::new(pb::UploadAvatarResponse {
            id: principal.user_id,
            image: url,
        }))
    }

    /// POST /users/me/delete: with the password, schedules the account for deletion (soft,
    /// with a grace period) and revokes its tokens at once.
    #[tracing::instrument(skip_all)]
    async fn delete_me(
        &self,
        req: Request<pb::DeleteMeRequest>,
    ) -> Result<Response<pb::DeleteMeResponse>, Status> {
        let principal = authn::require_user(&req)?.clone();
        let r = req.into_inner();
        if r.password.is_empty() {
            return Err(
                UsersError::from(Violations::one("password", "Password is required")).into(),
            );
        }
        if r.reason.chars().count() > 500 {
            return Err(UsersError::from(Violations::one(
                "reason",
                "Must be at most 500 characters",
            ))
            .into());
        }
        self.delete(&principal, SecretString::from(r.password), r.reason.trim())
            .await?;
        Ok(Response::new(pb::DeleteMeResponse {
            message: "Account scheduled for deletion".to_owned(),
        }))
    }

    /// GET /users/me/addresses: the signed-in user's addresses as a bare array, the default
    /// first.
    #[tracing::instrument(skip_all)]
    async fn list_addresses(
        &self,
        req: Request<pb::ListAddressesRequest>,
    ) -> Result<Response<pb::ListAddressesResponse>, Status> {
        let principal = authn::require_user(&req)?;
        let rows = store::list_addresses(&self.replicas.reads().await, principal.user_id)
            .await
            .map_err(UsersError::from)?;
        Ok(Response::new(pb::ListAddressesResponse {
            addresses: rows.iter().map(wire::address).collect(),
        }))
    }

    /// POST /users/me/addresses: adds an address to the signed-in user's.
    #[tracing::instrument(skip_all)]
    async fn add_address(
        &self,
        req: Request<pb::AddAddressRequest>,
    ) -> Result<Response<pb::AddAddressResponse>, Status> {
        let principal = authn::require_user(&req)?;
        let r = req.get_ref();
        let row = self
            .add_address(principal.user_id, wire::address_form(r), r.is_default)
            .await?;
        Ok(Response::new(pb::AddAddressResponse {
            address: Some(wire::address(&row)),
        }))
    }

    /// PUT (or PATCH) /users/me/addresses/{id}: partial update of one of the signed-in user's
    /// addresses; another user's address is 404.
    #[tracing::instrument(skip_all, fields(address.id = req.get_ref().id))]
    async fn update_address(
        &self,
        req: Request<pb::UpdateAddressRequest>,
    ) -> Result<Response<pb::UpdateAddressResponse>, Status> {
        let principal = authn::require_user(&req)?;
        let r = req.get_ref();
        let row = self
            .update_address(
                principal.user_id,
                r.id,
                wire::address_patch(r),
                r.is_default,
            )
            .await?;
        Ok(Response::new(pb::UpdateAddressResponse {
            address: Some(wire::address(&row)),
        }))
    }

    /// DELETE /users/me/addresses/{id}: 204; another user's address is 404.
    #[tracing::instrument(skip_all, fields(address.id = req.get_ref().id))]
    async fn delete_address(
        &self,
        req: Request<pb::DeleteAddressRequest>,
    ) -> Result<Response<pb::DeleteAddressResponse>, Status> {
        let principal = authn::require_user(&req)?;
        self.delete_address(principal.user_id, req.get_ref().id)
            .await?;
        Ok(Response::new(pb::DeleteAddressResponse {}))
    }

    /// GET /notifications: the signed-in user's own, newest first.
    #[tracing::instrument(skip_all)]
    async fn list_notifications(
        &self,
        req: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        let principal = authn::require_user(&req)?;
        let r = req.get_ref();
        let page = Page::parse(r.skip, r.limit).map_err(UsersError::from)?;
        let (rows, total, unread) = self
            .list_notifications(principal.user_id, r.unread, page)
            .await?;
        Ok(Response::new(pb::ListNotificationsResponse {
            notifications: rows.iter().map(wire::notification).collect(),
            total: count(total),
            unread_count: count(unread),
            skip: page.skip,
            limit: page.limit,
        }))
    }

    /// PUT /notifications/{id}/read: own only (404 otherwise), idempotent.
    #[tracing::instrument(skip_all, fields(notification.id = req.get_ref().id))]
    async fn mark_notification_read(
        &self,
        req: Request<pb::MarkNotificationReadRequest>,
    ) -> Result<Response<pb::MarkNotificationReadResponse>, Status> {
        let principal = authn::require_user(&req)?;
        let row = self
            .mark_notification_read(principal.user_id, req.get_ref().id)
            .await?;
        Ok(Response::new(pb::MarkNotificationReadResponse {
            notification: Some(wire::notification(&row)),
        }))
    }

    /// POST /admin/webhooks: 201 with the secret, shown this once.
    #[tracing::instrument(skip_all)]
    async fn create_webhook(
        &self,
        req: Request<pb::CreateWebhookRequest>,
    ) -> Result<Response<pb::CreateWebhookResponse>, Status> {
        authn::require_admin(&req)?;
        let r = req.get_ref();
        let form = NewWebhook::parse(
            &r.url,
            &r.events,
            r.secret.as_deref(),
            r.description.as_deref(),
            self.settings.webhook_targets,
        )
        .map_err(UsersError::from)?;
        let row = self.create_webhook(form).await?;
        Ok(Response::new(pb::CreateWebhookResponse {
            webhook: Some(wire::webhook(&row, true)),
        }))
    }

    /// GET /admin/webhooks: a page of endpoints, without secrets.
    #[tracing::instrument(skip_all)]
    async fn list_webhooks(
        &self,
        req: Request<pb::ListWebhooksRequest>,
    ) -> Result<Response<pb::ListWebhooksResponse>, Status> {
        authn::require_admin(&req)?;
        let r = req.get_ref();
        let page = Page::parse(r.skip, r.limit).map_err(UsersError::from)?;
        let (rows, total) = self.list_webhooks(page).await?;
        Ok(Response::new(pb::ListWebhooksResponse {
            webhooks: rows.iter().map(|w| wire::webhook(w, false)).collect(),
            total: count(total),
            skip: page.skip,
            limit: page.limit,
        }))
    }

    /// GET /admin/webhooks/{id}.
    #[tracing::instrument(skip_all, fields(webhook.id = req.get_ref().id))]
    async fn get_webhook(
        &self,
        req: Request<pb::GetWebhookRequest>,
    ) -> Result<Response<pb::GetWebhookResponse>, Status> {
        authn::require_admin(&req)?;
        let row = self.get_webhook(req.get_ref().id).await?;
        Ok(Response::new(pb::GetWebhookResponse {
            webhook: Some(wire::webhook(&row, false)),
        }))
    }

    /// PUT /admin/webhooks/{id}: url, events, enabled, description.
    #[tracing::instrument(skip_all, fields(webhook.id = req.get_ref().id))]
    async fn update_webhook(
        &self,
        req: Request<pb::UpdateWebhookRequest>,
    ) -> Result<Response<pb::UpdateWebhookResponse>, Status> {
        authn::require_admin(&req)?;
        let r = req.get_ref();
        let patch = WebhookPatch::parse(
            r.url.as_deref(),
            &r.events,
            r.enabled,
            r.description.as_deref(),
            self.settings.webhook_targets,
        )
        .map_err(UsersError::from)?;
        let row = self.update_webhook(r.id, patch).await?;
        Ok(Response::new(pb::UpdateWebhookResponse {
            webhook: Some(wire::webhook(&row, false)),
        }))
    }

    /// DELETE /admin/webhooks/{id}: 204, its deliveries with it.
    #[tracing::instrument(skip_all, fields(webhook.id = req.get_ref().id))]
    async fn delete_webhook(
        &self,
        req: Request<pb::DeleteWebhookRequest>,
    ) -> Result<Response<pb::DeleteWebhookResponse>, Status> {
        authn::require_admin(&req)?;
        self.delete_webhook(req.get_ref().id).await?;
        Ok(Response::new(pb::DeleteWebhookResponse {}))
    }

    /// GET /admin/webhooks/{id}/deliveries: newest first, each with its attempts.
    #[tracing::instrument(skip_all, fields(webhook.id = req.get_ref().id))]
    async fn list_webhook_deliveries(
        &self,
        req: Request<pb::ListWebhookDeliveriesRequest>,
    ) -> Result<Response<pb::ListWebhookDeliveriesResponse>, Status> {
        authn::require_admin(&req)?;
        let r = req.get_ref();
        let page = Page::parse(r.skip, r.limit).map_err(UsersError::from)?;
        let (rows, attempts, total) = self.list_deliveries(r.id, page).await?;
        Ok(Response::new(pb::ListWebhookDeliveriesResponse {
            deliveries: rows.iter().map(|d| wire::delivery(d, &attempts)).collect(),
            total: count(total),
            skip: page.skip,
            limit: page.limit,
        }))
    }
}

/// A count as the wire's int32 (saturating; no list here comes near it).
fn count(n: i64) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

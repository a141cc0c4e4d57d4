//! Domain values to and from the wire (proto/ecom/users/v1): the only room of the users
//! service, with grpc.rs, that sees protobuf types. The profile's own wire form is the identity
//! kernel's ([`crate::accounts::wire`]), shared with auth.

use super::domain::{
    AddressForm, AddressPatch, Preferences, PreferencesPatch, ProfileFields, Theme,
};
use super::store::{AddressRow, AttemptRow, DeliveryRow, NotificationRow, WebhookRow};
use crate::accounts::domain::Profile;
use crate::accounts::wire::role_from_wire;
pub use crate::accounts::wire::user;
use crate::clock::timestamp;
use crate::proto::ecom::common::v1 as common;
use crate::proto::ecom::users::v1 as pb;

/// Public fields only (id, names, image): what anyone signed in may see of another user.
pub fn public_user(p: &Profile) -> common::User {
    common::User {
        id: p.id,
        first_name: p.first_name.clone(),
        last_name: p.last_name.clone(),
        image: p.image.clone(),
        ..Default::default()
    }
}

/// The profile fields of an update request. UpdateMe and UpdateUser are two generated
/// structs with the same seven profile fields and no trait in common: a macro reads them by
/// name in one place.
macro_rules! profile_fields {
    ($r:expr, role: $role:expr) => {
        ProfileFields {
            first_name: $r.first_name.as_deref(),
            last_name: $r.last_name.as_deref(),
            email: $r.email.as_deref(),
            phone: $r.phone.as_deref(),
            age: $r.age,
            gender: $r.gender.as_deref(),
            username: $r.username.as_deref(),
            role: $role,
        }
    };
}

/// What PUT /users/me sent (role is not one of its fields).
pub fn update_me(r: &pb::UpdateMeRequest) -> ProfileFields<'_> {
    profile_fields!(r, role: None)
}

/// What PUT /users/{id} sent.
pub fn update_user(r: &pb::UpdateUserRequest) -> ProfileFields<'_> {
    profile_fields!(r, role: r.role.map(role_from_wire))
}

fn theme(t: Theme) -> pb::Theme {
    match t {
        Theme::Light => pb::Theme::Light,
        Theme::Dark => pb::Theme::Dark,
    }
}

/// `None` for a theme that is neither light nor dark (unspecified or unknown).
fn theme_from_wire(value: i32) -> Option<Theme> {
    match pb::Theme::try_from(value) {
        Ok(pb::Theme::Light) => Some(Theme::Light),
        Ok(pb::Theme::Dark) => Some(Theme::Dark),
        _ => None,
    }
}

pub fn preferences(p: &Preferences) -> pb::Preferences {
    pb::Preferences {
        theme: theme(p.theme) as i32,
        notifications: p.notifications,
        email_notifications: p.email_notifications,
        currency: p.currency.clone(),
        language: p.language.clone(),
    }
}

/// What PUT /users/me/preferences sent.
pub fn preferences_patch(r: &pb::UpdatePreferencesRequest) -> PreferencesPatch<'_> {
    PreferencesPatch {
        theme: r.theme.map(theme_from_wire),
        notifications: r.notifications,
        email_notifications: r.email_notifications,
        currency: r.currency.as_deref(),
        language: r.language.as_deref(),
    }
}

pub fn address(a: &AddressRow) -> pb::Address {
    pb::Address {
        id: a.id,
        user_id: a.user_id,
        label: a.label.clone(),
        first_name: a.first_name.clone(),
        last_name: a.last_name.clone(),
        address: a.address.clone(),
        city: a.city.clone(),
        state: a.state.clone(),
        zip_code: a.zip_code.clone(),
        country: a.country.clone(),
        phone: a.phone.clone(),
        is_default: a.is_default,
        created_at: Some(timestamp(a.created_at)),
        updated_at: Some(timestamp(a.updated_at)),
    }
}

/// What POST /users/me/addresses sent (its `isDefault` apart).
pub fn address_form(r: &pb::AddAddressRequest) -> AddressForm<'_> {
    AddressForm {
        label: &r.label,
        first_name: &r.first_name,
        last_name: &r.last_name,
        address: &r.address,
        city: &r.city,
        state: &r.state,
        zip_code: &r.zip_code,
        country: &r.country,
        phone: &r.phone,
    }
}

/// What PUT /users/me/addresses/{id} sent (its `id` and `isDefault` apart).
pub fn address_patch(r: &pb::UpdateAddressRequest) -> AddressPatch<'_> {
    AddressPatch {
        label: r.label.as_deref(),
        first_name: r.first_name.as_deref(),
        last_name: r.last_name.as_deref(),
        address: r.address.as_deref(),
        city: r.city.as_deref(),
        state: r.state.as_deref(),
        zip_code: r.zip_code.as_deref(),
        country: r.country.as_deref(),
        phone: r.phone.as_deref(),
    }
}

pub fn notification(n: &NotificationRow) -> pb::Notification {
    // `data` holds strings only (written from a map of strings); anything else is dropped
    // rather than failing the whole list.
    let data = n
        .data
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    pb::Notification {
        id: n.id,
        kind: n.kind.clone(),
        title: n.title.clone(),
        body: n.body.clone(),
        data,
        read: n.read_at.is_some(),
        read_at: n.read_at.map(timestamp),
        created_at: Some(timestamp(n.created_at)),
    }
}

/// An endpoint; its secret only when `with_secret` (the answer of its creation).
pub fn webhook(w: &WebhookRow, with_secret: bool) -> pb::Webhook {
    pb::Webhook {
        id: w.id,
        url: w.url.clone(),
        events: w.events.clone(),
        description: w.description.clone(),
        enabled: w.enabled,
        secret: if with_secret {
            w.secret.clone()
        } else {
            String::new()
        },
        created_at: Some(timestamp(w.created_at)),
        updated_at: Some(timestamp(w.updated_at)),
    }
}

/// A delivery with its attempts (taken from `attempts`, the attempts of a page).
pub fn delivery(d: &DeliveryRow, attempts: &[AttemptRow]) -> pb::WebhookDelivery {
    pb::WebhookDelivery {
        id: d.id,
        event_id: d.event_id.to_string(),
        event_type: d.event_type.clone(),
        status: d.status.clone(),
        attempt_count: d.attempt_count,
        next_attempt_at: (d.status == "pending").then(|| timestamp(d.next_attempt_at)),
        created_at: Some(timestamp(d.created_at)),
        completed_at: d.completed_at.map(timestamp),
        attempts: attempts
            .iter()
            .filter(|a| a.delivery_id == d.id)
            .map(|a| pb::WebhookAttempt {
                attempted_at: Some(timestamp(a.attempted_at)),
                http_status: a.http_status,
                error: a.error.clone(),
                duration_ms: a.duration_ms,
            })
            .collect(),
    }
}

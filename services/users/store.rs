//! The users service's SQL: profile updates, preferences, addresses, soft deletion and the
//! purge. Account reads are shared with the auth service ([`crate::accounts::store`]).
//!
//! Address writes lock the owner's `users` row first, so switching the default address is
//! serialized per user; the partial unique index `addresses_one_default_key` is the backstop.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use super::domain::{AddressFields, Preferences, ProfilePatch};
use crate::accounts::store::UserRow;
use crate::clock::timestamp;
use crate::proto::ecom::users::v1 as pb;

/// Applies a profile patch; unique violations come back for mapping by constraint name.
pub async fn update_profile(
    ex: impl PgExecutor<'_>,
    id: i64,
    p: &ProfilePatch,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as!(
        UserRow,
        r#"UPDATE users SET
               first_name = COALESCE($2, first_name),
               last_name  = COALESCE($3, last_name),
               email      = COALESCE($4, email),
               phone      = COALESCE($5, phone),
               age        = COALESCE($6, age),
               gender     = COALESCE($7, gender),
               username   = COALESCE($8, username),
               role       = COALESCE($9, role)
           WHERE id = $1 AND purged_at IS NULL
           RETURNING id, email, username, password_hash, first_name, last_name, gender, image, phone, age,
                     role, locked_until, deletion_requested_at, created_at, updated_at"#,
        id,
        p.first_name.as_ref().map(|n| n.as_str()),
        p.last_name.as_ref().map(|n| n.as_str()),
        p.email.as_ref().map(|e| e.as_str()),
        p.phone.as_ref().map(|x| x.as_str()),
        p.age,
        p.gender.as_deref(),
        p.username.as_ref().map(|u| u.as_str()),
        p.role,
    )
    .fetch_optional(ex)
    .await
}

/// Sets the avatar URL.
pub async fn set_image(
    ex: impl PgExecutor<'_>,
    id: i64,
    image: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as!(
        UserRow,
        r#"UPDATE users SET image = $2 WHERE id = $1 AND purged_at IS NULL
           RETURNING id, email, username, password_hash, first_name, last_name, gender, image, phone, age,
                     role, locked_until, deletion_requested_at, created_at, updated_at"#,
        id,
        image
    )
    .fetch_optional(ex)
    .await
}

/// A user's preferences (the defaults when never set).
pub async fn preferences(
    ex: impl PgExecutor<'_>,
    user_id: i64,
) -> Result<Preferences, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT theme, notifications, email_notifications, currency, language
           FROM user_preferences WHERE user_id = $1"#,
        user_id
    )
    .fetch_optional(ex)
    .await?;
    Ok(match row {
        None => Preferences::default(),
        Some(r) => Preferences {
            theme: if r.theme == "dark" { "dark" } else { "light" },
            notifications: r.notifications,
            email_notifications: r.email_notifications,
            currency: r.currency,
            language: r.language,
        },
    })
}

/// Stores a user's preferences.
pub async fn save_preferences(
    ex: impl PgExecutor<'_>,
    user_id: i64,
    p: &Preferences,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO user_preferences (user_id, theme, notifications, email_notifications, currency, language)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (user_id) DO UPDATE SET
               theme = EXCLUDED.theme, notifications = EXCLUDED.notifications,
               email_notifications = EXCLUDED.email_notifications,
               currency = EXCLUDED.currency, language = EXCLUDED.language"#,
        user_id,
        p.theme,
        p.notifications,
        p.email_notifications,
        p.currency,
        p.language
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// One `addresses` row.
pub struct AddressRow {
    pub id: i64,
    pub user_id: i64,
    pub label: String,
    pub first_name: String,
    pub last_name: String,
    pub address: String,
    pub city: String,
    pub state: String,
    pub zip_code: String,
    pub country: String,
    pub phone: String,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl AddressRow {
    /// On the wire.
    pub fn to_wire(&self) -> pb::Address {
        pb::Address {
            id: self.id,
            user_id: self.user_id,
            label: self.label.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            address: self.address.clone(),
            city: self.city.clone(),
            state: self.state.clone(),
            zip_code: self.zip_code.clone(),
            country: self.country.clone(),
            phone: self.phone.clone(),
            is_default: self.is_default,
            created_at: Some(timestamp(self.created_at)),
            updated_at: Some(timestamp(self.updated_at)),
        }
    }

    /// The editable fields.
    pub fn fields(&self) -> AddressFields {
        AddressFields {
            label: self.label.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            address: self.address.clone(),
            city: self.city.clone(),
            state: self.state.clone(),
            zip_code: self.zip_code.clone(),
            country: self.country.clone(),
            phone: self.phone.clone(),
        }
    }
}

/// A user's addresses, the default first.
pub async fn list_addresses(
    ex: impl PgExecutor<'_>,
    user_id: i64,
) -> Result<Vec<AddressRow>, sqlx::Error> {
    sqlx::query_as!(
        AddressRow,
        r#"SELECT id, user_id, label, first_name, last_name, address, city, state, zip_code, country, phone,
                  is_default, created_at, updated_at
           FROM addresses WHERE user_id = $1 ORDER BY is_default DESC, id"#,
        user_id
    )
    .fetch_all(ex)
    .await
}

/// Locks the user's row for an address change (serializes default switching per user).
pub async fn lock_user(conn: &mut PgConnection, user_id: i64) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query_scalar!(r#"SELECT id FROM users WHERE id = $1 FOR UPDATE"#, user_id)
            .fetch_optional(conn)
            .await?
            .is_some(),
    )
}

/// One of the user's addresses, locked; `None` for another user's address.
pub async fn find_address_for_update(
    conn: &mut PgConnection,
    user_id: i64,
    id: i64,
) -> Result<Option<AddressRow>, sqlx::Error> {
    sqlx::query_as!(
        AddressRow,
        r#"SELECT id, user_id, label, first_name, last_name, address, city, state, zip_code, country, phone,
                  is_default, created_at, updated_at
           FROM addresses WHERE id = $1 AND user_id = $2 FOR UPDATE"#,
        id,
        user_id
    )
    .fetch_optional(conn)
    .await
}

/// Whether the user has any address.
pub async fn has_addresses(conn: &mut PgConnection, user_id: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM addresses WHERE user_id = $1) AS "e!""#,
        user_id
    )
    .fetch_one(conn)
    .await
}

/// Clears the default flag of all the user's addresses.
pub async fn clear_default(conn: &mut PgConnection, user_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE addresses SET is_default = false WHERE user_id = $1 AND is_default"#,
        user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts an address.
pub async fn insert_address(
    conn: &mut PgConnection,
    user_id: i64,
    f: &AddressFields,
    is_default: bool,
) -> Result<AddressRow, sqlx::Error> {
    sqlx::query_as!(
        AddressRow,
        r#"INSERT INTO addresses (user_id, label, first_name, last_name, address, city, state, zip_code, country, phone, is_default)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
           RETURNING id, user_id, label, first_name, last_name, address, city, state, zip_code, country, phone,
                     is_default, created_at, updated_at"#,
        user_id,
        f.label,
        f.first_name,
        f.last_name,
        f.address,
        f.city,
        f.state,
        f.zip_code,
        f.country,
        f.phone,
        is_default
    )
    .fetch_one(conn)
    .await
}

/// Rewrites an address.
pub async fn update_address(
    conn: &mut PgConnection,
    id: i64,
    f: &AddressFields,
    is_default: bool,
) -> Result<AddressRow, sqlx::Error> {
    sqlx::query_as!(
        AddressRow,
        r#"UPDATE addresses SET label = $2, first_name = $3, last_name = $4, address = $5, city = $6, state = $7,
               zip_code = $8, country = $9, phone = $10, is_default = $11
           WHERE id = $1
           RETURNING id, user_id, label, first_name, last_name, address, city, state, zip_code, country, phone,
                     is_default, created_at, updated_at"#,
        id,
        f.label,
        f.first_name,
        f.last_name,
        f.address,
        f.city,
        f.state,
        f.zip_code,
        f.country,
        f.phone,
        is_default
    )
    .fetch_one(conn)
    .await
}

/// Deletes an address; when it was the default, the oldest remaining one becomes the default.
pub async fn delete_address(
    conn: &mut PgConnection,
    user_id: i64,
    id: i64,
) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query_scalar!(
        r#"DELETE FROM addresses WHERE id = $1 AND user_id = $2 RETURNING is_default"#,
        id,
        user_id
    )
    .fetch_optional(&mut *conn)
    .await?;
    match deleted {
        None => Ok(false),
        Some(was_default) => {
            if was_default {
                sqlx::query!(
                    r#"UPDATE addresses SET is_default = true
                       WHERE id = (SELECT id FROM addresses WHERE user_id = $1 ORDER BY id LIMIT 1)"#,
                    user_id
                )
                .execute(&mut *conn)
                .await?;
            }
            Ok(true)
        }
    }
}

/// Schedules the account for deletion: records when and why; [`purge_deleted`] anonymises it
/// once the grace period has passed.
pub async fn request_deletion(
    ex: impl PgExecutor<'_>,
    user_id: i64,
    now: DateTime<Utc>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE users SET deletion_requested_at = $2, deletion_reason = NULLIF($3, '') WHERE id = $1"#,
        user_id,
        now,
        reason
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// Anonymises every account whose deletion was requested before `cutoff`: personal data is
/// replaced, addresses, preferences and tokens are deleted; the row (and the orders pointing at
/// its id) stays. Returns the purged ids.
pub async fn purge_deleted(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, sqlx::Error> {
    let ids = sqlx::query_scalar!(
        r#"UPDATE users SET
               email = 'deleted-' || id || '@deleted.invalid',
               username = 'deleted-' || id,
               password_hash = '!',
               first_name = 'Deleted', last_name = 'User',
               gender = '', image = '', phone = '', age = NULL,
               deletion_reason = NULL, purged_at = $2
           WHERE deletion_requested_at <= $1 AND purged_at IS NULL
           RETURNING id"#,
        cutoff,
        now
    )
    .fetch_all(&mut *conn)
    .await?;
    if !ids.is_empty() {
        sqlx::query!("DELETE FROM addresses WHERE user_id = ANY($1)", &ids[..])
            .execute(&mut *conn)
            .await?;
        sqlx::query!(
            "DELETE FROM user_preferences WHERE user_id = ANY($1)",
            &ids[..]
        )
        .execute(&mut *conn)
        .await?;
        sqlx::query!(
            "DELETE FROM refresh_tokens WHERE user_id = ANY($1)",
            &ids[..]
        )
        .execute(&mut *conn)
        .await?;
        sqlx::query!(
            "DELETE FROM password_resets WHERE user_id = ANY($1)",
            &ids[..]
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(ids)
}

//! The account row and the reads and writes both identity services (auth and users) need:
//! the `users` row, a live account by id, ending an account's sessions. Everything else of
//! each service's SQL stays in that service's `store.rs`.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::domain::Profile;

/// One `users` row.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub username: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
    pub gender: String,
    pub image: String,
    pub phone: String,
    pub age: Option<i32>,
    pub role: String,
    pub locked_until: Option<DateTime<Utc>>,
    pub deletion_requested_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl UserRow {
    /// The token role of the account.
    pub fn role(&self) -> crate::tokens::Role {
        if self.role == "admin" {
            crate::tokens::Role::Admin
        } else {
            crate::tokens::Role::User
        }
    }

    /// The account's profile (what the profile cache holds).
    pub fn profile(&self) -> Profile {
        Profile {
            id: self.id,
            email: self.email.clone(),
            username: self.username.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            gender: self.gender.clone(),
            image: self.image.clone(),
            phone: self.phone.clone(),
            age: self.age,
            role: self.role(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// How mail and invoices address an account holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

impl Contact {
    /// "First Last", trimmed.
    pub fn name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_owned()
    }
}

/// The contact of a live (not purged: its email is anonymised then) account.
pub async fn contact(ex: impl PgExecutor<'_>, id: i64) -> Result<Option<Contact>, sqlx::Error> {
    sqlx::query_as!(
        Contact,
        "SELECT email, first_name, last_name FROM users WHERE id = $1 AND purged_at IS NULL",
        id
    )
    .fetch_optional(ex)
    .await
}

/// The contacts of every live admin account (inventory alerts go to them).
pub async fn admin_contacts(ex: impl PgExecutor<'_>) -> Result<Vec<Contact>, sqlx::Error> {
    sqlx::query_as!(
        Contact,
        "SELECT email, first_name, last_name FROM users WHERE role = 'admin' AND purged_at IS NULL ORDER BY id"
    )
    .fetch_all(ex)
    .await
}

/// A live (not purged) account by id.
pub async fn find_user(ex: impl PgExecutor<'_>, id: i64) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, email, username, password_hash, first_name, last_name, gender, image, phone, age,
                  role, locked_until, deletion_requested_at, created_at, updated_at
           FROM users WHERE id = $1 AND purged_at IS NULL"#,
        id
    )
    .fetch_optional(ex)
    .await
}

/// Revokes every refresh token of a user but those of the family `except` (the caller's own
/// session on a password change; `None` on a reset or an account deletion revokes them all).
pub async fn revoke_refresh_tokens(
    ex: impl PgExecutor<'_>,
    user_id: i64,
    except: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE refresh_tokens SET revoked_at = $2
           WHERE user_id = $1 AND revoked_at IS NULL AND family_id IS DISTINCT FROM $3"#,
        user_id,
        now,
        except
    )
    .execute(ex)
    .await?;
    Ok(())
}

//! Identity's SQL for accounts and credentials: users, refresh tokens, password resets and the
//! mail outbox. The account row and its reads shared with the users service are in
//! [`crate::accounts::store`] (re-exported here).
//!
//! Helpers take `impl PgExecutor<'_>` so the gRPC layer decides what runs in a transaction.
//! Races are settled by the database: unique indexes for emails and usernames, conditional
//! UPDATEs for token rotation and single-use reset tokens.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

pub use crate::accounts::store::{UserRow, find_user, revoke_refresh_tokens};

/// A protobuf timestamp.
pub use crate::clock::timestamp;

/// Inserts an account; unique violations come back as `sqlx::Error` for the caller to map by
/// constraint name (`users_email_key`, `users_username_key`).
pub async fn insert_user(
    ex: impl PgExecutor<'_>,
    email: &str,
    username: &str,
    password_hash: &str,
    first_name: &str,
    last_name: &str,
    role: &str,
) -> Result<UserRow, sqlx::Error> {
    sqlx::query_as!(
        UserRow,
        r#"INSERT INTO users (email, username, password_hash, first_name, last_name, role)
           VALUES ($1, $2, $3, $4, $5, $6)
           RETURNING id, email, username, password_hash, first_name, last_name, gender, image, phone, age,
                     role, locked_until, deletion_requested_at, created_at, updated_at"#,
        email,
        username,
        password_hash,
        first_name,
        last_name,
        role,
    )
    .fetch_one(ex)
    .await
}

/// A live account by email or username, case-insensitively (DummyJSON clients log in with
/// either).
pub async fn find_by_login(
    ex: impl PgExecutor<'_>,
    login: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, email, username, password_hash, first_name, last_name, gender, image, phone, age,
                  role, locked_until, deletion_requested_at, created_at, updated_at
           FROM users
           WHERE (lower(email) = lower($1) OR lower(username) = lower($1)) AND purged_at IS NULL
           ORDER BY (lower(email) = lower($1)) DESC
           LIMIT 1"#,
        login
    )
    .fetch_optional(ex)
    .await
}

/// Counts a failed login in the lockout window and locks the account when it reaches the
/// threshold. Returns the lock's end when this failure locked it. One statement, so
/// concurrent failures all count.
pub async fn record_failed_login(
    ex: impl PgExecutor<'_>,
    user_id: i64,
    now: DateTime<Utc>,
    window_secs: f64,
    threshold: i32,
    lock_secs: f64,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let row = sqlx::query!(
        r#"WITH next AS (
               SELECT id,
                      CASE WHEN failures_since IS NULL OR failures_since <= $2::timestamptz - make_interval(secs => $3::float8)
                           THEN 1 ELSE failed_logins + 1 END AS n,
                      CASE WHEN failures_since IS NULL OR failures_since <= $2::timestamptz - make_interval(secs => $3::float8)
                           THEN $2::timestamptz ELSE failures_since END AS since
               FROM users WHERE id = $1 FOR UPDATE
           )
           UPDATE users u
           SET failed_logins  = CASE WHEN next.n >= $4 THEN 0 ELSE next.n END,
               failures_since = CASE WHEN next.n >= $4 THEN NULL ELSE next.since END,
               locked_until   = CASE WHEN next.n >= $4 THEN $2::timestamptz + make_interval(secs => $5::float8) ELSE u.locked_until END
           FROM next WHERE u.id = next.id
           RETURNING (next.n >= $4::int4) AS "locked!", u.locked_until"#,
        user_id,
        now,
        window_secs,
        threshold,
        lock_secs,
    )
    .fetch_optional(ex)
    .await?;
    Ok(row.and_then(|r| if r.locked { r.locked_until } else { None }))
}

/// A successful login: forgets failures and cancels a pending deletion (logging in during the
/// grace period restores the account).
pub async fn record_successful_login(
    ex: impl PgExecutor<'_>,
    user_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE users
           SET failed_logins = 0, failures_since = NULL, locked_until = NULL,
               deletion_requested_at = NULL, deletion_reason = NULL
           WHERE id = $1 AND (failed_logins <> 0 OR locked_until IS NOT NULL OR deletion_requested_at IS NOT NULL)"#,
        user_id
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// Sets a new password hash and clears any lockout (a reset unlocks the account).
pub async fn set_password(
    ex: impl PgExecutor<'_>,
    user_id: i64,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE users
           SET password_hash = $2, failed_logins = 0, failures_since = NULL, locked_until = NULL
           WHERE id = $1"#,
        user_id,
        hash
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// Makes an account an admin with this password, creating it when missing (idempotent).
pub async fn upsert_admin(
    ex: impl PgExecutor<'_>,
    email: &str,
    username: &str,
    hash: &str,
) -> Result<i64, sqlx::Error> {
    let row = sqlx::query!(
        r#"INSERT INTO users (email, username, password_hash, first_name, last_name, role)
           VALUES ($1, $2, $3, 'Shop', 'Admin', 'admin')
           ON CONFLICT (lower(email)) DO UPDATE SET role = 'admin', password_hash = EXCLUDED.password_hash
           RETURNING id"#,
        email,
        username,
        hash
    )
    .fetch_one(ex)
    .await?;
    Ok(row.id)
}

/// Stores a refresh token's digest in `family`.
pub async fn insert_refresh_token(
    ex: impl PgExecutor<'_>,
    digest: &[u8],
    family: Uuid,
    user_id: i64,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at) VALUES ($1, $2, $3, $4)"#,
        digest,
        family,
        user_id,
        expires_at
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// The outcome of presenting a refresh token.
#[derive(Debug)]
pub enum Rotation {
    /// The token was live and is now rotated: its user and family.
    Rotated { user_id: i64, family: Uuid },
    /// Unknown, expired, revoked, or reused (and the family is now revoked).
    Refused,
}

/// Marks a live refresh token rotated, atomically: of two concurrent refreshes with one token
/// exactly one gets `Rotated`. Presenting an already rotated token revokes its whole family.
pub async fn rotate_refresh_token(
    conn: &mut sqlx::PgConnection,
    digest: &[u8],
    now: DateTime<Utc>,
) -> Result<Rotation, sqlx::Error> {
    let rotated = sqlx::query!(
        r#"UPDATE refresh_tokens SET rotated_at = $2
           WHERE token_hash = $1 AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > $2
           RETURNING user_id, family_id"#,
        digest,
        now
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = rotated {
        return Ok(Rotation::Rotated {
            user_id: row.user_id,
            family: row.family_id,
        });
    }
    // Reuse of a rotated token means it leaked: kill the family (RFC 9700 section 4.14.2).
    sqlx::query!(
        r#"UPDATE refresh_tokens SET revoked_at = $2
           WHERE revoked_at IS NULL
             AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND rotated_at IS NOT NULL)"#,
        digest,
        now
    )
    .execute(&mut *conn)
    .await?;
    Ok(Rotation::Refused)
}

/// Revokes the refresh token family `family` of `user_id`: the session an access token was
/// minted for (logout with only the bearer token).
pub async fn revoke_family(
    ex: impl PgExecutor<'_>,
    family: Uuid,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE refresh_tokens SET revoked_at = $3
           WHERE family_id = $1 AND user_id = $2 AND revoked_at IS NULL"#,
        family,
        user_id,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// Revokes the family of a refresh token of `user_id` (logout with a `refreshToken` body).
pub async fn revoke_family_of(
    ex: impl PgExecutor<'_>,
    digest: &[u8],
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE refresh_tokens SET revoked_at = $3
           WHERE revoked_at IS NULL
             AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2)"#,
        digest,
        user_id,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// Stores a password reset token's digest.
pub async fn insert_password_reset(
    ex: impl PgExecutor<'_>,
    digest: &[u8],
    user_id: i64,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO password_resets (token_hash, user_id, expires_at) VALUES ($1, $2, $3)"#,
        digest,
        user_id,
        expires_at
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// The outcome of redeeming a reset token.
#[derive(Debug, PartialEq, Eq)]
pub enum Redemption {
    /// The token was live and is now used: its user.
    Redeemed(i64),
    /// Unknown or already used.
    Invalid,
    /// Past its expiry.
    Expired,
}

/// Marks a reset token used, atomically (single use even under concurrent redemptions).
pub async fn redeem_password_reset(
    conn: &mut sqlx::PgConnection,
    digest: &[u8],
    now: DateTime<Utc>,
) -> Result<Redemption, sqlx::Error> {
    let used = sqlx::query!(
        r#"UPDATE password_resets SET used_at = $2
           WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
           RETURNING user_id"#,
        digest,
        now
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = used {
        return Ok(Redemption::Redeemed(row.user_id));
    }
    let expired = sqlx::query_scalar!(
        r#"SELECT (used_at IS NULL AND expires_at <= $2) AS "expired!" FROM password_resets WHERE token_hash = $1"#,
        digest,
        now
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(if expired == Some(true) {
        Redemption::Expired
    } else {
        Redemption::Invalid
    })
}

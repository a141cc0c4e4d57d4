//! The users service's SQL: profile updates, preferences, addresses, soft deletion and the
//! purge. Account reads are shared with the auth service ([`crate::accounts::store`]).
//!
//! Address writes lock the owner's `users` row first, so switching the default address is
//! serialized per user; the partial unique index `addresses_one_default_key` is the backstop.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use uuid::Uuid;

use super::domain::{AddressFields, Preferences, ProfilePatch, Theme};
use super::notices::{NewWebhook, NotificationDraft, WebhookPatch};
use crate::accounts::store::UserRow;

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
            theme: if r.theme == "dark" {
                Theme::Dark
            } else {
                Theme::Light
            },
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
        p.theme.as_str(),
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

/// Which address [`save_address`] writes.
#[derive(Debug, Clone, Copy)]
pub enum AddressSlot {
    /// A new address of this user.
    New { user_id: i64 },
    /// This existing address, rewritten.
    Existing { id: i64 },
}

/// Writes an address's fields and default flag: inserts a new one or rewrites an existing one.
/// One statement for both, so that the fields are bound in one place.
pub async fn save_address(
    conn: &mut PgConnection,
    slot: AddressSlot,
    f: &AddressFields,
    is_default: bool,
) -> Result<AddressRow, sqlx::Error> {
    let (id, user_id) = match slot {
        AddressSlot::New { user_id } => (None, Some(user_id)),
        AddressSlot::Existing { id } => (Some(id), None),
    };
    // Exactly one of the two writes happens: the UPDATE when $1 names an address, the INSERT
    // when it is NULL.
    sqlx::query_as!(
        AddressRow,
        r#"WITH updated AS (
               UPDATE addresses SET label = $3, first_name = $4, last_name = $5, address = $6, city = $7,
                      state = $8, zip_code = $9, country = $10, phone = $11, is_default = $12
               WHERE id = $1
               RETURNING id, user_id, label, first_name, last_name, address, city, state, zip_code, country,
                         phone, is_default, created_at, updated_at
           ), inserted AS (
               INSERT INTO addresses (user_id, label, first_name, last_name, address, city, state, zip_code,
                                      country, phone, is_default)
               SELECT $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 WHERE $1::int8 IS NULL
               RETURNING id, user_id, label, first_name, last_name, address, city, state, zip_code, country,
                         phone, is_default, created_at, updated_at
           ), written AS (
               SELECT * FROM updated UNION ALL SELECT * FROM inserted
           )
           SELECT id AS "id!", user_id AS "user_id!", label AS "label!", first_name AS "first_name!",
                  last_name AS "last_name!", address AS "address!", city AS "city!", state AS "state!",
                  zip_code AS "zip_code!", country AS "country!", phone AS "phone!",
                  is_default AS "is_default!", created_at AS "created_at!", updated_at AS "updated_at!"
           FROM written"#,
        id,
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

// Notifications -------------------------------------------------------------------------------

/// A notification as stored; `data` is a JSON object of strings.
#[derive(Debug, Clone)]
pub struct NotificationRow {
    pub id: i64,
    pub user_id: i64,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

/// Adds a notification for user `user_id` about event `event_id`, unless the user is gone,
/// turned in-app notifications off (preferences), or already has one for that event. Answers
/// whether one was added.
pub async fn insert_notification(
    conn: &mut PgConnection,
    user_id: i64,
    draft: &NotificationDraft,
    event_id: Uuid,
    created_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    // SELECT FROM users rather than VALUES: an event about a user that no longer exists (or
    // a bad id) adds nothing instead of failing the consumer forever on the foreign key.
    let done = sqlx::query!(
        r#"INSERT INTO notifications (user_id, kind, title, body, data, event_id, created_at)
           SELECT u.id, $2, $3, $4, $5, $6, $7 FROM users u
           WHERE u.id = $1
             AND NOT EXISTS (SELECT 1 FROM user_preferences p
                             WHERE p.user_id = u.id AND NOT p.notifications)
           ON CONFLICT ON CONSTRAINT notifications_event_user_key DO NOTHING"#,
        user_id,
        draft.kind,
        draft.title,
        draft.body,
        serde_json::to_value(&draft.data).unwrap_or_default(),
        event_id,
        created_at
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Adds the notification to every admin (active, not being deleted, notifications on);
/// answers how many.
pub async fn insert_admin_notifications(
    conn: &mut PgConnection,
    draft: &NotificationDraft,
    event_id: Uuid,
    created_at: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        r#"INSERT INTO notifications (user_id, kind, title, body, data, event_id, created_at)
           SELECT u.id, $1, $2, $3, $4, $5, $6 FROM users u
           WHERE u.role = 'admin' AND u.purged_at IS NULL AND u.deletion_requested_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM user_preferences p
                             WHERE p.user_id = u.id AND NOT p.notifications)
           ON CONFLICT ON CONSTRAINT notifications_event_user_key DO NOTHING"#,
        draft.kind,
        draft.title,
        draft.body,
        serde_json::to_value(&draft.data).unwrap_or_default(),
        event_id,
        created_at
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// A page of a user's notifications, newest first (unread only when `unread`).
pub async fn list_notifications(
    ex: impl PgExecutor<'_>,
    user_id: i64,
    unread: bool,
    skip: i64,
    limit: i64,
) -> Result<Vec<NotificationRow>, sqlx::Error> {
    sqlx::query_as!(
        NotificationRow,
        r#"SELECT id, user_id, kind, title, body, data, created_at, read_at
           FROM notifications
           WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL)
           ORDER BY created_at DESC, id DESC
           OFFSET $3 LIMIT $4"#,
        user_id,
        unread,
        skip,
        limit
    )
    .fetch_all(ex)
    .await
}

/// How many notifications the list has (with the filter), and how many are unread.
pub async fn count_notifications(
    ex: impl PgExecutor<'_>,
    user_id: i64,
    unread: bool,
) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE NOT $2 OR read_at IS NULL) AS "total!",
                  count(*) FILTER (WHERE read_at IS NULL) AS "unread!"
           FROM notifications WHERE user_id = $1"#,
        user_id,
        unread
    )
    .fetch_one(ex)
    .await?;
    Ok((row.total, row.unread))
}

/// Marks one of the user's notifications read (keeping the first read time); `None` when the
/// user has no such notification.
pub async fn mark_notification_read(
    ex: impl PgExecutor<'_>,
    user_id: i64,
    id: i64,
    now: DateTime<Utc>,
) -> Result<Option<NotificationRow>, sqlx::Error> {
    sqlx::query_as!(
        NotificationRow,
        r#"UPDATE notifications SET read_at = COALESCE(read_at, $3)
           WHERE id = $1 AND user_id = $2
           RETURNING id, user_id, kind, title, body, data, created_at, read_at"#,
        id,
        user_id,
        now
    )
    .fetch_optional(ex)
    .await
}

// Webhooks ------------------------------------------------------------------------------------

/// A webhook endpoint as stored (with its secret: the sender needs it in clear).
#[derive(Debug, Clone)]
pub struct WebhookRow {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
    pub description: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn insert_webhook(
    ex: impl PgExecutor<'_>,
    w: &NewWebhook,
    now: DateTime<Utc>,
) -> Result<WebhookRow, sqlx::Error> {
    sqlx::query_as!(
        WebhookRow,
        r#"INSERT INTO webhook_endpoints (url, events, secret, description, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $5)
           RETURNING id, url, events, secret, description, enabled, created_at, updated_at"#,
        w.url,
        &w.events,
        w.secret,
        w.description,
        now
    )
    .fetch_one(ex)
    .await
}

/// A page of endpoints, oldest first, and how many there are.
pub async fn list_webhooks(
    ex: impl PgExecutor<'_> + Copy,
    skip: i64,
    limit: i64,
) -> Result<(Vec<WebhookRow>, i64), sqlx::Error> {
    let rows = sqlx::query_as!(
        WebhookRow,
        r#"SELECT id, url, events, secret, description, enabled, created_at, updated_at
           FROM webhook_endpoints ORDER BY id OFFSET $1 LIMIT $2"#,
        skip,
        limit
    )
    .fetch_all(ex)
    .await?;
    let total = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM webhook_endpoints"#)
        .fetch_one(ex)
        .await?;
    Ok((rows, total))
}

pub async fn find_webhook(
    ex: impl PgExecutor<'_>,
    id: i64,
) -> Result<Option<WebhookRow>, sqlx::Error> {
    sqlx::query_as!(
        WebhookRow,
        r#"SELECT id, url, events, secret, description, enabled, created_at, updated_at
           FROM webhook_endpoints WHERE id = $1"#,
        id
    )
    .fetch_optional(ex)
    .await
}

pub async fn update_webhook(
    ex: impl PgExecutor<'_>,
    id: i64,
    p: &WebhookPatch,
    now: DateTime<Utc>,
) -> Result<Option<WebhookRow>, sqlx::Error> {
    sqlx::query_as!(
        WebhookRow,
        r#"UPDATE webhook_endpoints SET
               url = COALESCE($2, url),
               events = COALESCE($3, events),
               enabled = COALESCE($4, enabled),
               description = COALESCE($5, description),
               updated_at = $6
           WHERE id = $1
           RETURNING id, url, events, secret, description, enabled, created_at, updated_at"#,
        id,
        p.url.as_deref(),
        p.events.as_deref(),
        p.enabled,
        p.description.as_deref(),
        now
    )
    .fetch_optional(ex)
    .await
}

/// Deletes an endpoint with its deliveries; answers whether it existed.
pub async fn delete_webhook(ex: impl PgExecutor<'_>, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(r#"DELETE FROM webhook_endpoints WHERE id = $1"#, id)
        .execute(ex)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// One pending delivery per enabled endpoint subscribed to `event_type` (or to `*`), due at
/// once; an endpoint that already has the event keeps its one delivery. Answers how many.
pub async fn enqueue_deliveries(
    conn: &mut PgConnection,
    event_id: Uuid,
    event_type: &str,
    body: &str,
    occurred_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        r#"INSERT INTO webhook_deliveries
               (endpoint_id, event_id, event_type, body, next_attempt_at, expires_at, created_at)
           SELECT id, $1, $2, $3, $4, $5, $4 FROM webhook_endpoints
           WHERE enabled AND ($2 = ANY (events) OR '*' = ANY (events))
           ON CONFLICT ON CONSTRAINT webhook_deliveries_endpoint_event_key DO NOTHING"#,
        event_id,
        event_type,
        body,
        occurred_at,
        expires_at
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// A delivery as admins see it.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub status: String,
    pub attempt_count: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub delivery_id: i64,
    pub attempted_at: DateTime<Utc>,
    pub http_status: Option<i32>,
    pub error: String,
    pub duration_ms: i32,
}

/// A page of an endpoint's deliveries (newest first), their attempts, and how many there are.
pub async fn list_deliveries(
    ex: impl PgExecutor<'_> + Copy,
    endpoint_id: i64,
    skip: i64,
    limit: i64,
) -> Result<(Vec<DeliveryRow>, Vec<AttemptRow>, i64), sqlx::Error> {
    let rows = sqlx::query_as!(
        DeliveryRow,
        r#"SELECT id, event_id, event_type, status, attempt_count, next_attempt_at, created_at,
                  completed_at
           FROM webhook_deliveries WHERE endpoint_id = $1
           ORDER BY id DESC OFFSET $2 LIMIT $3"#,
        endpoint_id,
        skip,
        limit
    )
    .fetch_all(ex)
    .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let attempts = sqlx::query_as!(
        AttemptRow,
        r#"SELECT delivery_id, attempted_at, http_status, error, duration_ms
           FROM webhook_attempts WHERE delivery_id = ANY ($1) ORDER BY id"#,
        &ids
    )
    .fetch_all(ex)
    .await?;
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM webhook_deliveries WHERE endpoint_id = $1"#,
        endpoint_id
    )
    .fetch_one(ex)
    .await?;
    Ok((rows, attempts, total))
}

/// A delivery claimed for sending, with what signing and sending it takes.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub event_id: Uuid,
    pub body: String,
    /// Including the attempt being made.
    pub attempt_count: i32,
    pub expires_at: DateTime<Utc>,
    pub url: String,
    pub secret: String,
}

/// Claims up to `batch` due deliveries of enabled endpoints: one statement locks them with
/// SKIP LOCKED (another instance's claim skips them), counts the attempt and moves
/// `next_attempt_at` to `lease_until`, so once committed no other instance picks them
/// before the lease ends, even though the row is no longer locked while sending.
pub async fn claim_due_deliveries(
    ex: impl PgExecutor<'_>,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    batch: i64,
) -> Result<Vec<ClaimedDelivery>, sqlx::Error> {
    sqlx::query_as!(
        ClaimedDelivery,
        r#"WITH due AS (
               SELECT d.id FROM webhook_deliveries d
               JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
               WHERE d.status = 'pending' AND d.next_attempt_at <= $1
               ORDER BY d.next_attempt_at
               LIMIT $3
               FOR UPDATE OF d SKIP LOCKED
           )
           UPDATE webhook_deliveries d
           SET next_attempt_at = $2, attempt_count = d.attempt_count + 1
           FROM due, webhook_endpoints e
           WHERE d.id = due.id AND e.id = d.endpoint_id
           RETURNING d.id, d.event_id, d.body, d.attempt_count, d.expires_at, e.url, e.secret"#,
        now,
        lease_until,
        batch
    )
    .fetch_all(ex)
    .await
}

/// Records one attempt and the delivery's new state (`next_attempt_at` matters while
/// pending).
#[allow(clippy::too_many_arguments)]
pub async fn record_attempt(
    conn: &mut PgConnection,
    delivery_id: i64,
    attempted_at: DateTime<Utc>,
    http_status: Option<i32>,
    error: &str,
    duration_ms: i32,
    status: &str,
    next_attempt_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO webhook_attempts (delivery_id, attempted_at, http_status, error, duration_ms)
           VALUES ($1, $2, $3, $4, $5)"#,
        delivery_id,
        attempted_at,
        http_status,
        error,
        duration_ms
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        r#"UPDATE webhook_deliveries SET status = $2, next_attempt_at = $3, completed_at = $4
           WHERE id = $1"#,
        delivery_id,
        status,
        next_attempt_at,
        completed_at
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

//! Accounts that exist without anyone registering: the bootstrap admin (ADMIN_EMAIL /
//! ADMIN_PASSWORD, or `ecom admin create`) and, outside production, the demo users whose
//! development passwords README.md documents.

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use super::domain::{Email, NewPassword, Username};
use super::{password, store};

/// The demo accounts: (email, username, first name, last name, role, password).
pub const DEMO_USERS: &[(&str, &str, &str, &str, &str, &str)] = &[
    ("admin@ecom.local", "admin", "Ada", "Admin", "admin", "AdminPass123"),
    ("emily@ecom.local", "emilys", "Emily", "Johnson", "user", "EmilyPass123"),
    ("michael@ecom.local", "michaelw", "Michael", "Williams", "user", "MichaelPass123"),
    ("sophia@ecom.local", "sophiab", "Sophia", "Brown", "user", "SophiaPass123"),
];

/// Creates an admin with this email and password, or makes the existing account an admin with
/// this password. Idempotent. Returns the account's id.
pub async fn ensure_admin(db: &PgPool, email: &str, password: &SecretString) -> anyhow::Result<i64> {
    let email = Email::parse(email).map_err(|m| anyhow::anyhow!("admin email: {}", m.join(", ")))?;
    NewPassword::parse(password.expose_secret()).map_err(|m| anyhow::anyhow!("admin password: {}", m.join(", ")))?;
    let hash = password::hash(password.clone()).await?;
    let username = Username::from_email(&email).with_suffix(rand::random::<u16>() as u32);
    store::upsert_admin(db, email.as_str(), username.as_str(), &hash)
        .await
        .context("creating the admin account")
}

/// Inserts the demo users that do not exist yet (never call in production).
pub async fn seed_demo_users(db: &PgPool) -> anyhow::Result<()> {
    for (email, username, first, last, role, pass) in DEMO_USERS {
        if store::find_by_login(db, email).await?.is_some() {
            continue;
        }
        let hash = password::hash(SecretString::from(*pass)).await?;
        match store::insert_user(db, email, username, &hash, first, last, role).await {
            Ok(_) => {}
            // Another instance seeded it meanwhile.
            Err(e) if e.as_database_error().and_then(|d| d.constraint()).is_some() => {}
            Err(e) => return Err(anyhow::Error::new(e).context("seeding demo users")),
        }
    }
    Ok(())
}

//! The profile cache: a user's wire profile under `users:profile:{id}`, written through on
//! every change for [`PROFILE_TTL`], read before the database.

use std::time::Duration;

use prost::Message as _;
use sqlx::PgPool;

use super::store::{self, UserRow};
use crate::cache::Cache;
use crate::proto::ecom::common::v1 as common;

/// How long a cached profile stays (60 s; every change writes it through).
pub const PROFILE_TTL: Duration = Duration::from_secs(60);

/// The cache key of a user's profile.
pub fn profile_key(id: i64) -> String {
    format!("users:profile:{id}")
}

/// Profiles read through the cache; cheap to clone.
#[derive(Clone)]
pub struct Profiles {
    db: PgPool,
    cache: Cache,
}

impl Profiles {
    /// Profiles of the accounts in `db`, cached in `cache`.
    pub fn new(db: PgPool, cache: Cache) -> Profiles {
        Profiles { db, cache }
    }

    /// A user's profile: from the cache, else from the database (then cached); `None` when
    /// there is no live account `id`.
    pub async fn load(&self, id: i64) -> Result<Option<common::User>, sqlx::Error> {
        if let Some(bytes) = self.cache.get(&profile_key(id)).await
            && let Ok(user) = common::User::decode(bytes)
        {
            return Ok(Some(user));
        }
        match store::find_user(&self.db, id).await? {
            Some(row) => Ok(Some(self.store(&row).await)),
            None => Ok(None),
        }
    }

    /// Writes a user's profile through to the cache; returns it.
    pub async fn store(&self, row: &UserRow) -> common::User {
        let user = row.to_wire();
        self.cache
            .set(&profile_key(row.id), &user.encode_to_vec(), PROFILE_TTL)
            .await;
        user
    }

    /// Drops a user's cached profile.
    pub async fn forget(&self, id: i64) {
        self.cache.delete(&[profile_key(id)]).await;
    }
}

//! Cache-aside for read-heavy data (products, categories, profiles), on the shared [`Kv`].
//!
//! The cache never fails a request: a Redis error is logged and treated as a miss (reads) or
//! ignored (writes), so PostgreSQL answers while Redis is down and the cache fills again by
//! itself when Redis returns. Writers delete the affected keys after their transaction
//! commits, so no instance serves a stale entry after a write.

use std::time::Duration;

use bytes::Bytes;

use crate::kv::Kv;

/// Namespace of cache keys inside the deployment prefix.
const NAMESPACE: &str = "cache:";

/// A cache on Redis or in-process. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    kv: Kv,
}

impl Cache {
    /// A cache on `kv`.
    pub fn new(kv: Kv) -> Cache {
        Cache { kv }
    }

    /// The cached bytes at `key`; `None` on a miss or when the store is unavailable.
    pub async fn get(&self, key: &str) -> Option<Bytes> {
        let hit = self.kv.get(&format!("{NAMESPACE}{key}")).await;
        match hit {
            Ok(value) => {
                metrics::counter!("cache_lookups_total", "result" => if value.is_some() { "hit" } else { "miss" })
                    .increment(1);
                value
            }
            Err(e) => {
                metrics::counter!("cache_lookups_total", "result" => "error").increment(1);
                tracing::warn!(error = %e, key, "cache read failed; reading through");
                None
            }
        }
    }

    /// Stores `value` at `key` for `ttl`.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        if let Err(e) = self.kv.set(&format!("{NAMESPACE}{key}"), value, ttl).await {
            tracing::warn!(error = %e, key, "cache write failed");
        }
    }

    /// Deletes `keys` (after a write). A failure is logged: the TTL bounds the staleness.
    pub async fn delete(&self, keys: &[String]) {
        let keys: Vec<String> = keys.iter().map(|k| format!("{NAMESPACE}{k}")).collect();
        if let Err(e) = self.kv.delete(&keys).await {
            tracing::error!(error = %e, ?keys, "cache invalidation failed; entries expire by TTL");
        }
    }
}

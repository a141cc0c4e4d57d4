//! Cache-aside for read-heavy data (products, categories, profiles), on the shared [`Kv`].
//!
//! The cache never fails a request: a Redis error is logged and treated as a miss (reads) or
//! ignored (writes), so PostgreSQL answers while Redis is down and the cache fills again by
//! itself when Redis returns. Writers delete the affected keys after their transaction
//! commits, so no instance serves a stale entry after a write.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::OnceCell;

use crate::kv::Kv;

/// Namespace of cache keys inside the deployment prefix.
const NAMESPACE: &str = "cache:";

/// A cache on Redis or in-process. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    kv: Kv,
    /// Loads in progress in this process, by key (see [`Cache::get_or_load`]).
    loading: Arc<Mutex<HashMap<String, Arc<OnceCell<Bytes>>>>>,
}

impl Cache {
    /// A cache on `kv`.
    pub fn new(kv: Kv) -> Cache {
        Cache {
            kv,
            loading: Arc::default(),
        }
    }

    /// The cached bytes at `key`, else what `load` makes (then cached for `ttl`).
    ///
    /// Concurrent misses of one key in this process share a single `load` (single flight):
    /// when a popular page expires, or a cold instance starts under load, one query runs
    /// instead of one per waiting request, which on a large catalog would pile up slow scans
    /// and exhaust the connection pool. A failed load is not shared: the next waiter tries.
    pub async fn get_or_load<E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        load: F,
    ) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        if let Some(hit) = self.get(key).await {
            return Ok(hit);
        }
        let cell = self
            .loading
            .lock()
            .expect("cache loading map poisoned")
            .entry(key.to_owned())
            .or_default()
            .clone();
        let result = cell
            .get_or_try_init(|| async {
                // Another process (or a load that just finished here) may have filled it.
                if let Some(hit) = self.get(key).await {
                    return Ok(hit);
                }
                let value = load().await?;
                self.set(key, &value, ttl).await;
                Ok(value)
            })
            .await
            .cloned();
        // The first one back forgets the flight; later callers read the cache (or load anew).
        let mut loading = self.loading.lock().expect("cache loading map poisoned");
        if loading.get(key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            loading.remove(key);
        }
        result
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_misses_of_one_key_share_one_load() {
        let cache = Cache::new(Kv::memory("t:"));
        let loads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, loads) = (cache.clone(), loads.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_load("k", Duration::from_secs(60), || async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, ()>(Bytes::from_static(b"v"))
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), Ok(Bytes::from_static(b"v")));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert!(
            cache.loading.lock().unwrap().is_empty(),
            "the flight is forgotten"
        );
        // Cached now: no further load.
        let again = cache
            .get_or_load("k", Duration::from_secs(60), || async { Err(()) })
            .await;
        assert_eq!(again, Ok(Bytes::from_static(b"v")));
    }

    #[tokio::test]
    async fn a_failed_load_is_not_cached() {
        let cache = Cache::new(Kv::memory("t:"));
        let failed = cache
            .get_or_load("k", Duration::from_secs(60), || async {
                Err::<Bytes, _>("down")
            })
            .await;
        assert_eq!(failed, Err("down"));
        let loaded = cache
            .get_or_load("k", Duration::from_secs(60), || async {
                Ok::<_, &str>(Bytes::from_static(b"v"))
            })
            .await;
        assert_eq!(loaded, Ok(Bytes::from_static(b"v")));
    }
}

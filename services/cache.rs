//! Cache-aside for read-heavy data (products, categories, profiles), on the shared [`Kv`],
//! with an in-process first tier in front of Redis.
//!
//! The cache never fails a request: a Redis error is logged and treated as a miss (reads) or
//! ignored (writes), so PostgreSQL answers while Redis is down and the cache fills again by
//! itself when Redis returns. Writers delete the affected keys after their transaction
//! commits, so no instance serves a stale entry after a write.
//!
//! The first tier ([`Local`]) keeps recent entries in this process, so a hot read costs no
//! Redis round trip (that round trip was most of the cost of a cached product read: 12,000
//! against 40,000+ requests/s in `benches/load.rs`). It stays correct across instances
//! because every write announces its keys on a Redis channel and every instance drops them
//! from its first tier on hearing it:
//! - the write deletes (or replaces) the keys in Redis *before* announcing them, so an
//!   instance that reads Redis again after hearing the announcement gets the new state;
//! - a value read from Redis or PostgreSQL is kept only if no announcement arrived while it
//!   was being read (the `epoch` check), so a read racing a write cannot put the old value
//!   back after the announcement removed it;
//! - the tier serves only while the subscription is up: when the connection to Redis drops
//!   it is emptied and bypassed, since announcements made meanwhile are lost, and it is
//!   emptied again when the subscription is back;
//! - entries live at most [`LOCAL_TTL`], which bounds the staleness if an announcement
//!   cannot be made (Redis unreachable by the writer; the error is logged).
//!
//! Without Redis (one instance, in-process store) there is no first tier: the store is
//! in-process already.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use tokio::sync::{OnceCell, watch};

use crate::kv::Kv;

/// Namespace of cache keys inside the deployment prefix.
const NAMESPACE: &str = "cache:";
/// The channel on which writes announce the keys they changed, one per line.
const ANNOUNCEMENTS: &str = "cache:changed";
/// The longest an entry lives in the first tier, whatever its TTL in Redis.
const LOCAL_TTL: Duration = Duration::from_secs(30);
/// How long the first tier keeps a value it read from Redis (whose remaining TTL it does not
/// know); a hot key then costs one Redis read per this period.
const REDIS_HIT_TTL: Duration = Duration::from_secs(5);

/// A cache on Redis or in-process. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    kv: Kv,
    /// Loads in progress in this process, by key (see [`Cache::get_or_load`]).
    loading: Arc<Mutex<HashMap<String, Arc<OnceCell<Bytes>>>>>,
    /// The first tier, with Redis only.
    local: Option<Arc<Local>>,
}

/// The in-process first tier; see the module doc for why it stays correct.
struct Local {
    entries: quick_cache::sync::Cache<String, (Bytes, Instant), BytesWeight>,
    /// Bumped by every announcement heard and every (re)subscription: a value read before
    /// a bump is not kept.
    epoch: AtomicU64,
    /// True while the subscription to announcements is up.
    live: AtomicBool,
}

/// Weighs an entry by its size, so the tier is bounded in bytes.
#[derive(Clone)]
struct BytesWeight;

impl quick_cache::Weighter<String, (Bytes, Instant)> for BytesWeight {
    fn weight(&self, key: &String, value: &(Bytes, Instant)) -> u64 {
        (key.len() + value.0.len() + 64) as u64
    }
}

impl Local {
    fn new(max_bytes: u64) -> Local {
        // quick_cache sizes its table by an estimate of the entry count.
        let estimated_items = (max_bytes / 2048).max(16) as usize;
        Local {
            entries: quick_cache::sync::Cache::with_weighter(
                estimated_items,
                max_bytes,
                BytesWeight,
            ),
            epoch: AtomicU64::new(0),
            live: AtomicBool::new(false),
        }
    }

    fn get(&self, key: &str) -> Option<Bytes> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        match self.entries.get(key) {
            Some((value, expiry)) if expiry > Instant::now() => Some(value),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value`, read when the epoch was `epoch`, unless something changed since.
    fn put(&self, key: &str, value: &Bytes, ttl: Duration, epoch: u64) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        let expiry = Instant::now() + ttl.min(LOCAL_TTL);
        self.entries.insert(key.to_owned(), (value.clone(), expiry));
        // An announcement that arrived during the insert may have missed the new entry.
        if self.epoch.load(Ordering::Acquire) != epoch {
            self.entries.remove(key);
        }
    }

    fn forget(&self, keys: &[String]) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for key in keys {
            self.entries.remove(key.as_str());
        }
    }

    /// Empties the tier and serves from it (`live`) or not.
    fn reset(&self, live: bool) {
        self.live.store(live, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
    }
}

impl Cache {
    /// A cache on `kv`, without a first tier.
    pub fn new(kv: Kv) -> Cache {
        Cache {
            kv,
            loading: Arc::default(),
            local: None,
        }
    }

    /// A cache on `kv` with a first tier of at most `local_max_bytes` in this process
    /// (none when 0 or when `kv` is in-process). The tier serves once
    /// [`Cache::listen`] has subscribed to the announcements of writes.
    pub fn with_local_tier(kv: Kv, local_max_bytes: u64) -> Cache {
        let local =
            (kv.is_shared() && local_max_bytes > 0).then(|| Arc::new(Local::new(local_max_bytes)));
        Cache {
            kv,
            loading: Arc::default(),
            local,
        }
    }

    /// Subscribes to the announcements of writes (from every instance), then follows them in
    /// a task until `stop`, keeping the first tier in step and subscribing again after the
    /// connection drops. The first subscription is made before this returns, so an instance
    /// starts with its first tier on when Redis is up. Does nothing without a first tier.
    pub async fn listen(&self, stop: watch::Receiver<bool>) {
        let Some(local) = self.local.clone() else {
            return;
        };
        let first = self.subscribe(&local).await;
        tokio::spawn(self.clone().follow(local, first, stop));
    }

    async fn subscribe(&self, local: &Local) -> Option<BoxStream<'static, String>> {
        match self.kv.subscribe(ANNOUNCEMENTS).await {
            Ok(announcements) => {
                // Entries kept while not subscribed may have missed announcements.
                local.reset(announcements.is_some());
                announcements
            }
            Err(e) => {
                tracing::debug!(error = %e, "subscribing to cache announcements");
                None
            }
        }
    }

    async fn follow(
        self,
        local: Arc<Local>,
        mut announcements: Option<BoxStream<'static, String>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if let Some(stream) = announcements.as_mut() {
                backoff = Duration::from_millis(100);
                loop {
                    tokio::select! {
                        message = stream.next() => match message {
                            Some(keys) => {
                                local.forget(&keys.lines().map(str::to_owned).collect::<Vec<_>>());
                            }
                            None => break,
                        },
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
                tracing::warn!("lost the cache announcements; first tier off until back");
                local.reset(false);
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
            announcements = self.subscribe(&local).await;
        }
    }

    /// The epoch of the first tier now (0 without one).
    fn epoch(&self) -> u64 {
        self.local
            .as_ref()
            .map_or(0, |l| l.epoch.load(Ordering::Acquire))
    }

    fn keep(&self, key: &str, value: &Bytes, ttl: Duration, epoch: u64) {
        if let Some(local) = &self.local {
            local.put(key, value, ttl, epoch);
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
        if let Some(hit) = self.local_hit(key) {
            return Ok(hit);
        }
        // Boxed: the shared tier's and the load's futures (Redis, sqlx) are large, and inline
        // they would make every caller's future as large, to be moved on every first-tier hit
        // too (docs/BENCHMARKS.md, 2026-12-07 edge profile).
        Box::pin(self.load_through(key, ttl, load)).await
    }

    /// [`Cache::get_or_load`] past a first-tier miss.
    async fn load_through<E, F, Fut>(&self, key: &str, ttl: Duration, load: F) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        if let Some(hit) = self.shared_get(key).await {
            return Ok(hit);
        }
        let epoch = self.epoch();
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
                self.fill(key, &value, ttl).await;
                self.keep(key, &value, ttl, epoch);
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
        match self.local_hit(key) {
            Some(hit) => Some(hit),
            // Boxed for the reason given in `get_or_load`.
            None => Box::pin(self.shared_get(key)).await,
        }
    }

    /// The first tier's copy of `key`, if it holds one.
    fn local_hit(&self, key: &str) -> Option<Bytes> {
        let hit = self.local.as_ref().and_then(|l| l.get(key))?;
        metrics::counter!("cache_lookups_total", "result" => "local").increment(1);
        Some(hit)
    }

    /// The shared tier's copy of `key` (kept in the first tier briefly).
    async fn shared_get(&self, key: &str) -> Option<Bytes> {
        let epoch = self.epoch();
        let hit = self.kv.get(&format!("{NAMESPACE}{key}")).await;
        match hit {
            Ok(value) => {
                metrics::counter!("cache_lookups_total", "result" => if value.is_some() { "hit" } else { "miss" })
                    .increment(1);
                if let Some(value) = &value {
                    // Redis does not say how long the entry has left: keep it briefly, so a
                    // copy never outlives its Redis entry by more than REDIS_HIT_TTL.
                    self.keep(key, value, REDIS_HIT_TTL, epoch);
                }
                value
            }
            Err(e) => {
                metrics::counter!("cache_lookups_total", "result" => "error").increment(1);
                tracing::warn!(error = %e, key, "cache read failed; reading through");
                None
            }
        }
    }

    /// Stores a value just loaded at `key` for `ttl` (nothing changed: no announcement);
    /// whether the store took it.
    async fn fill(&self, key: &str, value: &[u8], ttl: Duration) -> bool {
        match self.kv.set(&format!("{NAMESPACE}{key}"), value, ttl).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, key, "cache write failed");
                false
            }
        }
    }

    /// Replaces the value at `key` (after a write) and announces the change; whether the
    /// store took it (a failure is logged).
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> bool {
        let stored = self.fill(key, value, ttl).await;
        self.announce(&[key.to_owned()]).await;
        stored
    }

    /// Deletes `keys` (after a write) and announces the change. A failure is logged: the
    /// TTL bounds the staleness.
    pub async fn delete(&self, keys: &[String]) {
        let stored: Vec<String> = keys.iter().map(|k| format!("{NAMESPACE}{k}")).collect();
        if let Err(e) = self.kv.delete(&stored).await {
            tracing::error!(error = %e, ?keys, "cache invalidation failed; entries expire by TTL");
        }
        self.announce(keys).await;
    }

    /// Drops `keys` from this process's first tier and tells the other instances to, after
    /// Redis holds the new state (see the module doc).
    async fn announce(&self, keys: &[String]) {
        let Some(local) = &self.local else {
            return;
        };
        local.forget(keys);
        if let Err(e) = self.kv.publish(ANNOUNCEMENTS, &keys.join("\n")).await {
            tracing::error!(error = %e, ?keys, "announcing a cache change failed; other instances drop it within {LOCAL_TTL:?}");
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

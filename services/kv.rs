//! The shared key-value store behind the cache, the rate limiter and the token deny-list:
//! Redis when REDIS_URL is set (so several instances share state), an in-process map
//! otherwise (development, one instance).
//!
//! Every key gets the deployment prefix (REDIS_KEY_PREFIX) here and nowhere else. Every Redis
//! call has a short deadline: a Redis that is down or slow turns into an `Err` quickly, and the
//! callers decide what that means (the cache treats it as a miss, see their docs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bb8_redis::RedisConnectionManager;
use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};

/// How long one Redis command may take before it counts as failed.
const REDIS_DEADLINE: Duration = Duration::from_millis(300);

/// A key-value store with TTLs and atomic counters. Cheap to clone.
#[derive(Clone)]
pub struct Kv {
    prefix: Arc<str>,
    backend: Backend,
}

/// The in-process map: value and expiry per key.
type MemoryMap = Arc<Mutex<HashMap<String, (Bytes, Option<Instant>)>>>;

#[derive(Clone)]
enum Backend {
    Redis {
        pool: bb8::Pool<RedisConnectionManager>,
        /// For subscriptions, which need a connection of their own.
        client: Arc<redis::Client>,
    },
    Memory(MemoryMap),
}

impl Kv {
    /// Redis at `url` (the password, when given separately, is added to it). The pool connects
    /// lazily, so start-up does not fail when Redis is briefly unavailable.
    pub fn redis(
        url: &SecretString,
        password: Option<&SecretString>,
        prefix: &str,
    ) -> anyhow::Result<Kv> {
        let mut info: redis::ConnectionInfo = url
            .expose_secret()
            .parse()
            .context("REDIS_URL is not a valid Redis URL")?;
        if let Some(password) = password {
            let settings = info
                .redis_settings()
                .clone()
                .set_password(password.expose_secret());
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info.clone()).context("configuring Redis")?;
        let manager = RedisConnectionManager::new(info).context("configuring Redis")?;
        let pool = bb8::Pool::builder()
            .max_size(32)
            .connection_timeout(REDIS_DEADLINE)
            .build_unchecked(manager);
        Ok(Kv {
            prefix: prefix.into(),
            backend: Backend::Redis {
                pool,
                client: Arc::new(client),
            },
        })
    }

    /// An in-process store (one instance only).
    pub fn memory(prefix: &str) -> Kv {
        Kv {
            prefix: prefix.into(),
            backend: Backend::Memory(Arc::default()),
        }
    }

    /// True when backed by Redis.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Redis { .. })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs one Redis operation on a pooled connection within [`REDIS_DEADLINE`].
    async fn run<T>(
        pool: &bb8::Pool<RedisConnectionManager>,
        what: &'static str,
        cmd: impl FnOnce() -> redis::Pipeline,
    ) -> anyhow::Result<T>
    where
        T: redis::FromRedisValue,
    {
        let work = async {
            let mut conn = pool.get().await.map_err(|e| anyhow!("redis pool: {e}"))?;
            cmd()
                .query_async::<T>(&mut *conn)
                .await
                .map_err(|e| anyhow!("redis {what}: {e}"))
        };
        tokio::time::timeout(REDIS_DEADLINE, work)
            .await
            .map_err(|_| anyhow!("redis {what}: timed out"))?
    }

    /// The value at `key`, if any.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Bytes>> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis { pool, .. } => {
                let (value,): (Option<Vec<u8>>,) = Self::run(pool, "GET", || {
                    let mut p = redis::pipe();
                    p.cmd("GET").arg(&key);
                    p
                })
                .await?;
                Ok(value.map(Bytes::from))
            }
            Backend::Memory(map) => {
                let mut map = map.lock().expect("kv map poisoned");
                match map.get(&key) {
                    Some((_, Some(expiry))) if *expiry <= Instant::now() => {
                        map.remove(&key);
                        Ok(None)
                    }
                    Some((value, _)) => Ok(Some(value.clone())),
                    None => Ok(None),
                }
            }
        }
    }

    /// True when `key` exists.
    pub async fn exists(&self, key: &str) -> anyhow::Result<bool> {
        Ok(self.get(key).await?.is_some())
    }

    /// Sets `key` to `value` for `ttl`.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> anyhow::Result<()> {
        let key = self.key(key);
        let millis = ttl.as_millis().max(1) as u64;
        match &self.backend {
            Backend::Redis { pool, .. } => {
                Self::run::<()>(pool, "SET", || {
                    let mut p = redis::pipe();
                    p.cmd("SET")
                        .arg(&key)
                        .arg(value)
                        .arg("PX")
                        .arg(millis)
                        .ignore();
                    p
                })
                .await
            }
            Backend::Memory(map) => {
                let expiry = Instant::now() + ttl;
                map.lock()
                    .expect("kv map poisoned")
                    .insert(key, (Bytes::copy_from_slice(value), Some(expiry)));
                Ok(())
            }
        }
    }

    /// Publishes `message` on `channel` to every instance subscribed to it (none with the
    /// in-process store, which has no other instances).
    pub async fn publish(&self, channel: &str, message: &str) -> anyhow::Result<()> {
        let channel = self.key(channel);
        match &self.backend {
            Backend::Redis { pool, .. } => {
                Self::run::<()>(pool, "PUBLISH", || {
                    let mut p = redis::pipe();
                    p.cmd("PUBLISH").arg(&channel).arg(message).ignore();
                    p
                })
                .await
            }
            Backend::Memory(_) => Ok(()),
        }
    }

    /// Subscribes to `channel` on a connection of its own: the stream of messages ends when
    /// that connection does. `None` with the in-process store.
    pub async fn subscribe(
        &self,
        channel: &str,
    ) -> anyhow::Result<Option<futures::stream::BoxStream<'static, String>>> {
        use futures::StreamExt as _;
        let Backend::Redis { client, .. } = &self.backend else {
            return Ok(None);
        };
        let channel = self.key(channel);
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::time::timeout(REDIS_DEADLINE * 3, connect)
            .await
            .map_err(|_| anyhow!("redis SUBSCRIBE: timed out"))?
            .map_err(|e| anyhow!("redis SUBSCRIBE: {e}"))?;
        Ok(Some(
            pubsub
                .into_on_message()
                .filter_map(|msg| async move { msg.get_payload::<String>().ok() })
                .boxed(),
        ))
    }

    /// Deletes `keys`.
    pub async fn delete(&self, keys: &[String]) -> anyhow::Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        match &self.backend {
            Backend::Redis { pool, .. } => {
                Self::run::<()>(pool, "DEL", || {
                    let mut p = redis::pipe();
                    p.cmd("DEL").arg(&keys).ignore();
                    p
                })
                .await
            }
            Backend::Memory(map) => {
                let mut map = map.lock().expect("kv map poisoned");
                for key in keys {
                    map.remove(&key);
                }
                Ok(())
            }
        }
    }

    /// Adds one to the counter at `key` in a fixed window of `window` that starts with the
    /// first hit. Returns the count so far and the time left in the window. Atomic in Redis
    /// (one MULTI), so instances sharing Redis share the count.
    pub async fn hit(&self, key: &str, window: Duration) -> anyhow::Result<(u64, Duration)> {
        let key = self.key(key);
        let millis = window.as_millis().max(1) as u64;
        match &self.backend {
            Backend::Redis { pool, .. } => {
                let (count, ttl): (u64, i64) = Self::run(pool, "rate limit", || {
                    let mut p = redis::pipe();
                    p.atomic()
                        .cmd("INCR")
                        .arg(&key)
                        .cmd("PEXPIRE")
                        .arg(&key)
                        .arg(millis)
                        .arg("NX")
                        .ignore()
                        .cmd("PTTL")
                        .arg(&key);
                    p
                })
                .await?;
                let left = Duration::from_millis(ttl.max(0) as u64);
                Ok((count, left))
            }
            Backend::Memory(map) => {
                let now = Instant::now();
                let mut map = map.lock().expect("kv map poisoned");
                let entry = map
                    .entry(key)
                    .or_insert_with(|| (Bytes::from_static(b"0"), Some(now + window)));
                if entry.1.is_some_and(|expiry| expiry <= now) {
                    *entry = (Bytes::from_static(b"0"), Some(now + window));
                }
                let count: u64 = std::str::from_utf8(&entry.0)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0)
                    + 1;
                entry.0 = Bytes::from(count.to_string());
                let left = entry.1.map_or(window, |e| e.saturating_duration_since(now));
                Ok((count, left))
            }
        }
    }

    /// Checks the store answers (for `/ready`).
    pub async fn ping(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Redis { pool, .. } => {
                let (_pong,): (String,) = Self::run(pool, "PING", || {
                    let mut p = redis::pipe();
                    p.cmd("PING");
                    p
                })
                .await?;
                Ok(())
            }
            Backend::Memory(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_expires_and_counts() {
        let kv = Kv::memory("t:");
        kv.set("a", b"1", Duration::from_millis(20)).await.unwrap();
        assert_eq!(kv.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(kv.get("a").await.unwrap(), None);

        let (n1, _) = kv.hit("c", Duration::from_secs(60)).await.unwrap();
        let (n2, left) = kv.hit("c", Duration::from_secs(60)).await.unwrap();
        assert_eq!((n1, n2), (1, 2));
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(58));
    }
}

//! The shared key-value store behind the cache, the rate limiter and the token deny-list:
//! Redis when REDIS_URL is set (so several instances share state), an in-process map
//! otherwise (development, one instance).
//!
//! Every key gets the deployment prefix (REDIS_KEY_PREFIX) here and nowhere else. Every Redis
//! call has a short deadline: a Redis that is down or slow turns into an `Err` quickly, and the
//! callers decide what that means (the cache treats it as a miss, see their docs).
//!
//! Redis Cluster (REDIS_MODE=cluster) works the same: every command here touches one key (a
//! rate-limit window's INCR, PEXPIRE and PTTL are one key's, so its MULTI stays on one slot),
//! a multi-key delete is one DEL per key, and pub/sub announcements reach every node's
//! subscribers whichever node they are published on. So no key needs a hash tag.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bb8_redis::RedisConnectionManager;
use bytes::Bytes;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use secrecy::{ExposeSecret, SecretString};

use crate::config::RedisMode;

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
        conns: Connections,
        /// Where subscriptions connect, each on a connection of its own: the server, or the
        /// cluster's seed nodes, tried in turn.
        subscribe_to: Arc<[redis::Client]>,
    },
    Memory(MemoryMap),
}

/// How commands reach Redis.
#[derive(Clone)]
enum Connections {
    /// One server: a pool of connections.
    Pool(bb8::Pool<RedisConnectionManager>),
    /// A cluster: one client that follows the slot map and keeps a connection per node. Made on
    /// first use and again after a failed attempt, so start-up does not need the cluster.
    Cluster {
        client: Arc<ClusterClient>,
        conn: Arc<tokio::sync::OnceCell<ClusterConnection>>,
    },
}

impl Kv {
    /// Redis at `url` (the password, when given separately, is added to it); in cluster mode
    /// `url` lists seed nodes, comma-separated. Connections are made lazily, so start-up does not
    /// fail when Redis is briefly unavailable.
    pub fn redis(
        url: &SecretString,
        mode: RedisMode,
        password: Option<&SecretString>,
        prefix: &str,
    ) -> anyhow::Result<Kv> {
        let nodes = url
            .expose_secret()
            .split(',')
            .map(|node| {
                let mut info: redis::ConnectionInfo = node
                    .trim()
                    .parse()
                    .context("REDIS_URL is not a valid Redis URL")?;
                if let Some(password) = password {
                    let settings = info
                        .redis_settings()
                        .clone()
                        .set_password(password.expose_secret());
                    info = info.set_redis_settings(settings);
                }
                Ok(info)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let subscribe_to = nodes
            .iter()
            .map(|info| redis::Client::open(info.clone()).context("configuring Redis"))
            .collect::<anyhow::Result<Arc<[_]>>>()?;
        let conns = match (mode, nodes.as_slice()) {
            (RedisMode::Standalone, [info]) => {
                let manager =
                    RedisConnectionManager::new(info.clone()).context("configuring Redis")?;
                Connections::Pool(
                    bb8::Pool::builder()
                        .max_size(32)
                        .connection_timeout(REDIS_DEADLINE)
                        .build_unchecked(manager),
                )
            }
            (RedisMode::Standalone, _) => {
                anyhow::bail!(
                    "REDIS_URL lists several servers: set REDIS_MODE=cluster for a cluster"
                )
            }
            (RedisMode::Cluster, _) => {
                let client = ClusterClient::builder(nodes)
                    .connection_timeout(REDIS_DEADLINE)
                    .response_timeout(REDIS_DEADLINE)
                    .build()
                    .context("configuring the Redis Cluster client")?;
                Connections::Cluster {
                    client: Arc::new(client),
                    conn: Arc::default(),
                }
            }
        };
        Ok(Kv {
            prefix: prefix.into(),
            backend: Backend::Redis {
                conns,
                subscribe_to,
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

    /// Runs one Redis operation within [`REDIS_DEADLINE`].
    async fn run<T>(
        conns: &Connections,
        what: &'static str,
        cmd: impl FnOnce() -> redis::Pipeline,
    ) -> anyhow::Result<T>
    where
        T: redis::FromRedisValue,
    {
        let work = async {
            match conns {
                Connections::Pool(pool) => {
                    let mut conn = pool.get().await.map_err(|e| anyhow!("redis pool: {e}"))?;
                    cmd().query_async::<T>(&mut *conn).await
                }
                Connections::Cluster { client, conn } => {
                    let conn = conn
                        .get_or_try_init(|| client.get_async_connection())
                        .await
                        .map_err(|e| anyhow!("redis cluster: {e}"))?;
                    cmd().query_async::<T>(&mut conn.clone()).await
                }
            }
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
            Backend::Redis { conns, .. } => {
                let (value,): (Option<Vec<u8>>,) = Self::run(conns, "GET", || {
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
            Backend::Redis { conns, .. } => {
                Self::run::<()>(conns, "SET", || {
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

    /// Sets `key` to the number `value` unless it holds a greater one, and (either way) makes
    /// it live for `ttl`: concurrent writers leave the greatest. One EVAL on one key, so it is
    /// atomic in Redis and in a cluster. Redis compares as Lua numbers: exact up to 2^53.
    pub async fn raise(&self, key: &str, value: u64, ttl: Duration) -> anyhow::Result<()> {
        const SCRIPT: &str = r#"
            local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
            if tonumber(ARGV[1]) > current then
                redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
            else
                redis.call('PEXPIRE', KEYS[1], ARGV[2])
            end
            return 0
        "#;
        let key = self.key(key);
        let millis = ttl.as_millis().max(1) as u64;
        match &self.backend {
            Backend::Redis { conns, .. } => {
                Self::run::<()>(conns, "raise", || {
                    let mut p = redis::pipe();
                    p.cmd("EVAL")
                        .arg(SCRIPT)
                        .arg(1)
                        .arg(&key)
                        .arg(value)
                        .arg(millis)
                        .ignore();
                    p
                })
                .await
            }
            Backend::Memory(map) => {
                let now = Instant::now();
                let mut map = map.lock().expect("kv map poisoned");
                let current = map
                    .get(&key)
                    .filter(|(_, expiry)| expiry.is_none_or(|e| e > now))
                    .and_then(|(v, _)| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                    .unwrap_or(0);
                let value = Bytes::from(value.max(current).to_string());
                map.insert(key, (value, Some(now + ttl)));
                Ok(())
            }
        }
    }

    /// Publishes `message` on `channel` to every instance subscribed to it (none with the
    /// in-process store, which has no other instances).
    pub async fn publish(&self, channel: &str, message: &str) -> anyhow::Result<()> {
        let channel = self.key(channel);
        match &self.backend {
            Backend::Redis { conns, .. } => {
                Self::run::<()>(conns, "PUBLISH", || {
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
        let Backend::Redis { subscribe_to, .. } = &self.backend else {
            return Ok(None);
        };
        let channel = self.key(channel);
        let mut failure = anyhow!("redis SUBSCRIBE: no node to subscribe on");
        let mut subscribed = None;
        // The first node that answers (in a cluster, any node hears every PUBLISH).
        for client in subscribe_to.iter() {
            let connect = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            match tokio::time::timeout(REDIS_DEADLINE * 3, connect).await {
                Ok(Ok(pubsub)) => {
                    subscribed = Some(pubsub);
                    break;
                }
                Ok(Err(e)) => failure = anyhow!("redis SUBSCRIBE: {e}"),
                Err(_) => failure = anyhow!("redis SUBSCRIBE: timed out"),
            }
        }
        let pubsub = subscribed.ok_or(failure)?;
        Ok(Some(
            pubsub
                .into_on_message()
                .filter_map(|msg| async move { msg.get_payload::<String>().ok() })
                .boxed(),
        ))
    }

    /// Deletes `keys`, one DEL each (keys of a cluster live on different slots), concurrently.
    pub async fn delete(&self, keys: &[String]) -> anyhow::Result<()> {
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        match &self.backend {
            Backend::Redis { conns, .. } => {
                let deletes = keys.iter().map(|key| {
                    Self::run::<()>(conns, "DEL", move || {
                        let mut p = redis::pipe();
                        p.cmd("DEL").arg(key).ignore();
                        p
                    })
                });
                futures::future::try_join_all(deletes).await?;
                Ok(())
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
            Backend::Redis { conns, .. } => {
                let (count, ttl): (u64, i64) = Self::run(conns, "rate limit", || {
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
            Backend::Redis { conns, .. } => {
                let (_pong,): (String,) = Self::run(conns, "PING", || {
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

    /// In memory and on the machine's Redis (scripts/services.sh starts it).
    #[tokio::test]
    async fn raise_keeps_the_greatest_value_in_memory_and_in_redis() {
        let prefix = format!("kv-raise-{}:", std::process::id());
        let redis = Kv::redis(
            &"redis://127.0.0.1:6379".into(),
            crate::config::RedisMode::Standalone,
            None,
            &prefix,
        )
        .expect("a Redis URL");
        for kv in [Kv::memory(&prefix), redis] {
            let ttl = Duration::from_secs(60);
            kv.raise("lsn", 200, ttl).await.unwrap();
            // A slower writer with a lower position comes second: the greater one stays.
            kv.raise("lsn", 150, ttl).await.unwrap();
            assert_eq!(kv.get("lsn").await.unwrap().as_deref(), Some(&b"200"[..]));
            kv.raise("lsn", 300, ttl).await.unwrap();
            assert_eq!(kv.get("lsn").await.unwrap().as_deref(), Some(&b"300"[..]));
            kv.delete(&["lsn".to_owned()]).await.unwrap();
        }
    }
}

//! Reads from PostgreSQL streaming replicas (DATABASE_READ_URLS): the [`Database`] handle every
//! service holds, its health monitor, and the choice of a pool for one read.
//!
//! The monitor asks the primary for `pg_current_wal_lsn()` and each replica for
//! `pg_last_wal_replay_lsn()` about once a second. A replica's lag is the time since it last
//! reached a WAL position the primary had: an idle primary and a replica that replayed all of
//! it have no lag, however long ago the last transaction was (`pg_last_xact_replay_timestamp()`
//! would grow without bound there). A replica that does not answer, or whose lag passes
//! DATABASE_READ_MAX_LAG, is left out until it is healthy again.
//!
//! [`Database::reads`] is the one place a read picks its pool: a healthy replica that has
//! replayed what the caller must see (the read-consistency scope of the RPC, see
//! [`super::consistency`]), else the primary. It never fails because of a replica, and outside
//! a read RPC's scope (writes, background jobs) it is the primary.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::watch;

use super::consistency;

/// A position in the primary's write-ahead log (a `pg_lsn` as a number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lsn(pub u64);

impl std::fmt::Display for Lsn {
    /// PostgreSQL's own form, `16/B374D848`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl std::str::FromStr for Lsn {
    type Err = ();

    fn from_str(s: &str) -> Result<Lsn, ()> {
        let (high, low) = s.split_once('/').ok_or(())?;
        let high = u64::from_str_radix(high, 16).map_err(|_| ())?;
        let low = u64::from_str_radix(low, 16).map_err(|_| ())?;
        if high > u64::from(u32::MAX) || low > u64::from(u32::MAX) {
            return Err(());
        }
        Ok(Lsn(high << 32 | low))
    }
}

/// How long one health query may take before the replica counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The primary and the replicas reads may use. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    primary: PgPool,
    replicas: Vec<Replica>,
    max_lag: Duration,
    /// Round-robin over the replicas that qualify.
    next: AtomicUsize,
}

/// One replica as the monitor last saw it.
struct Replica {
    /// Host and port, for logs and metrics (never the password).
    name: String,
    pool: PgPool,
    healthy: AtomicBool,
    /// `pg_last_wal_replay_lsn()` at the last probe (0 before the first).
    replayed: AtomicU64,
}

impl Database {
    /// The primary alone: every read goes to it.
    pub fn primary_only(primary: PgPool) -> Database {
        Database::with_replicas(primary, Vec::new(), Duration::ZERO)
    }

    /// The primary and replicas `(name, pool)`, each left out while lagging past `max_lag`.
    /// Replicas start out of rotation: the monitor lets them in once it has seen them healthy.
    pub fn with_replicas(
        primary: PgPool,
        replicas: Vec<(String, PgPool)>,
        max_lag: Duration,
    ) -> Database {
        let replicas = replicas
            .into_iter()
            .map(|(name, pool)| Replica {
                name,
                pool,
                healthy: AtomicBool::new(false),
                replayed: AtomicU64::new(0),
            })
            .collect();
        Database {
            inner: Arc::new(Inner {
                primary,
                replicas,
                max_lag,
                next: AtomicUsize::new(0),
            }),
        }
    }

    /// The primary: every write, and every read inside a write's transaction.
    pub fn primary(&self) -> &PgPool {
        &self.inner.primary
    }

    /// True when DATABASE_READ_URLS named replicas (so writes record their WAL position).
    pub fn has_replicas(&self) -> bool {
        !self.inner.replicas.is_empty()
    }

    /// How far a replica may lag (DATABASE_READ_MAX_LAG).
    pub fn max_lag(&self) -> Duration {
        self.inner.max_lag
    }

    /// The pool for a read of the current RPC: a healthy replica that has replayed at least
    /// what the caller must see, else the primary.
    pub async fn reads(&self) -> PgPool {
        if !self.has_replicas() {
            return self.inner.primary.clone();
        }
        let Some(scope) = consistency::current() else {
            return self.inner.primary.clone();
        };
        let Some(min) = scope.required_lsn().await else {
            return self.inner.primary.clone();
        };
        match self.replica_at(min) {
            Some(index) => {
                scope.used_replica(index);
                self.inner.replicas[index].pool.clone()
            }
            None => self.inner.primary.clone(),
        }
    }

    /// A healthy replica that has replayed `min`, taking turns among those that qualify.
    fn replica_at(&self, min: Lsn) -> Option<usize> {
        let replicas = &self.inner.replicas;
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        (0..replicas.len())
            .map(|i| (start + i) % replicas.len())
            .find(|&i| {
                let r = &replicas[i];
                r.healthy.load(Ordering::Relaxed) && Lsn(r.replayed.load(Ordering::Relaxed)) >= min
            })
    }

    /// Leaves replica `index` out until the monitor sees it healthy again: a read on it
    /// failed, and the caller is about to retry on the primary.
    pub(super) fn suspect_replica(&self, index: usize) {
        let replica = &self.inner.replicas[index];
        if replica.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(replica = %replica.name, "read replica failed a read: left out");
        }
    }

    /// The primary's WAL insert position: taken after a COMMIT, at or past the end of that
    /// commit's record. (`pg_current_wal_lsn()` is only what was written out, which an
    /// asynchronous commit, `synchronous_commit = off`, may not have reached yet.)
    pub async fn written_lsn(&self) -> Result<Lsn, sqlx::Error> {
        self.primary_lsn("SELECT pg_current_wal_insert_lsn()::text")
            .await
    }

    /// The primary's WAL write position, what a replica can have received: the monitor's
    /// yardstick (an idle replica reaches it exactly).
    async fn sent_lsn(&self) -> Result<Lsn, sqlx::Error> {
        self.primary_lsn("SELECT pg_current_wal_lsn()::text").await
    }

    async fn primary_lsn(&self, query: &'static str) -> Result<Lsn, sqlx::Error> {
        let text: String = sqlx::query_scalar(query)
            .fetch_one(&self.inner.primary)
            .await?;
        text.parse()
            .map_err(|()| sqlx::Error::Decode(format!("not a pg_lsn: {text}").into()))
    }

    /// Probes the replicas about once a second (more often for a short DATABASE_READ_MAX_LAG)
    /// until `stop`. Returns at once when there are none.
    pub async fn monitor(self, mut stop: watch::Receiver<bool>) {
        if !self.has_replicas() {
            return;
        }
        let every =
            (self.inner.max_lag / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let mut lag = LagClock::new(self.inner.replicas.len(), self.inner.max_lag + every * 2);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            self.probe(&mut lag).await;
        }
    }

    /// One round: the primary's position first, then each replica's.
    async fn probe(&self, lag: &mut LagClock) {
        let now = Instant::now();
        match tokio::time::timeout(PROBE_TIMEOUT, self.sent_lsn()).await {
            Ok(Ok(lsn)) => lag.primary_at(now, lsn),
            // Without the primary's position no lag can be told; keep what was known.
            Ok(Err(e)) => {
                return tracing::debug!(error = %e, "read replicas: primary position unknown");
            }
            Err(_) => return tracing::debug!("read replicas: primary position timed out"),
        }
        for (i, replica) in self.inner.replicas.iter().enumerate() {
            let replayed = tokio::time::timeout(PROBE_TIMEOUT, replay_lsn(&replica.pool)).await;
            let verdict = match replayed {
                Ok(Ok(Some(lsn))) => {
                    replica.replayed.fetch_max(lsn.0, Ordering::Relaxed);
                    let behind = lag.replica_lag(i, now, lsn);
                    metrics::gauge!("db_replica_lag_seconds", "replica" => replica.name.clone())
                        .set(behind.as_secs_f64());
                    if behind <= self.inner.max_lag {
                        Ok(())
                    } else {
                        Err(format!("lagging {}s behind the primary", behind.as_secs()))
                    }
                }
                Ok(Ok(None)) => Err("not in recovery (not a replica)".to_owned()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_owned()),
            };
            let healthy = verdict.is_ok();
            metrics::gauge!("db_replica_healthy", "replica" => replica.name.clone())
                .set(if healthy { 1.0 } else { 0.0 });
            let was = replica.healthy.swap(healthy, Ordering::Relaxed);
            match verdict {
                Ok(()) if !was => {
                    tracing::info!(replica = %replica.name, "read replica healthy: in")
                }
                Err(why) if was => {
                    tracing::warn!(replica = %replica.name, reason = %why, "read replica left out")
                }
                _ => {}
            }
        }
    }
}

/// `pg_last_wal_replay_lsn()` of a replica; `None` on a server that is not in recovery.
async fn replay_lsn(pool: &PgPool) -> Result<Option<Lsn>, sqlx::Error> {
    let text: Option<String> = sqlx::query_scalar("SELECT pg_last_wal_replay_lsn()::text")
        .fetch_one(pool)
        .await?;
    Ok(text.and_then(|t| t.parse().ok()))
}

/// Tells each replica's lag from the primary's positions sampled at each probe: a replica is
/// as far behind as the oldest sample it has not replayed.
struct LagClock {
    /// `(when, primary position)`, oldest first, covering `keep`.
    samples: VecDeque<(Instant, Lsn)>,
    keep: Duration,
    /// When each replica was last seen caught up with a sample.
    caught_up: Vec<Option<Instant>>,
}

impl LagClock {
    fn new(replicas: usize, keep: Duration) -> LagClock {
        LagClock {
            samples: VecDeque::new(),
            keep,
            caught_up: vec![None; replicas],
        }
    }

    fn primary_at(&mut self, when: Instant, lsn: Lsn) {
        self.samples.push_back((when, lsn));
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| when.duration_since(*at) > self.keep)
        {
            self.samples.pop_front();
        }
    }

    /// The lag of replica `i`, which had replayed `replayed` just after the sample at `now`.
    fn replica_lag(&mut self, i: usize, now: Instant, replayed: Lsn) -> Duration {
        if let Some((at, _)) = self.samples.iter().rev().find(|(_, lsn)| *lsn <= replayed) {
            let seen = self.caught_up[i].map_or(*at, |before| before.max(*at));
            self.caught_up[i] = Some(seen);
        }
        match self.caught_up[i] {
            Some(at) => now.duration_since(at),
            // Never caught up with any kept sample: at least as far behind as they reach.
            None => self
                .samples
                .front()
                .map_or(Duration::MAX, |(at, _)| now.duration_since(*at) + self.keep),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_read_and_print_as_postgresql_writes_them() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn, Lsn(0x16_B374_D848));
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert!("0/0".parse::<Lsn>().unwrap() < "0/1".parse().unwrap());
        assert!("16".parse::<Lsn>().is_err());
        assert!("1/100000000".parse::<Lsn>().is_err());
    }

    #[test]
    fn an_idle_primary_leaves_a_caught_up_replica_without_lag() {
        let start = Instant::now();
        let mut clock = LagClock::new(1, Duration::from_secs(10));
        for s in 0..30 {
            let at = start + Duration::from_secs(s);
            clock.primary_at(at, Lsn(100));
            assert_eq!(clock.replica_lag(0, at, Lsn(100)), Duration::ZERO);
        }
    }

    #[test]
    fn a_replica_that_stops_replaying_lags_from_the_first_position_it_misses() {
        let start = Instant::now();
        let mut clock = LagClock::new(1, Duration::from_secs(10));
        clock.primary_at(start, Lsn(100));
        assert_eq!(clock.replica_lag(0, start, Lsn(100)), Duration::ZERO);
        // The primary moves on every second; the replica stays at 100.
        for s in 1..=5 {
            let at = start + Duration::from_secs(s);
            clock.primary_at(at, Lsn(100 + s));
            assert_eq!(clock.replica_lag(0, at, Lsn(100)), Duration::from_secs(s));
        }
        // It catches up with the position of second 4, then with everything.
        let at = start + Duration::from_secs(6);
        clock.primary_at(at, Lsn(200));
        assert_eq!(clock.replica_lag(0, at, Lsn(104)), Duration::from_secs(2));
        assert_eq!(clock.replica_lag(0, at, Lsn(200)), Duration::ZERO);
    }

    #[test]
    fn a_replica_never_caught_up_counts_as_too_far_behind() {
        let start = Instant::now();
        let mut clock = LagClock::new(1, Duration::from_secs(10));
        clock.primary_at(start, Lsn(100));
        assert!(clock.replica_lag(0, start, Lsn(50)) >= Duration::from_secs(10));
    }
}

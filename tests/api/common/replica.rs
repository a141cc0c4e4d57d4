//! A private PostgreSQL primary and one streaming replica (`pg_basebackup -R`) on free loopback
//! ports, made from the machine's PostgreSQL 15 binaries, for the read-replica tests. The
//! machine's own server (5432) allows no replication connections, so the tests that need a
//! replica run their application on this primary instead.
//!
//! PostgreSQL refuses to run as root: when the tests do, every server command runs as the
//! `postgres` user (`runuser`), in a directory that user owns.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;

/// Where the PostgreSQL 15 server binaries are.
const BIN: &str = "/usr/lib/postgresql/15/bin";

/// A running primary and replica; both are stopped and their directory removed on drop.
pub struct PgReplicaPair {
    dir: PathBuf,
    primary_port: u16,
    replica_port: u16,
    replica_running: bool,
}

impl PgReplicaPair {
    /// Creates the primary (`initdb`), starts it, copies it into a streaming replica with
    /// `pg_basebackup` and starts that, and waits until the replica streams.
    pub async fn start() -> PgReplicaPair {
        let dir = std::env::temp_dir().join(format!(
            "ecom-pg-replica-{}-{}",
            std::process::id(),
            super::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut pair = PgReplicaPair {
            dir,
            primary_port: super::free_port(),
            replica_port: super::free_port(),
            replica_running: false,
        };
        if is_root() {
            run("chown", &["postgres:postgres", pair.dir.to_str().unwrap()]);
        }
        let primary = pair.data("primary");
        pg(
            "initdb",
            &["-D", &primary, "-A", "trust", "-U", "postgres", "-N"],
        );
        let hba = Path::new(&primary).join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).unwrap();
        rules.push_str("\nhost replication all 127.0.0.1/32 trust\n");
        std::fs::write(&hba, rules).unwrap();
        pair.pg_ctl_start("primary", pair.primary_port);
        pg(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &pair.primary_port.to_string(),
                "-U",
                "postgres",
                "-D",
                &pair.data("replica"),
                "-R",
                "-X",
                "stream",
            ],
        );
        pair.start_replica().await;
        pair
    }

    /// An application on a fresh database of the primary, reading from the replica
    /// (DATABASE_READ_URLS), with `extra` settings flags; the test's own `db` pool is on the
    /// primary.
    pub async fn spawn_app(&self, extra: &[&str]) -> super::TestApp {
        let (db_name, redis_prefix) = super::fresh_names();
        let read_url = self.replica_url(&db_name);
        let mut args = vec!["--database-read-urls", &read_url];
        args.extend_from_slice(extra);
        let settings = super::test_settings(&self.primary_server(), &db_name, &redis_prefix, &args);
        super::spawn_with_settings(
            settings,
            db_name,
            self.primary_server(),
            ecom::clock::Clock::fixed(chrono::Utc::now()),
            ecom::server::Mode::all(),
        )
        .await
    }

    /// The server URL of the primary (no database name).
    pub fn primary_server(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.primary_port)
    }

    /// The URL of database `db` on the replica (DATABASE_READ_URLS).
    pub fn replica_url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.replica_port)
    }

    /// What the monitor calls the replica in logs and metrics.
    pub fn replica_name(&self) -> String {
        format!("127.0.0.1:{}", self.replica_port)
    }

    /// A pool on database `db` of the replica, for the test's own checks.
    pub async fn replica_pool(&self, db: &str) -> PgPool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match PgPool::connect(&self.replica_url(db)).await {
                Ok(pool) => return pool,
                // The database is created on the primary; the replica has it once replayed.
                Err(e) => assert!(Instant::now() < deadline, "replica database {db}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Pauses WAL replay on the replica: it keeps answering, with the data it has.
    pub async fn pause_replay(&self, replica: &PgPool) {
        sqlx::query("SELECT pg_wal_replay_pause()")
            .execute(replica)
            .await
            .expect("replay paused");
        // The pause takes effect at the next record; wait until it has.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let state: String = sqlx::query_scalar("SELECT pg_get_wal_replay_pause_state()")
                .fetch_one(replica)
                .await
                .unwrap();
            if state == "paused" {
                return;
            }
            assert!(Instant::now() < deadline, "replay never paused ({state})");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resumes WAL replay and waits until the replica has replayed everything the primary
    /// wrote so far (its commits are synchronous: each is written out when it returns).
    pub async fn resume_replay(&self, primary: &PgPool, replica: &PgPool) {
        sqlx::query("SELECT pg_wal_replay_resume()")
            .execute(replica)
            .await
            .expect("replay resumed");
        let target: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(primary)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let caught_up: bool =
                sqlx::query_scalar("SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn")
                    .bind(&target)
                    .fetch_one(replica)
                    .await
                    .unwrap();
            if caught_up {
                return;
            }
            assert!(Instant::now() < deadline, "the replica never caught up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Connections of the application (application_name `ecom-read`) on the replica's database
    /// whose last query was one of the application's reads (not the monitor's probe).
    pub async fn app_reads(&self, replica: &PgPool, db: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ecom-read' AND datname = $1
               AND query NOT LIKE '%pg_last_wal_replay_lsn%'",
        )
        .bind(db)
        .fetch_one(replica)
        .await
        .unwrap()
    }

    /// Kills the replica (`pg_ctl stop -m immediate`: no shutdown checkpoint, as in a crash).
    pub fn kill_replica(&mut self) {
        if self.replica_running {
            self.replica_running = false;
            self.pg_ctl_stop("replica");
        }
    }

    async fn start_replica(&mut self) {
        self.pg_ctl_start("replica", self.replica_port);
        self.replica_running = true;
        let deadline = Instant::now() + Duration::from_secs(10);
        let url = self.replica_url("postgres");
        loop {
            if let Ok(pool) = PgPool::connect(&url).await {
                let streaming: bool = sqlx::query_scalar(
                    "SELECT pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')",
                )
                .fetch_one(&pool)
                .await
                .unwrap_or(false);
                if streaming {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the replica never streamed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn data(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }

    fn pg_ctl_start(&self, name: &str, port: u16) {
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.dir.display()
        );
        let log = self.dir.join(format!("{name}.log"));
        pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(name),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    fn pg_ctl_stop(&self, name: &str) {
        let _ = server_command(
            "pg_ctl",
            &["-D", &self.data(name), "-m", "immediate", "stop"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    }
}

impl Drop for PgReplicaPair {
    fn drop(&mut self) {
        self.kill_replica();
        self.pg_ctl_stop("primary");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A PostgreSQL binary, as the `postgres` user when the tests run as root.
fn server_command(binary: &str, args: &[&str]) -> Command {
    let path = format!("{BIN}/{binary}");
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", &path]).args(args);
        command
    } else {
        let mut command = Command::new(path);
        command.args(args);
        command
    }
}

fn pg(binary: &str, args: &[&str]) {
    let out = server_command(binary, args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{binary} runs (PostgreSQL 15 in {BIN}): {e}"));
    assert!(
        out.status.success(),
        "{binary} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?}");
}

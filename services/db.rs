//! PostgreSQL: connecting, creating the database when missing, and applying migrations; the
//! read replicas and read-your-writes live in [`replicas`] and [`consistency`].
//!
//! Every service gets the same [`Database`]; each owns its own tables (see migrations/) and
//! never reads another service's.

pub mod consistency;
pub mod replicas;

pub use replicas::{Database, Lsn};

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};

/// The migrations of every service, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connection options from DATABASE_URL, with statement logging turned down to debug.
pub fn connect_options(url: &SecretString) -> anyhow::Result<PgConnectOptions> {
    let options = PgConnectOptions::from_str(url.expose_secret())
        .context("DATABASE_URL is not a valid PostgreSQL URL")?
        .log_statements(tracing::log::LevelFilter::Debug)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
    Ok(options)
}

/// Creates the database named in `options` when it does not exist yet.
pub async fn ensure_database(options: &PgConnectOptions) -> anyhow::Result<()> {
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .context("connecting to PostgreSQL (database `postgres`) to check the database exists")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .context("checking whether the database exists")?;
    if !exists {
        // Identifiers cannot be bound as parameters; quote it the PostgreSQL way.
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let create = format!("CREATE DATABASE {quoted}");
        match admin.execute(sqlx::AssertSqlSafe(create)).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another instance created it at the same moment.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e).context("creating the database"),
        }
    }
    Ok(())
}

/// Opens the pool. Connections are made lazily so a process can start (and answer
/// `/health`, with `/ready` false) while PostgreSQL is still coming up.
pub fn pool(options: PgConnectOptions, size: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(size)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(options)
}

/// The [`Database`] of DATABASE_URL and DATABASE_READ_URLS (pools connect lazily). Replica
/// connections are named `ecom-read` in `pg_stat_activity`, and wait at most a second for a
/// connection: a replica that is down must not hold a read back long before the primary serves it.
pub fn database(
    primary: &SecretString,
    replicas: &[SecretString],
    size: u32,
    max_lag: Duration,
) -> anyhow::Result<Database> {
    let pool_of_primary = pool(connect_options(primary)?, size);
    let mut pools = Vec::new();
    for url in replicas
        .iter()
        .filter(|u| !u.expose_secret().trim().is_empty())
    {
        let options = PgConnectOptions::from_str(url.expose_secret().trim())
            .context("DATABASE_READ_URLS holds a URL that is not a valid PostgreSQL URL")?
            .application_name("ecom-read")
            .log_statements(tracing::log::LevelFilter::Debug)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
        let name = format!("{}:{}", options.get_host(), options.get_port());
        let replica = PgPoolOptions::new()
            .max_connections(size)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(1))
            .connect_lazy_with(options);
        pools.push((name, replica));
    }
    Ok(Database::with_replicas(pool_of_primary, pools, max_lag))
}

/// Creates the database when missing and applies every pending migration.
pub async fn migrate(url: &SecretString) -> anyhow::Result<PgPool> {
    let options = connect_options(url)?;
    ensure_database(&options).await?;
    let pool = pool(options, 4);
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    Ok(pool)
}

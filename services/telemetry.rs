//! Telemetry: one place that sets up tracing (pretty or JSON logs) for the binary and tests,
//! and the Prometheus recorder the edge's `/metrics` renders.
//!
//! Secrets never reach a log line: settings hold them in `SecretString`, request logs carry
//! the route, status and request id but no headers or bodies.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;
use tokio::sync::watch;
use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt};

use crate::config::LogFormat;

/// Builds the subscriber: `filter` in env-filter syntax, output to stdout.
pub fn get_subscriber(filter: &str, format: LogFormat) -> Box<dyn Subscriber + Send + Sync> {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => Box::new(registry.with(fmt::layer().json().with_current_span(true))),
        LogFormat::Pretty => Box::new(registry.with(fmt::layer().compact())),
    }
}

/// Installs the subscriber globally; a second call (tests) is a no-op.
pub fn init_subscriber(subscriber: Box<dyn Subscriber + Send + Sync>) {
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// The process-wide Prometheus recorder (installed once; tests start many applications).
pub fn prometheus_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .expect("static buckets are valid")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

/// Publishes the pool's size as gauges every few seconds.
pub async fn pool_gauges(db: PgPool, mut stop: watch::Receiver<bool>) {
    loop {
        metrics::gauge!("db_pool_connections", "state" => "open").set(db.size() as f64);
        metrics::gauge!("db_pool_connections", "state" => "idle").set(db.num_idle() as f64);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

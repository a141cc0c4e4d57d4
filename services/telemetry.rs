//! Telemetry: one place that sets up tracing (pretty or JSON logs) for the binary and tests.
//!
//! Secrets never reach a log line: settings hold them in `SecretString`, request logs carry
//! the route, status and request id but no headers or bodies.

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

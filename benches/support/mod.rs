//! What the benches share: their settings from the environment, the settings of a benchmarked
//! instance, and the bare hyper server that answers fixed bytes (the machine's ceiling).
//!
//! A module under `benches/support/` (not `benches/support.rs`), so that Cargo does not take it
//! for a bench target of its own.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use ecom::config::Settings;
use http_body_util::Full;

/// The environment variable `name` parsed, or `default` when it is unset or does not parse.
pub fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts an instance running everything with `settings`, in the background; its REST base
/// URL (`http://addr/api/v1`).
pub async fn start_instance(settings: &Settings) -> String {
    let app = ecom::server::Application::build(
        settings.clone(),
        ecom::server::Mode::all(),
        ecom::clock::Clock::system(),
    )
    .await
    .unwrap();
    let rest = format!(
        "http://{}{}",
        app.rest_addr().unwrap(),
        settings.api_base_path
    );
    tokio::spawn(app.run_until_stopped());
    rest
}

/// The settings of a benchmarked instance: loopback, free ports, no rate limits, no seeding.
/// `read_urls`: DATABASE_READ_URLS (empty: the primary only).
pub fn bench_settings(
    database_url: &str,
    read_urls: &str,
    redis: &str,
    key_prefix: &str,
) -> Settings {
    let mut settings = Settings::for_tests(&[
        "--database-read-urls",
        read_urls,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--grpc-port",
        "0",
        "--database-url",
        database_url,
        "--redis-url",
        redis,
        "--redis-key-prefix",
        key_prefix,
        "--rate-limit-enabled",
        "false",
        "--seed-demo-data",
        "false",
        "--log-level",
        "warn",
    ])
    .unwrap();
    settings.validate().unwrap();
    settings
}

/// A bare hyper server (HTTP/1.1, keep-alive) answering `headers` and `body` to every request:
/// the ceiling of this machine for an answer of those bytes. Hyper adds `content-length` and
/// `date`, as it does for the edge.
pub async fn ceiling(headers: http::HeaderMap, body: Bytes) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (headers, body) = (headers.clone(), body.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let mut response = hyper::Response::new(Full::new(body.clone()));
                    *response.headers_mut() = headers.clone();
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

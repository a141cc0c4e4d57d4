//! The REST edge: the operational routes (`/health`, `/ready`, `/metrics`, `/openapi.json`,
//! `/uploads`), the transcoder for everything under the API base path, and the edge's layer
//! stack, built top to bottom in [`router`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower_http::map_response_body::MapResponseBodyLayer;

use crate::authn::Authenticator;
use crate::config::Settings;
use crate::kv::Kv;
use crate::proto;
use crate::ratelimit::{self, RateLimit};
use crate::readiness::Readiness;
use crate::tokens::Tokens;

/// What the edge needs of the process: its settings, the key-value store (rate limits),
/// and who callers are (the auth alias, the rate limiter's per-user groups).
#[derive(Clone, Copy)]
pub struct EdgeDeps<'a> {
    pub settings: &'a Settings,
    pub kv: &'a Kv,
    pub tokens: &'a Tokens,
    pub authenticator: &'a Authenticator,
}

/// Binds the REST port.
pub async fn bind(settings: &Settings) -> anyhow::Result<TcpListener> {
    TcpListener::bind((settings.host, settings.port))
        .await
        .with_context(|| format!("binding the REST port {}", settings.port))
}

#[derive(Clone)]
struct EdgeState {
    metrics: PrometheusHandle,
    openapi: Arc<serde_json::Value>,
    readiness: Readiness,
}

/// The REST edge: operational routes, then the transcoder for everything under the base path,
/// wrapped in the edge's layers. Layers run top to bottom on the way in.
pub fn router(
    deps: EdgeDeps<'_>,
    upstreams: Vec<(&'static str, transcoder::Upstream)>,
    metrics: PrometheusHandle,
    readiness: Readiness,
) -> anyhow::Result<Router> {
    let settings = deps.settings;
    let mut builder = transcoder::Transcoder::builder(proto::descriptor_pool().clone())
        .base_path(&settings.api_base_path)
        .timeout(settings.upstream_timeout)
        .max_body_bytes(settings.body_max_size)
        .max_multipart_bytes(settings.upload_max_size)
        // The payments webhook verifies the provider's signature of the raw body.
        .forward_header("stripe-signature")
        // Catalog: product pictures answer 304 to a matching If-None-Match.
        .forward_header("if-none-match")
        .reject_unknown_query(false);
    for (name, upstream) in upstreams {
        builder = builder.upstream(name, upstream);
    }
    let transcoder = builder.build().context("building the REST route table")?;
    let openapi = transcoder.openapi(&transcoder::OpenApiInfo {
        title: "ecom".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    });
    let state = EdgeState {
        metrics,
        openapi: Arc::new(openapi),
        readiness,
    };

    let router = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(render_metrics))
        .route("/openapi.json", get(openapi_document))
        .route(
            &format!("{}/openapi.json", settings.api_base_path),
            get(openapi_document),
        )
        // Identity: avatars (server-made PNG names; SecurityHeaders adds nosniff).
        .nest_service(
            "/uploads",
            ServiceBuilder::new()
                // Avatars are shown by storefronts on other origins (the default is same-origin).
                .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
                    http::header::HeaderName::from_static("cross-origin-resource-policy"),
                    http::HeaderValue::from_static("cross-origin"),
                ))
                .service(tower_http::services::ServeDir::new(&settings.upload_dir)),
        )
        .with_state(state)
        .fallback_service(transcoder.clone());

    let cors = transcoder::layers::CorsConfig {
        allowed_origins: settings.cors_origins.clone(),
        allow_credentials: true,
        max_age: Duration::from_secs(600),
    };
    let router = if settings.rate_limit_enabled {
        router.layer(RateLimit::layer(
            ratelimit::rules(settings),
            &settings.api_base_path,
            deps.kv.clone(),
            deps.tokens.clone(),
        ))
    } else {
        router
    };
    // Outside the rate limiter, so an alias counts in its resource's group.
    let router = router.layer(crate::auth_alias::AuthAlias::layer(
        &settings.api_base_path,
        transcoder,
        deps.authenticator.clone(),
    ));
    let stack = ServiceBuilder::new()
        // Outermost: a panic anywhere below becomes a 500 in the contract's shape.
        .layer(transcoder::layers::CatchPanic::layer())
        // Above tracing, so every span carries the request id.
        .layer(transcoder::layers::RequestId::layer())
        .layer(transcoder::layers::Trace::layer())
        .layer(transcoder::layers::Metrics::layer())
        .layer(transcoder::layers::SecurityHeaders::layer(
            settings.hsts_max_age,
        ))
        // CORS answers preflights before the rate limiter counts anything.
        .layer(transcoder::layers::Cors::layer(cors))
        .layer(MapResponseBodyLayer::new(transcoder::Body::new))
        // The client address must be known before the rate limiter keys on it.
        .layer(crate::client_ip::ClientIp::layer(
            settings.trusted_proxies.clone(),
        ))
        .service(router);
    Ok(Router::new().fallback_service(stack))
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn ready(State(state): State<EdgeState>) -> Response {
    state.readiness.answer().await
}

async fn render_metrics(State(state): State<EdgeState>) -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn openapi_document(State(state): State<EdgeState>) -> impl IntoResponse {
    axum::Json(state.openapi.as_ref().clone())
}

/// Serves the edge on `listener` (HTTP/1.1 and HTTP/2) until the stop signal, then lets
/// in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stop.wait_for(|s| *s).await;
    })
    .await
    .context("REST edge failed")
}

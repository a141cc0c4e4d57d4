//! The REST edge: the operational routes (`/health`, `/ready`, `/metrics`, `/openapi.json`,
//! `/uploads`), the transcoder for everything under the API base path, and the edge's layer
//! stack, built top to bottom in [`router`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Poll, ready};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::Either;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{Service, ServiceBuilder};
use tower_http::map_response_body::{MapResponseBody, MapResponseBodyLayer};

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

/// The REST edge: the transcoder for everything under the base path and the operational routes
/// beside it, wrapped in the edge's layers. Layers run top to bottom on the way in.
pub fn router(
    deps: EdgeDeps<'_>,
    upstreams: Vec<(&'static str, transcoder::Upstream)>,
    metrics: PrometheusHandle,
    readiness: Readiness,
) -> anyhow::Result<
    impl Service<Request, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static,
> {
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

    // Not under the API base path (the base path's own /openapi.json included): these routes,
    // and the transcoder's 404 for anything else.
    let operational = Router::new()
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
    let routes = ApiOrOperational {
        api: transcoder.clone(),
        operational: MapResponseBody::new(operational, transcoder::Body::new),
        base_path: Arc::from(settings.api_base_path.as_str()),
        openapi_path: Arc::from(format!("{}/openapi.json", settings.api_base_path)),
    };

    let cors = transcoder::layers::CorsConfig {
        allowed_origins: settings.cors_origins.clone(),
        allow_credentials: true,
        max_age: Duration::from_secs(600),
    };
    let rate_limit = settings.rate_limit_enabled.then(|| {
        RateLimit::layer(
            ratelimit::rules(settings),
            &settings.api_base_path,
            deps.kv.clone(),
            deps.tokens.clone(),
        )
    });
    Ok(ServiceBuilder::new()
        // What axum's server takes: its own boxed body (the only boxing of a response here that
        // is not the transcoder's).
        .layer(MapResponseBodyLayer::new(axum::body::Body::new))
        // A panic anywhere below becomes a 500 in the contract's shape.
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
        // The client address must be known before the rate limiter keys on it.
        .layer(crate::client_ip::ClientIp::layer(
            settings.trusted_proxies.clone(),
        ))
        // Outside the rate limiter, so an alias counts in its resource's group.
        .layer(crate::auth_alias::AuthAlias::layer(
            &settings.api_base_path,
            transcoder,
            deps.authenticator.clone(),
        ))
        .option_layer(rate_limit)
        .service(routes))
}

/// The operational routes, answering the transcoder's body type.
type Operational = MapResponseBody<Router, fn(axum::body::Body) -> transcoder::Body>;

/// Sends a request under the API base path straight to the transcoder and any other to the
/// operational router, whose fallback is the transcoder again (its 404 for an unknown path).
/// Why not the router alone, with the transcoder as its fallback: every API request then paid
/// the router's path lookup, another router around the layers and two more boxings of its
/// body, 5,463 of a cached product's 66,000 instructions (callgrind, 2026-12-08).
#[derive(Clone)]
struct ApiOrOperational {
    api: transcoder::Transcoder,
    operational: Operational,
    base_path: Arc<str>,
    /// The one operational route under the base path.
    openapi_path: Arc<str>,
}

/// Whether `path` is the transcoder's: `base_path` or under it, except `openapi_path`.
fn is_api(path: &str, base_path: &str, openapi_path: &str) -> bool {
    path.strip_prefix(base_path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        && path != openapi_path
}

impl Service<Request> for ApiOrOperational {
    type Response = http::Response<transcoder::Body>;
    type Error = Infallible;
    type Future = Either<
        <transcoder::Transcoder as Service<Request>>::Future,
        <Operational as Service<Request>>::Future,
    >;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        ready!(Service::<Request>::poll_ready(&mut self.api, cx))?;
        Service::<Request>::poll_ready(&mut self.operational, cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if is_api(req.uri().path(), &self.base_path, &self.openapi_path) {
            Either::Left(self.api.call(req))
        } else {
            Either::Right(self.operational.call(req))
        }
    }
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
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app),
    )
    .with_graceful_shutdown(async move {
        let _ = stop.wait_for(|s| *s).await;
    })
    .await
    .context("REST edge failed")
}

#[cfg(test)]
mod tests {
    use super::is_api;

    #[test]
    fn the_base_path_and_below_are_the_transcoder_s_but_its_openapi_document() {
        let api = |path| is_api(path, "/api/v1", "/api/v1/openapi.json");
        assert!(api("/api/v1/products/1"));
        assert!(api("/api/v1"));
        assert!(api("/api/v1/"));
        assert!(!api("/api/v1/openapi.json"));
        assert!(!api("/api/v10/products"));
        assert!(!api("/health"));
        assert!(!api("/uploads/a.png"));
        assert!(!api("/"));
    }
}

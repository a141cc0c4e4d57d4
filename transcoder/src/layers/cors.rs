//! CORS from an exact-match origin allow-list.
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
//! from an allowed origin is answered here with 204. Actual requests from an
//! allowed origin get `Access-Control-Allow-Origin: <that origin>` (never
//! `*`, so credentials can be allowed safely) and the exposed headers.
//! Requests from any other origin get no CORS headers at all (a preflight
//! then falls through to the inner service, which answers `OPTIONS` itself)
//! and the browser blocks them. Every response varies on `Origin`.
//!
//! Ours, not tower-http's `CorsLayer`: that one answers every `OPTIONS` itself (200) and sends
//! the allow-methods/headers/max-age headers whatever the origin, which this contract forbids.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::body::Body;

/// What the CORS layer allows.
#[derive(Debug, Clone)]
pub struct CorsConfig {
    /// Origins allowed, compared exactly (`https://shop.example.com`).
    pub allowed_origins: Vec<String>,
    /// Whether to send `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight.
    pub max_age: Duration,
}

/// The CORS layer.
#[derive(Debug, Clone)]
pub struct Cors {
    config: Arc<Prepared>,
}

#[derive(Debug)]
struct Prepared {
    origins: Vec<HeaderValue>,
    credentials: bool,
    max_age: HeaderValue,
}

const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const ALLOW_HEADERS: &str =
    "authorization, content-type, x-request-id, x-client-version, idempotency-key";
const EXPOSE_HEADERS: &str = "x-request-id, retry-after, idempotent-replayed, content-disposition";
const VARY: &str = "origin, access-control-request-method, access-control-request-headers";

impl Cors {
    /// The layer. Origins that are not valid header values can never match
    /// and are dropped.
    pub fn layer(config: CorsConfig) -> Cors {
        Cors {
            config: Arc::new(Prepared {
                origins: config
                    .allowed_origins
                    .iter()
                    .filter_map(|o| HeaderValue::try_from(o.as_str()).ok())
                    .collect(),
                credentials: config.allow_credentials,
                max_age: HeaderValue::from(config.max_age.as_secs()),
            }),
        }
    }
}

impl<S> Layer<S> for Cors {
    type Service = CorsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CorsService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`Cors`].
#[derive(Debug, Clone)]
pub struct CorsService<S> {
    inner: S,
    config: Arc<Prepared>,
}

impl<S, ReqB> Service<Request<ReqB>> for CorsService<S>
where
    S: Service<Request<ReqB>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .filter(|o| self.config.origins.contains(o))
            .cloned();
        let config = self.config.clone();
        if let Some(origin) = &origin
            && req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            {
                let mut response = Response::new(Body::empty());
                *response.status_mut() = StatusCode::NO_CONTENT;
                let h = response.headers_mut();
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(ALLOW_METHODS),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(ALLOW_HEADERS),
                );
                h.insert(header::ACCESS_CONTROL_MAX_AGE, config.max_age.clone());
                if config.credentials {
                    h.insert(
                        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                        HeaderValue::from_static("true"),
                    );
                }
                h.insert(header::VARY, HeaderValue::from_static(VARY));
                return Box::pin(async move { Ok(response) });
            }
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut response = fut.await?;
            let h = response.headers_mut();
            h.append(header::VARY, HeaderValue::from_static("origin"));
            if let Some(origin) = origin {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                h.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(EXPOSE_HEADERS),
                );
                if config.credentials {
                    h.insert(
                        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                        HeaderValue::from_static("true"),
                    );
                }
            }
            Ok(response)
        })
    }
}

//! Security response headers for a JSON API that is never framed, never
//! sniffed, and not cached when personal.

use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response};
use tower::{Layer, Service};

/// The security headers layer.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    hsts: Option<HeaderValue>,
}

impl SecurityHeaders {
    /// The layer; `hsts` sets `Strict-Transport-Security: max-age=<secs>;
    /// includeSubDomains` (only for deployments served over HTTPS).
    pub fn layer(hsts: Option<Duration>) -> SecurityHeaders {
        SecurityHeaders {
            hsts: hsts.map(|d| {
                HeaderValue::try_from(format!("max-age={}; includeSubDomains", d.as_secs()))
                    .expect("a number is a valid header value")
            }),
        }
    }
}

impl<S> Layer<S> for SecurityHeaders {
    type Service = SecurityHeadersService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeadersService {
            inner,
            hsts: self.hsts.clone(),
        }
    }
}

/// The service of [`SecurityHeaders`].
#[derive(Debug, Clone)]
pub struct SecurityHeadersService<S> {
    inner: S,
    hsts: Option<HeaderValue>,
}

const FIXED: [(HeaderName, &str); 5] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    ),
];

impl<S, ReqB, ResB> Service<Request<ReqB>> for SecurityHeadersService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let authenticated = req.headers().contains_key(header::AUTHORIZATION);
        let hsts = self.hsts.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut response = fut.await?;
            let headers = response.headers_mut();
            for (name, value) in FIXED {
                headers
                    .entry(name)
                    .or_insert(HeaderValue::from_static(value));
            }
            if let Some(hsts) = hsts {
                headers
                    .entry(header::STRICT_TRANSPORT_SECURITY)
                    .or_insert(hsts);
            }
            // A response to an authenticated request is personal: no shared
            // or browser cache may keep it unless the service said otherwise.
            if authenticated {
                headers
                    .entry(header::CACHE_CONTROL)
                    .or_insert(HeaderValue::from_static("no-store"));
            }
            Ok(response)
        })
    }
}

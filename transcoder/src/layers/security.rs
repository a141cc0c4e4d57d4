//! Security response headers for a JSON API that is never framed, never
//! sniffed, and not cached when personal.
//!
//! Each fixed header is a tower-http `SetResponseHeader` (`if_not_present`,
//! so a service's own value wins). `Cache-Control: no-store` depends on the
//! request, which tower-http's header layers do not see, so that one step
//! is ours.

use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{Either, MapOk, TryFutureExt};
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response};
use tower::{Layer, Service};
use tower_http::set_header::SetResponseHeader;

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

/// One header set unless the response has it; `None` sets nothing.
type SetIfAbsent<S> = SetResponseHeader<S, Option<HeaderValue>>;

fn set_if_absent<S>(inner: S, name: HeaderName, value: Option<HeaderValue>) -> SetIfAbsent<S> {
    SetResponseHeader::if_not_present(inner, name, value)
}

fn fixed(value: &'static str) -> Option<HeaderValue> {
    Some(HeaderValue::from_static(value))
}

impl<S> Layer<S> for SecurityHeaders {
    type Service = NoStoreWhenAuthenticated<
        SetIfAbsent<SetIfAbsent<SetIfAbsent<SetIfAbsent<SetIfAbsent<SetIfAbsent<S>>>>>>,
    >;

    fn layer(&self, inner: S) -> Self::Service {
        // Innermost first: the response gets them in this order.
        let svc = set_if_absent(inner, header::X_CONTENT_TYPE_OPTIONS, fixed("nosniff"));
        let svc = set_if_absent(svc, header::X_FRAME_OPTIONS, fixed("DENY"));
        let svc = set_if_absent(
            svc,
            header::CONTENT_SECURITY_POLICY,
            fixed("default-src 'none'; frame-ancestors 'none'"),
        );
        let svc = set_if_absent(svc, header::REFERRER_POLICY, fixed("no-referrer"));
        let svc = set_if_absent(
            svc,
            HeaderName::from_static("cross-origin-resource-policy"),
            fixed("same-origin"),
        );
        let svc = set_if_absent(svc, header::STRICT_TRANSPORT_SECURITY, self.hsts.clone());
        NoStoreWhenAuthenticated { inner: svc }
    }
}

/// A response to an authenticated request is personal: no shared or browser
/// cache may keep it unless the service said otherwise.
#[derive(Debug, Clone)]
pub struct NoStoreWhenAuthenticated<S> {
    inner: S,
}

fn no_store<B>(mut response: Response<B>) -> Response<B> {
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for NoStoreWhenAuthenticated<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = Either<MapOk<S::Future, fn(Response<ResB>) -> Response<ResB>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let authenticated = req.headers().contains_key(header::AUTHORIZATION);
        let fut = self.inner.call(req);
        if authenticated {
            Either::Left(fut.map_ok(no_store as fn(Response<ResB>) -> Response<ResB>))
        } else {
            Either::Right(fut)
        }
    }
}

//! Security response headers for a JSON API that is never framed, never
//! sniffed, and not cached when personal.
//!
//! Each header is set unless the response has it, so a service's own value
//! wins. `Cache-Control: no-store` is set only for a request that carried
//! credentials. One layer sets them all: six tower-http `SetResponseHeader`
//! layers and one of ours (a future, a clone and two lookups per header)
//! cost 2,713 more of a cached product's 59,293 instructions (callgrind,
//! 2026-12-08).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response};
use tower::{Layer, Service};

/// The security headers layer.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    headers: Arc<[(HeaderName, HeaderValue)]>,
}

impl SecurityHeaders {
    /// The layer; `hsts` sets `Strict-Transport-Security: max-age=<secs>;
    /// includeSubDomains` (only for deployments served over HTTPS).
    pub fn layer(hsts: Option<Duration>) -> SecurityHeaders {
        let fixed = |name, value| (name, HeaderValue::from_static(value));
        // In this order on the response, after the service's own headers.
        let mut headers = vec![
            fixed(header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            fixed(header::X_FRAME_OPTIONS, "DENY"),
            fixed(
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; frame-ancestors 'none'",
            ),
            fixed(header::REFERRER_POLICY, "no-referrer"),
            fixed(
                HeaderName::from_static("cross-origin-resource-policy"),
                "same-origin",
            ),
        ];
        if let Some(max_age) = hsts {
            let value = format!("max-age={}; includeSubDomains", max_age.as_secs());
            headers.push((
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::try_from(value).expect("a number is a valid header value"),
            ));
        }
        SecurityHeaders {
            headers: headers.into(),
        }
    }
}

impl<S> Layer<S> for SecurityHeaders {
    type Service = SecurityHeadersService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeadersService {
            inner,
            headers: self.headers.clone(),
        }
    }
}

/// The service of [`SecurityHeaders`].
#[derive(Debug, Clone)]
pub struct SecurityHeadersService<S> {
    inner: S,
    headers: Arc<[(HeaderName, HeaderValue)]>,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for SecurityHeadersService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // A response to an authenticated request is personal: no shared or
        // browser cache may keep it unless the service said otherwise.
        let personal = req.headers().contains_key(header::AUTHORIZATION);
        ResponseFuture {
            inner: self.inner.call(req),
            headers: self.headers.clone(),
            personal,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`SecurityHeadersService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        headers: Arc<[(HeaderName, HeaderValue)]>,
        personal: bool,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        let headers = response.headers_mut();
        for (name, value) in this.headers.iter() {
            headers.entry(name).or_insert_with(|| value.clone());
        }
        if *this.personal {
            headers
                .entry(header::CACHE_CONTROL)
                .or_insert(HeaderValue::from_static("no-store"));
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{ServiceExt, service_fn};

    use super::*;

    #[tokio::test]
    async fn a_service_s_own_values_win_and_absent_ones_are_set() {
        let inner = service_fn(|_req: Request<()>| async {
            let response = Response::builder()
                .header(header::X_FRAME_OPTIONS, "SAMEORIGIN")
                .header(header::CACHE_CONTROL, "public, max-age=60")
                .body(())
                .unwrap();
            Ok::<_, Infallible>(response)
        });
        let svc = SecurityHeaders::layer(None).layer(inner);
        let request = Request::builder()
            .header(header::AUTHORIZATION, "Bearer x")
            .body(())
            .unwrap();
        let response = svc.oneshot(request).await.unwrap();
        let h = response.headers();
        assert_eq!(h[header::X_FRAME_OPTIONS], "SAMEORIGIN");
        assert_eq!(h[header::CACHE_CONTROL], "public, max-age=60");
        assert_eq!(h.get_all(header::CACHE_CONTROL).iter().count(), 1);
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h["cross-origin-resource-policy"], "same-origin");
        assert!(!h.contains_key(header::STRICT_TRANSPORT_SECURITY));
    }
}

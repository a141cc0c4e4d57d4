//! `x-request-id`: accepted from the client when sane, generated otherwise,
//! put in the request's extensions and header (so the transcoder forwards
//! it) and echoed on the response.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};
use tower::{Layer, Service};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id of a request, in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIdValue(pub HeaderValue);

/// Whether a client-sent id is kept: 1 to 128 visible ASCII characters
/// (anything else could be log injection or a memory burden).
pub(crate) fn is_acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| (0x21..=0x7e).contains(c))
}

/// A new random (UUID v4) request id.
pub(crate) fn generate() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let s = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(s).expect("a uuid is a valid header value")
}

/// The request id layer; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestId;

impl RequestId {
    /// The layer.
    pub fn layer() -> RequestId {
        RequestId
    }
}

impl<S> Layer<S> for RequestId {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// The service of [`RequestId`].
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for RequestIdService<S>
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

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let id = req
            .headers()
            .get(X_REQUEST_ID)
            .filter(|v| is_acceptable(v))
            .cloned()
            .unwrap_or_else(generate);
        req.headers_mut().insert(X_REQUEST_ID, id.clone());
        req.extensions_mut().insert(RequestIdValue(id.clone()));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut response = fut.await?;
            response.headers_mut().insert(X_REQUEST_ID, id);
            Ok(response)
        })
    }
}

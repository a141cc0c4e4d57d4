//! `x-request-id`: accepted from the client when sane, generated otherwise
//! (a UUID v4), put in the request's header (so the transcoder forwards it)
//! and extensions (tower-http's [`RequestId`](tower_http::request_id::RequestId)),
//! and echoed on the response.
//!
//! tower-http's `SetRequestId` and `PropagateRequestId` do the setting and
//! echoing; they keep any id a client sent, so a small step of our own
//! drops an unacceptable one first.

use std::task::{Context, Poll};

use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};
use tower::{Layer, Service};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestId, SetRequestId};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
    type Service = KeepAcceptableId<SetRequestId<PropagateRequestId<S>, MakeRequestUuid>>;

    fn layer(&self, inner: S) -> Self::Service {
        KeepAcceptableId {
            inner: SetRequestId::x_request_id(
                PropagateRequestId::x_request_id(inner),
                MakeRequestUuid,
            ),
        }
    }
}

/// Leaves a request at most one `x-request-id`, and only an acceptable one,
/// so that what the inner layers keep or generate is always sane.
#[derive(Debug, Clone)]
pub struct KeepAcceptableId<S> {
    inner: S,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for KeepAcceptableId<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let headers = req.headers_mut();
        match headers
            .get(X_REQUEST_ID)
            .filter(|v| is_acceptable(v))
            .cloned()
        {
            Some(id) => {
                headers.insert(X_REQUEST_ID, id);
            }
            None => {
                headers.remove(X_REQUEST_ID);
            }
        }
        self.inner.call(req)
    }
}

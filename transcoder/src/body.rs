//! The response body type of the transcoder and its layers.
//!
//! One boxed body type so that every response the edge produces (JSON,
//! raw `google.api.HttpBody` bytes, errors, CORS preflights) has the same
//! type, whatever produced it. It owns nothing else.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// The error type of boxed bodies and services (`Box<dyn Error + Send + Sync>`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The body of every response of the transcoder: a boxed `http_body::Body`
/// of `Bytes` chunks.
pub struct Body(UnsyncBoxBody<Bytes, BoxError>);

impl Body {
    /// Boxes any body whose data are `Bytes`.
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Body(body.map_err(Into::into).boxed_unsync())
    }

    /// A body with no data.
    pub fn empty() -> Self {
        Body(Empty::new().map_err(|never| match never {}).boxed_unsync())
    }

    /// A body of one chunk.
    pub fn full(data: impl Into<Bytes>) -> Self {
        Body(
            Full::new(data.into())
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body").finish_non_exhaustive()
    }
}

impl From<Bytes> for Body {
    fn from(value: Bytes) -> Self {
        Body::full(value)
    }
}

impl From<Vec<u8>> for Body {
    fn from(value: Vec<u8>) -> Self {
        Body::full(value)
    }
}

impl From<&'static str> for Body {
    fn from(value: &'static str) -> Self {
        Body::full(Bytes::from_static(value.as_bytes()))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

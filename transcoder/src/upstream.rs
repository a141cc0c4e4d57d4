//! Where an RPC goes: an in-process tonic service or a gRPC channel.
//!
//! Both kinds are reduced to one boxed `tower::Service` over
//! `http::Request<tonic::body::Body>`, so that the code above (the
//! transcoder's pipeline, `tonic::client::Grpc`, deadlines, metadata) is
//! the same for both. Transport failures of either kind (connection
//! refused, a reset stream, a service error) become a gRPC `UNAVAILABLE`
//! status here, so the pipeline sees one failure model. This module owns
//! nothing else: no retries, no routing.

use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::header::{CONTENT_TYPE, HeaderValue};
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::body::BoxError;

type GrpcRequest = http::Request<tonic::body::Body>;
type GrpcResponse = http::Response<tonic::body::Body>;
pub(crate) type BoxedGrpc = BoxCloneSyncService<GrpcRequest, GrpcResponse, BoxError>;

/// The target of one gRPC service's calls.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use tonic::transport::{Channel, Endpoint};
/// // One address:
/// let one = Endpoint::from_static("http://10.0.0.1:50051").connect_lazy();
/// let a = transcoder::Upstream::channel(one);
/// // Several addresses, balanced (power of two choices) by tonic:
/// let list = ["http://10.0.0.1:50051", "http://10.0.0.2:50051"].map(Endpoint::from_static);
/// let b = transcoder::Upstream::channel(Channel::balance_list(list.into_iter()));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Upstream {
    pub(crate) svc: BoxedGrpc,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").finish_non_exhaustive()
    }
}

impl Upstream {
    /// A service in the same process, called without a socket: typically a
    /// tonic server's routes (`tonic::service::Routes`), possibly wrapped in
    /// the server-side tower layers it is normally served with.
    pub fn in_process<S>(svc: S) -> Self
    where
        S: Service<GrpcRequest, Response = GrpcResponse> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        Upstream {
            svc: BoxCloneSyncService::new(svc.map_err(Into::into)),
        }
    }

    /// A remote service over gRPC (HTTP/2) through a tonic `Channel`.
    ///
    /// For several addresses build the channel with
    /// `tonic::transport::Channel::balance_list` (or `balance_channel` for a
    /// changing set); the edge does not care how the channel balances.
    /// Prefer `Endpoint::connect_lazy` so that the edge starts while an
    /// upstream is down: its requests then fail with 503 until it is up.
    pub fn channel(channel: tonic::transport::Channel) -> Self {
        Upstream {
            svc: BoxCloneSyncService::new(channel.map_err(Into::into)),
        }
    }

    /// The client used for one call: transport errors become `UNAVAILABLE`.
    pub(crate) fn client(&self) -> tonic::client::Grpc<Unavailable> {
        tonic::client::Grpc::new(Unavailable(self.svc.clone()))
    }
}

/// Wraps an upstream so that a transport error (the service's `Err`)
/// becomes a trailers-only gRPC `UNAVAILABLE` response.
#[derive(Clone)]
pub(crate) struct Unavailable(BoxedGrpc);

impl Service<GrpcRequest> for Unavailable {
    type Response = GrpcResponse;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<GrpcResponse, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is awaited inside `call` (by `oneshot`), where a failed
        // readiness (a dead connection) becomes a response like every other
        // failure, and a balancer that never becomes ready is cut by the
        // call's deadline.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: GrpcRequest) -> Self::Future {
        let svc = self.0.clone();
        Box::pin(async move {
            match svc.oneshot(req).await {
                Ok(resp) => Ok(resp),
                Err(err) => {
                    tracing::warn!(error = %err, "upstream transport error");
                    Ok(unavailable_response())
                }
            }
        })
    }
}

fn unavailable_response() -> GrpcResponse {
    let mut resp = http::Response::new(tonic::body::Body::empty());
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from_static("14"));
    headers.insert(
        "grpc-message",
        HeaderValue::from_static("Service%20unavailable"),
    );
    resp
}

/// A tonic codec that encodes a `prost_reflect::DynamicMessage` request and
/// hands back the response's protobuf bytes undecoded: the pipeline decodes
/// them only when its response memo does not already hold their JSON.
#[derive(Clone, Copy)]
pub(crate) struct DynamicCodec;

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = Bytes;
    type Encoder = DynamicEncoder;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

/// Encodes a `DynamicMessage` to protobuf.
pub(crate) struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.reserve(item.encoded_len());
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding request: {e}")))
    }
}

/// Yields a response message's protobuf bytes as they came.
pub(crate) struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }

    /// Room for a response of up to 32 KiB without growing the buffer: with tonic's 8 KiB, a
    /// response of a few products made the buffer grow, and each growth copied the whole
    /// block (realloc). With the catalog's encode buffer that was 13% of a cached listing
    /// page's instructions through the edge (callgrind). The yield threshold is tonic's
    /// default; decoding does not use it.
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(32 * 1024, 32 * 1024)
    }
}

/// Decodes a response's protobuf bytes into a message of the RPC's output
/// type; a failure is the `INTERNAL` status the call would have ended with
/// had tonic decoded it.
pub(crate) fn decode_response(
    output: &MessageDescriptor,
    bytes: Bytes,
) -> Result<DynamicMessage, Status> {
    let mut msg = DynamicMessage::new(output.clone());
    msg.merge(bytes)
        .map_err(|e| Status::internal(format!("decoding response: {e}")))?;
    Ok(msg)
}

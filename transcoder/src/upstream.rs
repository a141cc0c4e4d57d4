//! Where an RPC goes: an in-process tonic service or a gRPC channel.
//!
//! Both kinds are reduced to one boxed `tower::Service` over
//! `http::Request<tonic::body::Body>`, so that the code above (the
//! transcoder's pipeline, the unary call of [`Upstream::unary`], deadlines,
//! metadata) is the same for both. Every failure of either kind becomes a
//! gRPC status here (a transport error `UNAVAILABLE`), so the pipeline sees
//! one failure model. This module owns nothing else: no retries, no routing.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, TE};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Uri, Version};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tonic::{Code, Status};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::body::BoxError;
use crate::frame;

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

    /// One unary call to `path`: `message` framed as one gRPC message, `headers` as its
    /// metadata, `timeout` sent as `grpc-timeout`. Answers the response's metadata (headers
    /// and trailers) and the response message's protobuf bytes, undecoded: the pipeline
    /// decodes them only when its response memo does not already hold their JSON.
    ///
    /// Written here rather than through `tonic::client::Grpc` because a unary call needs
    /// none of its streaming machinery: the request is one buffer (frame header and message),
    /// the response one data frame, taken without a copy (through tonic's client a listing's
    /// cached page was copied once more, into its decode buffer). With the in-process calls
    /// that skip tonic's router (services/server.rs), a cached product went from 76,522 to
    /// 68,251 instructions per request at the edge (docs/BENCHMARKS.md). The wire format is
    /// the same for an in-process service and a channel: compression is never asked for, so
    /// the response is never compressed.
    ///
    /// Every failure is a `Status`, as tonic's client would give: a transport error
    /// (connection refused, a dead connection, an error of the in-process service) is
    /// `UNAVAILABLE`, a reset stream the code of its reason, a malformed answer `INTERNAL`.
    pub(crate) async fn unary(
        &self,
        path: PathAndQuery,
        mut headers: HeaderMap,
        timeout: &HeaderValue,
        message: &DynamicMessage,
    ) -> Result<(HeaderMap, Bytes), Status> {
        let len = message.encoded_len();
        let len32 = u32::try_from(len)
            .map_err(|_| Status::resource_exhausted("request message too large"))?;
        let mut payload = frame::with_header(len32);
        message
            .encode(&mut payload)
            .map_err(|e| Status::internal(format!("encoding request: {e}")))?;

        // Inserted after the forwarded headers, so no forwarded header can replace them.
        headers.insert(TE, HeaderValue::from_static("trailers"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(GRPC_TIMEOUT, timeout.clone());
        let mut request = http::Request::new(tonic::body::Body::new(Full::new(payload.freeze())));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = Uri::from(path);
        *request.version_mut() = Version::HTTP_2;
        *request.headers_mut() = headers;

        let response = match self.svc.clone().oneshot(request).await {
            Ok(response) => response,
            Err(err) => {
                tracing::warn!(error = %err, "upstream transport error");
                return Err(Status::unavailable("Service unavailable"));
            }
        };
        let (parts, body) = response.into_parts();
        // Trailers-only: the status is in the headers and there is no message.
        if let Some(status) = Status::from_header_map(&parts.headers) {
            return Err(match status.code() {
                Code::Ok => Status::internal("Missing response message."),
                _ => status,
            });
        }
        if parts.status != http::StatusCode::OK {
            return Err(Status::new(
                code_of_http_status(parts.status),
                format!("upstream answered HTTP {}", parts.status),
            ));
        }
        let collected = match Limited::new(body, frame::HEADER + MAX_RESPONSE_BYTES)
            .collect()
            .await
        {
            Ok(collected) => collected,
            Err(err) if err.is::<LengthLimitError>() => {
                return Err(Status::resource_exhausted(format!(
                    "response message larger than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            Err(err) => return Err(Status::from_error(err)),
        };
        let Some(trailers) = collected.trailers() else {
            return Err(Status::internal("missing grpc-status trailer"));
        };
        // Success is checked on the header's value: `Status::from_header_map` copies the whole
        // map, which only a failure needs.
        match trailers.get(GRPC_STATUS) {
            Some(code) if code == "0" => {}
            Some(_) => {
                return Err(Status::from_header_map(trailers).expect("grpc-status is present"));
            }
            None => return Err(Status::internal("missing grpc-status trailer")),
        }
        let mut metadata = parts.headers;
        metadata.extend(trailers.clone());
        let message = unframe(collected.to_bytes())?;
        Ok((metadata, message))
    }
}

/// The largest response message taken: tonic's client default (4 MiB).
const MAX_RESPONSE_BYTES: usize = 4 << 20;

const GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");
const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The one message of a unary response body, without its frame header.
fn unframe(data: Bytes) -> Result<Bytes, Status> {
    let Some(first) = frame::first(data) else {
        return Err(Status::internal("Missing response message."));
    };
    if first.flag != 0 {
        // Compression was not offered (no grpc-accept-encoding), so none may be used.
        return Err(Status::internal(
            "compressed response message not negotiated",
        ));
    }
    if first.message.len() < first.declared {
        return Err(Status::internal("truncated response message"));
    }
    if first.trailing > 0 {
        return Err(Status::internal(
            "more than one response message to a unary call",
        ));
    }
    Ok(first.message)
}

/// The gRPC code of an HTTP status answered without `grpc-status` (a proxy's error page),
/// per gRPC's http-grpc-status-mapping.md, as tonic's client maps them.
fn code_of_http_status(status: http::StatusCode) -> Code {
    match status {
        http::StatusCode::BAD_REQUEST => Code::Internal,
        http::StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        http::StatusCode::FORBIDDEN => Code::PermissionDenied,
        http::StatusCode::NOT_FOUND => Code::Unimplemented,
        http::StatusCode::TOO_MANY_REQUESTS
        | http::StatusCode::BAD_GATEWAY
        | http::StatusCode::SERVICE_UNAVAILABLE
        | http::StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// `timeout` as a `grpc-timeout` value: milliseconds, or seconds past 8 digits of them (the
/// protocol's limit), rounded down.
pub(crate) fn grpc_timeout(timeout: std::time::Duration) -> HeaderValue {
    let millis = timeout.as_millis();
    let text = if millis <= 99_999_999 {
        format!("{millis}m")
    } else {
        format!("{}S", timeout.as_secs().min(99_999_999))
    };
    HeaderValue::try_from(text).expect("digits and a unit letter")
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

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};

    use super::*;

    fn framed(flag: u8, declared: u32, message: &[u8]) -> Bytes {
        let mut frame = BytesMut::new();
        frame.put_u8(flag);
        frame.put_u32(declared);
        frame.put_slice(message);
        frame.freeze()
    }

    #[test]
    fn a_response_body_holds_exactly_one_uncompressed_message() {
        assert_eq!(
            unframe(framed(0, 3, b"abc")).unwrap(),
            Bytes::from_static(b"abc")
        );
        assert_eq!(unframe(framed(0, 0, b"")).unwrap(), Bytes::new());
        let internal = |data: Bytes| unframe(data).unwrap_err().code();
        assert_eq!(internal(Bytes::from_static(b"\0\0")), Code::Internal);
        assert_eq!(internal(framed(1, 3, b"abc")), Code::Internal);
        assert_eq!(internal(framed(0, 4, b"abc")), Code::Internal);
        assert_eq!(internal(framed(0, 2, b"abc")), Code::Internal);
    }

    /// An upstream answering `pieces` as the data frames of its body, then status OK.
    fn answering(pieces: Vec<Bytes>) -> Upstream {
        Upstream::in_process(tower::service_fn(move |_req: GrpcRequest| {
            let mut frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = pieces
                .iter()
                .cloned()
                .map(|p| Ok(http_body::Frame::data(p)))
                .collect();
            let mut trailers = HeaderMap::new();
            trailers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
            frames.push(Ok(http_body::Frame::trailers(trailers)));
            let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
            async move {
                Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::new(body)))
            }
        }))
    }

    async fn call(upstream: &Upstream) -> Result<Bytes, Status> {
        let empty = prost_reflect::DescriptorPool::global()
            .get_message_by_name("google.protobuf.Empty")
            .expect("a well-known type");
        let (_, message) = upstream
            .unary(
                PathAndQuery::from_static("/a.Service/Method"),
                HeaderMap::new(),
                &HeaderValue::from_static("1000m"),
                &DynamicMessage::new(empty),
            )
            .await?;
        Ok(message)
    }

    #[tokio::test]
    async fn a_message_in_pieces_is_joined_and_one_too_large_is_refused() {
        let message = framed(0, 6, b"abcdef");
        let whole = call(&answering(vec![message.clone()])).await.unwrap();
        assert_eq!(whole, "abcdef");
        let pieces = vec![message.slice(..2), message.slice(2..7), message.slice(7..)];
        assert_eq!(call(&answering(pieces)).await.unwrap(), "abcdef");
        let big = framed(
            0,
            MAX_RESPONSE_BYTES as u32 + 1,
            &vec![0; MAX_RESPONSE_BYTES + 1],
        );
        let refused = call(&answering(vec![big])).await.unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted);
    }

    #[test]
    fn the_timeout_is_sent_in_milliseconds_within_eight_digits() {
        use std::time::Duration;
        assert_eq!(grpc_timeout(Duration::from_secs(10)), "10000m");
        assert_eq!(grpc_timeout(Duration::from_micros(1500)), "1m");
        assert_eq!(grpc_timeout(Duration::from_millis(99_999_999)), "99999999m");
        assert_eq!(grpc_timeout(Duration::from_millis(100_000_000)), "100000S");
    }

    #[test]
    fn an_http_error_without_grpc_status_maps_as_grpc_documents() {
        assert_eq!(
            code_of_http_status(http::StatusCode::SERVICE_UNAVAILABLE),
            Code::Unavailable
        );
        assert_eq!(
            code_of_http_status(http::StatusCode::NOT_FOUND),
            Code::Unimplemented
        );
        assert_eq!(
            code_of_http_status(http::StatusCode::IM_A_TEAPOT),
            Code::Unknown
        );
    }
}

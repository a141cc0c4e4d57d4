//! The catalog's gRPC server: the generated `CatalogServiceServer`, except that its cached
//! reads, GetProduct and the three listings (ListProducts, SearchProducts,
//! ListProductsByCategory), are answered with the cached protobuf bytes as they are.
//!
//! The cache holds a product, and a listing page, encoded (`app.rs`); the generated server
//! would decode it into messages and tonic encode them again on every call, only for the edge
//! to compare the same bytes with its memo (transcoder/src/memo.rs). For a 10-product page
//! that decode, encode and the drop of the decoded messages were 57% of a cached listing's
//! instructions (callgrind, docs/BENCHMARKS.md). Here the bytes are framed as they are, so the
//! bytes a client receives are the ones the generated server sent ([`encoded`] says what of
//! tonic's unary handling it keeps):
//! - prost's encoding of `GetProductResponse { product }` is the field's tag and length, then
//!   the product's bytes ([`get_product_response`]);
//! - the three listing responses declare the same fields with the same numbers and types, so
//!   one cached page is the encoding of each of them (a test below holds them to that).
//!
//! Every other RPC goes to the generated server unchanged. Use [`CatalogServer`] wherever the
//! catalog is served (server.rs does, for the gRPC port and in-process callers alike).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use http_body::Frame;
use http_body_util::{BodyExt, LengthLimitError, Limited, StreamBody};
use prost::Message;
use tonic::codegen::{BoxFuture, Service, StdError};
use tonic::{Request, Response, Status};
use transcoder::frame;

use super::grpc::CatalogService;
use crate::proto::ecom::catalog::v1 as pb;
use pb::catalog_service_server::CatalogServiceServer;

const GET_PRODUCT: &str = "/ecom.catalog.v1.CatalogService/GetProduct";
const LIST_PRODUCTS: &str = "/ecom.catalog.v1.CatalogService/ListProducts";
const SEARCH_PRODUCTS: &str = "/ecom.catalog.v1.CatalogService/SearchProducts";
const LIST_PRODUCTS_BY_CATEGORY: &str = "/ecom.catalog.v1.CatalogService/ListProductsByCategory";

/// The encoded `GetProductResponse` holding the encoded `product`.
pub(super) fn get_product_response(product: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(product.len() + 11);
    prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut buf);
    prost::encoding::encode_varint(product.len() as u64, &mut buf);
    buf.put_slice(product);
    buf.freeze()
}

/// The catalog's gRPC service as it is served; see the module doc.
#[derive(Clone)]
pub struct CatalogServer {
    service: Arc<CatalogService>,
    generated: CatalogServiceServer<CatalogService>,
}

impl CatalogServer {
    /// Serves `service`.
    pub fn new(service: CatalogService) -> Self {
        CatalogServer {
            service: Arc::new(service.clone()),
            generated: CatalogServiceServer::new(service),
        }
    }
}

impl tonic::server::NamedService for CatalogServer {
    const NAME: &'static str =
        <CatalogServiceServer<CatalogService> as tonic::server::NamedService>::NAME;
}

impl<B> Service<http::Request<B>> for CatalogServer
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let service = self.service.clone();
        match req.uri().path() {
            GET_PRODUCT => encoded(req, move |r: Request<pb::GetProductRequest>| {
                let service = service.clone();
                async move { service.get_product_encoded(r).await }
            }),
            LIST_PRODUCTS => encoded(req, move |r: Request<pb::ListProductsRequest>| {
                let service = service.clone();
                async move { service.page_encoded(r).await }
            }),
            SEARCH_PRODUCTS => encoded(req, move |r: Request<pb::SearchProductsRequest>| {
                let service = service.clone();
                async move { service.page_encoded(r).await }
            }),
            LIST_PRODUCTS_BY_CATEGORY => {
                encoded(req, move |r: Request<pb::ListProductsByCategoryRequest>| {
                    let service = service.clone();
                    async move { service.page_encoded(r).await }
                })
            }
            _ => self.generated.call(req),
        }
    }
}

/// Serves `req` as tonic's unary handling does for the generated server, with a response that
/// is already encoded: the one request message decoded as `Req`, the answer framed in one
/// buffer and sent as one data frame and an OK `grpc-status` trailer, an error as a
/// trailers-only answer. Tonic's `Grpc::unary` with a pass-through codec (its request stream,
/// a 32 KiB encode buffer per answer, the trailers built from a `Status`) cost 2,098 more of a
/// cached product's 56,580 instructions (callgrind, docs/BENCHMARKS.md, 2026-12-08).
/// Kept from tonic: compressed requests refused (none is enabled), its 4 MiB request limit,
/// its statuses for a missing, truncated or undecodable message, metadata and extensions
/// handed to the method, the method's metadata as response headers.
fn encoded<B, Req, F, Fut>(
    req: http::Request<B>,
    mut method: F,
) -> BoxFuture<http::Response<tonic::body::Body>, Infallible>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<StdError> + Send + 'static,
    Req: Message + Default + Send + 'static,
    F: FnMut(Request<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response<Bytes>, Status>> + Send + 'static,
{
    Box::pin(async move {
        let answer = async {
            refuse_compression(req.headers())?;
            let (parts, body) = req.into_parts();
            let message = read_message::<Req, B>(body).await?;
            let request = Request::from_http(http::Request::from_parts(parts, message));
            let (metadata, encoded, extensions) = method(request).await?.into_parts();
            let mut response = http::Response::new(one_message(&encoded));
            *response.headers_mut() = metadata.into_headers();
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            *response.extensions_mut() = extensions;
            Ok::<_, Status>(response)
        };
        Ok(answer.await.unwrap_or_else(Status::into_http))
    })
}

/// The largest request message taken: tonic's server default (4 MiB).
const MAX_REQUEST_BYTES: usize = 4 << 20;

const GRPC_ENCODING: &str = "grpc-encoding";

/// No compression is enabled, so a request compressed with anything is refused as tonic refuses
/// it, naming what is accepted.
fn refuse_compression(headers: &http::HeaderMap) -> Result<(), Status> {
    match headers.get(GRPC_ENCODING) {
        None => Ok(()),
        Some(encoding) if encoding == "identity" => Ok(()),
        Some(encoding) => {
            let mut status = Status::unimplemented(format!(
                "Content is compressed with `{}` which isn't supported",
                String::from_utf8_lossy(encoding.as_bytes())
            ));
            status.metadata_mut().insert(
                "grpc-accept-encoding",
                tonic::metadata::MetadataValue::from_static("identity"),
            );
            Err(status)
        }
    }
}

/// The request's first message, decoded; tonic's statuses for what is not one.
async fn read_message<Req, B>(body: B) -> Result<Req, Status>
where
    Req: Message + Default,
    B: http_body::Body,
    B::Error: Into<StdError>,
{
    let too_large = |found: usize| {
        Status::out_of_range(format!(
            "Error, decoded message length too large: found {found} bytes, the limit is: \
             {MAX_REQUEST_BYTES} bytes"
        ))
    };
    let data = match Limited::new(body, frame::HEADER + MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<LengthLimitError>() => return Err(too_large(MAX_REQUEST_BYTES + 1)),
        Err(err) => return Err(Status::from_error(err)),
    };
    let eof = || Status::internal("Unexpected EOF decoding stream.");
    if data.is_empty() {
        return Err(Status::internal("Missing request message."));
    }
    let Some(first) = frame::first(data) else {
        return Err(eof());
    };
    match first.flag {
        0 => {}
        1 => {
            return Err(Status::internal(
                "protocol error: received message with compressed-flag but no grpc-encoding \
                 was specified",
            ));
        }
        flag => {
            return Err(Status::internal(format!(
                "protocol error: received message with invalid compression flag: {flag} \
                 (valid flags are 0 and 1) while receiving request"
            )));
        }
    }
    if first.declared > MAX_REQUEST_BYTES {
        return Err(too_large(first.declared));
    }
    if first.message.len() < first.declared {
        return Err(eof());
    }
    // The message tonic's prost codec would decode, and its error for one that does not. As in
    // tonic, only the first message of a unary request counts.
    Req::decode(first.message).map_err(|e| Status::internal(e.to_string()))
}

/// The body of a successful answer: `message` framed, then the OK status.
fn one_message(message: &[u8]) -> tonic::body::Body {
    let len = u32::try_from(message.len()).expect("a cached answer is under 4 GiB");
    let mut payload = frame::with_header(len);
    payload.put_slice(message);
    let mut trailers = http::HeaderMap::with_capacity(1);
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = [
        Ok::<_, Infallible>(Frame::data(payload.freeze())),
        Ok(Frame::trailers(trailers)),
    ];
    tonic::body::Body::new(StreamBody::new(futures::stream::iter(frames)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Seen(&'static str);

    /// A frame with any flag and declared length, to send what `one_message` never makes.
    fn framed(flag: u8, declared: u32, message: &[u8]) -> Bytes {
        Bytes::from([&[flag][..], &declared.to_be_bytes(), message].concat())
    }

    /// `body` sent to a method that answers the request's id, encoded, with a metadata entry
    /// (and refuses a request without the extension the caller's layers insert).
    async fn serve(
        headers: &[(&'static str, &'static str)],
        body: Bytes,
    ) -> http::Response<tonic::body::Body> {
        let mut req = http::Request::new(http_body_util::Full::new(body));
        for (name, value) in headers {
            req.headers_mut()
                .insert(*name, HeaderValue::from_static(value));
        }
        req.extensions_mut().insert(Seen("layer"));
        let method = |r: Request<pb::GetProductRequest>| async move {
            if r.extensions().get::<Seen>() != Some(&Seen("layer")) {
                return Err(Status::internal("no extension"));
            }
            let mut response = Response::new(Bytes::from(
                pb::GetProductRequest { id: r.get_ref().id }.encode_to_vec(),
            ));
            response
                .metadata_mut()
                .insert("x-answer", "yes".parse().unwrap());
            Ok(response)
        };
        encoded(req, method).await.unwrap()
    }

    fn status_of(response: &http::Response<tonic::body::Body>) -> Status {
        Status::from_header_map(response.headers()).expect("a trailers-only answer")
    }

    #[tokio::test]
    async fn an_answer_is_one_framed_message_and_an_ok_trailer() {
        let request = pb::GetProductRequest { id: 7 }.encode_to_vec();
        let response = serve(&[], framed(0, request.len() as u32, &request)).await;
        assert_eq!(response.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(response.headers()["x-answer"], "yes");
        assert!(!response.headers().contains_key("grpc-status"));
        let collected = response.into_body().collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
        let expected = framed(0, request.len() as u32, &request);
        assert_eq!(collected.to_bytes(), expected);
    }

    #[tokio::test]
    async fn what_is_not_one_plain_message_gets_tonic_s_status() {
        let request = pb::GetProductRequest { id: 7 }.encode_to_vec();
        let len = request.len() as u32;
        let cases = [
            (vec![], Bytes::new(), tonic::Code::Internal),
            (vec![], Bytes::from_static(b"\0\0"), tonic::Code::Internal),
            (vec![], framed(1, len, &request), tonic::Code::Internal),
            (vec![], framed(2, len, &request), tonic::Code::Internal),
            (vec![], framed(0, len + 1, &request), tonic::Code::Internal),
            (
                vec![],
                framed(0, 3, &[0xff, 0xff, 0xff]),
                tonic::Code::Internal,
            ),
            (vec![], framed(0, 5 << 20, b""), tonic::Code::OutOfRange),
            (
                vec![(GRPC_ENCODING, "gzip")],
                framed(0, len, &request),
                tonic::Code::Unimplemented,
            ),
        ];
        for (headers, body, code) in cases {
            let response = serve(&headers, body.clone()).await;
            assert_eq!(status_of(&response).code(), code, "{body:?} {headers:?}");
        }
        let big = framed(0, 0, &vec![0; MAX_REQUEST_BYTES + 1]);
        assert_eq!(
            status_of(&serve(&[], big).await).code(),
            tonic::Code::OutOfRange
        );
        let refused = serve(&[(GRPC_ENCODING, "gzip")], framed(0, len, &request)).await;
        assert_eq!(refused.headers()["grpc-accept-encoding"], "identity");
        let identity = serve(&[(GRPC_ENCODING, "identity")], framed(0, len, &request)).await;
        assert!(!identity.headers().contains_key("grpc-status"));
    }

    #[test]
    fn the_encoded_response_is_prosts_encoding_of_the_message() {
        let product = pb::Product {
            id: 7,
            title: "x".repeat(300),
            ..Default::default()
        };
        let expected = pb::GetProductResponse {
            product: Some(product.clone()),
        }
        .encode_to_vec();
        assert_eq!(
            &get_product_response(&product.encode_to_vec())[..],
            &expected[..]
        );
    }

    /// One cached page answers all three listings: their responses declare the same fields
    /// (number, name, type, cardinality), so its bytes decode as each and mean the same.
    #[test]
    fn the_three_listing_responses_have_the_same_fields() {
        let pool = crate::proto::descriptor_pool();
        let fields = |name: &str| -> Vec<(u32, String, String, bool)> {
            let message = pool
                .get_message_by_name(&format!("ecom.catalog.v1.{name}"))
                .unwrap_or_else(|| panic!("{name} is declared"));
            message
                .fields()
                .map(|f| {
                    let kind = format!("{:?}", f.kind());
                    (f.number(), f.name().to_owned(), kind, f.is_list())
                })
                .collect()
        };
        let listing = fields("ListProductsResponse");
        assert!(listing.len() >= 5, "{listing:?}");
        assert_eq!(fields("SearchProductsResponse"), listing);
        assert_eq!(fields("ListProductsByCategoryResponse"), listing);

        let page = pb::ListProductsResponse {
            products: vec![pb::Product {
                id: 3,
                title: "a".into(),
                ..Default::default()
            }],
            total: 41,
            skip: 10,
            limit: 1,
            next_cursor: Some("c".into()),
        };
        let bytes = page.encode_to_vec();
        let search = pb::SearchProductsResponse::decode(&bytes[..]).unwrap();
        assert_eq!(search.encode_to_vec(), bytes);
        let category = pb::ListProductsByCategoryResponse::decode(&bytes[..]).unwrap();
        assert_eq!(category.encode_to_vec(), bytes);
        assert_eq!(
            (search.total, category.next_cursor.as_deref()),
            (41, Some("c"))
        );
    }
}

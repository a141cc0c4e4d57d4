//! The catalog's gRPC server: the generated `CatalogServiceServer`, except that its cached
//! reads, GetProduct and the three listings (ListProducts, SearchProducts,
//! ListProductsByCategory), are answered with the cached protobuf bytes as they are.
//!
//! The cache holds a product, and a listing page, encoded (`app.rs`); the generated server
//! would decode it into messages and tonic encode them again on every call, only for the edge
//! to compare the same bytes with its memo (transcoder/src/memo.rs). For a 10-product page
//! that decode, encode and the drop of the decoded messages were 57% of a cached listing's
//! instructions (callgrind, docs/BENCHMARKS.md). Here tonic's own unary handling (framing,
//! deadlines, status trailers, limits) runs with a codec whose response is already encoded, so
//! the bytes a client receives are the ones the generated server sent:
//! - prost's encoding of `GetProductResponse { product }` is the field's tag and length, then
//!   the product's bytes ([`get_product_response`]);
//! - the three listing responses declare the same fields with the same numbers and types, so
//!   one cached page is the encoding of each of them (a test below holds them to that).
//!
//! Every other RPC goes to the generated server unchanged. Use [`CatalogServer`] wherever the
//! catalog is served (server.rs does, for the gRPC port and in-process callers alike).

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Service, StdError};
use tonic::{Request, Response, Status};

use super::grpc::CatalogService;
use crate::proto::ecom::catalog::v1 as pb;
use pb::catalog_service_server::CatalogServiceServer;

const GET_PRODUCT: &str = "/ecom.catalog.v1.CatalogService/GetProduct";
const LIST_PRODUCTS: &str = "/ecom.catalog.v1.CatalogService/ListProducts";
const SEARCH_PRODUCTS: &str = "/ecom.catalog.v1.CatalogService/SearchProducts";
const LIST_PRODUCTS_BY_CATEGORY: &str = "/ecom.catalog.v1.CatalogService/ListProductsByCategory";

/// The buffer a response is framed in: room for a page of up to about 30 products, where
/// tonic's default (8 KiB) made a 10-product page (8,636 bytes on the bench's catalog) grow it,
/// copying the whole 8 KiB block (realloc) on each answer. The second figure is tonic's
/// default yield threshold.
fn encode_buffer() -> BufferSettings {
    BufferSettings::new(32 * 1024, 32 * 1024)
}

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

/// Serves `req` with tonic's unary handling: its request decoded as `Req`, answered with the
/// encoded response `method` makes.
fn encoded<B, Req, F, Fut>(
    req: http::Request<B>,
    method: F,
) -> BoxFuture<http::Response<tonic::body::Body>, Infallible>
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
    Req: Message + Default + Send + 'static,
    F: FnMut(Request<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response<Bytes>, Status>> + Send + 'static,
{
    Box::pin(async move {
        Ok(tonic::server::Grpc::new(EncodedCodec::<Req>(PhantomData))
            .unary(Method(method), req)
            .await)
    })
}

/// A unary method answering encoded responses.
struct Method<F>(F);

impl<Req, F, Fut> tonic::server::UnaryService<Req> for Method<F>
where
    F: FnMut(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<Bytes>, Status>> + Send + 'static,
{
    type Response = Bytes;
    type Future = Fut;

    fn call(&mut self, request: Request<Req>) -> Self::Future {
        (self.0)(request)
    }
}

/// Decodes a `Req`; sends a response that is already encoded.
struct EncodedCodec<Req>(PhantomData<fn() -> Req>);

impl<Req> Clone for EncodedCodec<Req> {
    fn clone(&self) -> Self {
        EncodedCodec(PhantomData)
    }
}

impl<Req: Message + Default + Send + 'static> Codec for EncodedCodec<Req> {
    type Encode = Bytes;
    type Decode = Req;
    type Encoder = EncodedCodec<Req>;
    type Decoder = EncodedCodec<Req>;

    fn encoder(&mut self) -> Self::Encoder {
        self.clone()
    }

    fn decoder(&mut self) -> Self::Decoder {
        self.clone()
    }
}

impl<Req: Send + 'static> Encoder for EncodedCodec<Req> {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        encode_buffer()
    }
}

impl<Req: Message + Default + Send + 'static> Decoder for EncodedCodec<Req> {
    type Item = Req;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        // The message tonic's prost codec would decode, and its error for one that does not.
        Req::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

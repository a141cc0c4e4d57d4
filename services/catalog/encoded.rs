//! The catalog's gRPC server: the generated `CatalogServiceServer`, except that GetProduct,
//! the hottest read, is answered with the cached product's protobuf bytes as they are.
//!
//! The cache holds a product encoded (`app.rs`); the generated server would decode it into a
//! `Product` and tonic encode it again on every call, only for the edge to compare the same
//! bytes with its memo (transcoder/src/memo.rs). Here tonic's own unary handling (framing,
//! deadlines, status trailers, limits) runs with a codec whose response is already encoded, so
//! the bytes a client receives are the ones the generated server sent: prost's encoding of
//! `GetProductResponse { product }` is the field's tag and length, then the product's bytes.
//! Every other RPC goes to the generated server unchanged. Use [`CatalogServer`] wherever the
//! catalog is served (server.rs does, for the gRPC port and in-process callers alike).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Service, StdError};
use tonic::{Request, Response, Status};

use super::grpc::CatalogService;
use crate::proto::ecom::catalog::v1 as pb;
use pb::catalog_service_server::CatalogServiceServer;

const GET_PRODUCT: &str = "/ecom.catalog.v1.CatalogService/GetProduct";

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
        if req.uri().path() != GET_PRODUCT {
            return self.generated.call(req);
        }
        let method = GetProduct(self.service.clone());
        Box::pin(async move {
            Ok(tonic::server::Grpc::new(EncodedCodec)
                .unary(method, req)
                .await)
        })
    }
}

/// GetProduct answered with its encoded response.
struct GetProduct(Arc<CatalogService>);

impl tonic::server::UnaryService<pb::GetProductRequest> for GetProduct {
    type Response = Bytes;
    type Future = BoxFuture<Response<Bytes>, Status>;

    fn call(&mut self, request: Request<pb::GetProductRequest>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { service.get_product_encoded(request).await })
    }
}

/// Decodes a `GetProductRequest`; sends a response that is already encoded.
#[derive(Clone, Copy)]
struct EncodedCodec;

impl Codec for EncodedCodec {
    type Encode = Bytes;
    type Decode = pb::GetProductRequest;
    type Encoder = EncodedCodec;
    type Decoder = EncodedCodec;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        EncodedCodec
    }
}

impl Encoder for EncodedCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for EncodedCodec {
    type Item = pb::GetProductRequest;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        // The message tonic's prost codec would decode, and its error for one that does not.
        pb::GetProductRequest::decode(src)
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
}

//! The test API `library.v1.LibraryService`: generated code, a tonic
//! implementation whose behaviour each test relies on, and helpers to serve
//! it in-process or on a loopback socket and to put an edge in front.
#![allow(dead_code, clippy::all)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use prost_reflect::DescriptorPool;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};
use transcoder::{Transcoder, Upstream};

/// Generated code, nested as its protobuf packages (the generated paths
/// are relative: `super::super::google::api`).
pub mod proto {
    pub mod google {
        pub mod api {
            include!(concat!(env!("OUT_DIR"), "/google.api.rs"));
        }
    }
    pub mod library {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/library.v1.rs"));
        }
    }
}
pub use proto::google;
pub use proto::library::v1 as pb;

use pb::library_service_server::{LibraryService, LibraryServiceServer};
use pb::*;

pub const SERVICE: &str = "library.v1.LibraryService";

/// The descriptor pool of the test API (with its imports and extensions).
pub fn pool() -> DescriptorPool {
    DescriptorPool::decode(
        include_bytes!(concat!(env!("OUT_DIR"), "/library_descriptor.bin")).as_ref(),
    )
    .expect("the descriptor set decodes")
}

/// A book the size of a shop's product.
pub fn sample_book(id: i64) -> Book {
    Book {
        id,
        title: format!("The Book of {id}"),
        author: "Ursula K. Le Guin".into(),
        price: 12.5,
        genre: Genre::Fiction as i32,
        tags: vec!["classic".into(), "sf".into(), "award".into()],
        pages: 320,
        in_stock: true,
        description: "A long description of the book that makes the message about as large as \
                      a product in a shop catalogue, with a few sentences of prose in it."
            .into(),
        rating: 4.5,
        subtitle: None,
    }
}

#[derive(Debug, Default, Clone)]
pub struct Library;

#[tonic::async_trait]
impl LibraryService for Library {
    async fn get_shelf(&self, req: Request<GetShelfRequest>) -> Result<Response<Shelf>, Status> {
        let id = req.into_inner().shelf;
        if id == 404 {
            return Err(Status::not_found(format!("shelf {id} not found")));
        }
        Ok(Response::new(Shelf {
            id,
            theme: format!("shelf-{id}"),
            archived: false,
        }))
    }

    async fn get_book(&self, req: Request<GetBookRequest>) -> Result<Response<Book>, Status> {
        let id = req.into_inner().book;
        let mut response = Response::new(sample_book(id));
        // Books 600..=699 answer with their id minus 200 as the HTTP status
        // (`x-http-status` metadata); 700 with a value that is not a status.
        let status = match id {
            600..=699 => Some((id - 200).to_string()),
            700 => Some("soon".to_owned()),
            _ => None,
        };
        if let Some(status) = status {
            response
                .metadata_mut()
                .insert("x-http-status", status.parse().unwrap());
        }
        Ok(response)
    }

    async fn list_books(
        &self,
        req: Request<ListBooksRequest>,
    ) -> Result<Response<ListBooksResponse>, Status> {
        let r = req.into_inner();
        let n = if r.page_size == 0 { 2 } else { r.page_size };
        let books = (1..=n as i64)
            .map(|i| Book {
                author: if r.author.is_empty() {
                    "anon".into()
                } else {
                    r.author.clone()
                },
                genre: r.genre,
                tags: r.tags.clone(),
                ..sample_book(r.shelf * 100 + i)
            })
            .collect();
        Ok(Response::new(ListBooksResponse { books, total: n }))
    }

    async fn list_titles(
        &self,
        req: Request<ListTitlesRequest>,
    ) -> Result<Response<ListTitlesResponse>, Status> {
        let shelf = req.into_inner().shelf;
        Ok(Response::new(ListTitlesResponse {
            books: vec![sample_book(shelf * 100 + 1), sample_book(shelf * 100 + 2)],
        }))
    }

    async fn create_book(&self, req: Request<CreateBookRequest>) -> Result<Response<Book>, Status> {
        let book = req.into_inner().book.unwrap_or_default();
        if book.title.is_empty() {
            return Err(Status::with_error_details(
                tonic::Code::InvalidArgument,
                "invalid book",
                ErrorDetails::with_bad_request(vec![FieldViolation::new("title", "required")]),
            ));
        }
        Ok(Response::new(Book { id: 42, ..book }))
    }

    async fn update_book(&self, req: Request<UpdateBookRequest>) -> Result<Response<Book>, Status> {
        let r = req.into_inner();
        Ok(Response::new(Book {
            id: r.book_id,
            ..r.book.unwrap_or_default()
        }))
    }

    async fn delete_book(
        &self,
        req: Request<DeleteBookRequest>,
    ) -> Result<Response<DeleteBookResponse>, Status> {
        Ok(Response::new(DeleteBookResponse {
            deleted: req.into_inner().book,
        }))
    }

    async fn archive_shelf(
        &self,
        req: Request<ArchiveShelfRequest>,
    ) -> Result<Response<Shelf>, Status> {
        let r = req.into_inner();
        Ok(Response::new(Shelf {
            id: r.shelf,
            theme: r.reason,
            archived: true,
        }))
    }

    async fn download_book(
        &self,
        req: Request<DownloadBookRequest>,
    ) -> Result<Response<google::api::HttpBody>, Status> {
        let r = req.into_inner();
        let mut response = Response::new(google::api::HttpBody {
            content_type: "text/plain; charset=utf-8".into(),
            data: format!("Book {} of shelf {}\n", r.book, r.shelf).into_bytes(),
            extensions: vec![],
        });
        response.metadata_mut().insert(
            "content-disposition",
            format!("attachment; filename=\"book-{}.txt\"", r.book)
                .parse()
                .unwrap(),
        );
        Ok(response)
    }

    async fn import_books(
        &self,
        req: Request<ImportBooksRequest>,
    ) -> Result<Response<ImportBooksResponse>, Status> {
        let data = req.into_inner().data.unwrap_or_default();
        let first_line = String::from_utf8_lossy(&data.data)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        Ok(Response::new(ImportBooksResponse {
            content_type: data.content_type,
            size: data.data.len() as i64,
            first_line,
        }))
    }

    async fn upload_cover(
        &self,
        req: Request<UploadCoverRequest>,
    ) -> Result<Response<UploadCoverResponse>, Status> {
        let r = req.into_inner();
        Ok(Response::new(UploadCoverResponse {
            size: r.cover.len() as i64,
            content_type: r.cover_content_type,
            filename: r.cover_filename,
            caption: r.caption,
            width: r.width,
        }))
    }

    async fn checkout(
        &self,
        req: Request<CheckoutRequest>,
    ) -> Result<Response<CheckoutResponse>, Status> {
        let r = req.into_inner();
        match r.book {
            1 => {
                let mut status = Status::with_error_details(
                    tonic::Code::FailedPrecondition,
                    "book is on loan",
                    ErrorDetails::with_error_info(
                        "BOOK_ON_LOAN",
                        "library.example",
                        [
                            ("http_status".to_owned(), "423".to_owned()),
                            ("retryAfter".to_owned(), "60".to_owned()),
                            ("holder".to_owned(), "someone".to_owned()),
                        ],
                    ),
                );
                status
                    .metadata_mut()
                    .insert("retry-after", "60".parse().unwrap());
                Err(status)
            }
            2 => {
                let mut details = ErrorDetails::with_bad_request(vec![
                    FieldViolation::new("member", "required"),
                    FieldViolation::new("member", "must be a card number"),
                    FieldViolation::new("book", "not lendable"),
                ]);
                details.set_error_info("INVALID_LOAN", "library.example", []);
                Err(Status::with_error_details(
                    tonic::Code::InvalidArgument,
                    "invalid loan",
                    details,
                ))
            }
            3 => Err(Status::internal(
                "connection to 10.1.2.3:5432 refused: password",
            )),
            4 => Err(Status::not_found("no such book")),
            5 => Err(Status::with_error_details(
                tonic::Code::AlreadyExists,
                "already loaned",
                ErrorDetails::with_error_info(
                    "ALREADY_LOANED",
                    "library.example",
                    [("http_status".to_owned(), "200".to_owned())],
                ),
            )),
            6 => Err(Status::resource_exhausted("too many loans")),
            _ => Ok(Response::new(CheckoutResponse {
                loan_id: format!("loan-{}-{}", r.book, r.member),
            })),
        }
    }

    async fn slow(&self, req: Request<SlowRequest>) -> Result<Response<SlowResponse>, Status> {
        let millis = req.into_inner().millis;
        let _counted = (millis == PILE_UP_MILLIS).then(InFlight::enter);
        tokio::time::sleep(Duration::from_millis(millis as u64)).await;
        Ok(Response::new(SlowResponse {
            slept_millis: millis,
        }))
    }

    async fn panic(&self, _req: Request<PanicRequest>) -> Result<Response<PanicResponse>, Status> {
        panic!("secret internal state: database password is hunter2");
    }

    async fn echo(&self, req: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let md = req.metadata();
        let mut metadata = std::collections::HashMap::new();
        for key in [
            "authorization",
            "x-request-id",
            "x-client-version",
            "idempotency-key",
            "user-agent",
            "x-forwarded-for",
            "x-tenant",
            "cookie",
            "grpc-timeout",
        ] {
            if let Some(v) = md.get(key).and_then(|v| v.to_str().ok()) {
                // A channel appends its own " tonic/x.y" to the user agent.
                let v = v.split(" tonic/").next().unwrap_or_default();
                let v = if key == "grpc-timeout" { "set" } else { v };
                metadata.insert(key.to_owned(), v.to_owned());
            }
        }
        Ok(Response::new(EchoResponse { metadata }))
    }
}

/// The tonic routes of the service, for an in-process upstream.
pub fn routes() -> tonic::service::Routes {
    tonic::service::Routes::new(LibraryServiceServer::new(Library))
}

/// Serves the service over gRPC on a loopback port.
pub async fn serve_grpc() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(LibraryServiceServer::new(Library))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    addr
}

/// Serves the service over gRPC on a loopback port behind
/// `GrpcCatchPanic`, as a production server would.
pub async fn serve_grpc_guarded() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(transcoder::layers::GrpcCatchPanic::layer())
            .add_service(LibraryServiceServer::new(Library))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    addr
}

/// A channel to a gRPC address (lazy: connects on first use).
pub fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy()
}

/// An edge in front of `upstream` with the tests' settings.
pub fn edge_with(
    upstream: Upstream,
    configure: impl FnOnce(transcoder::TranscoderBuilder) -> transcoder::TranscoderBuilder,
) -> Transcoder {
    let builder = Transcoder::builder(pool())
        .base_path("/api")
        .upstream(SERVICE, upstream)
        .forward_header("x-tenant")
        .timeout(Duration::from_millis(500))
        .max_body_bytes(1024);
    configure(builder).build().expect("the edge builds")
}

/// An edge with an in-process upstream.
pub fn edge() -> Transcoder {
    edge_with(Upstream::in_process(routes()), |b| b)
}

/// A response read to the end.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends a request through any edge-like service and reads the response.
pub async fn send<S, B>(svc: &S, req: http::Request<B>) -> Reply
where
    S: tower::Service<http::Request<B>, Response = http::Response<transcoder::Body>> + Clone,
    S::Error: std::fmt::Debug,
{
    use tower::ServiceExt;
    let response = svc.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// A request with a body.
pub fn req(method: &str, uri: &str, body: impl Into<Bytes>) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(body.into()))
        .unwrap()
}

/// A request with a JSON body.
pub fn json_req(method: &str, uri: &str, body: &str) -> http::Request<Full<Bytes>> {
    let mut r = req(method, uri, body.to_owned());
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

pub fn get(uri: &str) -> http::Request<Full<Bytes>> {
    req("GET", uri, Bytes::new())
}

/// Serves an edge-like service over HTTP (1.1 and 2) on a loopback port,
/// inserting each connection's [`transcoder::ClientAddr`] as a server must.
pub async fn serve_http<S>(svc: S) -> SocketAddr
where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<transcoder::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    use tower::ServiceExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let svc = svc.clone();
            tokio::spawn(async move {
                let svc =
                    tower::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(transcoder::ClientAddr(peer));
                        svc.clone().oneshot(req)
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(
                    hyper_util::rt::TokioIo::new(stream),
                    hyper_util::service::TowerToHyperService::new(svc),
                )
                .await;
            });
        }
    });
    addr
}

/// `Slow` calls asking for exactly this many milliseconds are counted while they run (in
/// [`SLOW_IN_FLIGHT`]), so a test can see whether the edge's deadline ends them upstream too.
pub const PILE_UP_MILLIS: i64 = 4_321;
/// How many counted `Slow` calls are running now.
pub static SLOW_IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts one call for as long as it lives (a cancelled handler is dropped, and uncounted).
struct InFlight;

impl InFlight {
    fn enter() -> InFlight {
        SLOW_IN_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        SLOW_IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

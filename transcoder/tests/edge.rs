//! The edge end to end on the crate's own test API (`library.v1`): routing,
//! JSON mapping, bodies, HttpBody, multipart, errors, deadlines, panics,
//! headers, layers, and in-process vs network upstreams.

mod library;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Full, StreamBody};
use library::*;
use serde_json::json;
use tower::ServiceBuilder;
use transcoder::layers::{CatchPanic, Cors, CorsConfig, RequestId, SecurityHeaders};
use transcoder::{ClientAddr, MatchedRoute, Transcoder, Upstream};

fn assert_error(r: &Reply, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = r.json();
    assert_eq!(j["status"], status, "{j}");
    assert_eq!(j["code"], code, "{j}");
    assert!(j["message"].is_string(), "{j}");
    assert!(j["details"].is_object(), "{j}");
    assert_eq!(
        j.as_object().unwrap().len(),
        4,
        "exactly the four keys: {j}"
    );
    j
}

// ---- routing ----

#[tokio::test]
async fn get_binds_path_variables_and_writes_json() {
    let r = send(&edge(), get("/api/v1/shelves/7/books/3")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = r.json();
    assert_eq!(j["id"], 3);
    assert_eq!(j["title"], "The Book of 3");
    assert_eq!(j["genre"], "fiction");
    assert_eq!(j["inStock"], true);
    assert_eq!(j["tags"], json!(["classic", "sf", "award"]));
    assert!(r.header("x-request-id").is_some());
}

#[tokio::test]
async fn unknown_path_is_404_outside_base_path_too() {
    let e = edge();
    assert_error(&send(&e, get("/api/v1/nothing")).await, 404, "NOT_FOUND");
    assert_error(&send(&e, get("/v1/shelves/1")).await, 404, "NOT_FOUND");
    assert_error(&send(&e, get("/apiv1/shelves/1")).await, 404, "NOT_FOUND");
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let r = send(&edge(), req("PUT", "/api/v1/shelves/1/books", Bytes::new())).await;
    assert_error(&r, 405, "METHOD_NOT_ALLOWED");
    let allow = r.header("allow").unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

#[tokio::test]
async fn plain_options_answers_allow() {
    let r = send(
        &edge(),
        req("OPTIONS", "/api/v1/shelves/1/books", Bytes::new()),
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(r.header("allow").unwrap().contains("POST"));
}

#[tokio::test]
async fn path_variable_of_wrong_type_is_400_naming_it() {
    let r = send(&edge(), get("/api/v1/shelves/abc")).await;
    let j = assert_error(&r, 400, "VALIDATION_ERROR");
    assert!(j["details"]["shelf"].is_array(), "{j}");
}

#[tokio::test]
async fn custom_verb_routes_to_its_rpc() {
    let r = send(
        &edge(),
        json_req("POST", "/api/v1/shelves/5:archive", r#"{"reason":"moved"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(
        (j["id"].clone(), j["archived"].clone(), j["theme"].clone()),
        (json!(5), json!(true), json!("moved"))
    );
}

#[tokio::test]
async fn matched_route_is_on_the_response() {
    use tower::ServiceExt;
    let resp = edge()
        .oneshot(get("/api/v1/shelves/7/books/3"))
        .await
        .unwrap();
    let m = resp
        .extensions()
        .get::<MatchedRoute>()
        .expect("matched route");
    assert!(
        m.0.contains("{shelf}") && m.0.contains("books"),
        "{:?}",
        m.0
    );
    let resp = edge().oneshot(get("/api/nope")).await.unwrap();
    assert!(resp.extensions().get::<MatchedRoute>().is_none());
}

// ---- bodies ----

#[tokio::test]
async fn create_is_201_with_the_body_field() {
    let r = send(
        &edge(),
        json_req(
            "POST",
            "/api/v1/shelves/1/books",
            r#"{"title":"Dune","price":9.99,"genre":"science"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let j = r.json();
    assert_eq!(j["id"], 42);
    assert_eq!(j["title"], "Dune");
    assert_eq!(j["price"], 9.99);
    assert_eq!(j["genre"], "science");
}

#[tokio::test]
async fn json_content_type_with_charset_is_accepted() {
    let mut r = json_req("POST", "/api/v1/shelves/1/books", r#"{"title":"Dune"}"#);
    r.headers_mut().insert(
        "content-type",
        "application/json; charset=utf-8".parse().unwrap(),
    );
    assert_eq!(send(&edge(), r).await.status, 201);
}

#[tokio::test]
async fn update_binds_body_field_and_path() {
    let r = send(
        &edge(),
        json_req(
            "PATCH",
            "/api/v1/shelves/1/books/9",
            r#"{"title":"New","subtitle":""}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["id"], 9);
    assert_eq!(j["title"], "New");
    assert_eq!(j["subtitle"], "", "an explicitly set optional is kept: {j}");
}

#[tokio::test]
async fn delete_is_204_without_body() {
    let r = send(
        &edge(),
        req("DELETE", "/api/v1/shelves/1/books/9", Bytes::new()),
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert!(r.header("content-type").is_none());
}

#[tokio::test]
async fn unknown_json_field_is_400_naming_it() {
    let r = send(
        &edge(),
        json_req(
            "POST",
            "/api/v1/shelves/1/books",
            r#"{"title":"x","colour":"red"}"#,
        ),
    )
    .await;
    let j = assert_error(&r, 400, "VALIDATION_ERROR");
    assert!(j.to_string().contains("colour"), "{j}");
}

#[tokio::test]
async fn malformed_json_is_400_with_position() {
    let r = send(
        &edge(),
        json_req("POST", "/api/v1/shelves/1/books", "{\"title\": "),
    )
    .await;
    let j = assert_error(&r, 400, "VALIDATION_ERROR");
    let msg = j["message"].as_str().unwrap();
    assert!(
        msg.contains("line") || msg.contains("column") || msg.contains("position"),
        "{msg}"
    );
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_415() {
    let mut r = req("POST", "/api/v1/shelves/1/books", r#"{"title":"x"}"#);
    r.headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    assert_error(&send(&edge(), r).await, 415, "UNSUPPORTED_MEDIA_TYPE");
    let r = req("POST", "/api/v1/shelves/1/books", r#"{"title":"x"}"#);
    assert_error(&send(&edge(), r).await, 415, "UNSUPPORTED_MEDIA_TYPE");
}

#[tokio::test]
async fn empty_body_means_empty_object() {
    let r = send(
        &edge(),
        req("POST", "/api/v1/shelves/3:archive", Bytes::new()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["archived"], true);
}

#[tokio::test]
async fn body_over_the_limit_is_413_by_length_and_by_stream() {
    let big = format!(r#"{{"title":"{}"}}"#, "x".repeat(2000));
    let mut r = json_req("POST", "/api/v1/shelves/1/books", &big);
    r.headers_mut().insert("content-length", big.len().into());
    assert_error(&send(&edge(), r).await, 413, "PAYLOAD_TOO_LARGE");

    // No Content-Length: a chunked body cut while streaming.
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = (0..10)
        .map(|_| Ok(http_body::Frame::data(Bytes::from(vec![b' '; 300]))))
        .collect();
    let mut r = http::Request::builder()
        .method("POST")
        .uri("/api/v1/shelves/1/books")
        .body(StreamBody::new(futures::stream::iter(chunks)))
        .unwrap();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    let reply = send(&edge(), r).await;
    assert_error(&reply, 413, "PAYLOAD_TOO_LARGE");
}

// ---- responses ----

#[tokio::test]
async fn response_body_repeated_field_is_a_bare_array() {
    let r = send(&edge(), get("/api/v1/shelves/2/titles")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    let list = j.as_array().expect("a bare array");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], 201);
}

#[tokio::test]
async fn select_keeps_only_the_named_fields() {
    let r = send(&edge(), get("/api/v1/shelves/7/books/3?select=title,price")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
    assert!(
        keys.iter()
            .all(|k| ["id", "title", "price"].contains(&k.as_str())),
        "{j}"
    );
    assert_eq!(j["title"], "The Book of 3");
    assert_eq!(j["price"], 12.5);
    // On a list response, the selector applies to each item.
    let r = send(&edge(), get("/api/v1/shelves/7/titles?select=title")).await;
    for item in r.json().as_array().unwrap() {
        assert!(item.get("author").is_none(), "{item}");
        assert!(item.get("title").is_some(), "{item}");
    }
}

// ---- query ----

#[tokio::test]
async fn query_parameters_bind_scalars_enums_and_repeated() {
    let r = send(
        &edge(),
        get("/api/v1/shelves/1/books?pageSize=3&author=Iain%20M.+Banks&genre=science&tags=a&tags=b&delay=5"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["total"], 3);
    let b = &j["books"][0];
    assert_eq!(b["author"], "Iain M. Banks");
    assert_eq!(b["genre"], "science");
    assert_eq!(b["tags"], json!(["a", "b"]));
}

#[tokio::test]
async fn query_parameter_of_wrong_type_is_400() {
    let r = send(&edge(), get("/api/v1/shelves/1/books?pageSize=many")).await;
    let j = assert_error(&r, 400, "VALIDATION_ERROR");
    assert!(
        j["details"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("age")),
        "{j}"
    );
}

#[tokio::test]
async fn unknown_query_parameters_can_be_rejected() {
    let e = edge_with(Upstream::in_process(routes()), |b| {
        b.reject_unknown_query(true)
    });
    let r = send(&e, get("/api/v1/shelves/1/books?delay=5")).await;
    let j = assert_error(&r, 400, "VALIDATION_ERROR");
    assert!(j["details"]["delay"].is_array(), "{j}");
    // `select` is never unknown.
    assert_eq!(
        send(&e, get("/api/v1/shelves/1/books?select=total"))
            .await
            .status,
        200
    );
}

// ---- HttpBody ----

#[tokio::test]
async fn http_body_response_is_raw_with_declared_headers() {
    let r = send(&edge(), get("/api/v1/shelves/2/books/5:download")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"book-5.txt\"")
    );
    assert_eq!(r.text(), "Book 5 of shelf 2\n");
}

#[tokio::test]
async fn x_http_status_metadata_sets_the_status_of_a_success() {
    let edge = edge();
    let r = send(
        &edge,
        req("GET", "/api/v1/shelves/1/books/601", Bytes::new()),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["id"], 601, "the body is the response message");
    let r = send(
        &edge,
        req("GET", "/api/v1/shelves/1/books/700", Bytes::new()),
    )
    .await;
    assert_eq!(r.status, 200, "a value that is no status is ignored");
    let r = send(&edge, req("GET", "/api/v1/shelves/1/books/7", Bytes::new())).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn serves_path_tells_routes_from_other_paths() {
    let edge = edge();
    assert!(edge.serves_path("/api/v1/shelves/1/books/7"));
    // Served with another method only: still a route.
    assert!(edge.serves_path("/api/v1/shelves/1/books:import"));
    assert!(!edge.serves_path("/api/v1/nothing/here"));
    assert!(
        !edge.serves_path("/shelves/1/books/7"),
        "outside the base path"
    );
}

#[tokio::test]
async fn http_body_request_takes_raw_bytes_and_content_type() {
    let mut r = req(
        "POST",
        "/api/v1/shelves/2/books:import",
        "title,author\nDune,Herbert\n",
    );
    r.headers_mut()
        .insert("content-type", "text/csv".parse().unwrap());
    let r = send(&edge(), r).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["contentType"], "text/csv");
    assert_eq!(j["size"], 26);
    assert_eq!(j["firstLine"], "title,author");
}

// ---- multipart ----

/// One multipart part: name, (file name, content type) for a file, data.
type Part<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a [u8]);

fn multipart(parts: &[Part<'_>]) -> http::Request<Full<Bytes>> {
    let boundary = "XyZzY-boundary";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some((filename, ct)) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {ct}\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let mut r = req("POST", "/api/v1/shelves/1/books/2/cover", body);
    r.headers_mut().insert(
        "content-type",
        format!("multipart/form-data; boundary={boundary}")
            .parse()
            .unwrap(),
    );
    r
}

#[tokio::test]
async fn multipart_file_and_text_parts_fill_the_message() {
    let png = [0x89u8, b'P', b'N', b'G', 0, 1, 2, 3];
    let r = send(
        &edge(),
        multipart(&[
            ("cover", Some(("front.png", "image/png")), &png),
            ("caption", None, b"The front"),
            ("width", None, b"640"),
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["size"], 8);
    assert_eq!(j["contentType"], "image/png");
    assert_eq!(j["filename"], "front.png");
    assert_eq!(j["caption"], "The front");
    assert_eq!(j["width"], 640);
}

#[tokio::test]
async fn multipart_unknown_part_is_400_and_bad_value_is_400() {
    let r = send(&edge(), multipart(&[("nonsense", None, b"x")])).await;
    let j = assert_error(&r, 400, "VALIDATION_ERROR");
    assert!(j["details"]["nonsense"].is_array(), "{j}");
    let r = send(&edge(), multipart(&[("width", None, b"wide")])).await;
    assert_error(&r, 400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn multipart_over_its_limit_is_413() {
    let e = edge_with(Upstream::in_process(routes()), |b| {
        b.max_multipart_bytes(512)
    });
    let big = vec![7u8; 4096];
    let r = send(
        &e,
        multipart(&[("cover", Some(("a.bin", "application/octet-stream")), &big)]),
    )
    .await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn multipart_to_a_message_without_bytes_is_415() {
    let boundary = "b";
    let mut r = req(
        "POST",
        "/api/v1/shelves/1:archive",
        format!("--{boundary}--\r\n"),
    );
    r.headers_mut().insert(
        "content-type",
        format!("multipart/form-data; boundary={boundary}")
            .parse()
            .unwrap(),
    );
    assert_error(&send(&edge(), r).await, 415, "UNSUPPORTED_MEDIA_TYPE");
}

// ---- errors ----

#[tokio::test]
async fn error_info_sets_code_status_override_and_details() {
    let r = send(&edge(), json_req("POST", "/api/v1/books/1:checkout", "{}")).await;
    let j = assert_error(&r, 423, "BOOK_ON_LOAN");
    assert_eq!(j["message"], "book is on loan");
    assert_eq!(j["details"], json!({"retryAfter": 60, "holder": "someone"}));
    assert_eq!(
        r.header("retry-after"),
        Some("60"),
        "declared response header on error"
    );
}

#[tokio::test]
async fn bad_request_violations_are_grouped_by_field() {
    let r = send(&edge(), json_req("POST", "/api/v1/books/2:checkout", "{}")).await;
    let j = assert_error(&r, 400, "INVALID_LOAN");
    assert_eq!(
        j["details"],
        json!({"member": ["required", "must be a card number"], "book": ["not lendable"]})
    );
    let r = send(&edge(), json_req("POST", "/api/v1/shelves/1/books", "{}")).await;
    let j = assert_error(&r, 400, "VALIDATION_ERROR");
    assert_eq!(j["details"], json!({"title": ["required"]}));
}

#[tokio::test]
async fn internal_errors_hide_their_message() {
    let r = send(&edge(), json_req("POST", "/api/v1/books/3:checkout", "{}")).await;
    let j = assert_error(&r, 500, "INTERNAL_ERROR");
    assert_eq!(j["message"], "Internal server error");
    assert!(!r.text().contains("10.1.2.3"));
}

#[tokio::test]
async fn plain_statuses_use_the_default_codes() {
    let e = edge();
    let j = assert_error(
        &send(&e, json_req("POST", "/api/v1/books/4:checkout", "{}")).await,
        404,
        "NOT_FOUND",
    );
    assert_eq!(j["message"], "no such book");
    assert_eq!(j["details"], json!({}));
    assert_error(
        &send(&e, json_req("POST", "/api/v1/books/6:checkout", "{}")).await,
        429,
        "RATE_LIMITED",
    );
    // An override outside 400..=599 is ignored: the code's own status stays.
    assert_error(
        &send(&e, json_req("POST", "/api/v1/books/5:checkout", "{}")).await,
        409,
        "ALREADY_LOANED",
    );
    let r = send(
        &e,
        json_req("POST", "/api/v1/books/9:checkout", r#"{"member":"m1"}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["loanId"], "loan-9-m1");
}

#[tokio::test]
async fn panic_is_500_and_the_next_request_is_served() {
    let svc = ServiceBuilder::new()
        .layer(CatchPanic::layer())
        .service(edge());
    let r = send(&svc, get("/api/v1/panic")).await;
    let j = assert_error(&r, 500, "INTERNAL_ERROR");
    assert_eq!(j["message"], "Internal server error");
    assert!(!r.text().contains("hunter2"));
    assert_eq!(send(&svc, get("/api/v1/shelves/1")).await.status, 200);
}

#[tokio::test]
async fn slow_upstream_is_504_on_time() {
    for upstream in [
        Upstream::in_process(routes()),
        Upstream::channel(channel(serve_grpc().await)),
    ] {
        let e = edge_with(upstream, |b| b.timeout(Duration::from_millis(200)));
        let start = Instant::now();
        let r = send(&e, get("/api/v1/slow?millis=5000")).await;
        assert_error(&r, 504, "GATEWAY_TIMEOUT");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(send(&e, get("/api/v1/slow?millis=10")).await.status, 200);
    }
}

#[tokio::test]
async fn timed_out_calls_do_not_pile_up_upstream() {
    // Fifty calls that would take 4.3 s each, behind an edge with a 200 ms deadline: all 504,
    // and the deadline ends them in the service too (the stream is reset), so nothing keeps
    // running there once the answers are out.
    let e = edge_with(Upstream::channel(channel(serve_grpc().await)), |b| {
        b.timeout(Duration::from_millis(200))
    });
    let path = format!("/api/v1/slow?millis={}", library::PILE_UP_MILLIS);
    let calls = (0..50).map(|_| send(&e, get(&path)));
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.status, 504);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while library::SLOW_IN_FLIGHT.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        assert!(
            Instant::now() < deadline,
            "{} calls still running upstream",
            library::SLOW_IN_FLIGHT.load(std::sync::atomic::Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn upstream_down_is_503() {
    // A port that was just free: nothing listens there.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = edge_with(Upstream::channel(channel(addr)), |b| b);
    let start = Instant::now();
    let r = send(&e, get("/api/v1/shelves/1")).await;
    let j = assert_error(&r, 503, "SERVICE_UNAVAILABLE");
    assert!(!j["message"].as_str().unwrap().contains("127.0.0.1"), "{j}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_service_without_upstream_is_a_build_error() {
    let err = Transcoder::builder(pool()).build().unwrap_err();
    assert!(
        err.to_string().contains("library.v1.LibraryService"),
        "{err}"
    );
    let err = Transcoder::builder(pool())
        .upstream("nope.v1.Nothing", Upstream::in_process(routes()))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("nope.v1.Nothing"), "{err}");
}

#[tokio::test]
async fn upstream_panic_behind_grpc_catch_panic_is_500_both_ways() {
    use transcoder::layers::GrpcCatchPanic;
    let local = edge_with(
        Upstream::in_process(
            ServiceBuilder::new()
                .layer(GrpcCatchPanic::layer())
                .service(routes()),
        ),
        |b| b,
    );
    let remote = edge_with(
        Upstream::channel(channel(serve_grpc_guarded().await)),
        |b| b,
    );
    for e in [&local, &remote] {
        let r = send(e, get("/api/v1/panic")).await;
        let j = assert_error(&r, 500, "INTERNAL_ERROR");
        assert_eq!(j["message"], "Internal server error");
        assert!(!r.text().contains("hunter2"));
        assert_eq!(send(e, get("/api/v1/shelves/1")).await.status, 200);
    }
}

// ---- headers ----

#[tokio::test]
async fn headers_are_forwarded_as_metadata() {
    let mut r = get("/api/v1/echo");
    let h = r.headers_mut();
    h.insert("authorization", "Bearer abc".parse().unwrap());
    h.insert("x-request-id", "req-123".parse().unwrap());
    h.insert("x-client-version", "web/1.2".parse().unwrap());
    h.insert("idempotency-key", "k-1".parse().unwrap());
    h.insert("user-agent", "curl/8".parse().unwrap());
    h.insert("x-tenant", "t-9".parse().unwrap());
    h.insert("cookie", "secret=1".parse().unwrap());
    h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
    r.extensions_mut()
        .insert(ClientAddr("10.9.8.7:5555".parse().unwrap()));
    let reply = send(&edge(), r).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-request-id"), Some("req-123"));
    assert_eq!(
        reply.json()["metadata"],
        json!({
            "authorization": "Bearer abc",
            "x-request-id": "req-123",
            "x-client-version": "web/1.2",
            "idempotency-key": "k-1",
            "user-agent": "curl/8",
            "x-tenant": "t-9",
            "x-forwarded-for": "10.9.8.7",
            "grpc-timeout": "set",
        })
    );
}

#[tokio::test]
async fn request_id_is_generated_when_absent_and_incoming_xff_kept_without_client_addr() {
    let mut r = get("/api/v1/echo");
    r.headers_mut()
        .insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
    let reply = send(&edge(), r).await;
    let id = reply.header("x-request-id").unwrap().to_owned();
    assert_eq!(id.len(), 36, "{id}");
    let j = reply.json();
    assert_eq!(j["metadata"]["x-request-id"], id.as_str());
    assert_eq!(j["metadata"]["x-forwarded-for"], "1.2.3.4");
}

#[tokio::test]
async fn request_id_layer_generates_and_echoes() {
    let svc = ServiceBuilder::new()
        .layer(RequestId::layer())
        .service(edge());
    let reply = send(&svc, get("/api/v1/echo")).await;
    let id = reply.header("x-request-id").unwrap();
    assert_eq!(reply.json()["metadata"]["x-request-id"], id);
    let mut r = get("/api/v1/echo");
    r.headers_mut()
        .insert("x-request-id", "bad id with spaces".parse().unwrap());
    let reply = send(&svc, r).await;
    assert_ne!(reply.header("x-request-id"), Some("bad id with spaces"));
}

#[tokio::test]
async fn request_id_layer_keeps_one_sane_id_only() {
    let svc = ServiceBuilder::new()
        .layer(RequestId::layer())
        .service(edge());
    let mut r = get("/api/v1/echo");
    r.headers_mut()
        .append("x-request-id", "first".parse().unwrap());
    r.headers_mut()
        .append("x-request-id", "second".parse().unwrap());
    let reply = send(&svc, r).await;
    let ids: Vec<_> = reply.headers.get_all("x-request-id").iter().collect();
    assert_eq!(ids, ["first"]);
    assert_eq!(reply.json()["metadata"]["x-request-id"], "first");
    let mut r = get("/api/v1/echo");
    r.headers_mut()
        .insert("x-request-id", "x".repeat(129).parse().unwrap());
    let reply = send(&svc, r).await;
    assert_eq!(reply.header("x-request-id").unwrap().len(), 36);
}

// ---- layers ----

fn cors_edge(
    credentials: bool,
) -> impl tower::Service<
    http::Request<Full<Bytes>>,
    Response = http::Response<transcoder::Body>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    ServiceBuilder::new()
        .layer(Cors::layer(CorsConfig {
            allowed_origins: vec!["https://app.example.com".into()],
            allow_credentials: credentials,
            max_age: Duration::from_secs(600),
        }))
        .service(edge())
}

#[tokio::test]
async fn cors_preflight_from_an_allowed_origin() {
    let mut r = req("OPTIONS", "/api/v1/shelves/1/books", Bytes::new());
    r.headers_mut()
        .insert("origin", "https://app.example.com".parse().unwrap());
    r.headers_mut()
        .insert("access-control-request-method", "POST".parse().unwrap());
    r.headers_mut().insert(
        "access-control-request-headers",
        "authorization, content-type".parse().unwrap(),
    );
    let reply = send(&cors_edge(true), r).await;
    assert_eq!(reply.status, 204);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );
    assert!(
        reply
            .header("access-control-allow-headers")
            .unwrap()
            .contains("authorization")
    );
    assert!(
        reply
            .header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("600"));
    assert!(reply.header("vary").unwrap().contains("origin"));
}

#[tokio::test]
async fn cors_actual_request_and_disallowed_origin() {
    let mut r = get("/api/v1/shelves/1");
    r.headers_mut()
        .insert("origin", "https://app.example.com".parse().unwrap());
    let reply = send(&cors_edge(false), r).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(reply.header("access-control-allow-credentials").is_none());
    assert!(
        reply
            .header("access-control-expose-headers")
            .unwrap()
            .contains("x-request-id")
    );

    let mut r = req("OPTIONS", "/api/v1/shelves/1", Bytes::new());
    r.headers_mut()
        .insert("origin", "https://evil.example.com".parse().unwrap());
    r.headers_mut()
        .insert("access-control-request-method", "GET".parse().unwrap());
    let reply = send(&cors_edge(true), r).await;
    assert!(reply.header("access-control-allow-origin").is_none());
    assert!(reply.header("access-control-allow-credentials").is_none());
    assert_eq!(
        reply.status, 204,
        "the edge answers OPTIONS itself, without CORS headers"
    );
}

#[tokio::test]
async fn security_headers_and_no_store_when_authenticated() {
    let svc = ServiceBuilder::new()
        .layer(SecurityHeaders::layer(Some(Duration::from_secs(31536000))))
        .service(edge());
    let reply = send(&svc, get("/api/v1/shelves/1")).await;
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        reply.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
    assert_eq!(
        reply.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    assert!(reply.header("cache-control").is_none());
    let mut r = get("/api/v1/shelves/1");
    r.headers_mut()
        .insert("authorization", "Bearer x".parse().unwrap());
    let reply = send(&svc, r).await;
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

// ---- in-process vs network ----

#[tokio::test]
async fn in_process_and_network_upstreams_answer_identically() {
    let local = edge();
    let remote = edge_with(Upstream::channel(channel(serve_grpc().await)), |b| b);
    let cases: Vec<Box<dyn Fn() -> http::Request<Full<Bytes>>>> = vec![
        Box::new(|| get("/api/v1/shelves/7/books/3")),
        Box::new(|| get("/api/v1/shelves/404")),
        Box::new(|| get("/api/v1/shelves/1/books?pageSize=3&genre=fiction&select=title")),
        Box::new(|| get("/api/v1/shelves/2/titles")),
        Box::new(|| json_req("POST", "/api/v1/shelves/1/books", r#"{"title":"Dune"}"#)),
        Box::new(|| json_req("POST", "/api/v1/shelves/1/books", r#"{"bogus":1}"#)),
        Box::new(|| req("DELETE", "/api/v1/shelves/1/books/9", Bytes::new())),
        Box::new(|| get("/api/v1/shelves/2/books/5:download")),
        Box::new(|| json_req("POST", "/api/v1/books/1:checkout", "{}")),
        Box::new(|| json_req("POST", "/api/v1/books/2:checkout", "{}")),
        Box::new(|| json_req("POST", "/api/v1/books/3:checkout", "{}")),
        Box::new(|| {
            let mut r = get("/api/v1/echo");
            r.headers_mut()
                .insert("x-request-id", "same".parse().unwrap());
            r.headers_mut()
                .insert("user-agent", "ua/1".parse().unwrap());
            r
        }),
        Box::new(|| {
            multipart(&[
                ("cover", Some(("f.png", "image/png")), b"1234"),
                ("caption", None, b"c"),
            ])
        }),
    ];
    for case in &cases {
        let a = send(&local, case()).await;
        let b = send(&remote, case()).await;
        let strip = |mut r: Reply| {
            r.headers.remove("x-request-id");
            r
        };
        assert_eq!(strip(a), strip(b), "{:?}", case().uri());
    }
}

// ---- OpenAPI ----

#[test]
fn openapi_document_lists_the_routes() {
    let doc = edge().openapi(&transcoder::OpenApiInfo {
        title: "Library".into(),
        version: "1".into(),
    });
    let paths = doc["paths"].as_object().expect("paths");
    assert!(
        paths.keys().any(|p| p.starts_with("/api/v1/shelves")),
        "{:?}",
        paths.keys()
    );
}

// ---- the whole stack over a real socket ----

#[tokio::test]
async fn full_layer_stack_over_http() {
    use http_body_util::{BodyExt, Empty};
    use transcoder::layers::{Metrics, Trace};
    // In the order of the `layers` module docs.
    let app = ServiceBuilder::new()
        .layer(CatchPanic::layer())
        .layer(RequestId::layer())
        .layer(Trace::layer())
        .layer(Metrics::layer())
        .layer(SecurityHeaders::layer(None))
        .layer(Cors::layer(CorsConfig {
            allowed_origins: vec!["https://app.example.com".into()],
            allow_credentials: true,
            max_age: Duration::from_secs(60),
        }))
        .service(edge_with(
            Upstream::channel(channel(serve_grpc().await)),
            |b| b,
        ));
    let addr = serve_http(app).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let response = client
        .get(format!("http://{addr}/api/v1/echo").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["metadata"]["x-forwarded-for"], "127.0.0.1", "{j}");
    assert_eq!(j["metadata"]["x-request-id"], id.as_str());
    // A panic below the stack: 500 in the contract's shape, then business as usual.
    let response = client
        .get(format!("http://{addr}/api/v1/panic").parse().unwrap())
        .await
        .unwrap();
    // Over the network, without `GrpcCatchPanic` on the upstream server, a
    // panic in its handler kills the stream's task: the stream is reset
    // (503) or left open until the edge's deadline (504). Never a hang, and
    // the edge keeps serving. (With `GrpcCatchPanic` it is a 500: see
    // `upstream_panic_behind_grpc_catch_panic_is_500_both_ways`.)
    assert!(
        [503, 504].contains(&response.status().as_u16()),
        "{}",
        response.status()
    );
    let response = client
        .get(format!("http://{addr}/api/v1/shelves/3").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

// ---- metrics ----

mod recorder {
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
        SharedString, Unit,
    };

    /// One counter increment or histogram record: (name, labels, value).
    pub type Sample = (String, Vec<(String, String)>, f64);

    /// Every sample recorded.
    #[derive(Clone, Default)]
    pub struct Captured(pub Arc<Mutex<Vec<Sample>>>);

    struct Handle(Key, Captured);

    impl Handle {
        fn push(&self, v: f64) {
            let labels = self
                .0
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            self.1
                .0
                .lock()
                .unwrap()
                .push((self.0.name().to_owned(), labels, v));
        }
    }

    impl CounterFn for Handle {
        fn increment(&self, value: u64) {
            self.push(value as f64)
        }
        fn absolute(&self, value: u64) {
            self.push(value as f64)
        }
    }

    impl HistogramFn for Handle {
        fn record(&self, value: f64) {
            self.push(value)
        }
    }

    impl Recorder for Captured {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(Arc::new(Handle(key.clone(), self.clone())))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(Arc::new(Handle(key.clone(), self.clone())))
        }
    }
}

#[test]
fn metrics_count_by_matched_route_and_status() {
    use transcoder::layers::Metrics;
    let captured = recorder::Captured::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&captured, || {
        rt.block_on(async {
            let svc = ServiceBuilder::new()
                .layer(Metrics::layer())
                .service(edge());
            send(&svc, get("/api/v1/shelves/7/books/3")).await;
            send(&svc, get("/api/v1/shelves/404")).await;
            send(&svc, get("/api/v1/no/such/thing")).await;
            // Again: the layer registers a label set once and counts it every time.
            send(&svc, get("/api/v1/shelves/7/books/3")).await;
        })
    });
    let seen = captured.0.lock().unwrap().clone();
    let counters: Vec<_> = seen
        .iter()
        .filter(|(n, _, _)| n == "http_requests_total")
        .map(|(_, labels, _)| {
            let get = |k: &str| labels.iter().find(|(lk, _)| lk == k).unwrap().1.clone();
            (get("method"), get("route"), get("status"))
        })
        .collect();
    assert_eq!(counters.len(), 4, "{seen:?}");
    assert_eq!(counters[3], counters[0]);
    assert_eq!(counters[0].0, "GET");
    assert!(
        counters[0].1.contains("{shelf}") && counters[0].1.contains("{book}"),
        "{counters:?}"
    );
    assert_eq!(counters[0].2, "200");
    assert_eq!(counters[1].2, "404");
    assert!(
        counters[1].1.contains("{shelf}"),
        "a service 404 still has its route"
    );
    assert_eq!(
        (counters[2].1.as_str(), counters[2].2.as_str()),
        ("unmatched", "404")
    );
    let histograms = seen
        .iter()
        .filter(|(n, _, _)| n == "http_request_duration_seconds")
        .count();
    assert_eq!(histograms, 4);
}

#[test]
fn the_edge_is_send_sync_clone_and_its_future_send() {
    fn check<T: Send + Sync + Clone + 'static>(_: &T) {}
    fn future_is_send<F: std::future::Future + Send>(_: F) {}
    let e = edge();
    check(&e);
    let mut svc = e.clone();
    future_is_send(tower::Service::call(&mut svc, get("/api/v1/shelves/1")));
}

#[tokio::test]
async fn a_balanced_channel_over_several_addresses_is_one_upstream() {
    let (a, b) = (serve_grpc().await, serve_grpc().await);
    let endpoints = [a, b]
        .map(|addr| tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap());
    let channel = tonic::transport::Channel::balance_list(endpoints.into_iter());
    let e = edge_with(Upstream::channel(channel), |b| b);
    for i in 1..=6 {
        let r = send(&e, get(&format!("/api/v1/shelves/{i}"))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["id"], i);
    }
}

// ---- response memo ----

/// The memo's hits and misses so far.
fn memo_counts(e: &Transcoder) -> (u64, u64) {
    let s = e.response_memo_stats();
    (s.hits, s.misses)
}

#[tokio::test]
async fn the_same_response_twice_is_a_memo_hit_with_the_same_json() {
    let e = edge();
    let first = send(&e, get("/api/v1/shelves/1/books/7")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(memo_counts(&e), (0, 1));
    let second = send(&e, get("/api/v1/shelves/1/books/7")).await;
    assert_eq!(memo_counts(&e), (1, 1));
    assert_eq!(second.status, 200);
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("content-type"), Some("application/json"));
    assert_eq!(second.json()["id"], 7);
    // Per-call headers are not part of what is memoized.
    assert_ne!(second.header("x-request-id"), first.header("x-request-id"));
    assert_eq!(e.response_memo_stats().entries, 1);
}

#[tokio::test]
async fn a_different_response_gets_its_own_json_never_the_memoized_one() {
    let e = edge();
    let seven = send(&e, get("/api/v1/shelves/1/books/7")).await;
    let eight = send(&e, get("/api/v1/shelves/1/books/8")).await;
    assert_eq!(memo_counts(&e), (0, 2));
    assert_eq!(seven.json()["id"], 7);
    assert_eq!(eight.json()["id"], 8);
    assert_eq!(eight.json()["title"], "The Book of 8");
    // Both are held, each under its own bytes.
    let again = send(&e, get("/api/v1/shelves/1/books/8")).await;
    assert_eq!(memo_counts(&e), (1, 2));
    assert_eq!(again.body, eight.body);
    // Another RPC's response is another entry, even on the same shelf.
    let shelf = send(&e, get("/api/v1/shelves/1")).await;
    assert_eq!(shelf.json()["theme"], "shelf-1");
    assert_eq!(memo_counts(&e), (1, 3));
}

#[tokio::test]
async fn a_selected_response_gets_the_selected_json() {
    let e = edge();
    let whole = send(&e, get("/api/v1/shelves/7/books/3")).await;
    assert!(whole.json().get("author").is_some());
    // The same bytes with a selector: not the memoized whole message.
    let selected = send(&e, get("/api/v1/shelves/7/books/3?select=title,price")).await;
    assert_eq!(memo_counts(&e), (0, 2));
    let j = selected.json();
    assert_eq!(j["title"], "The Book of 3");
    assert!(j.get("author").is_none(), "{j}");
    // The same selector again is a hit; another selector is not.
    let again = send(&e, get("/api/v1/shelves/7/books/3?select=title,price")).await;
    assert_eq!(memo_counts(&e), (1, 2));
    assert_eq!(again.body, selected.body);
    let other = send(&e, get("/api/v1/shelves/7/books/3?select=author")).await;
    assert_eq!(memo_counts(&e), (1, 3));
    assert_eq!(other.json()["author"], "Ursula K. Le Guin");
    assert!(other.json().get("title").is_none());
    // And the unselected one is still the whole message.
    let whole_again = send(&e, get("/api/v1/shelves/7/books/3")).await;
    assert_eq!(memo_counts(&e), (2, 3));
    assert_eq!(whole_again.body, whole.body);
}

#[tokio::test]
async fn a_response_over_the_size_limit_is_not_memoized() {
    let e = edge();
    // 6,000 books as the test service makes them: over the 512 KiB limit.
    let uri = "/api/v1/shelves/1/books?pageSize=6000";
    let proto_len = prost::Message::encoded_len(&pb::ListBooksResponse {
        books: (1..=6000)
            .map(|i| pb::Book {
                author: "anon".into(),
                genre: 0,
                tags: vec![],
                ..sample_book(100 + i)
            })
            .collect(),
        total: 600,
    });
    assert!(proto_len > 512 << 10, "{proto_len}");
    let first = send(&e, get(uri)).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["books"].as_array().unwrap().len(), 6000);
    let second = send(&e, get(uri)).await;
    assert_eq!(second.body, first.body);
    let stats = e.response_memo_stats();
    assert_eq!((stats.hits, stats.misses, stats.too_large), (0, 0, 2));
    assert_eq!(stats.entries, 0);
    // A small page of the same RPC is memoized.
    send(&e, get("/api/v1/shelves/1/books?pageSize=3")).await;
    send(&e, get("/api/v1/shelves/1/books?pageSize=3")).await;
    assert_eq!(memo_counts(&e), (1, 1));
}

#[tokio::test]
async fn http_body_responses_are_not_memoized() {
    let e = edge();
    for _ in 0..2 {
        let r = send(&e, get("/api/v1/shelves/1/books/2:download")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "Book 2 of shelf 1\n");
    }
    assert_eq!(
        e.response_memo_stats(),
        transcoder::ResponseMemoStats::default()
    );
}

#[tokio::test]
async fn answers_to_writes_are_not_memoized() {
    let e = edge();
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let r = send(
            &e,
            json_req("POST", "/api/v1/shelves/1/books", r#"{"title":"Dune"}"#),
        )
        .await;
        assert!(r.status < 300, "{}", r.text());
        bodies.push(r.body);
    }
    assert_eq!(bodies[0], bodies[1], "the same answer twice");
    assert_eq!(
        e.response_memo_stats(),
        transcoder::ResponseMemoStats::default()
    );
}

#[tokio::test]
async fn the_status_comes_from_each_call_not_the_memo() {
    // An upstream answering the same message with metadata chosen by the
    // request (its forwarded `x-tenant`): same bytes, different metadata.
    let routes = routes();
    let upstream = tower::service_fn(move |req: http::Request<tonic::body::Body>| {
        use tower::ServiceExt;
        let tenant = req.headers().get("x-tenant").cloned();
        let routes = routes.clone();
        async move {
            let mut response = routes.oneshot(req).await?;
            if let Some(t) = tenant {
                let status = if t == "a" { "203" } else { "202" };
                response
                    .headers_mut()
                    .insert("x-http-status", status.parse().unwrap());
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let e = edge_with(Upstream::in_process(upstream), |b| b);
    let read = |tenant: Option<&str>| {
        let mut r = get("/api/v1/shelves/1/books/7");
        if let Some(t) = tenant {
            r.headers_mut().insert("x-tenant", t.parse().unwrap());
        }
        r
    };
    let plain = send(&e, read(None)).await;
    let a = send(&e, read(Some("a"))).await;
    let b = send(&e, read(Some("b"))).await;
    assert_eq!(memo_counts(&e), (2, 1));
    assert_eq!((plain.status, a.status, b.status), (200, 203, 202));
    assert_eq!(plain.json()["id"], 7);
    assert!(a.body == plain.body && b.body == plain.body);
}

#[tokio::test]
async fn memo_off_gives_the_same_answers() {
    let on = edge();
    let off = edge_with(Upstream::in_process(routes()), |b| b.response_memo_bytes(0));
    let uris = [
        "/api/v1/shelves/1/books/7",
        "/api/v1/shelves/1/books/7",
        "/api/v1/shelves/1/books/8",
        "/api/v1/shelves/7/books/3?select=title,price",
        "/api/v1/shelves/2/titles",
        "/api/v1/shelves/2/titles",
        "/api/v1/shelves/1/books?pageSize=3",
        "/api/v1/shelves/1/books/650",
    ];
    for uri in uris {
        let a = send(&on, get(uri)).await;
        let b = send(&off, get(uri)).await;
        assert_eq!((a.status, &a.body), (b.status, &b.body), "{uri}");
        assert_eq!(a.header("content-type"), b.header("content-type"), "{uri}");
    }
    assert_eq!(memo_counts(&on), (2, 6));
    assert_eq!(
        off.response_memo_stats(),
        transcoder::ResponseMemoStats::default()
    );
}

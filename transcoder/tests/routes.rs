//! The route table against `routing_test.proto`: a table of routing cases, the options read
//! from the descriptors, and the start-up errors.

mod routing_support;

use http::{HeaderName, Method, StatusCode};
use routing_support::{inline_pool, routing_pool};
use transcoder::routes::{BodyRule, RouteError, RouteMatch, RouteTable};

fn table() -> RouteTable {
    RouteTable::from_pool(&routing_pool()).expect("routing_test.proto builds a table")
}

/// What a request should come to.
#[derive(Debug)]
enum Expect {
    /// The RPC's short name and the variables.
    Found(&'static str, &'static [(&'static str, &'static str)]),
    NotAllowed(&'static [&'static str]),
    NotFound,
    BadPath,
}
use Expect::*;

#[test]
fn routing_cases() {
    let table = table();
    let cases: &[(&str, &str, Expect)] = &[
        // Literals win over variables, whatever the declaration order.
        ("GET", "/books", Found("ListBooks", &[])),
        ("GET", "/books/search", Found("SearchBooks", &[])),
        ("GET", "/books/categories", Found("ListCategories", &[])),
        ("GET", "/books/42", Found("GetBook", &[("id", "42")])),
        (
            "GET",
            "/books/searchx",
            Found("GetBook", &[("id", "searchx")]),
        ),
        ("GET", "/books/sea%72ch", Found("SearchBooks", &[])),
        // Backtracking: the literal branch has no DELETE, the variable branch has.
        (
            "DELETE",
            "/books/search",
            Found("DeleteBook", &[("id", "search")]),
        ),
        // Additional bindings.
        (
            "GET",
            "/shelves/s1/books/7",
            Found("GetBook", &[("shelf", "s1"), ("id", "7")]),
        ),
        (
            "PATCH",
            "/books/5",
            Found("UpdateBook", &[("book.id", "5")]),
        ),
        ("PUT", "/books/5", Found("UpdateBook", &[("book.id", "5")])),
        ("POST", "/books", Found("CreateBook", &[])),
        ("DELETE", "/books/5", Found("DeleteBook", &[("id", "5")])),
        // HEAD: an explicit HEAD route wins, otherwise GET routes serve it.
        ("HEAD", "/books/42", Found("CheckBook", &[("id", "42")])),
        ("HEAD", "/books/search", Found("SearchBooks", &[])),
        ("HEAD", "/books", Found("ListBooks", &[])),
        // Verbs are split off only for routes that declare them.
        (
            "POST",
            "/books/5:archive",
            Found("ArchiveBook", &[("id", "5")]),
        ),
        (
            "GET",
            "/books/5:archive",
            Found("GetBook", &[("id", "5:archive")]),
        ),
        (
            "POST",
            "/books/5:publish",
            NotAllowed(&["GET", "HEAD", "PUT", "PATCH", "DELETE"]),
        ),
        (
            "POST",
            "/books/:archive",
            NotAllowed(&["GET", "HEAD", "PUT", "PATCH", "DELETE"]),
        ),
        (
            "GET",
            "/books/:archive",
            Found("GetBook", &[("id", ":archive")]),
        ),
        // Multi-segment variables keep %2F; single-segment ones decode it.
        (
            "GET",
            "/v1/shelves/1/books/2",
            Found("GetShelfBook", &[("name", "shelves/1/books/2")]),
        ),
        (
            "GET",
            "/v1/shelves/1/books/2%2F3",
            Found("GetShelfBook", &[("name", "shelves/1/books/2%2F3")]),
        ),
        (
            "GET",
            "/v1/shelves/a%20b/books/2",
            Found("GetShelfBook", &[("name", "shelves/a b/books/2")]),
        ),
        ("GET", "/v1/shelves/1/books", NotFound),
        ("GET", "/v1/shelves/1/books/2/x", NotFound),
        ("GET", "/books/a%2Fb", Found("GetBook", &[("id", "a/b")])),
        ("GET", "/books/%E2%82%AC", Found("GetBook", &[("id", "€")])),
        // `**`, with and without a verb, and matching zero segments.
        (
            "GET",
            "/v1/operations/a/b/c",
            Found("GetOperation", &[("name", "operations/a/b/c")]),
        ),
        (
            "GET",
            "/v1/operations",
            Found("GetOperation", &[("name", "operations")]),
        ),
        (
            "POST",
            "/v1/operations/a/b:cancel",
            Found("CancelOperation", &[("name", "operations/a/b")]),
        ),
        (
            "GET",
            "/v1/operations/a/b:cancel",
            Found("GetOperation", &[("name", "operations/a/b:cancel")]),
        ),
        ("DELETE", "/v1/operations/a", NotAllowed(&["GET", "HEAD"])),
        ("POST", "/v1/operations/a", NotAllowed(&["GET", "HEAD"])),
        ("GET", "/v1/operations/a//b", NotFound),
        (
            "GET",
            "/files/a/b%2Fc/d.txt",
            Found("DownloadFile", &[("path", "a/b%2Fc/d.txt")]),
        ),
        (
            "GET",
            "/files/%E2%82%AC",
            Found("DownloadFile", &[("path", "€")]),
        ),
        ("GET", "/files", Found("DownloadFile", &[("path", "")])),
        // 405 with the allow list, in a stable order.
        (
            "POST",
            "/books/search",
            NotAllowed(&["GET", "HEAD", "PUT", "PATCH", "DELETE"]),
        ),
        ("OPTIONS", "/books", NotAllowed(&["GET", "HEAD", "POST"])),
        ("GET", "/cache/k1", NotAllowed(&["PURGE"])),
        ("PURGE", "/cache/k1", Found("PurgeCache", &[("key", "k1")])),
        // Custom kinds are real methods: PURGE elsewhere is a 405, not a 404.
        ("PURGE", "/books", NotAllowed(&["GET", "HEAD", "POST"])),
        // Root.
        ("GET", "/", Found("GetRoot", &[])),
        ("GET", "", Found("GetRoot", &[])),
        ("POST", "/", NotAllowed(&["GET", "HEAD"])),
        // Second service.
        (
            "GET",
            "/authors/7",
            Found("GetAuthor", &[("author_id", "7")]),
        ),
        (
            "GET",
            "/authors/7/tree",
            Found("GetAuthorTree", &[("author_id", "7")]),
        ),
        // Strict paths: no trailing slash, no empty segments.
        ("GET", "/books/", NotFound),
        ("GET", "/books//", NotFound),
        ("GET", "//books", NotFound),
        ("GET", "/books/42/", NotFound),
        ("GET", "/nothing", NotFound),
        ("GET", "books", NotFound),
        ("GET", "/authors", NotFound),
        // Malformed escapes and undecodable variables.
        ("GET", "/books/%zz", BadPath),
        ("GET", "/books/%", BadPath),
        ("GET", "/books/%4", BadPath),
        ("GET", "/nothing/%zz", BadPath),
        ("GET", "/books/%FF", BadPath),
        ("GET", "/files/%C3%28", BadPath),
    ];
    let mut failures = Vec::new();
    for (method, path, expect) in cases {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let got = table.match_request(&method, path);
        let ok = match (&got, expect) {
            (RouteMatch::Found { route, vars }, Found(rpc, want)) => {
                route.rpc.name() == *rpc
                    && vars
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect::<Vec<_>>()
                        == *want
            }
            (RouteMatch::MethodNotAllowed { allow }, NotAllowed(want)) => {
                allow.iter().map(Method::as_str).collect::<Vec<_>>() == *want
            }
            (RouteMatch::NotFound, NotFound) => true,
            (RouteMatch::BadPath { message }, BadPath) => !message.is_empty(),
            _ => false,
        };
        if !ok {
            let got = match got {
                RouteMatch::Found { route, vars } => {
                    format!("Found({}, {vars:?})", route.rpc.name())
                }
                other => format!("{other:?}"),
            };
            failures.push(format!("{method} {path:?}: expected {expect:?}, got {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} routing cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn bad_path_messages_say_what_is_wrong() {
    let table = table();
    let RouteMatch::BadPath { message } = table.match_request(&Method::GET, "/books/%zz") else {
        panic!()
    };
    assert!(message.contains("malformed percent escape"), "{message}");
    let RouteMatch::BadPath { message } = table.match_request(&Method::GET, "/books/%FF") else {
        panic!()
    };
    assert!(
        message.contains("`id`") && message.contains("UTF-8"),
        "{message}"
    );
}

#[test]
fn every_annotated_method_and_binding_is_a_route() {
    let table = table();
    let routes: Vec<String> = table
        .routes()
        .iter()
        .map(|r| format!("{} {} {}", r.method, r.pattern, r.rpc.name()))
        .collect();
    assert_eq!(
        routes,
        [
            "GET /books ListBooks",
            "GET /books/search SearchBooks",
            "GET /books/categories ListCategories",
            "GET /books/{id} GetBook",
            "GET /shelves/{shelf}/books/{id} GetBook",
            "HEAD /books/{id} CheckBook",
            "POST /books CreateBook",
            "PATCH /books/{book.id} UpdateBook",
            "PUT /books/{book.id} UpdateBook",
            "DELETE /books/{id} DeleteBook",
            "POST /books/{id}:archive ArchiveBook",
            "GET /v1/{name=shelves/*/books/*} GetShelfBook",
            "GET /v1/{name=operations/**} GetOperation",
            "POST /v1/{name=operations/**}:cancel CancelOperation",
            "GET /files/{path=**} DownloadFile",
            "POST /books/{id}/cover UploadCover",
            "PURGE /cache/{key} PurgeCache",
            "GET / GetRoot",
            "GET /authors/{author_id} GetAuthor",
            "GET /authors/{author_id}/tree GetAuthorTree",
        ]
    );
    assert!(table.routes().iter().all(|r| r.rpc.name() != "Internal"));
}

#[test]
fn options_are_read() {
    let table = table();
    let route = |method: Method, pattern: &str| {
        table
            .routes()
            .iter()
            .find(|r| r.method == method && r.pattern == pattern)
            .unwrap_or_else(|| panic!("{method} {pattern}"))
    };

    let create = route(Method::POST, "/books");
    assert_eq!(create.success_status, StatusCode::CREATED);
    assert_eq!(
        create.response_headers,
        [
            HeaderName::from_static("location"),
            HeaderName::from_static("x-book-version")
        ]
    );
    assert!(matches!(&create.body, BodyRule::Field(f) if f.name() == "book"));
    assert_eq!(
        create.response_body.as_ref().map(|f| f.name()),
        Some("book")
    );

    let delete = route(Method::DELETE, "/books/{id}");
    assert_eq!(delete.success_status, StatusCode::NO_CONTENT);
    assert!(matches!(delete.body, BodyRule::None));
    assert!(delete.response_body.is_none());

    let get = route(Method::GET, "/books/{id}");
    assert_eq!(get.success_status, StatusCode::OK);
    assert!(get.response_headers.is_empty());
    assert_eq!(get.response_body.as_ref().map(|f| f.name()), Some("book"));
    // Additional bindings share the RPC's options and the parent's response_body only if they say so.
    let shelf = route(Method::GET, "/shelves/{shelf}/books/{id}");
    assert_eq!(shelf.rpc.name(), "GetBook");
    assert!(shelf.response_body.is_none());

    assert!(
        matches!(&route(Method::PATCH, "/books/{book.id}").body, BodyRule::Field(f) if f.name() == "book")
    );
    assert!(matches!(
        route(Method::PUT, "/books/{book.id}").body,
        BodyRule::Whole
    ));
    assert_eq!(
        route(Method::PUT, "/books/{book.id}").template.to_string(),
        "/books/{book.id}"
    );

    let cancel = route(Method::POST, "/v1/{name=operations/**}:cancel");
    assert_eq!(cancel.template.verb(), Some("cancel"));
    let download = route(Method::GET, "/files/{path=**}");
    assert_eq!(
        download.response_headers,
        [HeaderName::from_static("content-disposition")]
    );
    assert_eq!(download.success_status, StatusCode::OK);
    assert_eq!(
        route(Method::HEAD, "/books/{id}").success_status,
        StatusCode::NO_CONTENT
    );
}

#[test]
fn a_pool_without_http_annotations_has_no_routes() {
    let table = RouteTable::from_pool(&prost_reflect::DescriptorPool::global()).unwrap();
    assert!(table.routes().is_empty());
    assert!(matches!(
        table.match_request(&Method::GET, "/"),
        RouteMatch::NotFound
    ));
}

fn build_error(body: &str) -> RouteError {
    RouteTable::from_pool(&inline_pool(body)).expect_err("the table should not build")
}

const MESSAGES: &str = r#"
message Req { int64 id = 1; string name = 2; Inner inner = 3; repeated string tags = 4; }
message Inner { string code = 1; Inner next = 2; }
message Resp { Inner inner = 1; }
"#;

#[test]
fn colliding_rules_are_an_error_naming_both() {
    let err = build_error(&format!(
        r#"service S {{
          rpc A(Req) returns (Resp) {{ option (google.api.http) = {{get: "/items/{{id}}"}}; }}
          rpc B(Req) returns (Resp) {{ option (google.api.http) = {{get: "/items/{{name=*}}"}}; }}
        }} {MESSAGES}"#
    ));
    let message = err.to_string();
    assert!(matches!(err, RouteError::Collision { .. }), "{message}");
    for part in [
        "inline.v1.S.A",
        "/items/{id}",
        "inline.v1.S.B",
        "/items/{name=*}",
        "GET",
    ] {
        assert!(message.contains(part), "{part} missing from: {message}");
    }
}

#[test]
fn collisions_through_additional_bindings_and_multi_segment_variables() {
    let err = build_error(&format!(
        r#"service S {{
          rpc A(Req) returns (Resp) {{ option (google.api.http) = {{get: "/a/{{name=x/*}}"}}; }}
          rpc B(Req) returns (Resp) {{ option (google.api.http) = {{
            post: "/b" additional_bindings {{ get: "/a/x/{{id}}" }} }}; }}
        }} {MESSAGES}"#
    ));
    let RouteError::Collision {
        first_rpc,
        first_pattern,
        second_rpc,
        second_pattern,
        ..
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!(
        (first_rpc.as_str(), first_pattern.as_str()),
        ("inline.v1.S.A", "/a/{name=x/*}")
    );
    assert_eq!(
        (second_rpc.as_str(), second_pattern.as_str()),
        ("inline.v1.S.B", "/a/x/{id}")
    );
}

#[test]
fn same_template_with_other_methods_or_verbs_is_not_a_collision() {
    let pool = inline_pool(&format!(
        r#"service S {{
          rpc A(Req) returns (Resp) {{ option (google.api.http) = {{get: "/items/{{id}}"}}; }}
          rpc B(Req) returns (Resp) {{ option (google.api.http) = {{delete: "/items/{{id}}"}}; }}
          rpc C(Req) returns (Resp) {{ option (google.api.http) = {{get: "/items/{{id}}:x"}}; }}
          rpc D(Req) returns (Resp) {{ option (google.api.http) = {{get: "/items/{{id}}/{{name}}"}}; }}
          rpc E(Req) returns (Resp) {{ option (google.api.http) = {{get: "/items/{{name=**}}"}}; }}
        }} {MESSAGES}"#
    ));
    let table = RouteTable::from_pool(&pool).unwrap();
    assert_eq!(table.routes().len(), 5);
    let found = |path: &str| match table.match_request(&Method::GET, path) {
        RouteMatch::Found { route, .. } => route.rpc.name().to_owned(),
        other => format!("{other:?}"),
    };
    assert_eq!(found("/items/1"), "A");
    assert_eq!(found("/items/1:x"), "C");
    assert_eq!(found("/items/1/n"), "D");
    assert_eq!(found("/items/1/n/m"), "E");
}

#[test]
fn bad_rules_are_start_up_errors() {
    let rpc = |rule: &str, rest: &str| {
        format!(
            r#"service S {{ rpc A(Req) returns (Resp) {{ option (google.api.http) = {{{rule}}}; {rest} }} }} {MESSAGES}"#
        )
    };
    let cases: &[(String, &str)] = &[
        (
            rpc(r#"post: "/a" body: "nope""#, ""),
            "body field `nope` is not a field of inline.v1.Req",
        ),
        (
            rpc(r#"get: "/a" response_body: "nope""#, ""),
            "response_body field `nope` is not a field of inline.v1.Resp",
        ),
        (rpc(r#"get: "/a/{nope}""#, ""), "path variable `nope`"),
        (rpc(r#"get: "/a/{tags}""#, ""), "`tags` is repeated"),
        (rpc(r#"get: "/a/{inner}""#, ""), "`inner` is a message"),
        (rpc(r#"get: "/a/{id.x}""#, ""), "`id` is a scalar"),
        (
            rpc(r#"get: "/a/{inner.nope}""#, ""),
            "inline.v1.Inner has no field `nope`",
        ),
        (
            rpc(r#"get: "/a" body: "*""#, ""),
            "GET /a must not have a body",
        ),
        (
            rpc(r#"get: "/a//b""#, ""),
            "invalid path template `/a//b` at byte 3",
        ),
        (rpc(r#"get: "a""#, ""), "must begin with `/`"),
        (
            rpc(r#"custom: {kind: "" path: "/a"}"#, ""),
            "invalid custom HTTP method",
        ),
        (
            rpc(r#"custom: {kind: "NOT A METHOD" path: "/a"}"#, ""),
            "invalid custom HTTP method",
        ),
        (rpc(r#"body: "*""#, ""), "has no pattern"),
        (
            rpc(
                r#"get: "/a" additional_bindings { get: "/b" additional_bindings { get: "/c" } }"#,
                "",
            ),
            "additional_bindings must not contain additional_bindings",
        ),
        (
            rpc(
                r#"get: "/a""#,
                "option (transcoder.v1.rest) = {success_status: 302};",
            ),
            "success_status 302",
        ),
        (
            rpc(
                r#"get: "/a""#,
                "option (transcoder.v1.rest) = {success_status: 1000};",
            ),
            "success_status 1000",
        ),
        (
            rpc(
                r#"get: "/a""#,
                r#"option (transcoder.v1.rest) = {response_headers: ["bad header"]};"#,
            ),
            "\"bad header\" is not a valid header name",
        ),
    ];
    for (source, expected) in cases {
        let message = build_error(source).to_string();
        assert!(
            message.contains("inline.v1.S.A"),
            "rpc missing from: {message}"
        );
        assert!(
            message.contains(expected),
            "expected {expected:?} in: {message}"
        );
    }
}

#[test]
fn nested_variable_paths_through_messages_are_accepted() {
    let pool = inline_pool(&format!(
        r#"service S {{ rpc A(Req) returns (Resp) {{ option (google.api.http) = {{
            get: "/a/{{inner.next.code}}/{{id}}" }}; }} }} {MESSAGES}"#
    ));
    let table = RouteTable::from_pool(&pool).unwrap();
    let RouteMatch::Found { vars, .. } = table.match_request(&Method::GET, "/a/c%3Ad/7") else {
        panic!()
    };
    assert_eq!(
        vars,
        [
            ("inner.next.code".to_owned(), "c:d".to_owned()),
            ("id".to_owned(), "7".to_owned())
        ]
    );
}

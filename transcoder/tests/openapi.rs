//! The OpenAPI document of `routing_test.proto`: its structure, that it documents exactly the
//! routes the table serves, and the schemas by the codec's JSON rules.

mod routing_support;

use std::collections::BTreeSet;

use routing_support::routing_pool;
use serde_json::{Value, json};
use transcoder::openapi::{OpenApiInfo, document};
use transcoder::routes::RouteTable;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc_with_base(base: &str) -> (RouteTable, Value) {
    let table = RouteTable::from_pool(&routing_pool()).unwrap();
    let info = OpenApiInfo {
        title: "Library".into(),
        version: "1.2.3".into(),
    };
    let doc = document(&table, base, &info);
    if let Ok(dir) = std::env::var("OPENAPI_OUT") {
        // For validating with an external tool: OPENAPI_OUT=/tmp cargo test -p transcoder --test openapi
        std::fs::write(
            format!("{dir}/routing_openapi.json"),
            serde_json::to_string_pretty(&doc).unwrap(),
        )
        .unwrap();
    }
    (table, doc)
}

fn doc() -> Value {
    doc_with_base("/api/v1").1
}

/// Every (METHOD, path) operation of the document, duplicates kept.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (key, _) in item.as_object().unwrap() {
            assert!(
                METHODS.contains(&key.as_str()),
                "unexpected key {key} under {path}"
            );
            out.push((key.to_uppercase(), path.clone()));
        }
    }
    out
}

fn op<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "no {method} {path} in {}", doc["paths"]);
    op
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    schema
}

/// The OpenAPI path of a pattern, computed from its text alone (independently of the
/// generator): `{x}` and `{x=*}` / `{x=**}` stay `{x}`; a variable over several segments is
/// written out with its wildcards as `{x}` (one) or `{x_1}`, `{x_2}`, ... (several).
fn expected_path(base: &str, pattern: &str) -> String {
    let mut out = String::from(base);
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = open + rest[open..].find('}').unwrap();
        let inner = &rest[open + 1..close];
        match inner.split_once('=') {
            None => out.push_str(&format!("{{{inner}}}")),
            Some((name, segments)) => {
                let parts: Vec<&str> = segments.split('/').collect();
                let wildcards = parts.iter().filter(|p| p.starts_with('*')).count();
                let mut n = 0;
                let rendered: Vec<String> = parts
                    .iter()
                    .map(|p| {
                        if p.starts_with('*') {
                            n += 1;
                            if wildcards == 1 {
                                format!("{{{name}}}")
                            } else {
                                format!("{{{name}_{n}}}")
                            }
                        } else {
                            (*p).to_owned()
                        }
                    })
                    .collect();
                out.push_str(&rendered.join("/"));
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    if out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    out
}

#[test]
fn routes_served_and_routes_documented_are_the_same_set() {
    let (table, doc) = doc_with_base("/api/v1");
    let documented = operations(&doc);
    let served: Vec<(String, String)> = table
        .routes()
        .iter()
        .filter(|r| METHODS.contains(&r.method.as_str().to_lowercase().as_str()))
        .map(|r| (r.method.to_string(), expected_path("/api/v1", &r.pattern)))
        .collect();
    let documented_set: BTreeSet<_> = documented.iter().cloned().collect();
    let served_set: BTreeSet<_> = served.iter().cloned().collect();
    assert_eq!(documented_set, served_set);
    // Each exactly once.
    assert_eq!(documented.len(), served.len());
    assert_eq!(documented.len(), documented_set.len());
    // The one route left out is the custom method OpenAPI cannot express.
    let left_out: Vec<_> = table
        .routes()
        .iter()
        .filter(|r| !METHODS.contains(&r.method.as_str().to_lowercase().as_str()))
        .collect();
    assert_eq!(left_out.len(), 1);
    assert_eq!(left_out[0].method.as_str(), "PURGE");
}

#[test]
fn document_structure() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["info"],
        json!({ "title": "Library", "version": "1.2.3" })
    );
    assert_eq!(
        doc["tags"],
        json!([
            { "name": "LibraryService", "description": "routing.v1.LibraryService" },
            { "name": "AuthorService", "description": "routing.v1.AuthorService" },
        ])
    );
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with("/api/v1"), "{path}");
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            assert_eq!(op["tags"].as_array().unwrap().len(), 1);
            let responses = op["responses"].as_object().unwrap();
            assert_eq!(responses.len(), 2, "{method} {path}: {responses:?}");
            assert_eq!(
                responses["default"]["content"]["application/json"]["schema"],
                json!({ "$ref": "#/components/schemas/Error" })
            );
            let success = responses.keys().find(|k| *k != "default").unwrap();
            assert!(success.starts_with('2'), "{method} {path}: {success}");
            // Every path template parameter is declared, and nothing else in the path.
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let in_path: BTreeSet<&str> = path
                .split('{')
                .skip(1)
                .map(|s| &s[..s.find('}').unwrap()])
                .collect();
            assert_eq!(declared, in_path, "{method} {path}");
        }
    }
    assert!(ids.contains("LibraryService_GetBook") && ids.contains("LibraryService_GetBook2"));
    assert!(ids.contains("AuthorService_GetAuthor"));
    assert_eq!(
        schema(&doc, "Error"),
        &json!({
            "type": "object",
            "properties": {
                "message": { "type": "string" },
                "status": { "type": "integer", "format": "int32" },
                "code": { "type": "string" },
                "details": { "type": "object" },
            },
            "required": ["message", "status", "code"],
        })
    );
}

#[test]
fn every_reference_resolves() {
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let doc = doc();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling {r}"
        );
    }
    // Component names are valid OpenAPI component keys.
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)),
            "{name}"
        );
    }
}

#[test]
fn paths_and_path_parameters() {
    let doc = doc();
    let get_book = op(&doc, "get", "/api/v1/books/{id}");
    assert_eq!(get_book["operationId"], "LibraryService_GetBook");
    assert_eq!(get_book["tags"], json!(["LibraryService"]));
    assert_eq!(
        get_book["parameters"][0],
        json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer", "format": "int64" } })
    );
    // Dotted field paths.
    let patch = op(&doc, "patch", "/api/v1/books/{book.id}");
    assert_eq!(patch["parameters"][0]["name"], "book.id");
    assert_eq!(
        patch["parameters"][0]["schema"],
        json!({ "type": "integer", "format": "int64" })
    );
    // Multi-segment variables are written out.
    let shelf_book = op(&doc, "get", "/api/v1/v1/shelves/{name_1}/books/{name_2}");
    let names: Vec<&str> = shelf_book["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["name_1", "name_2"]);
    assert!(
        shelf_book["parameters"][0]["description"]
            .as_str()
            .unwrap()
            .contains("shelves/{name_1}/books/{name_2}")
    );
    op(&doc, "get", "/api/v1/v1/operations/{name}");
    op(&doc, "post", "/api/v1/v1/operations/{name}:cancel");
    let file = op(&doc, "get", "/api/v1/files/{path}");
    assert_eq!(file["parameters"][0]["schema"], json!({ "type": "string" }));
    op(&doc, "head", "/api/v1/books/{id}");
    // Root route is the base path.
    op(&doc, "get", "/api/v1");
    // Base path forms.
    let (_, bare) = doc_with_base("");
    op(&bare, "get", "/");
    op(&bare, "get", "/books");
    let (_, sloppy) = doc_with_base("api/v1/");
    op(&sloppy, "get", "/api/v1/books");
}

fn query_names(op: &Value) -> Vec<&str> {
    op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

#[test]
fn query_parameters_are_the_unbound_scalar_fields() {
    let doc = doc();
    let list = op(&doc, "get", "/api/v1/books");
    assert_eq!(
        query_names(list),
        [
            "pageSize",
            "pageToken",
            "filter.author",
            "filter.status",
            "filter.minPrice",
            "filter.pages.min",
            "filter.pages.max",
            "tags",
            "since",
            "readMask"
        ]
    );
    let param = |name: &str| {
        list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        param("pageSize")["schema"],
        json!({ "type": "integer", "format": "int32" })
    );
    assert_eq!(param("pageSize")["required"], false);
    assert_eq!(
        param("filter.status")["schema"],
        json!({ "$ref": "#/components/schemas/routing.v1.BookStatus" })
    );
    assert_eq!(
        param("tags")["schema"],
        json!({ "type": "array", "items": { "type": "string" } })
    );
    assert_eq!(
        param("since")["schema"],
        json!({ "type": "string", "format": "date-time" })
    );

    // Path-bound fields are not query parameters; the other binding binds fewer.
    assert_eq!(
        query_names(op(&doc, "get", "/api/v1/books/{id}")),
        ["shelf"]
    );
    assert!(query_names(op(&doc, "get", "/api/v1/shelves/{shelf}/books/{id}")).is_empty());
    // A body field is not a query parameter; with body "*" nothing is.
    assert_eq!(
        query_names(op(&doc, "patch", "/api/v1/books/{book.id}")),
        ["updateMask"]
    );
    assert!(query_names(op(&doc, "put", "/api/v1/books/{book.id}")).is_empty());
    assert_eq!(
        query_names(op(&doc, "post", "/api/v1/books")),
        ["requestId"]
    );
}

#[test]
fn request_bodies() {
    let doc = doc();
    let body = |method: &str, path: &str| op(&doc, method, path)["requestBody"]["content"].clone();
    assert_eq!(
        body("post", "/api/v1/books")["application/json"],
        json!({ "schema": { "$ref": "#/components/schemas/routing.v1.Book-Input" } })
    );
    assert_eq!(
        body("put", "/api/v1/books/{book.id}"),
        json!({ "application/json": { "schema": { "$ref": "#/components/schemas/routing.v1.UpdateBookRequest-Input" } } })
    );
    assert!(op(&doc, "get", "/api/v1/books")["requestBody"].is_null());
    assert!(op(&doc, "delete", "/api/v1/books/{id}")["requestBody"].is_null());
    // Input schemas require nothing.
    assert!(schema(&doc, "routing.v1.Book-Input")["required"].is_null());
    assert_eq!(
        schema(&doc, "routing.v1.Book-Input")["properties"]["author"],
        json!({ "$ref": "#/components/schemas/routing.v1.Author-Input" })
    );
}

#[test]
fn responses_follow_status_and_response_body() {
    let doc = doc();
    let responses = |method: &str, path: &str| op(&doc, method, path)["responses"].clone();

    let create = responses("post", "/api/v1/books");
    assert_eq!(create["201"]["description"], "Created");
    assert_eq!(
        create["201"]["content"]["application/json"]["schema"],
        json!({ "$ref": "#/components/schemas/routing.v1.Book" })
    );
    let headers: Vec<&String> = create["201"]["headers"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(headers, ["location", "x-book-version"]);

    let delete = responses("delete", "/api/v1/books/{id}");
    assert_eq!(delete["204"], json!({ "description": "No Content" }));

    assert_eq!(
        responses("get", "/api/v1/books/categories")["200"]["content"]["application/json"]["schema"],
        json!({ "type": "array", "items": { "type": "string" } })
    );
    assert_eq!(
        responses("get", "/api/v1/books")["200"]["content"]["application/json"]["schema"],
        json!({ "$ref": "#/components/schemas/routing.v1.ListBooksResponse" })
    );
    // The other binding of GetBook has no response_body: the whole message.
    assert_eq!(
        responses("get", "/api/v1/shelves/{shelf}/books/{id}")["200"]["content"]["application/json"]
            ["schema"],
        json!({ "$ref": "#/components/schemas/routing.v1.GetBookResponse" })
    );
    let file = responses("get", "/api/v1/files/{path}");
    assert_eq!(
        file["200"]["content"],
        json!({ "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } })
    );
    assert!(file["200"]["headers"]["content-disposition"].is_object());
}

#[test]
fn message_schemas_follow_the_codec_json_rules() {
    let doc = doc();
    let book = schema(&doc, "routing.v1.Book");
    let props = &book["properties"];
    let expect = json!({
        "id": { "type": "integer", "format": "int64" },
        "title": { "type": "string" },
        "price": { "type": "number", "format": "double" },
        "status": { "$ref": "#/components/schemas/routing.v1.BookStatus" },
        "tags": { "type": "array", "items": { "type": "string" } },
        "publishedAt": { "type": "string", "format": "date-time" },
        "subtitle": { "type": "string" },
        "edition": { "type": "integer", "format": "int32" },
        "cover": { "type": "string", "contentEncoding": "base64" },
        "stockByStore": { "type": "object", "additionalProperties": { "type": "integer", "format": "int32" } },
        "author": { "$ref": "#/components/schemas/routing.v1.Author" },
        "attributes": { "type": "object" },
        "extra": {},
        "genre": { "$ref": "#/components/schemas/routing.v1.Genre" },
        "isbn13": { "type": "integer", "format": "uint64", "minimum": 0 },
        "rating": { "type": "number", "format": "float" },
        "inPrint": { "type": "boolean" },
        "ebookUrl": { "type": "string" },
        "pages": { "type": "integer", "format": "int32" },
    });
    assert_eq!(props, &expect);
    // Responses: every field the codec always writes; not optional, message, oneof or enum fields.
    assert_eq!(
        book["required"],
        json!([
            "id",
            "title",
            "price",
            "tags",
            "cover",
            "stockByStore",
            "isbn13",
            "rating",
            "inPrint"
        ])
    );
    assert_eq!(book["type"], "object");
}

#[test]
fn enums_are_strings_named_by_the_rule() {
    let doc = doc();
    assert_eq!(
        schema(&doc, "routing.v1.BookStatus"),
        &json!({ "type": "string", "title": "BookStatus", "enum": ["available", "on_loan", "lost"] })
    );
    // Values without the enum's prefix are only lower-cased.
    assert_eq!(
        schema(&doc, "routing.v1.Genre")["enum"],
        json!(["fiction", "non_fiction"])
    );
}

#[test]
fn recursive_messages_use_references() {
    let doc = doc();
    let tree = schema(&doc, "routing.v1.AuthorTree");
    assert_eq!(
        tree["properties"]["mentor"],
        json!({ "$ref": "#/components/schemas/routing.v1.AuthorTree" })
    );
    assert_eq!(
        tree["properties"]["students"],
        json!({ "type": "array", "items": { "$ref": "#/components/schemas/routing.v1.AuthorTree" } })
    );
    assert_eq!(tree["required"], json!(["students"]));
}

#[test]
fn document_is_deterministic() {
    assert_eq!(doc(), doc());
}

#[test]
fn routes_that_would_share_an_openapi_path_stay_apart() {
    let pool = routing_support::inline_pool(
        r#"service S {
          rpc A(Req) returns (Req) { option (google.api.http) = {get: "/f/{p}"}; }
          rpc B(Req) returns (Req) { option (google.api.http) = {get: "/f/{p=**}"}; }
          rpc C(Req) returns (Req) { option (google.api.http) = {get: "/x/*/y/**"}; }
          rpc D(Req) returns (Req) { option (google.api.http) = {get: "/z/{p=a/*}/{q}"}; }
        }
        message Req { string p = 1; string q = 2; }"#,
    );
    let table = RouteTable::from_pool(&pool).unwrap();
    let doc = document(
        &table,
        "/",
        &OpenApiInfo {
            title: "t".into(),
            version: "v".into(),
        },
    );
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(
        paths,
        [
            "/f/{p_alt2}",
            "/f/{p}",
            "/x/{wildcard1}/y/{wildcard2}",
            "/z/a/{p}/{q}"
        ]
    );
    assert_eq!(op(&doc, "get", "/f/{p_alt2}")["operationId"], "S_B");
    let c = op(&doc, "get", "/x/{wildcard1}/y/{wildcard2}");
    assert_eq!(
        c["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "path")
            .count(),
        2
    );
    // Fields bound by the path are not query parameters, anonymous wildcards bind none.
    assert_eq!(query_names(c), ["p", "q"]);
    assert!(query_names(op(&doc, "get", "/z/a/{p}/{q}")).is_empty());
}

#[test]
fn bodies_with_a_bytes_field_also_take_multipart() {
    let doc = doc();
    let content = &op(&doc, "post", "/api/v1/books/{id}/cover")["requestBody"]["content"];
    assert_eq!(
        content["application/json"]["schema"],
        json!({ "$ref": "#/components/schemas/routing.v1.UploadCoverRequest-Input" })
    );
    let form = &content["multipart/form-data"];
    // The file part; its content type and file name come from the part, not from fields.
    assert_eq!(
        form["schema"]["properties"],
        json!({
            "id": { "type": "integer", "format": "int64" },
            "cover": { "type": "string", "contentMediaType": "application/octet-stream" },
            "caption": { "type": "string" },
            "tags": { "type": "array", "items": { "type": "string" } },
        })
    );
    assert_eq!(
        form["encoding"],
        json!({ "cover": { "contentType": "*/*" } })
    );
    // A body field whose message has a bytes field takes multipart too; others do not.
    assert!(
        op(&doc, "post", "/api/v1/books")["requestBody"]["content"]["multipart/form-data"]
            .is_object()
    );
    assert!(
        op(&doc, "put", "/api/v1/books/{book.id}")["requestBody"]["content"]["multipart/form-data"]
            .is_null()
    );
}

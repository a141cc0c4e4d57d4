//! Route matching speed: `cargo bench -p transcoder --bench routing`.

#[path = "../tests/routing_support/mod.rs"]
mod routing_support;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::Method;
use transcoder::routes::RouteTable;

fn matching(c: &mut Criterion) {
    let table = RouteTable::from_pool(&routing_support::routing_pool()).expect("table builds");
    let cases = [
        ("literal", Method::GET, "/books/search"),
        ("variable", Method::GET, "/books/42"),
        ("backtrack", Method::DELETE, "/books/search"),
        ("multi_segment", Method::GET, "/v1/shelves/1/books/2"),
        (
            "double_wildcard_verb",
            Method::POST,
            "/v1/operations/a/b/c:cancel",
        ),
        ("escaped", Method::GET, "/books/a%2Fb"),
        ("not_found", Method::GET, "/nothing/here"),
        ("method_not_allowed", Method::POST, "/books/42"),
    ];
    let mut group = c.benchmark_group("match_request");
    for (name, method, path) in cases {
        group.bench_function(name, |b| {
            b.iter(|| black_box(table.match_request(black_box(&method), black_box(path))))
        });
    }
    group.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);

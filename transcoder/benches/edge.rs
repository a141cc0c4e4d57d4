//! Per-request cost of the edge: the same unary RPC (`GetBook`, a
//! product-sized message) called
//!
//! * directly over gRPC with the generated client (`grpc_direct`),
//! * through the edge over HTTP/1.1 with a hyper client, the edge calling
//!   the gRPC server over a loopback channel (`edge_http1_channel`): the
//!   deployment where the edge is its own process,
//! * the same with the service in the edge's process (`edge_http1_in_process`),
//!
//! all against real loopback servers, in one run. After criterion's groups
//! it prints a plain sequential-latency comparison and the ratios.
//!
//! A second group (`response_memo`) calls an in-process edge as a tower
//! service (no socket, so that the transcoding is a larger share of what
//! is measured) with the response memo on and off, for a product
//! (`GetBook`) and a 20-item listing (`ListBooks`), and prints the same
//! interleaved comparison.

#[path = "../tests/library/mod.rs"]
mod library;

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use library::pb::GetBookRequest;
use library::pb::library_service_client::LibraryServiceClient;
use tower::ServiceExt;
use transcoder::{Transcoder, Upstream};

struct Setup {
    grpc: LibraryServiceClient<tonic::transport::Channel>,
    http: Client<HttpConnector, Empty<Bytes>>,
    edge_channel: String,
    edge_local: String,
}

async fn setup() -> Setup {
    let grpc_addr = library::serve_grpc().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap();
    let edge_remote = library::edge_with(Upstream::channel(channel.clone()), |b| {
        b.timeout(Duration::from_secs(5))
    });
    let edge_local = library::edge_with(Upstream::in_process(library::routes()), |b| {
        b.timeout(Duration::from_secs(5))
    });
    let remote_addr = library::serve_http(edge_remote).await;
    let local_addr = library::serve_http(edge_local).await;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Setup {
        grpc: LibraryServiceClient::new(channel),
        http: Client::builder(TokioExecutor::new()).build(connector),
        edge_channel: format!("http://{remote_addr}/api/v1/shelves/1/books/7"),
        edge_local: format!("http://{local_addr}/api/v1/shelves/1/books/7"),
    }
}

async fn grpc_call(s: &Setup) {
    let book = s
        .grpc
        .clone()
        .get_book(GetBookRequest { shelf: 1, book: 7 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(book.id, 7);
}

async fn http_call(s: &Setup, uri: &str) {
    let response = s.http.get(uri.parse().unwrap()).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.len() > 100);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(setup());
    let mut group = c.benchmark_group("get_book");
    group.bench_function("grpc_direct", |b| b.to_async(&rt).iter(|| grpc_call(&s)));
    group.bench_function("edge_http1_channel", |b| {
        b.to_async(&rt).iter(|| http_call(&s, &s.edge_channel))
    });
    group.bench_function("edge_http1_in_process", |b| {
        b.to_async(&rt).iter(|| http_call(&s, &s.edge_local))
    });
    group.finish();

    // Side by side, interleaved so that machine noise hits all three alike.
    let rounds = 20;
    let per_round = 200;
    let mut totals = [Duration::ZERO; 3];
    rt.block_on(async {
        for _ in 0..rounds {
            let t = Instant::now();
            for _ in 0..per_round {
                grpc_call(&s).await;
            }
            totals[0] += t.elapsed();
            let t = Instant::now();
            for _ in 0..per_round {
                http_call(&s, &s.edge_channel).await;
            }
            totals[1] += t.elapsed();
            let t = Instant::now();
            for _ in 0..per_round {
                http_call(&s, &s.edge_local).await;
            }
            totals[2] += t.elapsed();
        }
    });
    let n = (rounds * per_round) as u32;
    let [direct, channel, local] = totals.map(|t| t / n);
    println!("\nsequential mean latency over {n} calls each:");
    println!("  grpc_direct            {direct:>10.1?}");
    println!(
        "  edge_http1_channel     {channel:>10.1?}  ratio {:.2}",
        channel.as_secs_f64() / direct.as_secs_f64()
    );
    println!(
        "  edge_http1_in_process  {local:>10.1?}  ratio {:.2}",
        local.as_secs_f64() / direct.as_secs_f64()
    );
}

const MEMO_URIS: [(&str, &str); 2] = [
    ("get_book", "/api/v1/shelves/1/books/7"),
    ("list_books_20", "/api/v1/shelves/1/books?pageSize=20"),
];

/// One request straight into the edge service; the body read to the end.
async fn edge_call(edge: &Transcoder, uri: &str) {
    let req = http::Request::get(uri).body(Empty::<Bytes>::new()).unwrap();
    let response = edge.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.len() > 100);
}

fn bench_memo(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let edge = |memo_bytes: usize| {
        library::edge_with(Upstream::in_process(library::routes()), |b| {
            b.timeout(Duration::from_secs(5))
                .response_memo_bytes(memo_bytes)
        })
    };
    let on = edge(16 << 20);
    let off = edge(0);
    let mut group = c.benchmark_group("response_memo");
    for (name, uri) in MEMO_URIS {
        group.bench_function(format!("{name}/memo_on"), |b| {
            b.to_async(&rt).iter(|| edge_call(&on, uri))
        });
        group.bench_function(format!("{name}/memo_off"), |b| {
            b.to_async(&rt).iter(|| edge_call(&off, uri))
        });
    }
    group.finish();

    // Interleaved, as above.
    let rounds = 20;
    let per_round = 500;
    println!("\nsequential mean latency, in-process edge, memo on vs off:");
    for (name, uri) in MEMO_URIS {
        let mut totals = [Duration::ZERO; 2];
        rt.block_on(async {
            for _ in 0..rounds {
                for (total, edge) in totals.iter_mut().zip([&on, &off]) {
                    let t = Instant::now();
                    for _ in 0..per_round {
                        edge_call(edge, uri).await;
                    }
                    *total += t.elapsed();
                }
            }
        });
        let n = (rounds * per_round) as u32;
        let [memo_on, memo_off] = totals.map(|t| t / n);
        println!(
            "  {name:<14} memo_on {memo_on:>9.1?}  memo_off {memo_off:>9.1?}  on/off {:.2}",
            memo_on.as_secs_f64() / memo_off.as_secs_f64()
        );
    }
    let stats = on.response_memo_stats();
    println!(
        "  memo: {} hits, {} misses, {} entries, {} bytes",
        stats.hits, stats.misses, stats.entries, stats.bytes
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(5));
    targets = bench, bench_memo
}
criterion_main!(benches);

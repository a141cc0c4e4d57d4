//! The REST edge's share of this machine's ceiling, measured from outside (issue #16, target 1):
//! the cached `GET /api/v1/products/1` through the real system (every service and the edge in
//! one process, release build, real PostgreSQL and Redis) against a bare hyper server answering
//! the same status, headers and body, both loaded by wrk as a separate process. The two are
//! loaded in alternation, round after round, and each round prints both figures and their
//! ratio; last comes the median ratio (these machines are noisy: slices taken back to back see
//! the same neighbours).
//!
//! `cargo bench --bench edge` — settings from the environment:
//! BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/ecom_bench_edge; created and
//! seeded with BENCH_PRODUCTS products, 1000, when empty), REDIS_URL (redis://127.0.0.1:6379),
//! BENCH_PATH (the path under the API base path, /products/1), BENCH_ROUNDS (3),
//! BENCH_SECONDS per side and round (5), BENCH_CONNECTIONS (64), BENCH_THREADS (wrk's, 1),
//! BENCH_WRK (the wrk binary, wrk).
//!
//! BENCH_SERVE=N: start both servers, print their URLs, serve for N seconds and stop, for a
//! profiler attached from outside (docs/BENCHMARKS.md shows the perf and callgrind commands).
//!
//! BENCH_DUMMYJSON=URL (issue #16, target 2): then, for each of [`DUMMYJSON_PATHS`], the edge
//! against a DummyJSON server at URL on the same path and query, in alternation the same way,
//! printing the ratio edge / DummyJSON; and first the same for a bare hyper server answering
//! the edge's bytes, the most any server could reach on the machine. DummyJSON is not part of
//! this repository: run it beside the bench (docs/BENCHMARKS.md says how it was run). Both are
//! sent `X-Forwarded-Proto: https`, since DummyJSON in production mode redirects plain HTTP.

// The allocator of the `ecom` binary (services/main.rs), so the app measured here allocates as it
// does in production; the ceiling shares it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

mod support;
use support::{bench_settings, ceiling, env, start_instance};

/// The paths (under the API base path) of the comparison with DummyJSON: a list page, a
/// search as the issue measured it (DummyJSON's default page holds 30 products, ecom's 10,
/// so its answer is larger), the same search with ecom's page size, and a product.
const DUMMYJSON_PATHS: &[&str] = &[
    "/products?limit=10",
    "/products/search?q=phone",
    "/products/search?q=phone&limit=10",
    "/products/1",
];

/// Sent to both sides: DummyJSON in production mode redirects a request that did not come
/// over HTTPS (as its proxy tells it); the edge ignores it.
const FORWARDED_PROTO: (&str, &str) = ("x-forwarded-proto", "https");

/// What wrk measured in one run.
struct WrkRun {
    requests_per_second: f64,
    /// Non-2xx answers and socket errors: any makes the run's figure meaningless.
    failures: String,
}

/// Runs wrk against `url` and reads its summary.
fn wrk(url: &str, seconds: u64) -> WrkRun {
    let program = std::env::var("BENCH_WRK").unwrap_or_else(|_| "wrk".to_owned());
    let output = Command::new(&program)
        .arg(format!("-t{}", env("BENCH_THREADS", 1u32)))
        .arg(format!("-c{}", env("BENCH_CONNECTIONS", 64u32)))
        .arg(format!("-d{seconds}s"))
        .arg("-H")
        .arg(format!("{}: {}", FORWARDED_PROTO.0, FORWARDED_PROTO.1))
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("running {program} (apt-get install -y wrk): {e}"));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed: {text}");
    let requests_per_second = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output: {text}"));
    let failures = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Non-2xx") || l.starts_with("Socket errors"))
        .collect::<Vec<_>>()
        .join("; ");
    WrkRun {
        requests_per_second,
        failures,
    }
}

/// The edge's answer: status, headers and body.
async fn fetch(url: &str) -> (http::StatusCode, http::HeaderMap, Bytes) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let request = http::Request::get(url)
        .header(FORWARDED_PROTO.0, FORWARDED_PROTO.1)
        .body(Full::default())
        .unwrap();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, body)
}

/// Both servers, started: the edge's URL and the ceiling's, for the same path.
struct Servers {
    /// The edge's REST base URL (`http://addr/api/v1`).
    rest: String,
    edge: String,
    ceiling: String,
    body: Bytes,
    headers: usize,
}

/// A bare hyper server answering what the edge answers at `edge` (which this fills the caches
/// of): its URL for the same path, the answer's body and how many headers it has besides
/// content-length and date (hyper writes those for both).
async fn ceiling_for(edge: &str) -> (String, Bytes, usize) {
    fetch(edge).await;
    let (status, mut headers, body) = fetch(edge).await;
    assert!(status.is_success(), "{edge} answered {status}");
    headers.remove(http::header::CONTENT_LENGTH);
    headers.remove(http::header::DATE);
    let count = headers.len();
    let url: http::Uri = edge.parse().unwrap();
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let addr = ceiling(headers, body.clone()).await;
    (format!("http://{addr}{path}"), body, count)
}

async fn start() -> Servers {
    let database_url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/ecom_bench_edge".to_owned());
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let settings = bench_settings(&database_url, "", &redis, "ecom-bench-edge:");
    let rest = start_instance(&settings).await;
    let db = sqlx::PgPool::connect(&database_url).await.unwrap();
    ecom::catalog::seed::seed_demo_catalog(&db, env("BENCH_PRODUCTS", 1000))
        .await
        .unwrap();
    let under_base = std::env::var("BENCH_PATH").unwrap_or_else(|_| "/products/1".to_owned());
    let edge = format!("{rest}{under_base}");

    let (ceiling, body, count) = ceiling_for(&edge).await;
    Servers {
        rest,
        edge,
        ceiling,
        body,
        headers: count,
    }
}

/// Loads `other` and `ours` (the side called `name`) in alternation, `rounds` times for
/// `seconds` each (`other` first), printing each round's figures and ratio ours / other, then
/// the median ratio.
fn compare(other_name: &str, other: &str, name: &str, ours: &str, rounds: usize, seconds: u64) {
    // Warm-up: connections, the allocator's pools, the CPU's caches.
    wrk(other, 1);
    wrk(ours, 1);
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let theirs = wrk(other, seconds);
        let mine = wrk(ours, seconds);
        let ratio = mine.requests_per_second / theirs.requests_per_second;
        println!(
            "round {round}: {other_name} {:>9.0} req/s   {name} {:>9.0} req/s   {name}/{other_name} {ratio:.3}",
            theirs.requests_per_second, mine.requests_per_second
        );
        for (side, run) in [(other_name, &theirs), (name, &mine)] {
            if !run.failures.is_empty() {
                println!("  {side}: {}", run.failures);
            }
        }
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "{name}/{other_name}: median {:.3} of {rounds} rounds (range {:.3}-{:.3})\n",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The servers run on the runtime's workers; wrk is driven from this thread.
    let servers = runtime.block_on(start());
    println!("edge:    {}", servers.edge);
    println!("ceiling: {}", servers.ceiling);
    if let Ok(serve) = std::env::var("BENCH_SERVE") {
        std::thread::sleep(Duration::from_secs(serve.parse().unwrap_or(60)));
        return;
    }

    let (rounds, seconds) = (
        env("BENCH_ROUNDS", 3usize).max(1),
        env("BENCH_SECONDS", 5u64),
    );
    println!(
        "wrk -t{} -c{} -d{seconds}s, {rounds} rounds, ceiling then edge; answer {} bytes, {} headers \
         besides content-length and date\n",
        env("BENCH_THREADS", 1u32),
        env("BENCH_CONNECTIONS", 64u32),
        servers.body.len(),
        servers.headers,
    );
    compare(
        "ceiling",
        &servers.ceiling,
        "edge",
        &servers.edge,
        rounds,
        seconds,
    );
    // The cached answer must not have changed under the load (a write would make the edge
    // transcode again and the two sides answer different bytes).
    let (_, _, after) = runtime.block_on(fetch(&servers.edge));
    assert_eq!(
        after, servers.body,
        "the edge's answer changed during the run"
    );

    if let Ok(dummyjson) = std::env::var("BENCH_DUMMYJSON") {
        for path in DUMMYJSON_PATHS {
            let (ours, theirs) = (
                format!("{}{path}", servers.rest),
                format!("{dummyjson}{path}"),
            );
            // Each answers the path before it is loaded (and the edge's caches fill). The
            // ceiling answering the edge's bytes is the most any server could do here: when
            // it is not 20 times DummyJSON either, the target cannot be met on this machine.
            let (top, body, _) = runtime.block_on(ceiling_for(&ours));
            let (status, _, theirs_body) = runtime.block_on(fetch(&theirs));
            assert!(status.is_success(), "{theirs} answered {status}");
            println!(
                "{path}: edge {} bytes, DummyJSON {} bytes (each its own catalog)",
                body.len(),
                theirs_body.len()
            );
            compare("dummyjson", &theirs, "ceiling", &top, rounds, seconds);
            compare("dummyjson", &theirs, "edge", &ours, rounds, seconds);
        }
    }
}

//! Searches nobody made before (issue #16, target 3): PostgreSQL's full text (SEARCH_INDEX=false,
//! the SQL search) against the catalog's search index (services/catalog/search_index.rs), side
//! by side in one run on one database, through the REST edge.
//!
//! Two instances run at once on BENCH_DATABASE_URL, one per engine, each with its own cache
//! prefix. For each of 40 distinct words of the catalog's titles (the words of `benches/load.rs`),
//! one request at a time and never the same URL twice (an unknown word ORed in, salted with the
//! process id, so no page comes from a cache), four searches go to each instance in turn (the
//! order alternating per word): by relevance, and sorted by price, by rating (desc) and by
//! title. Every pair of answers must agree on `total`, which the bench checks: both are exact.
//!
//! `cargo bench --bench search` — settings from the environment: BENCH_DATABASE_URL (default
//! postgres://postgres@127.0.0.1:5432/ecom_bench), BENCH_PRODUCTS (catalog size, seeded once per
//! database; default 10000), REDIS_URL (redis://127.0.0.1:6379). For the figures of the issue:
//! a private PostgreSQL with its default shared_buffers (128 MB) and BENCH_PRODUCTS=1000000
//! (docs/BENCHMARKS.md says how it was run).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

// The ceiling is edge.rs's and load.rs's; this bench needs the settings, `env` and `start_instance` only.
#[allow(dead_code)]
mod support;
use support::{bench_settings, env, start_instance};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

/// An instance on `database_url`: loopback, free ports, no rate limits, no seeding, the search
/// index on or off.
async fn instance(database_url: &str, redis: &str, prefix: &str, index: bool) -> String {
    let mut settings = bench_settings(database_url, "", redis, prefix);
    settings.search_index = index;
    start_instance(&settings).await
}

/// GET `url`: the answer's `total` and how long it took.
async fn total_of(client: &HttpClient, url: &str) -> (i64, Duration) {
    let started = Instant::now();
    let response = client.get(url.parse().unwrap()).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let elapsed = started.elapsed();
    assert!(status.is_success(), "GET {url}: {status}");
    let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
    (page["total"].as_i64().unwrap(), elapsed)
}

/// This process's resident memory (VmRSS, Linux), in MB; 0 where there is no /proc.
fn resident_mb() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<i64>().ok()
        })
        .map_or(0, |kb| kb / 1024)
}

fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap()
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn run() {
    let database_url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/ecom_bench".to_owned());
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let products: usize = env("BENCH_PRODUCTS", 10_000);

    // The SQL instance migrates the database before the seeding; the index instance starts
    // after it, so its first catch-up builds the index of the whole catalog.
    let sql = instance(&database_url, &redis, "ecom-bench-search-sql:", false).await;
    let db = sqlx::PgPool::connect(&database_url).await.unwrap();
    let seeding = Instant::now();
    ecom::catalog::seed::seed_demo_catalog(&db, products)
        .await
        .unwrap();
    let (count, table, buffers): (i64, String, String) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM products), pg_size_pretty(pg_table_size('products')),
                current_setting('shared_buffers')",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    println!(
        "catalog: {count} products, {table} on disk, PostgreSQL shared_buffers {buffers} \
         (seeding took {:.1?} if it ran)",
        seeding.elapsed()
    );
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let resident_before = resident_mb();
    let building = Instant::now();
    let index = instance(&database_url, &redis, "ecom-bench-search-index:", true).await;
    // The follower starts building at once; until it is done, PostgreSQL answers searches.
    let mut warm = 0;
    loop {
        warm += 1;
        let url = format!(
            "{index}/products/search?q=zzwarmup{}x{warm}",
            std::process::id()
        );
        let started = Instant::now();
        let answered = client.get(url.parse().unwrap()).await.unwrap();
        let ok = answered.status().is_success();
        answered.into_body().collect().await.unwrap();
        // A nonsense word: PostgreSQL's typo fallback scans every title (seconds), the index
        // answers in milliseconds.
        if ok && started.elapsed() < Duration::from_millis(200) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "search index: built and first search answered in {:.1?}; this process's resident \
         memory grew by {} MB (the index instance and its index)",
        building.elapsed(),
        resident_mb() - resident_before
    );

    let words: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT lower(split_part(title, ' ', 2)) AS w
         FROM (SELECT title FROM products ORDER BY id DESC LIMIT 5000) t
         WHERE length(split_part(title, ' ', 2)) > 3 ORDER BY w LIMIT 40",
    )
    .fetch_all(&db)
    .await
    .unwrap();

    let scenarios = [
        ("relevance", ""),
        ("sortBy=price", "&sortBy=price"),
        ("sortBy=rating desc", "&sortBy=rating&order=desc"),
        ("sortBy=title", "&sortBy=title"),
    ];
    let mut sql_times: Vec<Histogram<u64>> = scenarios.iter().map(|_| histogram()).collect();
    let mut index_times: Vec<Histogram<u64>> = scenarios.iter().map(|_| histogram()).collect();
    let mut disagreements = Vec::new();
    let mut hits = histogram();
    let salt = std::process::id();
    for (n, word) in words.iter().enumerate() {
        let q: String = percent_encoding::utf8_percent_encode(
            &format!("{word} or zz{salt}"),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        for (s, (_, params)) in scenarios.iter().enumerate() {
            let path = format!("/products/search?q={q}{params}");
            let (sql_answer, index_answer) = if n % 2 == 0 {
                let a = total_of(&client, &format!("{sql}{path}")).await;
                (a, total_of(&client, &format!("{index}{path}")).await)
            } else {
                let b = total_of(&client, &format!("{index}{path}")).await;
                (total_of(&client, &format!("{sql}{path}")).await, b)
            };
            sql_times[s]
                .record(sql_answer.1.as_micros().max(1) as u64)
                .unwrap();
            index_times[s]
                .record(index_answer.1.as_micros().max(1) as u64)
                .unwrap();
            if s == 0 {
                hits.record(sql_answer.0.max(1) as u64).unwrap();
            }
            if sql_answer.0 != index_answer.0 {
                disagreements.push(format!(
                    "{word} {params}: SQL {} against index {}",
                    sql_answer.0, index_answer.0
                ));
            }
        }
    }
    println!(
        "\n{} distinct words, one request at a time, none asked before; hits per word: \
         min {} p50 {} max {}\n",
        words.len(),
        hits.min(),
        hits.value_at_quantile(0.5),
        hits.max()
    );
    println!(
        "{:<22} {:>24} {:>24} {:>8}",
        "GET /products/search", "SQL p50 / p99 ms", "index p50 / p99 ms", "p99 x"
    );
    for (s, (name, _)) in scenarios.iter().enumerate() {
        let (a, b) = (&sql_times[s], &index_times[s]);
        println!(
            "{:<22} {:>11.1} / {:>10.1} {:>11.1} / {:>10.1} {:>8.1}",
            name,
            ms(a, 0.5),
            ms(a, 0.99),
            ms(b, 0.5),
            ms(b, 0.99),
            ms(a, 0.99) / ms(b, 0.99)
        );
    }
    if disagreements.is_empty() {
        println!("\ntotals: every answer of the index equals the SQL search's");
    } else {
        println!("\ntotals: {} disagreements", disagreements.len());
        for d in disagreements.iter().take(20) {
            println!("  {d}");
        }
    }
}

//! Soak: SOAK_CLIENTS closed-loop clients (default 64) for SOAK_SECONDS (default 300) against
//! a running ecom (normally the mesh that `scripts/soak.sh` starts), mixing browse, search,
//! product reads, logins, cart writes and checkouts on a few hot products with little stock,
//! so that contention is real. It reports p50/p99 per route, and fails (exit 1) on any 5xx,
//! an oversold unit, or an order the database has and no client was told of (or the reverse).
//!
//! Settings: SOAK_URL (http://127.0.0.1:3000/api/v1), SOAK_DATABASE_URL (the mesh's
//! database), JWT_SECRET (the mesh's), SOAK_PIDS (space-separated pids whose RSS is read at
//! minute 1 and at the end), SOAK_HOT_STOCK (stock of each of the 5 hot products, 300).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ecom::clock::Clock;
use ecom::config::Settings;
use ecom::tokens::{Role, Tokens};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Latencies and outcomes of one route.
struct Route {
    histogram: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
}

type Stats = Arc<Mutex<BTreeMap<&'static str, Route>>>;

/// Resident memory of a process, in KiB.
fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn rss_all(pids: &[String]) -> Vec<(String, Option<u64>)> {
    pids.iter().map(|p| (p.clone(), rss_kib(p))).collect()
}

const WORDS: [&str; 8] = [
    "phone", "laptop", "cream", "perfume", "watch", "shoes", "almonds", "lamp",
];

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let base = std::env::var("SOAK_URL").unwrap_or_else(|_| "http://127.0.0.1:3000/api/v1".into());
    let database_url = std::env::var("SOAK_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/ecom".into());
    let clients: usize = env("SOAK_CLIENTS", 64);
    let seconds: u64 = env("SOAK_SECONDS", 300);
    let hot_stock: i32 = env("SOAK_HOT_STOCK", 300);
    let pids: Vec<String> = std::env::var("SOAK_PIDS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let secret = std::env::var("JWT_SECRET").expect("JWT_SECRET of the mesh");
    let settings = Settings::for_tests(&["--jwt-secret", &secret]).unwrap();
    let tokens = Tokens::new(
        settings.jwt_secret(),
        &settings.jwt_issuer,
        &settings.jwt_audience,
        Duration::from_secs(3600),
        Clock::system(),
    );

    // Five hot products with little stock; their orders start from nothing.
    let db = sqlx::PgPool::connect(&database_url).await.unwrap();
    let hot: Vec<i64> = sqlx::query_scalar(
        "UPDATE products SET stock = $1 WHERE id IN (SELECT id FROM products WHERE deleted_at IS NULL ORDER BY id LIMIT 5) RETURNING id",
    )
    .bind(hot_stock)
    .fetch_all(&db)
    .await
    .unwrap();
    let first_buyer: i64 = 5_000_000 + i64::from(rand::rng().random::<u16>()) * 1_000;

    let stats: Stats = Arc::default();
    let created = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for n in 0..clients {
        let (http, base, stats, created, hot) = (
            http.clone(),
            base.clone(),
            stats.clone(),
            created.clone(),
            hot.clone(),
        );
        let user = first_buyer + n as i64;
        let (token, _) = tokens.mint(user, &format!("soak{user}@soak.test"), Role::User, None);
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
            while Instant::now() < deadline {
                let roll = rng.random_range(0..100);
                let hot_id = hot[rng.random_range(0..hot.len())];
                let (route, request) = match roll {
                    0..=29 => (
                        "GET /products",
                        http.get(format!(
                            "{base}/products?limit=10&skip={}",
                            rng.random_range(0..20) * 10
                        )),
                    ),
                    30..=49 => (
                        "GET /products/search",
                        http.get(format!(
                            "{base}/products/search?q={}",
                            WORDS[rng.random_range(0..WORDS.len())]
                        )),
                    ),
                    50..=69 => (
                        "GET /products/:id",
                        http.get(format!("{base}/products/{}", rng.random_range(1..=240))),
                    ),
                    70..=71 => (
                        "POST /auth/login",
                        http.post(format!("{base}/auth/login"))
                            .json(&serde_json::json!(
                            {"username": "emilys", "password": "EmilyPass123"})),
                    ),
                    72..=84 => (
                        "POST /cart",
                        http.post(format!("{base}/cart")).bearer_auth(&token).json(
                            &serde_json::json!({"products": [{"id": hot_id, "quantity": 1}]}),
                        ),
                    ),
                    _ => (
                        "POST /orders",
                        http.post(format!("{base}/orders"))
                            .bearer_auth(&token)
                            .json(&serde_json::json!({
                                "products": [{"id": hot_id, "quantity": rng.random_range(1..=2)}],
                                "paymentMethod": "card",
                                "shippingAddress": {"firstName": "Soak", "lastName": "Test",
                                    "address": "1 Load St", "city": "Boston", "state": "MA",
                                    "zipCode": "02101", "country": "USA", "phone": ""}})),
                    ),
                };
                let t = Instant::now();
                let status = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 599,
                };
                if route == "POST /orders" && status == 201 {
                    created.fetch_add(1, Ordering::Relaxed);
                }
                let mut stats = stats.lock().await;
                let entry = stats.entry(route).or_insert_with(|| Route {
                    histogram: Histogram::new_with_bounds(1, 120_000_000, 3).unwrap(),
                    statuses: BTreeMap::new(),
                });
                entry
                    .histogram
                    .record((t.elapsed().as_micros() as u64).max(1))
                    .unwrap();
                *entry.statuses.entry(status).or_default() += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(60.min(seconds))).await;
    let rss_minute_one = rss_all(&pids);
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rss_end = rss_all(&pids);

    println!("{clients} clients for {elapsed:.0} s against {base}\n");
    let mut server_errors = 0;
    for (route, r) in stats.lock().await.iter() {
        let count = r.histogram.len();
        server_errors += r
            .statuses
            .iter()
            .filter(|(s, _)| **s >= 500)
            .map(|(_, n)| n)
            .sum::<u64>();
        println!(
            "{route:<22} {count:>8} requests {:>7.0}/s   p50 {:>8.2} ms   p99 {:>8.2} ms   statuses {:?}",
            count as f64 / elapsed,
            r.histogram.value_at_quantile(0.5) as f64 / 1000.0,
            r.histogram.value_at_quantile(0.99) as f64 / 1000.0,
            r.statuses
        );
    }
    println!("\nRSS (KiB) per process, minute 1 -> end: {rss_minute_one:?} -> {rss_end:?}");

    // Invariants, from the database.
    let (orders, min_stock, oversold): (i64, i32, i64) = sqlx::query_as(
        r#"SELECT
             (SELECT count(*) FROM orders WHERE user_id >= $1 AND user_id < $1 + $2),
             (SELECT min(stock) FROM products WHERE id = ANY($3)),
             (SELECT count(*) FROM products p WHERE p.id = ANY($3) AND p.stock + (
                 SELECT COALESCE(sum(quantity), 0) FROM stock_reservations r
                 WHERE r.product_id = p.id AND r.status <> 'released') <> $4)"#,
    )
    .bind(first_buyer)
    .bind(clients as i64)
    .bind(&hot)
    .bind(hot_stock)
    .fetch_one(&db)
    .await
    .unwrap();
    let told = created.load(Ordering::Relaxed) as i64;
    println!(
        "orders: {told} answered 201, {orders} in the database; lowest hot stock {min_stock}; \
         hot products whose stock and reservations do not add up to {hot_stock}: {oversold}; 5xx: {server_errors}"
    );
    let ok = server_errors == 0 && orders == told && min_stock >= 0 && oversold == 0;
    println!("{}", if ok { "SOAK PASSED" } else { "SOAK FAILED" });
    if !ok {
        std::process::exit(1);
    }
}

//! Faults under a running application: what keeps answering, and how it recovers.
//! The policies are written down in docs/RELIABILITY.md.

use crate::common;
use std::time::{Duration, Instant};

use crate::common::redis_cluster::RedisCluster;
use crate::common::redis_server::PrivateRedis;
use crate::common::tcp_proxy::{CommitFault, TcpProxy};
use crate::common::{KillOnDrop, TestApp, free_port, json, spawn_app_via, spawn_app_with};
use reqwest::Method;
use serde_json::json;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Redis stopped while serving: catalog reads answer from PostgreSQL within the store's
/// deadline, and once Redis is back the cache fills again without a restart.
#[tokio::test]
async fn catalog_reads_survive_redis_going_down_and_the_cache_recovers() {
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let app = spawn_app_with(&["--redis-url", &url]).await;
    app.seed_catalog(3).await;

    let before = json(app.get("/products/1").await).await;
    assert_eq!(before["id"], 1);
    assert_eq!(
        redis.keys("*catalog:product:1").await.len(),
        1,
        "the read filled the cache"
    );

    redis.stop();
    // Writes cannot be announced now: the first cache tier (in memory) must stop serving.
    // Changed behind the services' back, the product reads fresh from PostgreSQL within
    // moments of Redis going away.
    sqlx::query("UPDATE products SET title = 'Changed While Redis Was Down' WHERE id = 1")
        .execute(&app.db)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    while json(app.get("/products/1").await).await["title"] != "Changed While Redis Was Down" {
        assert!(
            Instant::now() < deadline,
            "the first tier kept serving with Redis down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = json(app.get("/products/1").await).await;
    for path in ["/products/1", "/products?limit=2", "/products/categories"] {
        let started = Instant::now();
        let response = app.get(path).await;
        assert_eq!(response.status().as_u16(), 200, "{path} with Redis down");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path} took {:?}",
            started.elapsed()
        );
        if path == "/products/1" {
            assert_eq!(
                json(response).await,
                before,
                "the same product, from PostgreSQL"
            );
        }
    }

    redis.restart().await;
    assert!(redis.keys("*").await.is_empty(), "a fresh, empty Redis");
    // The pool reconnects on its own; the first reads after the restart may still fail over.
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(10);
    loop {
        assert_eq!(app.get("/products/1").await.status().as_u16(), 200);
        if redis.keys("*catalog:product:1").await.len() == 1 {
            eprintln!(
                "the cache filled again {:?} after Redis restarted",
                restarted.elapsed()
            );
            break;
        }
        assert!(Instant::now() < deadline, "the cache never filled again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// POST /orders for `quantity` of product 1; the status and body.
async fn order_one(app: &TestApp, quantity: i32) -> (u16, serde_json::Value) {
    let body = json!({
        "products": [{"id": 1, "quantity": quantity}],
        "paymentMethod": "card",
        "shippingAddress": {"firstName": "John", "lastName": "Doe", "address": "1 Main St",
            "city": "Boston", "state": "MA", "zipCode": "02101", "country": "USA", "phone": ""}
    });
    let response = app
        .request(Method::POST, "/orders", Some(&app.user_token()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), json(response).await)
}

/// An app that reaches PostgreSQL through a TCP proxy the test can cut, with the demo catalog
/// and `stock` units of product 1. Without TLS, so that the proxy can also see the statements
/// ([`TcpProxy::fault_at_commit`]).
async fn app_behind_proxy(stock: i32) -> (TcpProxy, TestApp) {
    let proxy = TcpProxy::start("127.0.0.1:5432").await;
    let app = spawn_app_via(
        &format!(
            "postgres://postgres@127.0.0.1:{}?sslmode=disable",
            proxy.port
        ),
        &[],
    )
    .await;
    app.seed_catalog(3).await;
    sqlx::query("UPDATE products SET stock = $1 WHERE id = 1")
        .bind(stock)
        .execute(&app.db)
        .await
        .unwrap();
    (proxy, app)
}

/// What an order of 2 units of product 1 (stock 50) leaves when its connection to PostgreSQL
/// breaks at its COMMIT as `fault` says.
struct AfterFault {
    status: u16,
    body: serde_json::Value,
    /// The orders stored, each with whether its stock is committed.
    orders: Vec<(String, bool)>,
    /// Product 1's stock on the shelf, and the units its reservations still hold.
    on_shelf: i32,
    held: i64,
}

/// Places that order through a TCP proxy armed with `fault`: the order's advisory lock marks
/// the connection whose COMMIT breaks.
async fn order_through_commit_fault(fault: CommitFault) -> AfterFault {
    let (proxy, app) = app_behind_proxy(50).await;
    let fired = proxy.fault_at_commit(b"pg_advisory_xact_lock", fault);

    let (status, body) = order_one(&app, 2).await;
    assert_eq!(
        fired.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the fault fired: {status} {body}"
    );
    let orders = sqlx::query_as("SELECT id, stock_committed FROM orders ORDER BY id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    let (on_shelf, held): (i32, i64) = sqlx::query_as(
        "SELECT p.stock, (SELECT COALESCE(sum(quantity), 0) FROM stock_reservations r
                          WHERE r.product_id = p.id AND r.status = 'reserved')
         FROM products p WHERE p.id = 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    AfterFault {
        status,
        body,
        orders,
        on_shelf,
        held,
    }
}

/// The connection breaks after PostgreSQL received an order's COMMIT, before its answer came
/// back: the order is stored, so the buyer is told 201 with it (not 503, which would invite a
/// second order), and its stock is committed, not released.
#[tokio::test]
async fn an_order_whose_commit_answer_is_lost_is_answered_201() {
    let after = order_through_commit_fault(CommitFault::LoseAnswer).await;
    assert_eq!(after.status, 201, "{}", after.body);
    let id = after.body["id"].as_str().unwrap().to_owned();
    assert_eq!(after.orders, vec![(id, true)]);
    assert_eq!(
        (after.on_shelf, after.held),
        (48, 0),
        "two units sold, none held"
    );
}

/// The connection breaks before PostgreSQL received an order's COMMIT: nothing is stored, the
/// buyer is told 503, and the reserved stock is back on the shelf at once.
#[tokio::test]
async fn an_order_whose_commit_never_arrived_is_503_and_gives_its_stock_back() {
    let after = order_through_commit_fault(CommitFault::LoseCommit).await;
    assert_eq!(after.status, 503, "{}", after.body);
    assert_eq!(after.body["code"], "SERVICE_UNAVAILABLE", "{}", after.body);
    assert!(after.orders.is_empty(), "{:?}", after.orders);
    assert_eq!(
        (after.on_shelf, after.held),
        (50, 0),
        "the reservation was released"
    );
}

/// PostgreSQL going away (its connections broken, new ones refused) and coming back:
/// requests in the gap answer 503 in the contract's shape, never 500; the pool reconnects
/// without a restart; every order answered 201 is whole, no other left rows, and the stock
/// adds up.
#[tokio::test]
async fn postgres_going_away_is_503_and_the_pool_reconnects_without_losing_orders() {
    let (proxy, app) = app_behind_proxy(100).await;
    assert_eq!(order_one(&app, 2).await.0, 201);

    // Each request in the gap waits for the pool's acquire timeout (3 s), then answers 503.
    proxy.cut();
    for _ in 0..2 {
        let started = Instant::now();
        let response = app.get_as("/orders", &app.user_token()).await;
        let status = response.status().as_u16();
        let body = json(response).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["status"], 503, "{body}");
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "{body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let (status, body) = order_one(&app, 1).await;
        assert_eq!(status, 503, "{body}");
    }

    proxy.restore();
    let restored = Instant::now();
    let deadline = restored + Duration::from_secs(15);
    while app.get_as("/orders", &app.user_token()).await.status() != 200 {
        assert!(Instant::now() < deadline, "the pool never reconnected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "orders answered again {:?} after PostgreSQL came back",
        restored.elapsed()
    );
    assert_eq!(order_one(&app, 3).await.0, 201);

    // Two orders, both whole; the stock and the held reservations add up to the 100.
    let orders: Vec<(String, i64)> = sqlx::query_as(
        "SELECT o.id, (SELECT count(*) FROM order_items i WHERE i.order_id = o.id) FROM orders o",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(orders.len(), 2, "{orders:?}");
    assert!(orders.iter().all(|(_, items)| *items == 1), "{orders:?}");
    let (stock, held): (i32, i64) = sqlx::query_as(
        "SELECT p.stock, (SELECT COALESCE(sum(quantity), 0) FROM stock_reservations r
                           WHERE r.product_id = p.id AND r.status <> 'released')
         FROM products p WHERE p.id = 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(i64::from(stock) + held, 100, "stock {stock}, held {held}");
    assert_eq!(stock, 95);
}

/// Starts `ecom serve --services <services>` as a child process on `grpc_port`.
fn service_process(services: &str, grpc_port: u16, database_url: &str) -> KillOnDrop {
    // A process of some services shares its events through NATS (without it, it refuses to
    // start): the machine's server, on a stream of this database's own.
    let stream = database_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_uppercase();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args(["serve", "--services", services, "--host", "127.0.0.1"])
        .args(["--grpc-port", &grpc_port.to_string()])
        .env("DATABASE_URL", database_url)
        .env("NATS_URL", common::NATS_URL)
        .env("EVENTS_STREAM", stream)
        .env("JWT_SECRET", common::TEST_JWT_SECRET)
        .env("SEED_DEMO_DATA", "true")
        .env("LOG_LEVEL", "error")
        .env_remove("REDIS_URL")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ecom binary starts");
    KillOnDrop(child)
}

/// Polls `url` until it answers 200, or panics after `limit`; how long it took.
async fn until_ok(client: &reqwest::Client, url: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status() == 200
        {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{url} never answered 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Mesh mode: the catalog's process killed (SIGKILL) gives 503 for the catalog's routes
/// only; once a new catalog process listens on the same address, the edge's channel
/// reconnects by itself.
#[tokio::test]
async fn a_killed_service_process_is_503_for_its_routes_only_and_comes_back() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let database_url = format!("postgres://postgres@127.0.0.1:5432/ecom_test_{id}");
    let (catalog_port, auth_port, edge_port) = (free_port(), free_port(), free_port());
    let mut catalog = service_process("catalog", catalog_port, &database_url);
    // The auth process starts once the catalog's has migrated the database.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _auth = service_process("auth", auth_port, &database_url);
    let edge = std::process::Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args([
            "edge",
            "--host",
            "127.0.0.1",
            "--port",
            &edge_port.to_string(),
        ])
        .arg("--upstream")
        .arg(format!("catalog=http://127.0.0.1:{catalog_port}"))
        .arg("--upstream")
        .arg(format!("auth=http://127.0.0.1:{auth_port}"))
        .args(["--default-upstream", "http://127.0.0.1:1"])
        .env("JWT_SECRET", common::TEST_JWT_SECRET)
        .env("RATE_LIMIT_ENABLED", "false")
        .env("LOG_LEVEL", "error")
        .env_remove("REDIS_URL")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ecom binary starts");
    let _edge = KillOnDrop(edge);

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{edge_port}/api/v1");
    let product = format!("{base}/products/1");
    until_ok(&client, &product, Duration::from_secs(60)).await;
    let login = || {
        client
            .post(format!("{base}/auth/login"))
            .json(&json!({}))
            .send()
    };
    let started = Instant::now();
    while login().await.unwrap().status() == 503 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "auth never came up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    common::assert_error(login().await.unwrap(), 400, "VALIDATION_ERROR").await;

    catalog.0.kill().unwrap();
    catalog.0.wait().unwrap();
    let started = Instant::now();
    common::assert_error(
        client.get(&product).send().await.unwrap(),
        503,
        "SERVICE_UNAVAILABLE",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The auth service's routes do not notice.
    common::assert_error(login().await.unwrap(), 400, "VALIDATION_ERROR").await;

    let _catalog = service_process("catalog", catalog_port, &database_url);
    let recovery = until_ok(&client, &product, Duration::from_secs(30)).await;
    eprintln!("catalog routes answered again {recovery:?} after the new process started");
}

/// SIGTERM under load: /ready answers 503 at once while requests are still served (the
/// drain), then the listeners close, requests in flight finish, new connections are
/// refused, and the process exits within the grace period.
#[tokio::test]
async fn sigterm_drains_then_finishes_in_flight_requests_and_exits() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (rest_port, grpc_port) = (free_port(), free_port());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args(["serve", "--host", "127.0.0.1"])
        .args([
            "--port",
            &rest_port.to_string(),
            "--grpc-port",
            &grpc_port.to_string(),
        ])
        .env(
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/ecom_test_{id}"),
        )
        .env("JWT_SECRET", common::TEST_JWT_SECRET)
        .env("RATE_LIMIT_ENABLED", "false")
        .env("SHUTDOWN_DRAIN", "2s")
        .env("SHUTDOWN_GRACE", "5s")
        .env("LOG_LEVEL", "error")
        .env_remove("REDIS_URL")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ecom binary starts");
    let pid = child.id().to_string();
    let mut child = KillOnDrop(child);
    let origin = format!("http://127.0.0.1:{rest_port}");
    let client = reqwest::Client::new();
    until_ok(&client, &format!("{origin}/ready"), Duration::from_secs(60)).await;

    let signalled = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        client
            .get(format!("{origin}/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        503,
        "not ready as soon as the signal arrives"
    );
    // gRPC health says the same, so balancing edges stop sending too.
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{grpc_port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "ecom.catalog.v1.CatalogService".into(),
        })
        .await
        .unwrap();
    assert_eq!(health.get_ref().status, ServingStatus::NotServing as i32);
    assert_eq!(
        reqwest::Client::new()
            .get(format!("{origin}/api/v1/products/1"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "still served while draining"
    );

    // Logins (argon2: slow on purpose) sent just before the listeners close: in flight
    // while the shutdown starts, each must still get its answer.
    tokio::time::sleep(Duration::from_millis(1_700).saturating_sub(signalled.elapsed())).await;
    let mut in_flight = Vec::new();
    for n in 0..16 {
        let client = client.clone();
        let url = format!("{origin}/api/v1/auth/login");
        in_flight.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"email": format!("nobody{n}@example.com"), "password": "Wrong1Pass"}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    for request in in_flight {
        assert_eq!(
            request.await.unwrap().ok(),
            Some(400),
            "an in-flight request was cut"
        );
    }
    let answered = signalled.elapsed();

    // After the drain: new connections are refused, and the process is gone in time.
    tokio::time::sleep(Duration::from_millis(2_300).saturating_sub(signalled.elapsed())).await;
    assert!(
        reqwest::Client::new()
            .get(format!("{origin}/health"))
            .send()
            .await
            .is_err(),
        "a new connection after the drain is refused"
    );
    let exited = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(8),
            "still running after drain + grace"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exited.success(), "{exited}");
    eprintln!(
        "SIGTERM at 0: last in-flight login answered at {answered:?}, exited at {:?}",
        signalled.elapsed()
    );
}

/// Redis down, the documented policy of the limiter and the deny-list: both fail open (the
/// request is served; see docs/RELIABILITY.md for why), and both work again once Redis is back.
#[tokio::test]
async fn rate_limits_and_the_deny_list_fail_open_while_redis_is_down() {
    fail_open_while_down(Faulty::Server(PrivateRedis::start().await)).await;
}

/// The same on a Redis Cluster with one of its three masters killed: the cluster stops
/// answering (it needs every slot covered), which the app treats as Redis down.
#[tokio::test]
async fn rate_limits_and_the_deny_list_fail_open_while_a_redis_cluster_master_is_down() {
    fail_open_while_down(Faulty::Cluster(RedisCluster::start().await)).await;
}

/// A Redis a test stops and starts: one server, or one master of a cluster.
enum Faulty {
    Server(PrivateRedis),
    Cluster(RedisCluster),
}

impl Faulty {
    fn flags(&self) -> Vec<String> {
        match self {
            Faulty::Server(redis) => vec!["--redis-url".into(), redis.url()],
            Faulty::Cluster(cluster) => cluster.flags(),
        }
    }

    async fn stop(&mut self) {
        match self {
            Faulty::Server(redis) => redis.stop(),
            Faulty::Cluster(cluster) => {
                cluster.kill(0);
                cluster.wait_until_failed().await;
            }
        }
    }

    async fn restart(&mut self) {
        match self {
            Faulty::Server(redis) => redis.restart().await,
            Faulty::Cluster(cluster) => cluster.restart(0).await,
        }
    }
}

async fn fail_open_while_down(mut redis: Faulty) {
    let mut flags = redis.flags();
    flags.extend(
        [
            "--rate-limit-enabled",
            "true",
            "--rate-limit-max-requests",
            "3",
        ]
        .map(String::from),
    );
    let app = spawn_app_with(&flags.iter().map(String::as_str).collect::<Vec<_>>()).await;
    app.seed_catalog(1).await;
    let account = app.register("failopen@example.com").await;
    let logout = json!({"refreshToken": account.refresh_token});
    assert_eq!(
        app.post_json("/auth/logout", &logout, Some(&account.token))
            .await
            .status(),
        200
    );
    let me = || app.get_as("/users/me", &account.token);
    assert_eq!(me().await.status(), 401, "revoked while Redis is up");
    for _ in 0..3 {
        assert_eq!(app.get("/products/1").await.status(), 200);
    }
    assert_eq!(
        app.get("/products/1").await.status(),
        429,
        "limited while Redis is up"
    );

    redis.stop().await;
    assert_eq!(
        app.get("/products/1").await.status(),
        200,
        "the limiter fails open"
    );
    assert_eq!(me().await.status(), 200, "the deny-list fails open");
    // A logout while Redis is down still ends the session: its refresh token is in PostgreSQL.
    let during = app
        .login("failopen@example.com", common::identity::PASSWORD)
        .await;
    let logout = app
        .post_json("/auth/logout", &json!({}), Some(&during.token))
        .await;
    assert_eq!(logout.status(), 200, "logout with Redis down");
    assert_eq!(app.refresh(&during.refresh_token).await.status(), 401);

    // Back (empty): counting starts again, and so does revocation of new logouts.
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut statuses = Vec::new();
    while !statuses.contains(&429) {
        assert!(
            Instant::now() < deadline,
            "the limiter never counted again: {statuses:?}"
        );
        statuses.push(app.get("/products/1").await.status().as_u16());
    }
    let again = app
        .login("failopen@example.com", common::identity::PASSWORD)
        .await;
    app.post_json("/auth/logout", &json!({}), Some(&again.token))
        .await;
    assert_eq!(app.get_as("/users/me", &again.token).await.status(), 401);
}

/// PostgreSQL cut while six buyers keep ordering: every answer is 201 or 503 (never 500),
/// every 201 order is whole and no other exists, and once the reservations of orders that
/// failed mid-way expire, the held stock is exactly the ordered stock.
#[tokio::test]
async fn postgres_cut_under_load_loses_no_order_and_holds_no_stock_for_failed_ones() {
    let (proxy, app) = app_behind_proxy(100_000).await;
    let app = std::sync::Arc::new(app);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let buyers: Vec<_> = (0..6)
        .map(|_| {
            let (app, stop) = (app.clone(), stop.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    statuses.push(order_one(&app, 1).await.0);
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.get_as("/orders", &app.user_token()).await.status() != 200 {
        assert!(Instant::now() < deadline, "the pool never reconnected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut statuses = Vec::new();
    for buyer in buyers {
        statuses.extend(buyer.await.unwrap());
    }
    let created = statuses.iter().filter(|s| **s == 201).count() as i64;
    let unavailable = statuses.iter().filter(|s| **s == 503).count();
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        created > 0 && unavailable > 0,
        "{created} created, {unavailable} 503"
    );

    let (orders, whole): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE (SELECT count(*) FROM order_items i WHERE i.order_id = o.id) = 1) FROM orders o",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        (orders, whole),
        (created, created),
        "orders told = orders stored, all whole"
    );

    // What the app's sweeper does within the reservations' 15 minutes: its reconciler commits
    // the reservation of every order whose commit the cut interrupted (orders older than 30 s,
    // once a minute). Then orders that failed between reserving and committing still hold
    // stock until their reservation expires, when the sweeper gives it back.
    app.clock.advance(chrono::Duration::minutes(1));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let uncommitted: i64 =
            sqlx::query_scalar("SELECT count(*) FROM orders WHERE NOT stock_committed")
                .fetch_one(&app.db)
                .await
                .unwrap();
        if uncommitted == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{uncommitted} orders never committed their stock"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cache = ecom::cache::Cache::new(ecom::kv::Kv::memory("faults:"));
    let released = ecom::catalog::reservations::release_expired(
        &app.db,
        &cache,
        app.clock.now() + chrono::Duration::minutes(16),
    )
    .await
    .unwrap();
    eprintln!("{created} orders, {unavailable} answered 503, {released} reservations expired");
    let (stock, held): (i32, i64) = sqlx::query_as(
        "SELECT p.stock, (SELECT COALESCE(sum(quantity), 0) FROM stock_reservations r
                           WHERE r.product_id = p.id AND r.status <> 'released')
         FROM products p WHERE p.id = 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(held, created, "held stock = ordered stock");
    assert_eq!(i64::from(stock) + held, 100_000);
}

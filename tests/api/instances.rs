//! Several instances (issue 6): two `ecom serve` instances, each with its own REST edge and gRPC
//! server, on one PostgreSQL database and one Redis key prefix, as two processes of one
//! deployment behind a load balancer. Every test drives both through their REST edges and shows
//! a rule holding across them: rate limits, token revocation, cache invalidation after an admin
//! write, and Idempotency-Key replays. The policies are listed in docs/RELIABILITY.md.

use crate::common;
use crate::common::redis_cluster::RedisCluster;
use crate::common::{TestApp, assert_error, ids, json, spawn_app, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

/// Where the instances keep what they share: the machine's Redis, or a private three-master
/// Redis Cluster (REDIS_MODE=cluster). The rules below are checked on both.
enum Shared {
    Server,
    Cluster(RedisCluster),
}

impl Shared {
    async fn cluster() -> Shared {
        Shared::Cluster(RedisCluster::start().await)
    }

    /// An app on this Redis, with `extra` settings flags.
    async fn spawn(&self, extra: &[&str]) -> TestApp {
        let mut flags = match self {
            Shared::Server => Vec::new(),
            Shared::Cluster(cluster) => cluster.flags(),
        };
        flags.extend(extra.iter().map(|f| f.to_string()));
        spawn_app_with(&flags.iter().map(String::as_str).collect::<Vec<_>>()).await
    }
}

/// Two instances of one deployment: `first` and a sibling on its database and Redis prefix.
async fn two_instances(first: TestApp) -> (TestApp, TestApp) {
    let second = first.spawn_sibling().await;
    assert_ne!(first.origin, second.origin, "two edges");
    assert_ne!(first.grpc, second.grpc, "two gRPC servers");
    (first, second)
}

/// GET `path` (anonymous) expecting 200 and JSON.
/// The Redis the instances share, under their key prefix, for a test to look behind their back.
fn shared_kv(app: &TestApp) -> ecom::kv::Kv {
    ecom::kv::Kv::redis(
        &common::redis_url().into(),
        ecom::config::RedisMode::Standalone,
        None,
        &app.redis_prefix,
    )
    .unwrap()
}

async fn get_ok(app: &TestApp, path: &str) -> Value {
    let response = app.get(path).await;
    assert_eq!(
        response.status().as_u16(),
        200,
        "GET {path} on {}",
        app.origin
    );
    json(response).await
}

/// What `app` answers at `path` once `fresh` holds of it, or after 2 s whatever it is. A write
/// on one instance reaches the other's in-memory first tier through a Redis pub/sub
/// announcement, delivered asynchronously (docs/ARCHITECTURE.md, "the window left is the
/// delivery of one announcement"): on a loaded CI machine a read sent right after the write's
/// 200 once arrived before it. The callers still assert on the answer.
async fn once_announced(app: &TestApp, path: &str, fresh: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let value = get_ok(app, path).await;
        if fresh(&value) || std::time::Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- rate limits

/// Requests to /products split over both instances count against one budget: at the limit the
/// next request is 429 RATE_LIMITED with Retry-After on either instance.
#[tokio::test]
async fn the_products_rate_limit_holds_across_two_instances() {
    products_rate_limit(Shared::Server).await;
}

#[tokio::test]
async fn the_products_rate_limit_holds_across_two_instances_on_a_redis_cluster() {
    products_rate_limit(Shared::cluster().await).await;
}

async fn products_rate_limit(shared: Shared) {
    const MAX: usize = 4;
    let max = MAX.to_string();
    let (a, b) = two_instances(
        shared
            .spawn(&[
                "--rate-limit-enabled",
                "true",
                "--rate-limit-max-requests",
                &max,
            ])
            .await,
    )
    .await;
    a.seed_catalog(2).await;

    // MAX requests, alternating: each instance alone sees only half of the budget used.
    for i in 0..MAX {
        let app = if i % 2 == 0 { &a } else { &b };
        get_ok(app, "/products?limit=1").await;
    }
    // Over the shared budget on both instances, with the contract's shape and Retry-After.
    for app in [&b, &a] {
        let limited = app.get("/products/1").await;
        let retry_after: u64 = limited
            .headers()
            .get("retry-after")
            .expect("Retry-After header")
            .to_str()
            .unwrap()
            .parse()
            .expect("Retry-After in seconds");
        assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
        let body = assert_error(limited, 429, "RATE_LIMITED").await;
        assert_eq!(body["details"]["retryAfter"], retry_after);
    }
    // Other groups keep their own budgets.
    assert_ne!(a.get("/orders").await.status().as_u16(), 429);
}

// ---------------------------------------------------------------- token revocation

/// A logout on one instance revokes the access token on the other at once, and a refresh
/// token rotated on one instance is dead on the other.
#[tokio::test]
async fn logout_and_refresh_rotation_on_one_instance_hold_on_the_other() {
    logout_and_rotation(Shared::Server).await;
}

#[tokio::test]
async fn logout_and_refresh_rotation_on_one_instance_hold_on_the_other_on_a_redis_cluster() {
    logout_and_rotation(Shared::cluster().await).await;
}

async fn logout_and_rotation(shared: Shared) {
    let (a, b) = two_instances(shared.spawn(&[]).await).await;
    let account = a.register("instances@example.com").await;

    // The token signed by A is good on B before the logout (so the refusal below is the
    // revocation, not a token B never accepted).
    let me = b.get_as("/users/me", &account.token).await;
    assert_eq!(me.status().as_u16(), 200);
    assert_eq!(json(me).await["email"], "instances@example.com");

    let logout = a
        .post_json(
            "/auth/logout",
            &json!({"refreshToken": account.refresh_token}),
            Some(&account.token),
        )
        .await;
    assert_eq!(logout.status().as_u16(), 200);
    // At once on B, by two services (users and auth), with no wait or retry.
    assert_error(
        b.get_as("/users/me", &account.token).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_error(
        b.get_as("/auth/me", &account.token).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    b.assert_refresh_refused(&account.refresh_token).await;

    // Another session: rotate on A, the old refresh token is dead on B.
    let session = a.login(&account.email, &account.password).await;
    let rotated = a.refresh(&session.refresh_token).await;
    assert_eq!(rotated.status().as_u16(), 200);
    let rotated = json(rotated).await["refreshToken"]
        .as_str()
        .expect("refreshToken")
        .to_owned();
    // B honours the rotation: the new token works there once...
    let again = b.refresh(&rotated).await;
    assert_eq!(again.status().as_u16(), 200);
    let newest = json(again).await["refreshToken"]
        .as_str()
        .expect("refreshToken")
        .to_owned();
    // ...the token A rotated away is refused on B...
    b.assert_refresh_refused(&session.refresh_token).await;
    // ...and that reuse, seen on B, revoked the whole family on A too.
    a.assert_refresh_refused(&newest).await;
}

/// Issue #12: a logout with only the bearer token on A ends the session on B too: the refresh
/// tokens from before and after a rotation (done on B) are refused on both instances.
#[tokio::test]
async fn a_bearer_only_logout_on_one_instance_ends_the_session_on_the_other() {
    let (a, b) = two_instances(spawn_app().await).await;
    let account = a.register("instances-logout@example.com").await;
    let session = b.login(&account.email, &account.password).await;
    let rotated = b.refresh(&session.refresh_token).await;
    assert_eq!(rotated.status().as_u16(), 200);
    let rotated = json(rotated).await;
    let token = rotated["token"].as_str().unwrap();
    let newest = rotated["refreshToken"].as_str().unwrap();

    let logout = a.post_json("/auth/logout", &json!({}), Some(token)).await;
    assert_eq!(logout.status().as_u16(), 200);
    for app in [&a, &b] {
        app.assert_refresh_refused(newest).await;
        app.assert_refresh_refused(&session.refresh_token).await;
        assert_error(app.get_as("/users/me", token).await, 401, "UNAUTHORIZED").await;
    }
    // The registration's session was not the one logged out.
    assert_eq!(b.refresh(&account.refresh_token).await.status(), 200);
}

// ---------------------------------------------------------------- cache invalidation

/// A product B has cached is fresh on B right after an admin write on A.
#[tokio::test]
async fn an_admin_write_on_one_instance_evicts_the_product_cached_by_the_other() {
    product_eviction(Shared::Server).await;
}

#[tokio::test]
async fn an_admin_write_on_one_instance_evicts_the_product_cached_by_the_other_on_a_redis_cluster()
{
    product_eviction(Shared::cluster().await).await;
}

async fn product_eviction(shared: Shared) {
    let (a, b) = two_instances(shared.spawn(&[]).await).await;
    a.seed_catalog(3).await;
    let path = "/products/1";
    let original = get_ok(&b, path).await;

    // Behind the services' back: neither instance sees it, both read the entry B cached.
    sqlx::query("UPDATE products SET title = 'Changed Behind The Back' WHERE id = 1")
        .execute(&a.db)
        .await
        .unwrap();
    assert_eq!(get_ok(&b, path).await["title"], original["title"]);
    assert_eq!(get_ok(&a, path).await["title"], original["title"]);

    let response = a
        .put_json(path, &json!({ "price": 12.34 }), Some(&a.admin_token()))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let fresh = once_announced(&b, path, |p| p["price"] == 12.34).await;
    assert_eq!(fresh["price"], 12.34);
    assert_eq!(fresh["title"], "Changed Behind The Back");
}

/// B keeps a product it read in its own memory (the first cache tier): with the product
/// changed and its Redis entry deleted behind the services' back, B still answers the copy it
/// holds while A, which never read it, reads PostgreSQL. An admin write on A is announced to
/// B, which then drops its copy.
#[tokio::test]
async fn the_first_cache_tier_serves_from_memory_and_hears_writes_on_the_other_instance() {
    let (a, b) = two_instances(spawn_app().await).await;
    a.seed_catalog(3).await;
    let path = "/products/2";
    let original = get_ok(&b, path).await;

    sqlx::query("UPDATE products SET title = 'Renamed Behind The Back' WHERE id = 2")
        .execute(&a.db)
        .await
        .unwrap();
    let redis = shared_kv(&a);
    redis
        .delete(&["cache:catalog:product:2".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        get_ok(&b, path).await["title"],
        original["title"],
        "B answers from its own memory"
    );
    assert_eq!(
        get_ok(&a, path).await["title"],
        "Renamed Behind The Back",
        "A had nothing in memory and read PostgreSQL"
    );

    let response = a
        .put_json(path, &json!({ "stock": 3 }), Some(&a.admin_token()))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let fresh = once_announced(&b, path, |p| p["stock"] == 3).await;
    assert_eq!(fresh["title"], "Renamed Behind The Back");
    assert_eq!(fresh["stock"], 3);
}

/// Listing and search pages B has cached are retired by an admin write on A.
#[tokio::test]
async fn an_admin_write_on_one_instance_retires_the_listing_pages_cached_by_the_other() {
    listing_retirement(Shared::Server).await;
}

#[tokio::test]
async fn an_admin_write_on_one_instance_retires_the_listing_pages_cached_by_the_other_on_a_redis_cluster()
 {
    listing_retirement(Shared::cluster().await).await;
}

async fn listing_retirement(shared: Shared) {
    let (a, b) = two_instances(shared.spawn(&[]).await).await;
    a.seed_catalog(5).await;
    let list = "/products?limit=5";
    // A word of the title product 3 gets behind the service's back: the cached page lacks it.
    let search = "/products/search?q=renamed";
    let before = get_ok(&b, list).await;
    let searched = get_ok(&b, search).await;

    sqlx::query("UPDATE products SET title = 'Quietly Renamed', price_cents = 1 WHERE id = 3")
        .execute(&a.db)
        .await
        .unwrap();
    assert_eq!(get_ok(&b, list).await, before, "B serves its cached page");
    assert_eq!(get_ok(&a, list).await, before, "A reads the same cache");
    assert_eq!(get_ok(&b, search).await, searched);

    // A write to another product on A retires every page, B's included.
    let response = a
        .put_json(
            "/products/4",
            &json!({ "stock": 7 }),
            Some(&a.admin_token()),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let after = once_announced(&b, list, |page| page != &before).await;
    let renamed = after["products"]
        .as_array()
        .expect("products array")
        .iter()
        .find(|p| p["id"] == 3)
        .expect("product 3 on the first page");
    assert_eq!(renamed["title"], "Quietly Renamed");
    assert_ne!(get_ok(&b, search).await, searched);
}

/// The first listing read of a deployment starts the listing generation, which both instances
/// then share: a deployment where no admin write has happened yet does not ask Redis for a
/// missing generation on every listing read (a missing key is not kept in memory), and its
/// pages are still shared.
#[tokio::test]
async fn the_first_listing_read_starts_the_generation_both_instances_share() {
    let (a, b) = two_instances(spawn_app().await).await;
    a.seed_catalog(3).await;
    let redis = shared_kv(&a);
    let key = "cache:catalog:listing-generation";
    assert_eq!(
        redis.get(key).await.unwrap(),
        None,
        "no write has started one"
    );

    let page = get_ok(&a, "/products?limit=2").await;
    let generation = redis.get(key).await.unwrap().expect("the read started one");
    assert_eq!(get_ok(&b, "/products?limit=2").await, page);
    get_ok(&b, "/products?limit=3").await;
    assert_eq!(
        redis.get(key).await.unwrap(),
        Some(generation),
        "later reads, on either instance, keep it"
    );
}

/// An order placed on A reserves stock of two products; B, which had both cached, shows the
/// new stock of each (the reservation deletes both keys: on a cluster, one DEL per key, as
/// the keys live on different slots).
#[tokio::test]
async fn an_order_on_one_instance_refreshes_the_stock_of_every_product_it_holds_on_the_other() {
    order_eviction(Shared::Server).await;
}

#[tokio::test]
async fn an_order_on_one_instance_refreshes_the_stock_of_every_product_it_holds_on_the_other_on_a_redis_cluster()
 {
    order_eviction(Shared::cluster().await).await;
}

async fn order_eviction(shared: Shared) {
    let (a, b) = two_instances(shared.spawn(&[]).await).await;
    let products = [product(&a, 1_000, 10).await, product(&a, 2_000, 20).await];
    for id in products {
        get_ok(&b, &format!("/products/{id}")).await;
    }
    let mut body = order_body(products[0], 1);
    body["products"] =
        json!([{"id": products[0], "quantity": 1}, {"id": products[1], "quantity": 2}]);
    let placed = post_order(&a, &body, &a.user_token(), "k-eviction").await;
    assert_eq!(placed.status().as_u16(), 201);
    for (id, left) in [(products[0], 9), (products[1], 18)] {
        let path = format!("/products/{id}");
        let fresh = once_announced(&b, &path, |p| p["stock"] == left).await;
        assert_eq!(fresh["stock"], left, "{path} on B");
    }
}

// ---------------------------------------------------------------- idempotency

/// Inserts a product with a price (cents) and stock; returns its id.
async fn product(app: &TestApp, price_cents: i64, stock: i32) -> i64 {
    sqlx::query("INSERT INTO categories (slug, name) VALUES ('smartphones', 'Smartphones') ON CONFLICT DO NOTHING")
        .execute(&app.db)
        .await
        .expect("category");
    sqlx::query_scalar(
        r#"INSERT INTO products (title, description, price_cents, discount_percentage, stock, category_id, thumbnail)
           VALUES ('Thing', 'A product for the instances tests.', $1, 0, $2,
                   (SELECT id FROM categories WHERE slug = 'smartphones'), 'https://cdn.example.com/t.jpg')
           RETURNING id"#,
    )
    .bind(price_cents)
    .bind(stock)
    .fetch_one(&app.db)
    .await
    .expect("product inserted")
}

fn order_body(product: i64, quantity: i32) -> Value {
    json!({
        "products": [{"id": product, "quantity": quantity}],
        "shippingAddress": {
            "firstName": "John", "lastName": "Doe", "address": "123 Main St", "city": "New York",
            "state": "NY", "zipCode": "10001", "country": "USA", "phone": "+1234567890"
        },
        "paymentMethod": "card"
    })
}

async fn post_order(app: &TestApp, body: &Value, token: &str, key: &str) -> reqwest::Response {
    app.request(Method::POST, "/orders", Some(token))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("request sent")
}

async fn orders_in_database(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.db)
        .await
        .expect("orders counted")
}

async fn stock_of(app: &TestApp, id: i64) -> i32 {
    sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .expect("stock read")
}

/// An Idempotency-Key used on A replays on B, a different body with it is refused on B, and
/// concurrent posts of one key over both instances make one order.
#[tokio::test]
async fn idempotency_keys_replay_across_instances() {
    let (a, b) = two_instances(spawn_app().await).await;
    let p = product(&a, 2_000, 50).await;
    let token = a.user_token();

    let first = post_order(&a, &order_body(p, 1), &token, "k-instances").await;
    assert_eq!(first.status().as_u16(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = json(first).await;

    let replay = post_order(&b, &order_body(p, 1), &token, "k-instances").await;
    assert_eq!(replay.status().as_u16(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(json(replay).await, first, "B replays A's order");

    let reused = post_order(&b, &order_body(p, 2), &token, "k-instances").await;
    assert_error(reused, 422, "IDEMPOTENCY_KEY_REUSED").await;

    assert_eq!(orders_in_database(&a).await, 1);
    assert_eq!(stock_of(&a, p).await, 49);

    // Six posts of a new key at once, three on each instance: one order, five replays.
    let body = order_body(p, 2);
    let posts = (0..6).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        post_order(app, &body, &token, "k-concurrent")
    });
    let mut ids = Vec::new();
    let mut replays = 0;
    for response in futures::future::join_all(posts).await {
        assert_eq!(response.status().as_u16(), 201);
        if response.headers().get("idempotent-replayed").is_some() {
            assert_eq!(response.headers()["idempotent-replayed"], "true");
            replays += 1;
        }
        ids.push(json(response).await["id"].clone());
    }
    assert_eq!(replays, 5);
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one order id: {ids:?}"
    );
    assert_ne!(ids[0], first["id"]);
    assert_eq!(orders_in_database(&a).await, 2);
    assert_eq!(stock_of(&a, p).await, 47);
}

// ---------------------------------------------------------------- one edge, two instances

/// One edge alone (`ecom edge`) balancing every service over the gRPC servers of both
/// instances, next to the instances' own edges: a logout through one edge holds behind the
/// shared one, and an Idempotency-Key replays through any of the three edges.
#[tokio::test]
async fn one_edge_in_front_of_both_instances_serves_one_deployment() {
    let (a, b) = two_instances(spawn_app().await).await;
    let edge = a.spawn_edge_over(&[&a, &b]).await;
    assert!(edge.grpc.is_empty(), "the shared edge runs no services");

    // Revocation: a logout through A's own edge; the shared edge, whichever instance each
    // request reaches, refuses the token at once.
    let account = edge.register("one-edge@example.com").await;
    for _ in 0..4 {
        let me = edge.get_as("/users/me", &account.token).await;
        assert_eq!(me.status().as_u16(), 200);
    }
    let logout = a
        .post_json(
            "/auth/logout",
            &json!({"refreshToken": account.refresh_token}),
            Some(&account.token),
        )
        .await;
    assert_eq!(logout.status().as_u16(), 200);
    for _ in 0..8 {
        assert_error(
            edge.get_as("/users/me", &account.token).await,
            401,
            "UNAUTHORIZED",
        )
        .await;
    }

    // Idempotency: one key, through the shared edge and both instances' own edges.
    let p = product(&a, 2_000, 50).await;
    let token = a.user_token();
    let first = post_order(&edge, &order_body(p, 1), &token, "k-edge").await;
    assert_eq!(first.status().as_u16(), 201);
    let first = json(first).await;
    for app in [&edge, &a, &b, &edge, &edge] {
        let replay = post_order(app, &order_body(p, 1), &token, "k-edge").await;
        assert_eq!(replay.status().as_u16(), 201);
        assert_eq!(replay.headers()["idempotent-replayed"], "true");
        assert_eq!(json(replay).await, first);
    }
    assert_eq!(orders_in_database(&b).await, 1);
    assert_eq!(stock_of(&b, p).await, 49);
}

/// When one of the two instances stops, the shared edge takes it out of rotation (health
/// checks every 500 ms) and answers every request from the other; when it is back on its
/// address it serves again. Without the checks about one request in three was 503 for as long
/// as A was down.
#[tokio::test]
async fn the_shared_edge_serves_from_the_other_instance_when_one_stops() {
    use std::time::{Duration, Instant};

    /// Until `streak` requests in a row succeed through `edge`, at most `within`.
    async fn until_steady(edge: &TestApp, token: &str, streak: usize, within: Duration) {
        let deadline = Instant::now() + within;
        let mut in_a_row = 0;
        let mut last = Vec::new();
        while in_a_row < streak {
            let product = edge.get("/products/1").await.status().as_u16();
            let me = edge.get_as("/users/me", token).await.status().as_u16();
            if product == 200 && me == 200 {
                in_a_row += 1;
            } else {
                in_a_row = 0;
                last = vec![product, me];
            }
            assert!(
                Instant::now() < deadline,
                "no {streak} good answers in a row within {within:?} (last failure {last:?})"
            );
        }
    }

    let (a, b) = two_instances(spawn_app().await).await;
    let edge = a.spawn_edge_over(&[&a, &b]).await;
    a.seed_catalog(2).await;
    let token = edge.register("failover@example.com").await.token;
    until_steady(&edge, &token, 10, Duration::from_secs(5)).await;

    let a_port = a.grpc.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    drop(a);
    // Wait until A's gRPC port refuses connections: the instance is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", a_port))
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "A did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until_steady(&edge, &token, 40, Duration::from_secs(10)).await;

    // A comes back on its port and B stops: the edge puts A back in rotation and serves
    // from it alone.
    let _a = b.spawn_sibling_on_grpc_port(a_port).await;
    drop(b);
    until_steady(&edge, &token, 40, Duration::from_secs(10)).await;
}

// ------------------------------------------------------------------ search index

/// Each instance answers searches from its own in-memory index (services/catalog/search_index.rs)
/// fed from PostgreSQL, caught up before every search that reaches the store: a product created,
/// renamed and deleted through A is found, found under its new name only, and gone in B's
/// searches; a change made behind both services' backs is in B's next search; and an instance
/// started afterwards (a restart) builds the same answers from PostgreSQL.
#[tokio::test]
async fn a_product_written_on_one_instance_is_searched_on_the_other_and_after_a_restart() {
    let (a, b) = two_instances(spawn_app().await).await;
    a.seed_catalog(5).await;
    let quasar = "/products/search?q=quasar&limit=0";
    let nebula = "/products/search?q=nebula&limit=0";
    // Both built and answering before the writes (so B does not simply build after them).
    assert_eq!(get_ok(&b, quasar).await["total"], 0);
    assert_eq!(get_ok(&b, nebula).await["total"], 0);

    let token = a.admin_token();
    let created = a
        .post_json(
            "/products/add",
            &json!({
                "title": "Quasar Desk Lamp",
                "description": "A lamp that lights a desk.",
                "price": 49.0,
                "thumbnail": "https://cdn.example.com/lamp.jpg",
                "category": "smartphones",
                "brand": "Lumen",
                "stock": 3
            }),
            Some(&token),
        )
        .await;
    assert_eq!(created.status().as_u16(), 201);
    let id = json(created).await["id"].as_i64().unwrap();
    let found = once_announced(&b, quasar, |p| p["total"] == 1).await;
    assert_eq!(ids(&found), [id], "created on A, found on B");

    let renamed = a
        .put_json(
            &format!("/products/{id}"),
            &json!({ "title": "Nebula Desk Lamp" }),
            Some(&token),
        )
        .await;
    assert_eq!(renamed.status().as_u16(), 200);
    let found = once_announced(&b, nebula, |p| p["total"] == 1).await;
    assert_eq!(
        ids(&found),
        [id],
        "renamed on A, found by its new name on B"
    );
    let old = once_announced(&b, quasar, |p| p["total"] == 0).await;
    assert_eq!(old["total"], 0, "and not by its old one");

    let deleted = a.delete(&format!("/products/{id}"), Some(&token)).await;
    assert_eq!(deleted.status().as_u16(), 200);
    let gone = once_announced(&b, nebula, |p| p["total"] == 0).await;
    assert_eq!(gone["total"], 0, "deleted on A, gone from B's searches");

    // Behind both services' backs (no cache retired): B's next new search has it.
    sqlx::query("UPDATE products SET title = 'Pulsar Wall Clock' WHERE id = 2")
        .execute(&a.db)
        .await
        .unwrap();
    let pulsar = get_ok(&b, "/products/search?q=pulsar").await;
    assert_eq!((pulsar["total"].clone(), ids(&pulsar)), (json!(1), vec![2]));

    // A restarted instance builds its index from PostgreSQL and answers the same.
    let c = a.spawn_sibling().await;
    let page = get_ok(&c, "/products/search?q=pulsar&limit=5").await;
    assert_eq!((page["total"].clone(), ids(&page)), (json!(1), vec![2]));
    let page = get_ok(&c, "/products/search?q=nebula&limit=5").await;
    assert_eq!(page["total"], 0);
}

//! Reads from a real PostgreSQL streaming replica (issue 15, part 1): a private primary and a
//! replica made with `pg_basebackup` (common/replica.rs), the application on the primary with
//! DATABASE_READ_URLS naming the replica. With replay paused on the replica, what a read sees
//! tells where it was served: rows the replica has not replayed are invisible there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::replica::PgReplicaPair;
use crate::common::{TestApp, json};
use reqwest::Method;
use serde_json::{Value, json};

/// Whether the monitor of `app` has the replica in rotation, from its `/metrics`.
async fn in_rotation(app: &TestApp, pair: &PgReplicaPair) -> bool {
    let metrics = app
        .client
        .get(format!("{}/metrics", app.origin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!(
        "db_replica_healthy{{replica=\"{}\"}} 1",
        pair.replica_name()
    );
    metrics.lines().any(|line| line == series)
}

/// Waits (up to 10 s) until the replica is in rotation (`true`) or left out (`false`).
async fn wait_for_rotation(app: &TestApp, pair: &PgReplicaPair, want: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_rotation(app, pair).await != want {
        assert!(
            Instant::now() < deadline,
            "the replica never went {}",
            if want { "in" } else { "out" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GET `path` (with `token` when given), its status and JSON body.
async fn get(app: &TestApp, path: &str, token: Option<&str>) -> (u16, Value) {
    let response = app.request(Method::GET, path, token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, json(response).await)
}

fn order_body(product: i64) -> Value {
    json!({
        "products": [{"id": product, "quantity": 1}],
        "shippingAddress": {
            "firstName": "John", "lastName": "Doe", "address": "123 Main St", "city": "New York",
            "state": "NY", "zipCode": "10001", "country": "USA", "phone": "+1234567890"
        },
        "paymentMethod": "card"
    })
}

/// Anonymous catalog reads are served by the replica: the app holds connections there, and with
/// replay paused a product inserted on the primary is not found (nor counted) until replay
/// resumes.
#[tokio::test]
async fn reads_are_served_by_the_replica() {
    let pair = PgReplicaPair::start().await;
    let app = pair.spawn_app(&["--database-read-max-lag", "60s"]).await;
    let first = app.insert_product("Phone", 10_000, 0.0, 5).await;
    let replica = pair.replica_pool(&app.db_name).await;
    wait_for_rotation(&app, &pair, true).await;
    assert_eq!(get(&app, &format!("/products/{first}"), None).await.0, 200);
    assert!(
        pair.app_reads(&replica, &app.db_name).await > 0,
        "the application reads on the replica"
    );

    pair.pause_replay(&replica).await;
    let hidden = app.insert_product("Tablet", 20_000, 0.0, 5).await;

    // Only the primary has it, and the reads go to the replica.
    assert_eq!(get(&app, &format!("/products/{hidden}"), None).await.0, 404);
    let (status, page) = get(&app, "/products?limit=0", None).await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 1, "{page}");

    pair.resume_replay(&app.db, &replica).await;
    let (status, product) = get(&app, &format!("/products/{hidden}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(product["title"], "Tablet");
}

/// With replay paused, a client that just wrote sees its write on its next read, through
/// either of two instances: an admin's product update (and so does everyone: catalog reads fill
/// the shared cache), a customer's order in their history. The replica has neither.
#[tokio::test]
async fn writers_read_their_writes_with_replay_paused() {
    let pair = PgReplicaPair::start().await;
    let app = pair.spawn_app(&["--database-read-max-lag", "60s"]).await;
    let second = app.spawn_sibling().await;
    let id = app.insert_product("Phone", 10_000, 0.0, 5).await;
    let replica = pair.replica_pool(&app.db_name).await;
    wait_for_rotation(&app, &pair, true).await;
    // Cached before the update: the update must retire it.
    assert_eq!(
        get(&app, &format!("/products/{id}"), None).await.1["title"],
        "Phone"
    );

    pair.pause_replay(&replica).await;
    let admin = app.admin_token();
    let updated = app
        .put_json(
            &format!("/products/{id}"),
            &json!({"title": "Renamed phone"}),
            Some(&admin),
        )
        .await;
    assert_eq!(updated.status().as_u16(), 200);
    let on_replica: String = sqlx::query_scalar("SELECT title FROM products WHERE id = $1")
        .bind(id)
        .fetch_one(&replica)
        .await
        .unwrap();
    assert_eq!(
        on_replica, "Phone",
        "the replica has not replayed the update"
    );

    // Anyone, on the other instance first (its cache fill must not read the replica), then the
    // admin on both.
    let (status, product) = get(&second, &format!("/products/{id}"), None).await;
    assert_eq!((status, &product["title"]), (200, &json!("Renamed phone")));
    for instance in [&app, &second] {
        let (status, product) = get(instance, &format!("/products/{id}"), Some(&admin)).await;
        assert_eq!((status, &product["title"]), (200, &json!("Renamed phone")));
    }

    // A customer places an order and finds it in their history on both instances.
    let user = app.user_token();
    let placed = app.post_json("/orders", &order_body(id), Some(&user)).await;
    assert_eq!(placed.status().as_u16(), 201);
    let order = json(placed).await["id"].as_str().unwrap().to_owned();
    let on_replica: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE id = $1")
        .bind(&order)
        .fetch_one(&replica)
        .await
        .unwrap();
    assert_eq!(on_replica, 0, "the replica has not replayed the order");
    for instance in [&app, &second] {
        let (status, list) = get(instance, "/orders", Some(&user)).await;
        assert_eq!(status, 200);
        assert_eq!(list["total"], 1, "{list}");
        assert_eq!(list["products"][0]["id"], order.as_str());
        let (status, _) = get(instance, &format!("/orders/{order}"), Some(&user)).await;
        assert_eq!(status, 200);
    }

    pair.resume_replay(&app.db, &replica).await;
}

/// A replica lagging past DATABASE_READ_MAX_LAG is left out (reads see the primary's fresh
/// data), and rejoins once it has caught up.
#[tokio::test]
async fn a_lagging_replica_is_left_out_and_rejoins() {
    let pair = PgReplicaPair::start().await;
    let app = pair.spawn_app(&["--database-read-max-lag", "2s"]).await;
    app.insert_product("Phone", 10_000, 0.0, 5).await;
    let replica = pair.replica_pool(&app.db_name).await;
    wait_for_rotation(&app, &pair, true).await;

    pair.pause_replay(&replica).await;
    let hidden = app.insert_product("Tablet", 20_000, 0.0, 5).await;
    // Not lagging yet: served by the replica, which lacks it.
    assert_eq!(get(&app, &format!("/products/{hidden}"), None).await.0, 404);
    // Past the maximum lag: left out, the primary answers.
    wait_for_rotation(&app, &pair, false).await;
    let (status, product) = get(&app, &format!("/products/{hidden}"), None).await;
    assert_eq!((status, &product["title"]), (200, &json!("Tablet")));

    // Caught up: back in, and serving reads again.
    pair.resume_replay(&app.db, &replica).await;
    wait_for_rotation(&app, &pair, true).await;
    pair.pause_replay(&replica).await;
    let hidden_again = app.insert_product("Watch", 30_000, 0.0, 5).await;
    assert_eq!(
        get(&app, &format!("/products/{hidden_again}"), None)
            .await
            .0,
        404
    );
    pair.resume_replay(&app.db, &replica).await;
}

/// Killing the replica while clients read (catalog pages that miss the cache, order history)
/// costs no request: every one answers 200, on the replica before and on the primary after.
#[tokio::test]
async fn a_replica_killed_under_load_costs_no_read() {
    let mut pair = PgReplicaPair::start().await;
    let app = Arc::new(pair.spawn_app(&["--database-read-max-lag", "60s"]).await);
    app.seed_catalog(20).await;
    let user = app.user_token();
    let placed = app.post_json("/orders", &order_body(1), Some(&user)).await;
    assert_eq!(placed.status().as_u16(), 201);
    let replica = pair.replica_pool(&app.db_name).await;
    wait_for_rotation(&app, &pair, true).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..8u32 {
        let (app, stop, user) = (app.clone(), stop.clone(), user.clone());
        clients.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut n = client;
            while !stop.load(Ordering::Relaxed) {
                n += 8;
                // A new skip each time: a page no one cached yet, so the database answers.
                let (path, token) = if n % 2 == 0 {
                    (format!("/products?limit=2&skip={n}"), None)
                } else {
                    ("/orders".to_owned(), Some(user.as_str()))
                };
                let response = app.request(Method::GET, &path, token).send().await.unwrap();
                answers.push((path, response.status().as_u16()));
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        pair.app_reads(&replica, &app.db_name).await > 0,
        "the load reads on the replica"
    );
    drop(replica);
    pair.kill_replica();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);

    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.unwrap());
    }
    let failed: Vec<_> = answers
        .iter()
        .filter(|(_, status)| *status != 200)
        .collect();
    assert!(answers.len() > 40, "only {} reads", answers.len());
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        answers.len()
    );
    assert!(!in_rotation(&app, &pair).await, "the killed replica is out");
}

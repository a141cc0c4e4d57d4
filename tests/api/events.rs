//! Domain events (services/events) through the real outbox, relay, NATS JetStream and the
//! consumers: each order's confirmation mail (consumer `orders.mail`) is queued once, with
//! the broker, without it (in-process), with two instances consuming, and across a NATS
//! server that stops and starts again under load.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use sqlx::PgConnection;

use crate::common::{self, KillOnDrop, TestApp, free_port, json, spawn_app, spawn_app_with};
use ecom::events::{self, Consumer, Event, EventData, EventKind, ReviewCreated};

/// Places an order of one unit of `product` as `token`; its id.
async fn place(app: &TestApp, product: i64, token: &str) -> String {
    let body = json!({
        "products": [{"id": product, "quantity": 1}],
        "shippingAddress": {"firstName": "Jane", "lastName": "Smith", "address": "1 Main St",
            "city": "Boston", "state": "MA", "zipCode": "02101", "country": "US", "phone": "+15550100"},
        "paymentMethod": "card"
    });
    let response = app
        .request(Method::POST, "/orders", Some(token))
        .json(&body)
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status().as_u16(), 201, "order placed");
    json(response).await["id"].as_str().unwrap().to_owned()
}

/// How many confirmation mails of `order` were queued.
async fn confirmations(app: &TestApp, order: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM mail_outbox WHERE subject = $1")
        .bind(format!("Order {order} confirmed"))
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Waits until every order of `orders` has a confirmation; panics after `limit`.
async fn all_confirmed(app: &TestApp, orders: &[String], limit: Duration) {
    let started = Instant::now();
    loop {
        let mut missing = 0;
        for order in orders {
            if confirmations(app, order).await == 0 {
                missing += 1;
            }
        }
        if missing == 0 {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{missing} of {} orders got no confirmation within {limit:?}",
            orders.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every order's confirmation exactly once, also a while after the last arrived (a
/// redelivery would add a second).
async fn each_confirmed_once(app: &TestApp, orders: &[String]) {
    all_confirmed(app, orders, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for order in orders {
        assert_eq!(
            confirmations(app, order).await,
            1,
            "one confirmation of {order}"
        );
    }
    let handled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_consumptions c JOIN event_outbox o ON o.id = c.event_id
         WHERE c.consumer = 'orders.mail' AND o.kind = 'order.placed'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        handled,
        orders.len() as i64,
        "each order.placed handled once"
    );
}

#[tokio::test]
async fn an_order_s_event_goes_through_jetstream_and_is_mailed_once() {
    let app = spawn_app().await;
    let buyer = app.register("events@example.com").await;
    let product = app.insert_product("Lamp", 2_500, 0.0, 50).await;
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(place(&app, product, &buyer.token).await);
    }
    each_confirmed_once(&app, &orders).await;
    // Published to the stream (not delivered in-process): every row is marked.
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM event_outbox WHERE published_at IS NULL")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(unpublished, 0);
    let kinds: Vec<String> = sqlx::query_scalar("SELECT DISTINCT kind FROM event_outbox")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(kinds, vec!["order.placed".to_owned()]);
}

#[tokio::test]
async fn without_a_broker_the_outbox_is_delivered_in_process() {
    let app = spawn_app_with(&["--nats-url", ""]).await;
    let buyer = app.register("local@example.com").await;
    let product = app.insert_product("Lamp", 2_500, 0.0, 50).await;
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(place(&app, product, &buyer.token).await);
    }
    each_confirmed_once(&app, &orders).await;
}

#[tokio::test]
async fn two_instances_consume_each_event_once() {
    let a = spawn_app().await;
    let b = a.spawn_sibling().await;
    let buyer = a.register("twice@example.com").await;
    let product = a.insert_product("Lamp", 2_500, 0.0, 100).await;
    let mut orders = Vec::new();
    for i in 0..12 {
        let via = if i % 2 == 0 { &a } else { &b };
        orders.push(place(via, product, &buyer.token).await);
    }
    each_confirmed_once(&a, &orders).await;
}

/// A consumer that counts its effects, failing its first `fail` calls.
struct Counting {
    calls: AtomicUsize,
    fail: usize,
}

#[async_trait::async_trait]
impl Consumer for Counting {
    fn name(&self) -> &'static str {
        "test.counting"
    }
    fn wants(&self, kind: EventKind) -> bool {
        kind == EventKind::ReviewCreated
    }
    async fn handle(&self, _tx: &mut PgConnection, _event: &Event) -> anyhow::Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        anyhow::ensure!(n >= self.fail, "failing on purpose");
        Ok(())
    }
}

#[tokio::test]
async fn a_redelivered_event_has_no_second_effect_and_a_failed_one_is_retried() {
    let app = spawn_app().await;
    let mut tx = app.db.begin().await.unwrap();
    let data = EventData::ReviewCreated(ReviewCreated {
        review_id: 1,
        product_id: 1,
        user_id: 1,
        rating: 5,
    });
    let id = events::record(&mut tx, chrono::Utc::now(), data.clone())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let event = Event {
        id,
        occurred_at: chrono::Utc::now(),
        data,
    };
    let consumer = Counting {
        calls: AtomicUsize::new(0),
        fail: 1,
    };
    // The failure rolls back the consumption record: the next delivery runs it again.
    assert!(events::apply(&app.db, &consumer, &event).await.is_err());
    assert!(events::apply(&app.db, &consumer, &event).await.unwrap());
    // Delivered again (a lost ack): no second effect.
    assert!(!events::apply(&app.db, &consumer, &event).await.unwrap());
    assert_eq!(consumer.calls.load(Ordering::SeqCst), 2);
}

/// A NATS server of the test's own, so it can be stopped and started again.
struct PrivateNats {
    dir: PathBuf,
    port: u16,
    process: Option<KillOnDrop>,
}

impl PrivateNats {
    fn start() -> PrivateNats {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("ecom-nats-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut nats = PrivateNats {
            dir,
            port,
            process: None,
        };
        nats.resume();
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server on the same port and store (its stream and consumers survive).
    fn resume(&mut self) {
        let child = Command::new("/usr/sbin/nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.process = Some(KillOnDrop(child));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "NATS came up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        self.process = None;
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.process = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_nats_outage_under_load_loses_no_event_and_doubles_none() {
    let mut nats = PrivateNats::start();
    let url = nats.url();
    let app = Arc::new(spawn_app_with(&["--nats-url", &url]).await);
    let buyer = app.register("outage@example.com").await;
    let product = app.insert_product("Lamp", 2_500, 0.0, 100_000).await;
    // Four buyers' sessions placing orders back to back while the broker goes away.
    let placed = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (app, placed, token) = (app.clone(), placed.clone(), buyer.token.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let id = place(&app, product, &token).await;
                placed.lock().await.push(id);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    nats.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = placed.lock().await.len();
    nats.resume();
    for worker in workers {
        worker.await.unwrap();
    }
    let orders = placed.lock().await.clone();
    assert!(
        orders.len() > during && during > 0,
        "orders were placed before, during and after the outage"
    );
    each_confirmed_once(&app, &orders).await;
}

#[tokio::test]
async fn an_event_the_stream_refused_is_published_again_once_it_accepts() {
    // The relay's own failure path: with the stream gone, JetStream answers a publish with an
    // error at once (no responders), unlike an outage, where the client holds the message
    // until it reconnects. The rows must stay unpublished until the stream is back.
    let app = spawn_app().await;
    let buyer = app.register("refused@example.com").await;
    let product = app.insert_product("Lamp", 2_500, 0.0, 100).await;
    let first = vec![place(&app, product, &buyer.token).await];
    all_confirmed(&app, &first, Duration::from_secs(30)).await;

    let js = async_nats::jetstream::new(async_nats::connect(common::NATS_URL).await.unwrap());
    // The harness names each test's stream after its database.
    js.delete_stream(app.db_name.to_uppercase()).await.unwrap();
    let mut later = Vec::new();
    for _ in 0..5 {
        later.push(place(&app, product, &buyer.token).await);
    }
    each_confirmed_once(&app, &[first, later].concat()).await;
}

/// Past the retention (EVENTS_MAX_AGE) published events and their consumption records go. An
/// unpublished event stays however old, and so do the records of the consumers that already
/// handled it: without them those would act again when the event finally goes.
#[tokio::test]
async fn published_events_and_their_consumptions_are_purged_after_the_retention() {
    let app = spawn_app().await;
    let old = uuid::Uuid::new_v4();
    let recent = uuid::Uuid::new_v4();
    let stuck = uuid::Uuid::new_v4();
    // (id, published how long ago; None: not yet, and not due for an hour, so this instance's
    // relay leaves it alone)
    for (id, published) in [
        (old, Some("8 days")),
        (recent, Some("1 hour")),
        (stuck, None),
    ] {
        sqlx::query(
            "INSERT INTO event_outbox (id, kind, data, occurred_at, published_at, next_attempt_at)
             VALUES ($1, 'review.created', '{}', now() - interval '9 days',
                     now() - $2::interval, now() + interval '1 hour')",
        )
        .bind(id)
        .bind(published)
        .execute(&app.db)
        .await
        .unwrap();
    }
    for (id, handled) in [(old, "8 days"), (recent, "1 hour"), (stuck, "8 days")] {
        sqlx::query(
            "INSERT INTO event_consumptions (consumer, event_id, handled_at)
             VALUES ('test.retention', $1, now() - $2::interval)",
        )
        .bind(id)
        .bind(handled)
        .execute(&app.db)
        .await
        .unwrap();
    }

    let week = Duration::from_secs(7 * 24 * 3600);
    let purged = events::purge(&app.db, week).await.unwrap();
    assert_eq!(
        purged,
        events::Purged {
            events: 1,
            consumptions: 1
        }
    );
    let mut events_left: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM event_outbox ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let mut handled_left: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT event_id FROM event_consumptions ORDER BY event_id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let mut expected = vec![recent, stuck];
    expected.sort();
    events_left.sort();
    handled_left.sort();
    assert_eq!(events_left, expected);
    assert_eq!(handled_left, expected);
    // Nothing left to purge: a second run deletes nothing.
    assert_eq!(
        events::purge(&app.db, week).await.unwrap(),
        events::Purged::default()
    );
}

/// `product.stock_low` once per crossing of LOW_STOCK_THRESHOLD (5), whether a reservation
/// or an admin's edit takes the stock across it; an admin gets the inventory notification for
/// each crossing.
#[tokio::test]
async fn stock_falling_to_the_threshold_is_told_once_per_crossing() {
    let app = spawn_app().await;
    let ops = app.register_admin("ops@example.com").await;
    let buyer = app.register("buyer@example.com").await;
    let product = app.insert_product("Red Lipstick", 1_500, 0.0, 6).await;
    let alerts = || async {
        let stocks: Vec<i32> = sqlx::query_scalar(
            "SELECT (data->>'stock')::int FROM event_outbox
             WHERE kind = 'product.stock_low' AND (data->>'productId')::bigint = $1 ORDER BY seq",
        )
        .bind(product)
        .fetch_all(&app.db)
        .await
        .unwrap();
        stocks
    };
    let set_stock = |stock: i32| {
        let app = &app;
        async move {
            let response = app
                .put_json(
                    &format!("/products/{product}"),
                    &json!({ "stock": stock }),
                    Some(&app.admin_token()),
                )
                .await;
            assert_eq!(response.status().as_u16(), 200, "stock set to {stock}");
        }
    };

    place(&app, product, &buyer.token).await; // 6 -> 5: crosses
    place(&app, product, &buyer.token).await; // 5 -> 4: still low
    assert_eq!(alerts().await, [5]);
    set_stock(20).await; // back above: nothing to tell
    set_stock(9).await; // lower, still above
    assert_eq!(alerts().await, [5]);
    set_stock(3).await; // 9 -> 3: an admin's edit crosses
    set_stock(2).await;
    assert_eq!(alerts().await, [5, 3]);
    let response = app
        .put_json(
            &format!("/products/{product}"),
            &json!({ "title": "Red Lipstick II" }),
            Some(&app.admin_token()),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200, "an edit without stock");
    assert_eq!(alerts().await, [5, 3]);

    // Both crossings reach the admins as in-app notifications.
    let started = Instant::now();
    loop {
        let page = json(app.get_as("/notifications", &ops.token).await).await;
        let low = page["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == "inventory.low_stock")
            .count();
        if low == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "admin notifications: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

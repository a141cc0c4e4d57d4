//! Outbound webhooks: the admin CRUD of endpoints (/admin/webhooks), the `users.webhooks`
//! consumer that enqueues deliveries, and the sender that signs, POSTs and retries them,
//! against local receivers that verify the signature and count deliveries per event id.
//!
//! As in notifications.rs, the consumer's `handle` is called directly (the events runner's
//! own tests are in events.rs); the sender is the real one, running in every test instance.
//! Test instances allow loopback receivers (`--webhook-allow-private true`, common/mod.rs);
//! the last test turns that off.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use chrono::{Duration, Utc};
use ecom::events::{EventData, StockLow};
use ecom::proto::ecom::users::v1 as pb;
use ecom::proto::ecom::users::v1::users_service_client::UsersServiceClient;
use ecom::users::WebhooksConsumer;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::*;
use crate::notifications::{event, handle, order_event};

pub(crate) const SECRET: &str = "whsec_test_0123456789abcdef";

/// A webhook receiver on loopback: verifies `Ecom-Signature` with its own HMAC (not the
/// service's code), counts valid deliveries per event id, and answers 500 to the first
/// `fail_first` requests.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    pub(crate) bodies: Arc<Mutex<Vec<Value>>>,
    pub(crate) bad: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    fail_first: usize,
    delay: StdDuration,
    secret: String,
}

impl Receiver {
    pub(crate) fn hits(&self, event_id: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .get(event_id)
            .copied()
            .unwrap_or(0)
    }
    fn total(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = r.requests.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(r.delay).await;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let signature = header("ecom-signature");
    let (t, v1) = match signature.split_once(',') {
        Some((t, v1)) => (t.trim_start_matches("t="), v1.trim_start_matches("v1=")),
        None => ("", ""),
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(r.secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&body);
    let fresh = t
        .parse::<i64>()
        .is_ok_and(|t| (Utc::now().timestamp() - t).abs() < 300);
    let valid = fresh
        && hex::decode(v1).is_ok_and(|sig| mac.verify_slice(&sig).is_ok())
        && header("content-type") == "application/json";
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !valid || json["id"].as_str() != Some(header("ecom-event-id")) {
        r.bad.fetch_add(1, Ordering::SeqCst);
        return StatusCode::BAD_REQUEST;
    }
    if n < r.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    *r.hits
        .lock()
        .unwrap()
        .entry(header("ecom-event-id").to_owned())
        .or_default() += 1;
    r.bodies.lock().unwrap().push(json);
    StatusCode::NO_CONTENT
}

fn receiver_on(port: u16, fail_first: usize, delay: StdDuration) -> Receiver {
    Receiver {
        url: format!("http://127.0.0.1:{port}/hooks"),
        hits: Arc::default(),
        bodies: Arc::default(),
        bad: Arc::default(),
        requests: Arc::default(),
        fail_first,
        delay,
        secret: SECRET.to_owned(),
    }
}

/// Serves `r` on its port (bound now).
async fn serve(r: &Receiver) {
    let port: u16 = r
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .trim_end_matches("/hooks")
        .parse()
        .unwrap();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

pub(crate) async fn start_receiver(fail_first: usize, delay: StdDuration) -> Receiver {
    let r = receiver_on(free_port(), fail_first, delay);
    serve(&r).await;
    r
}

async fn create(app: &TestApp, body: Value) -> Value {
    let response = app
        .post_json("/admin/webhooks", &body, Some(&app.admin_token()))
        .await;
    assert_eq!(response.status().as_u16(), 201, "create webhook");
    json(response).await
}

async fn deliveries(app: &TestApp, id: i64) -> Value {
    json(
        app.get_as(
            &format!("/admin/webhooks/{id}/deliveries"),
            &app.admin_token(),
        )
        .await,
    )
    .await
}

/// Waits until `done` holds, for at most `secs` seconds.
async fn eventually(secs: u64, mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + StdDuration::from_secs(secs);
    while !done() {
        assert!(
            std::time::Instant::now() < until,
            "timed out after {secs} s"
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
}

/// The fields a validation error names (its `details` object's keys), sorted.
fn fields(body: &Value) -> Vec<String> {
    let mut f: Vec<String> = body["details"]
        .as_object()
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default();
    f.sort();
    f
}

#[tokio::test]
async fn admins_manage_endpoints_with_validation_and_customers_cannot() {
    let app = spawn_app().await;
    let admin = app.admin_token();

    let created = create(&app, json!({"url": "https://example.com/hooks", "events": ["order.placed", "order.shipped"], "description": "ERP"})).await;
    let id = created["id"].as_i64().unwrap();
    let secret = created["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() >= 32,
        "{created}"
    );
    assert_eq!(created["events"], json!(["order.placed", "order.shipped"]));
    assert_eq!(created["enabled"], true);
    assert_eq!(created["description"], "ERP");
    let own = create(
        &app,
        json!({"url": "http://10.0.0.5:8080/in", "events": ["*"], "secret": SECRET}),
    )
    .await;
    assert_eq!(own["secret"], SECRET);

    // The secret is shown once, at creation.
    let got = json(app.get_as(&format!("/admin/webhooks/{id}"), &admin).await).await;
    assert_eq!(got["url"], "https://example.com/hooks");
    assert!(got.get("secret").is_none_or(|s| s == ""), "{got}");
    let list = json(app.get_as("/admin/webhooks", &admin).await).await;
    assert_eq!(list["total"], 2);
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 2);
    assert!(
        list["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w.get("secret").is_none_or(|s| s == ""))
    );
    let page = json(app.get_as("/admin/webhooks?limit=1&skip=1", &admin).await).await;
    assert_eq!(page["webhooks"][0]["id"], own["id"]);

    let updated = app
        .put_json(
            &format!("/admin/webhooks/{id}"),
            &json!({"enabled": false, "events": ["order.paid"]}),
            Some(&admin),
        )
        .await;
    assert_eq!(updated.status().as_u16(), 200);
    let updated = json(updated).await;
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["events"], json!(["order.paid"]));
    assert_eq!(
        updated["url"], "https://example.com/hooks",
        "absent fields unchanged"
    );
    assert_eq!(deliveries(&app, id).await["total"], 0);

    // Validation: every bad field named.
    let bad = app
        .post_json("/admin/webhooks", &json!({"url": "ftp://example.com", "events": ["order.nope"], "secret": "short", "description": "x".repeat(501)}), Some(&admin))
        .await;
    let body = assert_error(bad, 400, "VALIDATION_ERROR").await;
    assert_eq!(
        fields(&body),
        ["description", "events", "secret", "url"],
        "{body}"
    );
    let long = format!("https://example.com/{}", "a".repeat(2040));
    for (body, field) in [
        (json!({"url": "/relative", "events": ["*"]}), "url"),
        (json!({"url": long, "events": ["*"]}), "url"),
        (json!({"url": "not a url", "events": ["*"]}), "url"),
        (
            json!({"url": "https://example.com", "events": []}),
            "events",
        ),
        (json!({"url": "https://example.com"}), "events"),
        (
            json!({"url": "https://example.com", "events": ["*"], "secret": "x".repeat(129)}),
            "secret",
        ),
    ] {
        let response = app.post_json("/admin/webhooks", &body, Some(&admin)).await;
        let err = assert_error(response, 400, "VALIDATION_ERROR").await;
        assert_eq!(fields(&err), [field], "{body} -> {err}");
    }
    let response = app
        .put_json(
            &format!("/admin/webhooks/{id}"),
            &json!({"url": "mailto:x@y"}),
            Some(&admin),
        )
        .await;
    assert_error(response, 400, "VALIDATION_ERROR").await;
    assert_error(
        app.get_as("/admin/webhooks?limit=101", &admin).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;

    // Roles: customers 403 like the other admin routes, anonymous 401.
    let user = app.user_token();
    let ok = json!({"url": "https://example.com", "events": ["*"]});
    assert_error(
        app.post_json("/admin/webhooks", &ok, Some(&user)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_error(app.get_as("/admin/webhooks", &user).await, 403, "FORBIDDEN").await;
    assert_error(
        app.get_as(&format!("/admin/webhooks/{id}"), &user).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_error(
        app.get_as(&format!("/admin/webhooks/{id}/deliveries"), &user)
            .await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_error(
        app.delete(&format!("/admin/webhooks/{id}"), Some(&user))
            .await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_error(
        app.post_json("/admin/webhooks", &ok, None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_error(app.get("/admin/webhooks").await, 401, "UNAUTHORIZED").await;

    // gRPC: same authorization.
    let mut client = UsersServiceClient::new(app.grpc_channel().await);
    let denied = client
        .list_webhooks(authorized(pb::ListWebhooksRequest::default(), &user))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let listed = client
        .list_webhooks(authorized(pb::ListWebhooksRequest::default(), &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total, 2);

    // Delete: 204, then 404 everywhere.
    let deleted = app
        .delete(&format!("/admin/webhooks/{id}"), Some(&admin))
        .await;
    assert_eq!(deleted.status().as_u16(), 204);
    assert_error(
        app.get_as(&format!("/admin/webhooks/{id}"), &admin).await,
        404,
        "WEBHOOK_NOT_FOUND",
    )
    .await;
    assert_error(
        app.delete(&format!("/admin/webhooks/{id}"), Some(&admin))
            .await,
        404,
        "WEBHOOK_NOT_FOUND",
    )
    .await;
    assert_error(
        app.get_as(&format!("/admin/webhooks/{id}/deliveries"), &admin)
            .await,
        404,
        "WEBHOOK_NOT_FOUND",
    )
    .await;
    let response = app
        .put_json(
            &format!("/admin/webhooks/{id}"),
            &json!({"enabled": true}),
            Some(&admin),
        )
        .await;
    assert_error(response, 404, "WEBHOOK_NOT_FOUND").await;
}

#[tokio::test]
async fn subscribed_events_are_delivered_signed_once_and_recorded() {
    let app = spawn_app().await;
    let orders = start_receiver(0, StdDuration::ZERO).await;
    let stock = start_receiver(0, StdDuration::ZERO).await;
    let off = start_receiver(0, StdDuration::ZERO).await;
    let hook = create(
        &app,
        json!({"url": orders.url, "events": ["order.placed", "order.shipped"], "secret": SECRET}),
    )
    .await;
    create(
        &app,
        json!({"url": stock.url, "events": ["product.stock_low"], "secret": SECRET}),
    )
    .await;
    let disabled = create(
        &app,
        json!({"url": off.url, "events": ["*"], "secret": SECRET}),
    )
    .await;
    let response = app
        .put_json(
            &format!("/admin/webhooks/{}", disabled["id"]),
            &json!({"enabled": false}),
            Some(&app.admin_token()),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);

    let now = Utc::now();
    let placed = event(
        EventData::OrderPlaced(order_event(2, "ORD-1", "pending")),
        now,
    );
    let paid = event(EventData::OrderPaid(order_event(2, "ORD-1", "paid")), now);
    let shipped = event(
        EventData::OrderShipped(order_event(2, "ORD-1", "shipped")),
        now,
    );
    let low = event(
        EventData::StockLow(StockLow {
            product_id: 1,
            title: "Mascara".into(),
            stock: 2,
            threshold: 5,
        }),
        now,
    );
    for e in [&placed, &paid, &shipped, &low] {
        handle(&app, &WebhooksConsumer, e).await;
    }
    // Redelivery of the same event: still one delivery per endpoint.
    handle(&app, &WebhooksConsumer, &placed).await;

    eventually(15, || orders.total() == 2 && stock.total() == 1).await;
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    assert_eq!(orders.hits(&placed.id.to_string()), 1);
    assert_eq!(orders.hits(&shipped.id.to_string()), 1);
    assert_eq!(orders.hits(&paid.id.to_string()), 0, "not subscribed");
    assert_eq!(stock.hits(&low.id.to_string()), 1);
    assert_eq!(off.requests.load(Ordering::SeqCst), 0, "disabled endpoint");
    assert_eq!(
        orders.bad.load(Ordering::SeqCst) + stock.bad.load(Ordering::SeqCst),
        0,
        "signatures verify"
    );
    // The body is the event as the outbox stores it: {id, type, occurredAt, data}.
    let bodies = orders.bodies.lock().unwrap().clone();
    let sent = bodies
        .iter()
        .find(|b| b["id"] == placed.id.to_string())
        .unwrap();
    assert_eq!(sent, &serde_json::to_value(&placed).unwrap());
    assert_eq!(sent["type"], "order.placed");

    let id = hook["id"].as_i64().unwrap();
    let page = deliveries(&app, id).await;
    assert_eq!(page["total"], 2, "{page}");
    for d in page["deliveries"].as_array().unwrap() {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["attemptCount"], 1);
        let attempts = d["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0]["httpStatus"], 204);
        assert!(attempts[0]["durationMs"].is_number(), "{d}");
        assert!(attempts[0]["attemptedAt"].is_string());
        assert!(d["completedAt"].is_string());
    }
    let types: Vec<&str> = page["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["order.shipped", "order.placed"], "newest first");
}

#[tokio::test]
async fn a_failing_or_down_receiver_gets_the_event_later_with_every_attempt_recorded() {
    let app = spawn_app_with(&["--webhook-retry-base", "1s"]).await;
    // Answers 500 twice, then 204.
    let flaky = start_receiver(2, StdDuration::ZERO).await;
    // Not listening yet.
    let down = receiver_on(free_port(), 0, StdDuration::ZERO);
    let a = create(
        &app,
        json!({"url": flaky.url, "events": ["*"], "secret": SECRET}),
    )
    .await;
    let b = create(
        &app,
        json!({"url": down.url, "events": ["order.paid"], "secret": SECRET}),
    )
    .await;
    let paid = event(
        EventData::OrderPaid(order_event(2, "ORD-1", "paid")),
        Utc::now(),
    );
    handle(&app, &WebhooksConsumer, &paid).await;

    // The down receiver's first attempt fails to connect and is recorded, pending.
    let b_id = b["id"].as_i64().unwrap();
    let until = std::time::Instant::now() + StdDuration::from_secs(10);
    loop {
        let page = deliveries(&app, b_id).await;
        if page["deliveries"][0]["attemptCount"].as_i64() >= Some(1)
            && page["deliveries"][0]["attempts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        {
            let d = &page["deliveries"][0];
            assert_eq!(d["status"], "pending", "{d}");
            assert!(
                d["attempts"][0]
                    .get("httpStatus")
                    .is_none_or(Value::is_null),
                "{d}"
            );
            assert!(
                !d["attempts"][0]["error"].as_str().unwrap().is_empty(),
                "{d}"
            );
            assert!(d["nextAttemptAt"].is_string());
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "no first attempt: {page}"
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    serve(&down).await;

    eventually(30, || flaky.total() == 1 && down.total() == 1).await;
    let event_id = paid.id.to_string();
    assert_eq!(flaky.hits(&event_id), 1);
    assert_eq!(down.hits(&event_id), 1);
    assert_eq!(flaky.requests.load(Ordering::SeqCst), 3);
    tokio::time::sleep(StdDuration::from_millis(300)).await;

    let page = deliveries(&app, a["id"].as_i64().unwrap()).await;
    let d = &page["deliveries"][0];
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(d["attemptCount"], 3);
    let statuses: Vec<i64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["httpStatus"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 204]);
    assert_eq!(d["attempts"][0]["error"], "HTTP 500");
    // Backoff: the second retry waited longer than the first (1 s, then 2 s).
    let at: Vec<chrono::DateTime<Utc>> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attemptedAt"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(at[1] - at[0] >= Duration::milliseconds(900), "{at:?}");
    assert!(at[2] - at[1] >= Duration::milliseconds(1900), "{at:?}");
    let page = deliveries(&app, b_id).await;
    assert_eq!(page["deliveries"][0]["status"], "delivered", "{page}");
    assert!(page["deliveries"][0]["attemptCount"].as_i64().unwrap() >= 2);
}

#[tokio::test]
async fn a_delivery_still_failing_24_hours_after_its_event_is_failed() {
    let app = spawn_app_with(&["--webhook-retry-base", "1s"]).await;
    let down = receiver_on(free_port(), 0, StdDuration::ZERO);
    let hook = create(
        &app,
        json!({"url": down.url, "events": ["*"], "secret": SECRET}),
    )
    .await;
    let old = event(
        EventData::OrderPaid(order_event(2, "ORD-1", "paid")),
        Utc::now() - Duration::hours(24) + Duration::seconds(2),
    );
    handle(&app, &WebhooksConsumer, &old).await;
    let id = hook["id"].as_i64().unwrap();
    let until = std::time::Instant::now() + StdDuration::from_secs(20);
    let page = loop {
        let page = deliveries(&app, id).await;
        if page["deliveries"][0]["status"] != "pending" {
            break page;
        }
        assert!(std::time::Instant::now() < until, "still pending: {page}");
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    };
    let d = &page["deliveries"][0];
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["completedAt"].is_string());
    let attempts = d["attempts"].as_array().unwrap().len();
    assert!(
        (1..=3).contains(&attempts),
        "retried within the window only: {d}"
    );
    assert_eq!(d["attemptCount"].as_i64().unwrap() as usize, attempts);
}

#[tokio::test]
async fn two_instances_deliver_each_event_exactly_once_per_endpoint() {
    let app = spawn_app_with(&["--webhook-retry-base", "1s"]).await;
    let sibling = app.spawn_sibling().await;
    // A slow receiver keeps deliveries in flight while the other instance polls.
    let one = start_receiver(0, StdDuration::from_millis(30)).await;
    let two = start_receiver(0, StdDuration::from_millis(30)).await;
    create(
        &app,
        json!({"url": one.url, "events": ["*"], "secret": SECRET}),
    )
    .await;
    create(
        &sibling,
        json!({"url": two.url, "events": ["order.placed"], "secret": SECRET}),
    )
    .await;

    let mut ids = Vec::new();
    for i in 0..40 {
        let e = event(
            EventData::OrderPlaced(order_event(2, &format!("ORD-{i}"), "pending")),
            Utc::now(),
        );
        // Half the events handled through each instance's database handle: it is one database.
        handle(
            if i % 2 == 0 { &app } else { &sibling },
            &WebhooksConsumer,
            &e,
        )
        .await;
        ids.push(e.id.to_string());
    }
    eventually(40, || one.total() >= 40 && two.total() >= 40).await;
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    for id in &ids {
        assert_eq!(one.hits(id), 1, "endpoint one, event {id}");
        assert_eq!(two.hits(id), 1, "endpoint two, event {id}");
    }
    assert_eq!(one.requests.load(Ordering::SeqCst), 40);
    assert_eq!(two.requests.load(Ordering::SeqCst), 40);
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_attempts")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(attempts, 80, "one attempt per delivery");
}

/// WEBHOOK_ALLOW_PRIVATE off (the default outside tests): an admin cannot point a webhook at
/// this machine or its network, neither when saving the endpoint nor at send time (for an
/// endpoint saved before, written here straight to the table).
#[tokio::test]
async fn without_allow_private_no_webhook_reaches_this_machine_or_its_network() {
    let app = spawn_app_with(&["--webhook-allow-private", "false"]).await;
    let admin = app.admin_token();
    for url in [
        "http://127.0.0.1:8080/hooks",
        "http://localhost/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hooks",
        "https://10.0.0.5/in",
    ] {
        let response = app
            .post_json(
                "/admin/webhooks",
                &json!({"url": url, "events": ["*"]}),
                Some(&admin),
            )
            .await;
        assert_eq!(response.status().as_u16(), 400, "{url}");
        let body = json(response).await;
        assert_eq!(body["code"], "VALIDATION_ERROR", "{body}");
        assert_eq!(fields(&body), ["url"], "{body}");
    }
    let public = create(
        &app,
        json!({"url": "https://example.com/hooks", "events": ["*"]}),
    )
    .await;
    let response = app
        .put_json(
            &format!("/admin/webhooks/{}", public["id"]),
            &json!({"url": "http://127.0.0.1:9/hooks"}),
            Some(&admin),
        )
        .await;
    assert_eq!(response.status().as_u16(), 400, "an update is checked too");

    let receiver = start_receiver(0, StdDuration::ZERO).await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO webhook_endpoints (url, events, secret, created_at, updated_at)
         VALUES ($1, '{order.placed}', $2, now(), now()) RETURNING id",
    )
    .bind(&receiver.url)
    .bind(SECRET)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let placed = event(
        EventData::OrderPlaced(order_event(2, "ORD-9", "pending")),
        Utc::now(),
    );
    handle(&app, &WebhooksConsumer, &placed).await;
    let until = std::time::Instant::now() + StdDuration::from_secs(15);
    let attempt = loop {
        let page = deliveries(&app, id).await;
        if let Some(a) = page["deliveries"][0]["attempts"].get(0) {
            break a.clone();
        }
        assert!(std::time::Instant::now() < until, "no attempt: {page}");
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    };
    assert!(
        attempt["error"].as_str().unwrap().starts_with("refused"),
        "{attempt}"
    );
    assert_eq!(attempt["httpStatus"], Value::Null, "{attempt}");
    assert_eq!(receiver.requests.load(Ordering::SeqCst), 0, "nothing sent");
}

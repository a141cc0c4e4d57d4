//! Payments (the /payments routes) through the real REST edge: intents with the
//! sandbox provider, confirmation, status, idempotency, and the webhook's
//! signature and exactly-once effect.

use crate::common::{TestApp, assert_error, json, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

const WEBHOOK_SECRET: &str = "whsec_test_secret";

async fn app() -> TestApp {
    spawn_app_with(&["--stripe-webhook-secret", WEBHOOK_SECRET]).await
}

async fn create_intent(
    app: &TestApp,
    body: &Value,
    token: &str,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .request(Method::POST, "/payments/intents", Some(token))
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.expect("request sent")
}

async fn intent(app: &TestApp, amount: i64) -> Value {
    let response = create_intent(app, &json!({"amount": amount}), &app.user_token(), None).await;
    assert_eq!(response.status(), 201);
    json(response).await
}

async fn status_of(app: &TestApp, id: &str, token: &str) -> reqwest::Response {
    app.get_as(&format!("/payments/intents/{id}/status"), token)
        .await
}

async fn webhook(app: &TestApp, body: &str, signature: &str) -> reqwest::Response {
    app.request(Method::POST, "/payments/webhook", None)
        .header("Content-Type", "application/json")
        .header("Stripe-Signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .expect("request sent")
}

#[tokio::test]
async fn an_intent_is_created_and_confirmed_with_the_sandbox() {
    let app = app().await;

    let created = intent(&app, 244_942).await;
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("pi_"));
    assert!(created["clientSecret"].as_str().unwrap().starts_with(id));
    assert_eq!(created["amount"], 244_942);
    assert_eq!(created["currency"], "usd");
    assert_eq!(created["status"], "requires_payment_method");

    let confirmed = app
        .post_json(
            &format!("/payments/intents/{id}/confirm"),
            &json!({"paymentMethodId": "pm_card_visa"}),
            Some(&app.user_token()),
        )
        .await;
    assert_eq!(confirmed.status(), 200);
    let confirmed = json(confirmed).await;
    assert_eq!(confirmed["status"], "succeeded");
    assert_eq!(confirmed["amount"], 244_942);

    let status = json(status_of(&app, id, &app.user_token()).await).await;
    assert_eq!(status["status"], "succeeded");
}

#[tokio::test]
async fn a_declined_card_fails_the_intent() {
    let app = app().await;
    let id = intent(&app, 1_000).await["id"].as_str().unwrap().to_owned();

    let declined = app
        .post_json(
            &format!("/payments/intents/{id}/confirm"),
            &json!({"paymentMethodId": "pm_card_chargeDeclined"}),
            Some(&app.user_token()),
        )
        .await;

    assert_error(declined, 422, "PAYMENT_FAILED").await;
    let status = json(status_of(&app, &id, &app.user_token()).await).await;
    assert_eq!(status["status"], "failed");
}

#[tokio::test]
async fn only_the_owner_sees_an_intent() {
    let app = app().await;
    let id = intent(&app, 1_000).await["id"].as_str().unwrap().to_owned();

    assert_error(
        status_of(&app, &id, &app.other_user_token()).await,
        404,
        "PAYMENT_INTENT_NOT_FOUND",
    )
    .await;
    let confirm = app
        .post_json(
            &format!("/payments/intents/{id}/confirm"),
            &json!({"paymentMethodId": "pm_card_visa"}),
            Some(&app.other_user_token()),
        )
        .await;
    assert_error(confirm, 404, "PAYMENT_INTENT_NOT_FOUND").await;
    assert_error(
        status_of(&app, "pi_nope", &app.user_token()).await,
        404,
        "PAYMENT_INTENT_NOT_FOUND",
    )
    .await;
    assert_error(
        app.get(&format!("/payments/intents/{id}/status")).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
}

#[tokio::test]
async fn intents_validate_amount_and_currency() {
    let app = app().await;
    let token = app.user_token();
    assert_error(
        create_intent(&app, &json!({"amount": 0}), &token, None).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_error(
        create_intent(
            &app,
            &json!({"amount": 1000, "currency": "dollars"}),
            &token,
            None,
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    let eur = json(
        create_intent(
            &app,
            &json!({"amount": 1000, "currency": "EUR", "metadata": {"note": "x"}}),
            &token,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(eur["currency"], "eur");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_intent() {
    let app = app().await;
    let token = app.user_token();
    let first = create_intent(&app, &json!({"amount": 5000}), &token, Some("pay-1")).await;
    assert_eq!(first.status(), 201);
    let first = json(first).await;

    let again = create_intent(&app, &json!({"amount": 5000}), &token, Some("pay-1")).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(json(again).await, first);

    let other = create_intent(&app, &json!({"amount": 6000}), &token, Some("pay-1")).await;
    assert_error(other, 422, "IDEMPOTENCY_KEY_REUSED").await;
    let intents: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_intents")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(intents, 1);
}

#[tokio::test]
async fn a_webhook_delivered_three_times_changes_the_intent_once() {
    let app = app().await;
    let id = intent(&app, 1_000).await["id"].as_str().unwrap().to_owned();
    let body =
        json!({"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"id": id}}})
            .to_string();
    let signature = ecom::payments::webhook::sign(
        WEBHOOK_SECRET.as_bytes(),
        app.clock.now().timestamp(),
        body.as_bytes(),
    );

    for _ in 0..3 {
        let response = webhook(&app, &body, &signature).await;
        assert_eq!(response.status(), 200);
        assert_eq!(json(response).await["received"], true);
    }

    let status = json(status_of(&app, &id, &app.user_token()).await).await;
    assert_eq!(status["status"], "succeeded");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_webhook_events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(events, 1);
    // A later failure event for a paid intent does not unpay it.
    let failed = json!({"id": "evt_2", "type": "payment_intent.payment_failed", "data": {"object": {"id": id}}}).to_string();
    let signature = ecom::payments::webhook::sign(
        WEBHOOK_SECRET.as_bytes(),
        app.clock.now().timestamp(),
        failed.as_bytes(),
    );
    assert_eq!(webhook(&app, &failed, &signature).await.status(), 200);
    assert_eq!(
        json(status_of(&app, &id, &app.user_token()).await).await["status"],
        "succeeded"
    );
}

#[tokio::test]
async fn a_webhook_with_a_bad_signature_or_an_old_timestamp_is_refused() {
    let app = app().await;
    let id = intent(&app, 1_000).await["id"].as_str().unwrap().to_owned();
    let body =
        json!({"id": "evt_9", "type": "payment_intent.succeeded", "data": {"object": {"id": id}}})
            .to_string();
    let now = app.clock.now().timestamp();

    let wrong_key = ecom::payments::webhook::sign(b"whsec_wrong", now, body.as_bytes());
    assert_error(
        webhook(&app, &body, &wrong_key).await,
        400,
        "INVALID_SIGNATURE",
    )
    .await;
    let old = ecom::payments::webhook::sign(WEBHOOK_SECRET.as_bytes(), now - 301, body.as_bytes());
    assert_error(webhook(&app, &body, &old).await, 400, "INVALID_SIGNATURE").await;
    let tampered = ecom::payments::webhook::sign(WEBHOOK_SECRET.as_bytes(), now, body.as_bytes());
    let other_body = body.replace("succeeded", "payment_failed");
    assert_error(
        webhook(&app, &other_body, &tampered).await,
        400,
        "INVALID_SIGNATURE",
    )
    .await;
    assert_error(
        webhook(&app, &body, "garbage").await,
        400,
        "INVALID_SIGNATURE",
    )
    .await;

    assert_eq!(
        json(status_of(&app, &id, &app.user_token()).await).await["status"],
        "requires_payment_method"
    );
}

// ---- The stripe provider against a fake Stripe; orders and payments agree ----

use crate::common::fake_stripe::{FAKE_STRIPE_KEY, FakeStripe};

/// An app paying through the stripe provider at `base` with `key`.
async fn stripe_app(base: &str, key: &str) -> TestApp {
    spawn_app_with(&[
        "--stripe-webhook-secret",
        WEBHOOK_SECRET,
        "--payment-provider",
        "stripe",
        "--stripe-secret-key",
        key,
        "--stripe-api-base",
        base,
    ])
    .await
}

async fn confirm(app: &TestApp, id: &str, method: &str) -> reqwest::Response {
    app.post_json(
        &format!("/payments/intents/{id}/confirm"),
        &json!({"paymentMethodId": method}),
        Some(&app.user_token()),
    )
    .await
}

/// A signed webhook delivery of event `event_id` of `kind` for `object`.
async fn deliver(app: &TestApp, event_id: &str, kind: &str, object: Value) -> reqwest::Response {
    let body = json!({"id": event_id, "type": kind, "data": {"object": object}}).to_string();
    let signature = ecom::payments::webhook::sign(
        WEBHOOK_SECRET.as_bytes(),
        app.clock.now().timestamp(),
        body.as_bytes(),
    );
    webhook(app, &body, &signature).await
}

/// A product of `price_cents` with stock 10; returns its id.
async fn product(app: &TestApp, price_cents: i64) -> i64 {
    app.insert_product("Thing", price_cents, 0.0, 10).await
}

/// Places an order of one 50.00 product (total 6399 cents) for the user.
async fn order(app: &TestApp, intent: Option<&str>) -> Value {
    let p = product(app, 5_000).await;
    let mut body = json!({
        "products": [{"id": p, "quantity": 1}],
        "shippingAddress": {
            "firstName": "John", "lastName": "Doe", "address": "123 Main St", "city": "New York",
            "state": "NY", "zipCode": "10001", "country": "USA", "phone": "+1234567890"
        },
        "paymentMethod": "card"
    });
    if let Some(intent) = intent {
        body["paymentIntentId"] = json!(intent);
    }
    let response = app
        .post_json("/orders", &body, Some(&app.user_token()))
        .await;
    assert_eq!(response.status(), 201);
    json(response).await
}

async fn read_order(app: &TestApp, id: &str) -> Value {
    json(
        app.get_as(&format!("/orders/{id}"), &app.user_token())
            .await,
    )
    .await
}

#[tokio::test]
async fn the_stripe_provider_creates_confirms_and_reads_through_stripes_api() {
    let stripe = FakeStripe::start().await;
    let app = stripe_app(&stripe.base, FAKE_STRIPE_KEY).await;

    let created = intent(&app, 2_499).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["status"], "requires_payment_method");
    let creates = stripe.calls_to("POST", "/v1/payment_intents");
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0].field("amount"), Some("2499"));
    assert_eq!(creates[0].field("currency"), Some("usd"));
    assert_eq!(creates[0].field("metadata[ecom_intent_id]"), Some(id));
    assert!(
        creates[0]
            .idempotency_key
            .as_deref()
            .is_some_and(|k| k.contains(id)),
        "creating calls carry an Idempotency-Key: {:?}",
        creates[0]
    );
    let (provider_ref, provider): (String, String) =
        sqlx::query_as("SELECT provider_ref, provider FROM payment_intents WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(provider, "stripe");
    assert!(
        stripe.intent(&provider_ref).is_some(),
        "Stripe's own id is kept"
    );

    let confirmed = confirm(&app, id, "pm_card_visa").await;
    assert_eq!(confirmed.status(), 200);
    assert_eq!(json(confirmed).await["status"], "succeeded");
    let confirms = stripe.calls_to(
        "POST",
        &format!("/v1/payment_intents/{provider_ref}/confirm"),
    );
    assert_eq!(confirms.len(), 1);
    assert_eq!(confirms[0].field("payment_method"), Some("pm_card_visa"));
    assert_eq!(stripe.intent(&provider_ref).unwrap()["status"], "succeeded");

    let status = json(status_of(&app, id, &app.user_token()).await).await;
    assert_eq!(status["status"], "succeeded");
    // Only the last four digits of the card are kept.
    let last4: Option<String> =
        sqlx::query_scalar("SELECT card_last4 FROM payment_intents WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(last4.as_deref(), Some("4242"));
}

#[tokio::test]
async fn a_card_declined_by_stripe_is_payment_failed() {
    let stripe = FakeStripe::start().await;
    let app = stripe_app(&stripe.base, FAKE_STRIPE_KEY).await;
    let id = intent(&app, 1_000).await["id"].as_str().unwrap().to_owned();

    let declined = confirm(&app, &id, "pm_card_chargeDeclined").await;
    let body = assert_error(declined, 422, "PAYMENT_FAILED").await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Your card was declined."),
        "{body}"
    );
    assert_eq!(body["details"]["paymentIntentId"], id.as_str());
    let status = json(status_of(&app, &id, &app.user_token()).await).await;
    assert_eq!(status["status"], "failed");
    assert_eq!(stripe.calls().len(), 2, "one create, one confirm");
}

#[tokio::test]
async fn stripe_refusing_or_unreachable_is_a_clear_error_without_secrets() {
    let stripe = FakeStripe::start().await;
    let app = stripe_app(&stripe.base, "sk_test_wrong_key_42").await;
    let refused = create_intent(&app, &json!({"amount": 1_000}), &app.user_token(), None).await;
    let body = assert_error(refused, 502, "PAYMENT_PROVIDER_ERROR").await;
    assert!(!body.to_string().contains("sk_test"), "{body}");
    assert_eq!(stripe.calls().len(), 1);

    // A Stripe that hangs: 503 after STRIPE_TIMEOUT, not a hung request.
    let hanging = FakeStripe::start().await;
    hanging.hang();
    let app = spawn_app_with(&[
        "--payment-provider",
        "stripe",
        "--stripe-secret-key",
        FAKE_STRIPE_KEY,
        "--stripe-api-base",
        &hanging.base,
        "--stripe-timeout",
        "1s",
    ])
    .await;
    let started = std::time::Instant::now();
    let slow = create_intent(&app, &json!({"amount": 1_000}), &app.user_token(), None).await;
    assert_error(slow, 503, "SERVICE_UNAVAILABLE").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // Nothing listens on port 1.
    let app = stripe_app("http://127.0.0.1:1", FAKE_STRIPE_KEY).await;
    let down = create_intent(&app, &json!({"amount": 1_000}), &app.user_token(), None).await;
    assert_error(down, 503, "SERVICE_UNAVAILABLE").await;
    let intents: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_intents")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(intents, 0);
}

#[tokio::test]
async fn cancelling_an_order_paid_through_stripe_refunds_it_there() {
    let stripe = FakeStripe::start().await;
    let app = stripe_app(&stripe.base, FAKE_STRIPE_KEY).await;
    let id = intent(&app, 6_399).await["id"].as_str().unwrap().to_owned();
    let placed = order(&app, Some(&id)).await;
    let order_id = placed["id"].as_str().unwrap().to_owned();
    assert_eq!(confirm(&app, &id, "pm_card_visa").await.status(), 200);
    assert_eq!(read_order(&app, &order_id).await["paymentStatus"], "paid");

    let cancelled = app
        .put_json(
            &format!("/orders/{order_id}/cancel"),
            &json!({"reason": "Too late"}),
            Some(&app.user_token()),
        )
        .await;
    assert_eq!(cancelled.status(), 200);
    let read = read_order(&app, &order_id).await;
    assert_eq!(read["status"], "cancelled");
    assert_eq!(read["paymentStatus"], "refunded");
    let provider_ref: String =
        sqlx::query_scalar("SELECT provider_ref FROM payment_intents WHERE id = $1")
            .bind(&id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let refunds = stripe.calls_to("POST", "/v1/refunds");
    assert_eq!(refunds.len(), 1);
    assert_eq!(
        refunds[0].field("payment_intent"),
        Some(provider_ref.as_str())
    );
    assert!(refunds[0].idempotency_key.is_some());
    assert_eq!(stripe.intent(&provider_ref).unwrap()["refunded"], true);
}

#[tokio::test]
async fn an_intent_for_an_order_must_be_for_the_callers_order_and_its_total() {
    let app = app().await;
    let placed = order(&app, None).await;
    let order_id = placed["id"].as_str().unwrap().to_owned();
    let user = app.user_token();
    let for_order = |amount: i64| json!({"amount": amount, "metadata": {"orderId": order_id}});

    assert_error(
        create_intent(&app, &for_order(6_399), &app.other_user_token(), None).await,
        404,
        "ORDER_NOT_FOUND",
    )
    .await;
    assert_error(
        create_intent(
            &app,
            &json!({"amount": 6_399, "metadata": {"orderId": "ORD-1999010101"}}),
            &user,
            None,
        )
        .await,
        404,
        "ORDER_NOT_FOUND",
    )
    .await;
    let mismatch = assert_error(
        create_intent(&app, &for_order(100), &user, None).await,
        422,
        "AMOUNT_MISMATCH",
    )
    .await;
    assert_eq!(mismatch["details"]["orderTotal"], 6_399);
    assert_error(
        create_intent(
            &app,
            &json!({"amount": 6_399, "currency": "eur", "metadata": {"orderId": order_id}}),
            &user,
            None,
        )
        .await,
        422,
        "AMOUNT_MISMATCH",
    )
    .await;

    let response = create_intent(&app, &for_order(6_399), &user, None).await;
    assert_eq!(response.status(), 201);
    let id = json(response).await["id"].as_str().unwrap().to_owned();
    // Paying it pays the order it names, though the order was placed without it.
    assert_eq!(confirm(&app, &id, "pm_card_visa").await.status(), 200);
    let read = read_order(&app, &order_id).await;
    assert_eq!(read["paymentStatus"], "paid");
    assert_eq!(read["status"], "processing");
    assert_eq!(read["paymentIntentId"], id.as_str());

    assert_error(
        create_intent(&app, &for_order(6_399), &user, None).await,
        409,
        "ORDER_ALREADY_PAID",
    )
    .await;

    // A cancelled order takes no payment.
    let other = order(&app, None).await;
    let other_id = other["id"].as_str().unwrap();
    let cancelled = app
        .put_json(
            &format!("/orders/{other_id}/cancel"),
            &json!({}),
            Some(&user),
        )
        .await;
    assert_eq!(cancelled.status(), 200);
    assert_error(
        create_intent(
            &app,
            &json!({"amount": 6_399, "metadata": {"orderId": other_id}}),
            &user,
            None,
        )
        .await,
        422,
        "ORDER_NOT_PAYABLE",
    )
    .await;
}

#[tokio::test]
async fn webhooks_pay_and_refund_the_order_and_replays_converge() {
    let app = app().await;
    let id = intent(&app, 6_399).await["id"].as_str().unwrap().to_owned();
    let placed = order(&app, Some(&id)).await;
    let order_id = placed["id"].as_str().unwrap().to_owned();

    let succeeded = deliver(&app, "evt_a", "payment_intent.succeeded", json!({"id": id})).await;
    assert_eq!(succeeded.status(), 200);
    let read = read_order(&app, &order_id).await;
    assert_eq!(read["paymentStatus"], "paid");
    assert_eq!(read["status"], "processing");

    let refunded = deliver(
        &app,
        "evt_b",
        "charge.refunded",
        json!({"id": "ch_1", "payment_intent": id}),
    )
    .await;
    assert_eq!(refunded.status(), 200);
    assert_eq!(
        read_order(&app, &order_id).await["paymentStatus"],
        "refunded"
    );

    // A late (or replayed under a new id) success does not resurrect `paid`.
    for event in ["evt_a", "evt_c"] {
        let late = deliver(&app, event, "payment_intent.succeeded", json!({"id": id})).await;
        assert_eq!(late.status(), 200);
    }
    let read = read_order(&app, &order_id).await;
    assert_eq!(read["paymentStatus"], "refunded");
    let received = read["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["note"] == "Payment received")
        .count();
    assert_eq!(received, 1, "one state change: {read}");
}

#[tokio::test]
async fn a_refund_delivered_before_the_success_still_ends_refunded() {
    let app = app().await;
    let id = intent(&app, 6_399).await["id"].as_str().unwrap().to_owned();
    let placed = order(&app, Some(&id)).await;
    let order_id = placed["id"].as_str().unwrap().to_owned();

    let refunded = deliver(
        &app,
        "evt_r",
        "charge.refunded",
        json!({"id": "ch_1", "payment_intent": id}),
    )
    .await;
    assert_eq!(refunded.status(), 200);
    let succeeded = deliver(&app, "evt_s", "payment_intent.succeeded", json!({"id": id})).await;
    assert_eq!(succeeded.status(), 200);

    assert_eq!(
        read_order(&app, &order_id).await["paymentStatus"],
        "refunded"
    );
    assert_eq!(
        json(status_of(&app, &id, &app.user_token()).await).await["status"],
        "succeeded"
    );
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn in_mesh_mode_orders_and_payments_reach_each_other_over_grpc() {
    // Two processes' worth of services, each on its own database: app `pay`'s
    // payments reach app `shop`'s orders at ORDERS_URL, and `shop`'s orders
    // reach `pay`'s payments at PAYMENTS_URL. `shop` is not up when `pay`
    // starts: the channel connects lazily.
    let orders_port = free_port();
    let pay = spawn_app_with(&[
        "--stripe-webhook-secret",
        WEBHOOK_SECRET,
        "--orders-url",
        &format!("http://127.0.0.1:{orders_port}"),
    ])
    .await;
    let shop = spawn_app_with(&[
        "--grpc-port",
        &orders_port.to_string(),
        "--payments-url",
        &pay.grpc,
    ])
    .await;

    // shop's orders check the intent in pay's database.
    let foreign = create_intent(
        &pay,
        &json!({"amount": 6_399}),
        &pay.other_user_token(),
        None,
    )
    .await;
    let foreign = json(foreign).await["id"].as_str().unwrap().to_owned();
    let p = product(&shop, 5_000).await;
    let body = |intent: &str| {
        json!({
            "products": [{"id": p, "quantity": 1}],
            "shippingAddress": {
                "firstName": "John", "lastName": "Doe", "address": "123 Main St", "city": "New York",
                "state": "NY", "zipCode": "10001", "country": "USA", "phone": "+1234567890"
            },
            "paymentMethod": "card",
            "paymentIntentId": intent
        })
    };
    assert_error(
        shop.post_json("/orders", &body(&foreign), Some(&shop.user_token()))
            .await,
        404,
        "PAYMENT_INTENT_NOT_FOUND",
    )
    .await;
    let id = intent(&pay, 6_399).await["id"].as_str().unwrap().to_owned();
    let placed = shop
        .post_json("/orders", &body(&id), Some(&shop.user_token()))
        .await;
    assert_eq!(placed.status(), 201);
    let order_id = json(placed).await["id"].as_str().unwrap().to_owned();
    assert!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM payment_intents")
            .fetch_one(&shop.db)
            .await
            .unwrap()
            == 0,
        "the intent lives in pay's database only"
    );

    // pay tells shop's order that it is paid.
    assert_eq!(confirm(&pay, &id, "pm_card_visa").await.status(), 200);
    let read = read_order(&shop, &order_id).await;
    assert_eq!(read["paymentStatus"], "paid");
    assert_eq!(read["status"], "processing");

    // pay checks an intent's order in shop's database.
    assert_error(
        create_intent(
            &pay,
            &json!({"amount": 6_399, "metadata": {"orderId": order_id}}),
            &pay.user_token(),
            None,
        )
        .await,
        409,
        "ORDER_ALREADY_PAID",
    )
    .await;

    // shop's cancel refunds through pay.
    let cancelled = shop
        .put_json(
            &format!("/orders/{order_id}/cancel"),
            &json!({}),
            Some(&shop.user_token()),
        )
        .await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(
        read_order(&shop, &order_id).await["paymentStatus"],
        "refunded"
    );
    let refunded: bool =
        sqlx::query_scalar("SELECT refunded_at IS NOT NULL FROM payment_intents WHERE id = $1")
            .bind(&id)
            .fetch_one(&pay.db)
            .await
            .unwrap();
    assert!(refunded);
}

#[tokio::test]
async fn a_processing_stripe_payment_is_refreshed_from_stripe_when_read() {
    let stripe = FakeStripe::start().await;
    let app = stripe_app(&stripe.base, FAKE_STRIPE_KEY).await;
    let id = intent(&app, 6_399).await["id"].as_str().unwrap().to_owned();
    let order_id = order(&app, Some(&id)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let provider_ref: String =
        sqlx::query_scalar("SELECT provider_ref FROM payment_intents WHERE id = $1")
            .bind(&id)
            .fetch_one(&app.db)
            .await
            .unwrap();

    let confirmed = confirm(&app, &id, "pm_card_processing").await;
    assert_eq!(confirmed.status(), 200);
    assert_eq!(json(confirmed).await["status"], "processing");
    let status = json(status_of(&app, &id, &app.user_token()).await).await;
    assert_eq!(status["status"], "processing");
    let path = format!("/v1/payment_intents/{provider_ref}");
    assert_eq!(stripe.calls_to("GET", &path).len(), 1, "asked Stripe");
    assert_eq!(read_order(&app, &order_id).await["paymentStatus"], "unpaid");

    // Stripe finishes it; the next read sees it and pays the order.
    stripe.set_status(&provider_ref, "succeeded");
    let status = json(status_of(&app, &id, &app.user_token()).await).await;
    assert_eq!(status["status"], "succeeded");
    let read = read_order(&app, &order_id).await;
    assert_eq!(read["paymentStatus"], "paid");
    assert_eq!(read["status"], "processing");
    // Final now: not asked again.
    let _ = status_of(&app, &id, &app.user_token()).await;
    assert_eq!(stripe.calls_to("GET", &path).len(), 2);
}

#[tokio::test]
async fn cancelling_an_unpaid_order_cancels_its_intent_at_stripe() {
    let stripe = FakeStripe::start().await;
    let app = stripe_app(&stripe.base, FAKE_STRIPE_KEY).await;
    let id = intent(&app, 6_399).await["id"].as_str().unwrap().to_owned();
    let order_id = order(&app, Some(&id)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let provider_ref: String =
        sqlx::query_scalar("SELECT provider_ref FROM payment_intents WHERE id = $1")
            .bind(&id)
            .fetch_one(&app.db)
            .await
            .unwrap();

    let cancelled = app
        .put_json(
            &format!("/orders/{order_id}/cancel"),
            &json!({}),
            Some(&app.user_token()),
        )
        .await;
    assert_eq!(cancelled.status(), 200);
    let cancels = stripe.calls_to(
        "POST",
        &format!("/v1/payment_intents/{provider_ref}/cancel"),
    );
    assert_eq!(cancels.len(), 1);
    assert_eq!(stripe.intent(&provider_ref).unwrap()["status"], "canceled");
    assert!(stripe.calls_to("POST", "/v1/refunds").is_empty());

    // It can no longer pay (the cancelled order or anything else).
    assert_error(
        confirm(&app, &id, "pm_card_visa").await,
        422,
        "PAYMENT_FAILED",
    )
    .await;
    let read = read_order(&app, &order_id).await;
    assert_eq!(read["paymentStatus"], "unpaid");
    assert_eq!(read["status"], "cancelled");
}

#[tokio::test]
async fn a_webhook_whose_order_cannot_be_told_is_refused_and_applies_on_redelivery() {
    // Payments reach orders at a port where nothing listens.
    let app = spawn_app_with(&[
        "--stripe-webhook-secret",
        WEBHOOK_SECRET,
        "--orders-url",
        "http://127.0.0.1:1",
    ])
    .await;
    let id = intent(&app, 1_000).await["id"].as_str().unwrap().to_owned();

    let refused = deliver(&app, "evt_x", "payment_intent.succeeded", json!({"id": id})).await;
    assert_error(refused, 503, "SERVICE_UNAVAILABLE").await;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_webhook_events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(events, 0, "forgotten, so the provider's retry applies it");
    // The intent itself is up to date; applying the event again converges.
    assert_eq!(
        json(status_of(&app, &id, &app.user_token()).await).await["status"],
        "succeeded"
    );
}

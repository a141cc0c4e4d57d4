//! Payments (contract section 8) through the real REST edge: intents with the
//! sandbox provider, confirmation, status, idempotency, and the webhook's
//! signature and exactly-once effect.

mod common;

use common::{TestApp, assert_error, json, spawn_app_with};
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

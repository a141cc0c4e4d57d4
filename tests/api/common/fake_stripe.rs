//! A fake of Stripe's Payment Intents API on loopback, for the `stripe`
//! provider's tests: create, confirm, retrieve, cancel and refund, with
//! Stripe's JSON shapes and test payment methods (`pm_card_visa` succeeds with
//! card 4242, `pm_card_chargeDeclined` is a 402 `card_error`,
//! `pm_card_processing` stays processing until [`FakeStripe::set_status`]), Bearer key
//! checking and Idempotency-Key replay. Every call is recorded for the test
//! to inspect. Nothing reaches the internet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The secret key the fake accepts.
pub const FAKE_STRIPE_KEY: &str = "sk_test_fake_0123456789";

/// One call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub form: Vec<(String, String)>,
}

impl Call {
    /// The value of form field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Inner {
    /// Answer nothing (a Stripe that hangs).
    hang: bool,
    calls: Vec<Call>,
    intents: HashMap<String, Value>,
    /// Idempotency-Key → the first answer.
    replays: HashMap<String, (StatusCode, Value)>,
    next: u32,
}

/// A running fake. Cheap to clone.
#[derive(Clone)]
pub struct FakeStripe {
    /// `http://127.0.0.1:PORT` (STRIPE_API_BASE).
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeStripe {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> FakeStripe {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/v1/payment_intents", post(create))
            .route("/v1/payment_intents/{id}", get(retrieve))
            .route("/v1/payment_intents/{id}/confirm", post(confirm))
            .route("/v1/payment_intents/{id}/cancel", post(cancel))
            .route("/v1/refunds", post(refund))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeStripe { base, inner }
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// The calls to `method path` (path with ids, e.g. `/v1/refunds`).
    pub fn calls_to(&self, method: &str, path: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.path == path)
            .collect()
    }

    /// Makes every later call hang without an answer.
    pub fn hang(&self) {
        self.inner.lock().unwrap().hang = true;
    }

    /// Sets the status of the fake's intent `id` (as Stripe would, later).
    pub fn set_status(&self, id: &str, status: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.intents.get_mut(id).expect("known intent")["status"] = json!(status);
    }

    /// The fake's intent `id` (Stripe's shape).
    pub fn intent(&self, id: &str) -> Option<Value> {
        self.inner.lock().unwrap().intents.get(id).cloned()
    }
}

type Shared = Arc<Mutex<Inner>>;

fn stripe_error(status: StatusCode, kind: &str, code: &str, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"error": {"type": kind, "code": code, "message": message}}),
    )
}

/// Records the call, checks the key, replays an Idempotency-Key, else runs `f`.
fn handle(
    state: &Shared,
    method: &str,
    path: String,
    headers: &HeaderMap,
    body: &[u8],
    f: impl FnOnce(&mut Inner, &[(String, String)]) -> (StatusCode, Value),
) -> Response {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut inner = state.lock().unwrap();
    inner.calls.push(Call {
        method: method.to_owned(),
        path,
        idempotency_key: idempotency_key.clone(),
        form: form.clone(),
    });
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {FAKE_STRIPE_KEY}"));
    let (status, body) = if !authorized {
        stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "api_key_invalid",
            "Invalid API Key provided",
        )
    } else if let Some(replay) = idempotency_key
        .as_ref()
        .and_then(|k| inner.replays.get(k).cloned())
    {
        replay
    } else {
        let answer = f(&mut inner, &form);
        if let Some(key) = idempotency_key {
            inner.replays.insert(key, answer.clone());
        }
        answer
    };
    (status, axum::Json(body)).into_response()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn create(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if state.lock().unwrap().hang {
        std::future::pending::<()>().await;
    }
    handle(
        &state,
        "POST",
        "/v1/payment_intents".into(),
        &headers,
        &body,
        |inner, form| {
            let Some(amount) = field(form, "amount").and_then(|a| a.parse::<i64>().ok()) else {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "parameter_missing",
                    "Missing required param: amount.",
                );
            };
            inner.next += 1;
            let id = format!("pi_fake{:04}", inner.next);
            let intent = json!({
                "id": id,
                "object": "payment_intent",
                "amount": amount,
                "currency": field(form, "currency").unwrap_or("usd"),
                "status": "requires_payment_method",
                "client_secret": format!("{id}_secret_fake"),
                "latest_charge": null,
                "metadata": {"ecom_intent_id": field(form, "metadata[ecom_intent_id]")},
            });
            inner.intents.insert(id, intent.clone());
            (StatusCode::OK, intent)
        },
    )
}

fn missing(id: &str) -> (StatusCode, Value) {
    stripe_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "resource_missing",
        &format!("No such payment_intent: '{id}'"),
    )
}

async fn confirm(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v1/payment_intents/{id}/confirm");
    handle(&state, "POST", path, &headers, &body, |inner, form| {
        let Some(intent) = inner.intents.get_mut(&id) else {
            return missing(&id);
        };
        match field(form, "payment_method") {
            Some("pm_card_visa") => {
                intent["status"] = json!("succeeded");
                let charge = json!({
                    "id": format!("ch_{id}"),
                    "object": "charge",
                    "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
                });
                // `expand[]=latest_charge` gives the object, else its id.
                intent["latest_charge"] = if field(form, "expand[]") == Some("latest_charge") {
                    charge
                } else {
                    charge["id"].clone()
                };
                (StatusCode::OK, intent.clone())
            }
            // Not one of Stripe's own test methods: stands for a payment that
            // stays processing until the test ends it (`set_status`).
            Some("pm_card_processing") => {
                intent["status"] = json!("processing");
                (StatusCode::OK, intent.clone())
            }
            Some("pm_card_chargeDeclined") => {
                intent["status"] = json!("requires_payment_method");
                (
                    StatusCode::PAYMENT_REQUIRED,
                    json!({"error": {
                        "type": "card_error",
                        "code": "card_declined",
                        "decline_code": "generic_decline",
                        "message": "Your card was declined.",
                        "payment_intent": intent.clone(),
                    }}),
                )
            }
            _ => stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "resource_missing",
                "No such PaymentMethod",
            ),
        }
    })
}

async fn retrieve(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/payment_intents/{id}");
    handle(&state, "GET", path, &headers, &[], |inner, _| {
        match inner.intents.get(&id) {
            Some(intent) => (StatusCode::OK, intent.clone()),
            None => missing(&id),
        }
    })
}

async fn cancel(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v1/payment_intents/{id}/cancel");
    handle(&state, "POST", path, &headers, &body, |inner, _| {
        let Some(intent) = inner.intents.get_mut(&id) else {
            return missing(&id);
        };
        if intent["status"] == "succeeded" {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "payment_intent_unexpected_state",
                "You cannot cancel this PaymentIntent because it has a status of succeeded.",
            );
        }
        intent["status"] = json!("canceled");
        (StatusCode::OK, intent.clone())
    })
}

async fn refund(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    handle(
        &state,
        "POST",
        "/v1/refunds".into(),
        &headers,
        &body,
        |inner, form| {
            let id = field(form, "payment_intent").unwrap_or_default().to_owned();
            let Some(intent) = inner.intents.get_mut(&id) else {
                return missing(&id);
            };
            if intent["status"] != "succeeded" || intent["refunded"] == true {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "charge_already_refunded",
                    "This PaymentIntent has no charge to refund.",
                );
            }
            intent["refunded"] = json!(true);
            inner.next += 1;
            (
                StatusCode::OK,
                json!({
                    "id": format!("re_fake{:04}", inner.next),
                    "object": "refund",
                    "amount": intent["amount"],
                    "payment_intent": id,
                    "status": "succeeded",
                }),
            )
        },
    )
}

//! The spine through the real edge and gRPC server: operational routes, the edge's error
//! shapes, CORS and security headers, authentication inside the services, rate limits shared
//! through Redis, reflection and health over gRPC.

use crate::common::{assert_error, json, spawn_app, spawn_app_with};
use reqwest::Method;

#[tokio::test]
async fn health_ready_and_metrics_answer() {
    let app = spawn_app().await;

    let health = app
        .client
        .get(format!("{}/health", app.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(json(health).await["status"], "ok");

    let ready = app
        .client
        .get(format!("{}/ready", app.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let ready = json(ready).await;
    assert_eq!(ready["postgres"], "up");
    assert_eq!(ready["redis"], "up");

    // One request through the edge, so per-route metrics exist.
    app.get("/products/categories").await;
    let metrics = app
        .client
        .get(format!("{}/metrics", app.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains("grpc_requests_total"), "{text}");
}

#[tokio::test]
async fn ready_reports_a_dead_redis_as_503() {
    // A Redis port nothing listens on.
    let app = spawn_app_with(&["--redis-url", "redis://127.0.0.1:1"]).await;
    let ready = app
        .client
        .get(format!("{}/ready", app.origin))
        .send()
        .await
        .unwrap();
    let body = assert_error(ready, 503, "SERVICE_UNAVAILABLE").await;
    assert_eq!(body["details"]["redis"], "down");
    assert_eq!(body["details"]["postgres"], "up");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_404_and_405() {
    let app = spawn_app().await;
    assert_error(app.get("/no-such-thing").await, 404, "NOT_FOUND").await;

    // POST: no POST rule has this shape (PATCH would match `/products/{id}` and be a 400).
    let response = app
        .request(Method::POST, "/products/categories", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let allow = response
        .headers()
        .get("allow")
        .expect("Allow header")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allow.contains("GET"), "{allow}");
}

#[tokio::test]
async fn a_path_variable_of_the_wrong_type_is_a_400_naming_the_field() {
    let app = spawn_app().await;
    let body = assert_error(app.get("/products/abc").await, 400, "VALIDATION_ERROR").await;
    assert!(body["details"]["id"].is_array(), "{body}");
}

#[tokio::test]
async fn cors_allows_listed_origins_only() {
    let app = spawn_app().await;
    let preflight = app
        .request(Method::OPTIONS, "/products", None)
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert_eq!(headers["access-control-allow-credentials"], "true");
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");

    let evil = app
        .request(Method::GET, "/products/categories", None)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn responses_carry_security_headers_and_a_request_id() {
    let app = spawn_app().await;
    let response = app
        .request(Method::GET, "/products/categories", None)
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    let h = response.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(h["x-request-id"], "req-123");

    let generated = app.get("/products/categories").await;
    assert!(!generated.headers()["x-request-id"].is_empty());

    let authed = app.get_as("/products/categories", &app.user_token()).await;
    assert_eq!(authed.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn bad_tokens_are_refused_by_the_service() {
    let app = spawn_app().await;
    // An admin route: no token, garbage, and an expired token.
    let body = serde_json::json!({});
    assert_error(app.delete("/products/1", None).await, 401, "UNAUTHORIZED").await;
    assert_error(
        app.delete("/products/1", Some("not-a-jwt")).await,
        401,
        "UNAUTHORIZED",
    )
    .await;

    let token = app.admin_token();
    app.clock.advance(chrono::Duration::hours(2));
    assert_error(
        app.put_json("/products/1", &body, Some(&token)).await,
        401,
        "TOKEN_EXPIRED",
    )
    .await;
}

#[tokio::test]
async fn a_customer_gets_403_on_admin_routes() {
    let app = spawn_app().await;
    let token = app.user_token();
    assert_error(
        app.delete("/products/1", Some(&token)).await,
        403,
        "FORBIDDEN",
    )
    .await;
}

#[tokio::test]
async fn rate_limits_hold_across_two_instances_sharing_redis() {
    // Two applications on one Redis prefix: the second sees the first one's count.
    let first = spawn_app_with(&[
        "--rate-limit-enabled",
        "true",
        "--rate-limit-payments-max",
        "3",
    ])
    .await;
    let prefix = first.redis_prefix.clone();
    let second = spawn_app_with(&[
        "--rate-limit-enabled",
        "true",
        "--rate-limit-payments-max",
        "3",
        "--redis-key-prefix",
        &prefix,
    ])
    .await;
    let token = first.user_token();
    for app in [&first, &second, &first] {
        let r = app.get_as("/payments/intents/pi_1/status", &token).await;
        assert_ne!(r.status(), 429);
    }
    let limited = second.get_as("/payments/intents/pi_1/status", &token).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body = assert_error(limited, 429, "RATE_LIMITED").await;
    assert_eq!(body["details"]["retryAfter"], retry_after);
}

#[tokio::test]
async fn grpc_reflection_and_health_answer() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let app = spawn_app().await;
    let channel = app.grpc_channel().await;
    let mut health = HealthClient::new(channel.clone());
    let status = health
        .check(HealthCheckRequest {
            service: "ecom.catalog.v1.CatalogService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, 1, "SERVING");

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in [
        "ecom.auth.v1.AuthService",
        "ecom.catalog.v1.CatalogService",
        "ecom.orders.v1.OrdersService",
        "ecom.users.v1.UsersService",
        "ecom.payments.v1.PaymentsService",
    ] {
        assert!(
            names.iter().any(|n| n == service),
            "{service} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_the_edge_serves() {
    let app = spawn_app().await;
    let doc = json(
        app.client
            .get(format!("{}/openapi.json", app.origin))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.1")),
        Some(true)
    );
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/products",
        "/api/v1/products/{id}",
        "/api/v1/orders/{id}/invoice",
        "/api/v1/auth/login",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
}

/// A NUL character (U+0000) anywhere a string reaches PostgreSQL, which cannot store it in
/// text or JSONB: a 400 in the contract's shape, never a 500, with nothing written (the order
/// whose address held it left its stock on the shelf). Product texts name the field.
#[tokio::test]
async fn a_nul_character_in_any_text_is_a_400_and_writes_nothing() {
    use serde_json::json;
    let app = spawn_app().await;
    let product = app.insert_product("Desk Lamp", 4_000, 0.0, 10).await;
    let buyer = app.register("ada@example.com").await;
    let admin = app.admin_token();
    let nul_refused = |what: &'static str| {
        move |body: serde_json::Value| {
            assert_eq!(body["code"], "VALIDATION_ERROR", "{what}: {body}");
            assert_eq!(body["status"], 400, "{what}: {body}");
            assert!(
                body["message"].as_str().unwrap().contains("NUL")
                    || body["details"].as_object().is_some_and(|d| !d.is_empty()),
                "{what}: {body}"
            );
        }
    };
    let address = |line: &str| {
        json!({"firstName": "Jane", "lastName": "Smith", "address": line, "city": "Boston",
               "state": "MA", "zipCode": "02101", "country": "US", "phone": "+15550100"})
    };
    let response = app
        .post_json(
            "/orders",
            &json!({"products": [{"id": product, "quantity": 3}],
                    "shippingAddress": address("1 Main\u{0} St"), "paymentMethod": "card"}),
            Some(&buyer.token),
        )
        .await;
    assert_eq!(response.status().as_u16(), 400, "order with a NUL address");
    nul_refused("order")(json(response).await);
    let stock: i32 = sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
        .bind(product)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stock, 10, "the refused order's reservation was given back");
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(orders, 0);

    // A search is answered by the search index without PostgreSQL (a 200), or, before the index
    // is built, by PostgreSQL's full text (a 400): never a 500.
    let search = app
        .get("/products/search?q=la%00mp")
        .await
        .status()
        .as_u16();
    assert!(matches!(search, 200 | 400), "search: {search}");
    for (what, response) in [
        ("category", app.get("/products/category/sm%00art").await),
        (
            "webhook",
            app.post_json(
                "/admin/webhooks",
                &json!({"url": "https://example.com/x", "events": ["*"], "description": "d\u{0}"}),
                Some(&admin),
            )
            .await,
        ),
        (
            "product",
            app.put_json(
                &format!("/products/{product}"),
                &json!({"title": "Desk\u{0} Lamp"}),
                Some(&admin),
            )
            .await,
        ),
    ] {
        assert_eq!(response.status().as_u16(), 400, "{what}");
        nul_refused(what)(json(response).await);
    }
    let title: String = sqlx::query_scalar("SELECT title FROM products WHERE id = $1")
        .bind(product)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(title, "Desk Lamp");
}

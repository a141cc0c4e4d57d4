//! Orders (the /orders routes) through the real REST edge and gRPC server:
//! server-side pricing, stock reservation without oversell, idempotency,
//! visibility, the status machine, cancellation, tracking and notes, and a
//! checkout interrupted between reservation and order.

use crate::common;
use std::sync::Arc;

use crate::common::{TestApp, USER_ID, assert_error, authorized, json, spawn_app};
use ecom::proto::ecom::catalog::v1 as catalog_pb;
use ecom::proto::ecom::catalog::v1::catalog_service_client::CatalogServiceClient;
use ecom::proto::ecom::orders::v1 as pb;
use ecom::proto::ecom::orders::v1::orders_service_client::OrdersServiceClient;
use reqwest::Method;
use serde_json::{Value, json};
use tonic::Code;

async fn product(app: &TestApp, title: &str, price_cents: i64, discount: f64, stock: i32) -> i64 {
    app.insert_product(title, price_cents, discount, stock)
        .await
}

async fn stock_of(app: &TestApp, id: i64) -> i32 {
    sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .expect("stock read")
}

fn address() -> Value {
    json!({
        "firstName": "John", "lastName": "Doe", "address": "123 Main St", "city": "New York",
        "state": "NY", "zipCode": "10001", "country": "USA", "phone": "+1234567890"
    })
}

fn order_body(lines: &[(i64, i32)]) -> Value {
    let products: Vec<Value> = lines
        .iter()
        .map(|(id, q)| json!({"id": id, "quantity": q}))
        .collect();
    json!({ "products": products, "shippingAddress": address(), "paymentMethod": "card" })
}

async fn post_order(
    app: &TestApp,
    body: &Value,
    token: &str,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = app.request(Method::POST, "/orders", Some(token)).json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.expect("request sent")
}

/// Places an order and returns its body (201 expected).
async fn place(app: &TestApp, lines: &[(i64, i32)], token: &str) -> Value {
    let response = post_order(app, &order_body(lines), token, None).await;
    assert_eq!(response.status().as_u16(), 201, "order placed");
    json(response).await
}

#[tokio::test]
async fn create_order_prices_on_the_server_as_in_the_contract() {
    let app = spawn_app().await;
    let phone = product(&app, "iPhone 15 Pro", 119_999, 5.5, 10).await;

    let body = json!({
        "products": [{"id": phone, "quantity": 2}],
        "shippingAddress": address(),
        "paymentMethod": "card",
        // Client-sent prices are not part of the contract and never trusted.
    });
    let response = post_order(&app, &body, &app.user_token(), None).await;

    assert_eq!(response.status().as_u16(), 201);
    let order = json(response).await;
    assert!(order["id"].as_str().unwrap().starts_with("ORD-"), "{order}");
    assert_eq!(order["userId"], USER_ID);
    assert_eq!(order["status"], "pending");
    assert_eq!(order["paymentStatus"], "unpaid");
    assert_eq!(order["subtotal"], 2267.98);
    assert_eq!(order["tax"], 181.44);
    assert_eq!(order["shipping"], 0.0);
    assert_eq!(order["total"], 2449.42);
    let line = &order["products"][0];
    assert_eq!(line["id"], phone);
    assert_eq!(line["title"], "iPhone 15 Pro");
    assert_eq!(line["price"], 1199.99);
    assert_eq!(line["quantity"], 2);
    assert_eq!(line["total"], 2399.98);
    assert_eq!(line["discountPercentage"], 5.5);
    assert_eq!(line["discountedTotal"], 2267.98);
    assert_eq!(order["shippingAddress"]["city"], "New York");
    assert_eq!(order["billingAddress"]["city"], "New York");
    assert_eq!(stock_of(&app, phone).await, 8);

    // GET /orders/:id reads back the same order.
    let id = order["id"].as_str().unwrap();
    let read = json(
        app.get_as(&format!("/orders/{id}"), &app.user_token())
            .await,
    )
    .await;
    assert_eq!(read["total"], 2449.42);
    assert_eq!(read["createdAt"], order["createdAt"]);
    assert_eq!(read["history"][0]["status"], "pending");
}

#[tokio::test]
async fn small_orders_pay_shipping_and_ids_are_unique_by_day() {
    let app = spawn_app().await;
    let cheap = product(&app, "Cheap thing", 1_000, 0.0, 100).await;

    let first = place(&app, &[(cheap, 1)], &app.user_token()).await;
    let second = place(&app, &[(cheap, 2)], &app.user_token()).await;

    assert_eq!(first["subtotal"], 10.0);
    assert_eq!(first["tax"], 0.8);
    assert_eq!(first["shipping"], 9.99);
    assert_eq!(first["total"], 20.79);
    let today = app.clock.now().format("%Y%m%d").to_string();
    assert_eq!(first["id"], format!("ORD-{today}01"));
    assert_eq!(second["id"], format!("ORD-{today}02"));
}

#[tokio::test]
async fn create_order_rejects_bad_requests() {
    let app = spawn_app().await;
    let p = product(&app, "Thing", 1_000, 0.0, 5).await;
    let token = app.user_token();

    let no_auth = app.post_json("/orders", &order_body(&[(p, 1)]), None).await;
    assert_error(no_auth, 401, "UNAUTHORIZED").await;

    let empty = json!({"products": [], "shippingAddress": address(), "paymentMethod": "card"});
    assert_error(
        post_order(&app, &empty, &token, None).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;

    let zero = order_body(&[(p, 0)]);
    assert_error(
        post_order(&app, &zero, &token, None).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;

    let no_address = json!({"products": [{"id": p, "quantity": 1}], "paymentMethod": "card"});
    let body = assert_error(
        post_order(&app, &no_address, &token, None).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(body.to_string().contains("shippingAddress"), "{body}");

    let unknown = order_body(&[(p, 1), (999_999, 1)]);
    let body = assert_error(
        post_order(&app, &unknown, &token, None).await,
        404,
        "PRODUCT_NOT_FOUND",
    )
    .await;
    assert!(body["details"].to_string().contains("999999"), "{body}");

    assert_eq!(
        stock_of(&app, p).await,
        5,
        "nothing reserved by failed requests"
    );
}

#[tokio::test]
async fn a_short_line_reserves_nothing_and_names_the_product() {
    let app = spawn_app().await;
    let plenty = product(&app, "Plenty", 1_000, 0.0, 100).await;
    let scarce = product(&app, "Scarce", 1_000, 0.0, 1).await;

    let response = post_order(
        &app,
        &order_body(&[(plenty, 3), (scarce, 2)]),
        &app.user_token(),
        None,
    )
    .await;

    let body = assert_error(response, 422, "INSUFFICIENT_STOCK").await;
    let details = body["details"].to_string();
    assert!(details.contains(&scarce.to_string()), "{body}");
    assert!(!details.contains(&format!("{plenty},")), "{body}");
    assert_eq!(stock_of(&app, plenty).await, 100, "all lines or none");
    assert_eq!(stock_of(&app, scarce).await, 1);
}

#[tokio::test]
async fn fifty_concurrent_orders_for_ten_units_never_oversell() {
    let app = Arc::new(spawn_app().await);
    let p = product(&app, "Hot item", 5_000, 0.0, 10).await;
    let token = app.user_token();

    let mut tasks = Vec::new();
    for _ in 0..50 {
        let app = app.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let response = post_order(&app, &order_body(&[(p, 1)]), &token, None).await;
            let status = response.status().as_u16();
            (status, json(response).await)
        }));
    }
    let mut created = 0;
    let mut short = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            201 => created += 1,
            422 => {
                assert_eq!(body["code"], "INSUFFICIENT_STOCK", "{body}");
                short += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }

    assert_eq!(created, 10);
    assert_eq!(short, 40);
    assert_eq!(stock_of(&app, p).await, 0);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(orders, 10);
}

#[tokio::test]
async fn ten_concurrent_posts_with_one_idempotency_key_make_one_order() {
    let app = Arc::new(spawn_app().await);
    let p = product(&app, "Thing", 2_000, 0.0, 50).await;
    let token = app.user_token();

    let mut tasks = Vec::new();
    for _ in 0..10 {
        let app = app.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let response = post_order(&app, &order_body(&[(p, 2)]), &token, Some("key-123")).await;
            let status = response.status().as_u16();
            let replayed = response
                .headers()
                .get("idempotent-replayed")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, replayed, response.text().await.unwrap())
        }));
    }
    let mut bodies = Vec::new();
    let mut replays = 0;
    for task in tasks {
        let (status, replayed, body) = task.await.unwrap();
        assert_eq!(status, 201, "{body}");
        if replayed.as_deref() == Some("true") {
            replays += 1;
        }
        bodies.push(body);
    }

    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "ten identical responses"
    );
    assert_eq!(replays, 9);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(orders, 1);
    assert_eq!(stock_of(&app, p).await, 48);
}

#[tokio::test]
async fn an_idempotency_key_with_another_body_is_refused_and_keys_expire() {
    let app = spawn_app().await;
    let p = product(&app, "Thing", 2_000, 0.0, 50).await;
    let token = app.user_token();

    let first = post_order(&app, &order_body(&[(p, 1)]), &token, Some("k1")).await;
    assert_eq!(first.status().as_u16(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = json(first).await;

    let again = post_order(&app, &order_body(&[(p, 1)]), &token, Some("k1")).await;
    assert_eq!(again.status().as_u16(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(json(again).await, first);

    let other = post_order(&app, &order_body(&[(p, 2)]), &token, Some("k1")).await;
    assert_error(other, 422, "IDEMPOTENCY_KEY_REUSED").await;

    // Another user's key space is their own.
    let theirs = post_order(
        &app,
        &order_body(&[(p, 2)]),
        &app.other_user_token(),
        Some("k1"),
    )
    .await;
    assert_eq!(theirs.status().as_u16(), 201);

    // After 24 hours the key is forgotten: the same request places a new order.
    app.clock.advance(chrono::Duration::hours(25));
    let later = post_order(&app, &order_body(&[(p, 1)]), &app.user_token(), Some("k1")).await;
    assert_eq!(later.status().as_u16(), 201);
    assert!(later.headers().get("idempotent-replayed").is_none());
    assert_ne!(json(later).await["id"], first["id"]);
}

#[tokio::test]
async fn users_see_their_own_orders_only() {
    let app = spawn_app().await;
    let p = product(&app, "Thing", 2_000, 0.0, 50).await;
    let mine = place(&app, &[(p, 1)], &app.user_token()).await;
    place(&app, &[(p, 1)], &app.user_token()).await;
    let theirs = place(&app, &[(p, 1)], &app.other_user_token()).await;

    let list = json(
        app.get_as("/orders?skip=0&limit=10", &app.user_token())
            .await,
    )
    .await;
    assert_eq!(list["total"], 2);
    assert_eq!(list["skip"], 0);
    assert_eq!(list["limit"], 10);
    assert_eq!(list["products"].as_array().unwrap().len(), 2);
    assert!(list["products"][0]["total"].is_number());
    assert!(list["products"][0]["createdAt"].is_string());
    assert!(!list.to_string().contains(theirs["id"].as_str().unwrap()));

    let page = json(
        app.get_as("/orders?skip=1&limit=1", &app.user_token())
            .await,
    )
    .await;
    assert_eq!(page["products"].as_array().unwrap().len(), 1);
    assert_eq!(page["total"], 2);

    let theirs_id = theirs["id"].as_str().unwrap();
    let response = app
        .get_as(&format!("/orders/{theirs_id}"), &app.user_token())
        .await;
    assert_error(response, 404, "ORDER_NOT_FOUND").await;
    assert_error(
        app.get_as("/orders/ORD-NOPE", &app.user_token()).await,
        404,
        "ORDER_NOT_FOUND",
    )
    .await;

    let as_admin = json(
        app.get_as(&format!("/orders/{theirs_id}"), &app.admin_token())
            .await,
    )
    .await;
    assert_eq!(as_admin["id"], theirs["id"]);
    let mine_id = mine["id"].as_str().unwrap();
    assert_eq!(
        app.get_as(&format!("/orders/{mine_id}"), &app.user_token())
            .await
            .status(),
        200
    );
    assert_error(app.get("/orders").await, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn admins_list_all_orders_with_filters() {
    let app = spawn_app().await;
    let p = product(&app, "Thing", 2_000, 0.0, 50).await;
    place(&app, &[(p, 1)], &app.user_token()).await;
    let other = place(&app, &[(p, 1)], &app.other_user_token()).await;
    let other_id = other["id"].as_str().unwrap();
    app.put_json(
        &format!("/orders/{other_id}/status"),
        &json!({"status": "processing"}),
        Some(&app.admin_token()),
    )
    .await;

    let all = json(app.get_as("/orders/all", &app.admin_token()).await).await;
    assert_eq!(all["total"], 2);
    let by_user = json(app.get_as("/orders/all?userId=3", &app.admin_token()).await).await;
    assert_eq!(by_user["total"], 1);
    assert_eq!(by_user["products"][0]["id"], other["id"]);
    let by_status = json(
        app.get_as("/orders/all?status=processing", &app.admin_token())
            .await,
    )
    .await;
    assert_eq!(by_status["total"], 1);
    let future = (app.clock.now() + chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let none = json(
        app.get_as(&format!("/orders/all?from={future}"), &app.admin_token())
            .await,
    )
    .await;
    assert_eq!(none["total"], 0);
    let page = json(
        app.get_as("/orders/all?limit=1&skip=1", &app.admin_token())
            .await,
    )
    .await;
    assert_eq!(page["products"].as_array().unwrap().len(), 1);

    assert_error(
        app.get_as("/orders/all", &app.user_token()).await,
        403,
        "FORBIDDEN",
    )
    .await;
}

#[tokio::test]
async fn the_status_machine_records_history_and_tracking() {
    let app = spawn_app().await;
    let p = product(&app, "Thing", 2_000, 0.0, 50).await;
    let order = place(&app, &[(p, 1)], &app.user_token()).await;
    let id = order["id"].as_str().unwrap();
    let path = format!("/orders/{id}/status");
    let admin = app.admin_token();

    let skip = app
        .put_json(
            &path,
            &json!({"status": "shipped", "trackingNumber": "1Z", "carrier": "UPS"}),
            Some(&admin),
        )
        .await;
    assert_error(skip, 422, "INVALID_STATUS_TRANSITION").await;
    let user = app
        .put_json(
            &path,
            &json!({"status": "processing"}),
            Some(&app.user_token()),
        )
        .await;
    assert_error(user, 403, "FORBIDDEN").await;

    let processing = app
        .put_json(
            &path,
            &json!({"status": "processing", "note": "Packing"}),
            Some(&admin),
        )
        .await;
    assert_eq!(processing.status(), 200);
    assert_eq!(json(processing).await["status"], "processing");

    let untracked = app
        .put_json(&path, &json!({"status": "shipped"}), Some(&admin))
        .await;
    let body = assert_error(untracked, 400, "VALIDATION_ERROR").await;
    assert!(body.to_string().contains("trackingNumber"), "{body}");

    let shipped = app
        .put_json(
            &path,
            &json!({"status": "shipped", "trackingNumber": "1Z999AA10123456784", "carrier": "UPS", "note": "Shipped via UPS Ground"}),
            Some(&admin),
        )
        .await;
    let shipped = json(shipped).await;
    assert_eq!(shipped["status"], "shipped");
    assert_eq!(shipped["trackingNumber"], "1Z999AA10123456784");
    assert_eq!(shipped["carrier"], "UPS");
    let history = shipped["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[2]["status"], "shipped");
    assert_eq!(history[2]["note"], "Shipped via UPS Ground");
    assert_eq!(history[2]["byUserId"], 1);

    let tracking = json(
        app.get_as(&format!("/orders/{id}/tracking"), &app.user_token())
            .await,
    )
    .await;
    assert_eq!(tracking["orderId"], id);
    assert_eq!(tracking["status"], "in_transit");
    assert_eq!(tracking["carrier"], "UPS");
    assert_eq!(
        tracking["trackingUrl"],
        "https://www.ups.com/track?tracknum=1Z999AA10123456784"
    );
    let eta = (app.clock.now() + chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(tracking["estimatedDelivery"], eta);
    assert_eq!(tracking["events"].as_array().unwrap().len(), 3);
    let other = app
        .get_as(&format!("/orders/{id}/tracking"), &app.other_user_token())
        .await;
    assert_error(other, 404, "ORDER_NOT_FOUND").await;

    let cancel = app
        .put_json(&path, &json!({"status": "cancelled"}), Some(&admin))
        .await;
    assert_error(cancel, 422, "INVALID_STATUS_TRANSITION").await;
    let delivered = json(
        app.put_json(&path, &json!({"status": "delivered"}), Some(&admin))
            .await,
    )
    .await;
    assert_eq!(delivered["status"], "delivered");
    let back = app
        .put_json(&path, &json!({"status": "pending"}), Some(&admin))
        .await;
    assert_error(back, 422, "INVALID_STATUS_TRANSITION").await;
    let missing = app
        .put_json(
            "/orders/ORD-NOPE/status",
            &json!({"status": "processing"}),
            Some(&admin),
        )
        .await;
    assert_error(missing, 404, "ORDER_NOT_FOUND").await;
}

#[tokio::test]
async fn the_owner_cancels_and_the_stock_comes_back() {
    let app = spawn_app().await;
    let p = product(&app, "Thing", 2_000, 0.0, 10).await;
    let order = place(&app, &[(p, 4)], &app.user_token()).await;
    let id = order["id"].as_str().unwrap();
    assert_eq!(stock_of(&app, p).await, 6);

    let theirs = app
        .put_json(
            &format!("/orders/{id}/cancel"),
            &json!({"reason": "x"}),
            Some(&app.other_user_token()),
        )
        .await;
    assert_error(theirs, 404, "ORDER_NOT_FOUND").await;

    let response = app
        .put_json(
            &format!("/orders/{id}/cancel"),
            &json!({"reason": "Changed my mind"}),
            Some(&app.user_token()),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body = json(response).await;
    assert_eq!(body["id"], id);
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["cancelReason"], "Changed my mind");
    assert!(body["cancelledAt"].is_string());
    assert_eq!(stock_of(&app, p).await, 10, "stock released");

    let again = app
        .put_json(
            &format!("/orders/{id}/cancel"),
            &json!({"reason": "again"}),
            Some(&app.user_token()),
        )
        .await;
    assert_error(again, 422, "ORDER_CANNOT_CANCEL").await;
    assert_eq!(stock_of(&app, p).await, 10, "released once");

    let read = json(
        app.get_as(&format!("/orders/{id}"), &app.user_token())
            .await,
    )
    .await;
    assert_eq!(read["cancelReason"], "Changed my mind");
    assert_eq!(read["history"][1]["status"], "cancelled");
    assert_eq!(read["history"][1]["byUserId"], USER_ID);
}

#[tokio::test]
async fn shipped_orders_cannot_be_cancelled() {
    let app = spawn_app().await;
    let p = product(&app, "Thing", 2_000, 0.0, 10).await;
    let order = place(&app, &[(p, 1)], &app.user_token()).await;
    let id = order["id"].as_str().unwrap();
    let admin = app.admin_token();
    let path = format!("/orders/{id}/status");
    app.put_json(&path, &json!({"status": "processing"}), Some(&admin))
        .await;
    app.put_json(
        &path,
        &json!({"status": "shipped", "trackingNumber": "T1", "carrier": "dhl"}),
        Some(&admin),
    )
    .await;

    let response = app
        .put_json(
            &format!("/orders/{id}/cancel"),
            &json!({"reason": "late"}),
            Some(&app.user_token()),
        )
        .await;

    let body = assert_error(response, 422, "ORDER_CANNOT_CANCEL").await;
    assert!(body["message"].as_str().unwrap().contains("shipped"));
    assert_eq!(stock_of(&app, p).await, 9);
    let tracking = json(
        app.get_as(&format!("/orders/{id}/tracking"), &app.user_token())
            .await,
    )
    .await;
    assert_eq!(tracking["carrier"], "DHL");
    assert_eq!(
        tracking["trackingUrl"],
        "https://www.dhl.com/en/express/tracking.html?AWB=T1"
    );
}

#[tokio::test]
async fn notes_by_the_owner_or_an_admin() {
    let app = spawn_app().await;
    let p = product(&app, "Thing", 2_000, 0.0, 10).await;
    let order = place(&app, &[(p, 1)], &app.user_token()).await;
    let path = format!("/orders/{}/notes", order["id"].as_str().unwrap());

    let mine = json(
        app.post_json(
            &path,
            &json!({"note": "Leave at the door"}),
            Some(&app.user_token()),
        )
        .await,
    )
    .await;
    assert_eq!(mine["notes"][0]["note"], "Leave at the door");
    assert_eq!(mine["notes"][0]["byUserId"], USER_ID);
    let admin = json(
        app.post_json(
            &path,
            &json!({"note": "Called the customer"}),
            Some(&app.admin_token()),
        )
        .await,
    )
    .await;
    assert_eq!(admin["notes"].as_array().unwrap().len(), 2);

    let other = app
        .post_json(&path, &json!({"note": "hi"}), Some(&app.other_user_token()))
        .await;
    assert_error(other, 404, "ORDER_NOT_FOUND").await;
    let empty = app
        .post_json(&path, &json!({"note": "  "}), Some(&app.user_token()))
        .await;
    assert_error(empty, 400, "VALIDATION_ERROR").await;
}

#[tokio::test]
async fn rules_hold_over_grpc_too() {
    let app = spawn_app().await;
    let p = product(&app, "Thing", 119_999, 5.5, 3).await;
    let mut client = OrdersServiceClient::new(app.grpc_channel().await);
    let request = |q: i32| pb::CreateOrderRequest {
        products: vec![pb::LineItem { id: p, quantity: q }],
        shipping_address: Some(ecom::proto::ecom::common::v1::ShippingAddress {
            first_name: "John".into(),
            last_name: "Doe".into(),
            address: "1 Main St".into(),
            city: "Boston".into(),
            state: "MA".into(),
            zip_code: "02101".into(),
            country: "USA".into(),
            phone: String::new(),
        }),
        billing_address: None,
        payment_method: "card".into(),
        payment_intent_id: None,
        ..Default::default()
    };

    let created = client
        .create_order(authorized(request(2), &app.user_token()))
        .await
        .unwrap()
        .into_inner();
    // 2267.98 + Massachusetts' 6.25 % (141.75; tax by the shipping address, issue #14).
    assert_eq!(created.order.as_ref().unwrap().total, 2409.73);

    let short = client
        .create_order(authorized(request(2), &app.user_token()))
        .await
        .unwrap_err();
    assert_eq!(short.code(), Code::FailedPrecondition);

    let id = created.order.unwrap().id;
    let other = client
        .get_order(authorized(
            pb::GetOrderRequest { id: id.clone() },
            &app.other_user_token(),
        ))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::NotFound);

    let mut keyed = authorized(request(1), &app.user_token());
    keyed
        .metadata_mut()
        .insert("idempotency-key", "grpc-key".parse().unwrap());
    let first = client.create_order(keyed).await.unwrap();
    let mut keyed = authorized(request(1), &app.user_token());
    keyed
        .metadata_mut()
        .insert("idempotency-key", "grpc-key".parse().unwrap());
    let second = client.create_order(keyed).await.unwrap();
    assert_eq!(
        second.metadata().get("idempotent-replayed").unwrap(),
        "true"
    );
    assert_eq!(first.into_inner(), second.into_inner());
    assert_eq!(stock_of(&app, p).await, 0);
}

#[tokio::test]
async fn internal_catalog_rpcs_need_the_admin_role_and_are_not_routed() {
    let app = spawn_app().await;
    let p = product(&app, "Thing", 1_000, 0.0, 5).await;
    let mut catalog = CatalogServiceClient::new(app.grpc_channel().await);
    let reserve = |key: &str| catalog_pb::ReserveStockRequest {
        order_key: key.into(),
        lines: vec![catalog_pb::StockLine {
            product_id: p,
            quantity: 2,
        }],
        ttl_seconds: 60,
    };

    let anonymous = catalog
        .reserve_stock(tonic::Request::new(reserve("k")))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let user = catalog
        .reserve_stock(authorized(reserve("k"), &app.user_token()))
        .await
        .unwrap_err();
    assert_eq!(user.code(), Code::PermissionDenied);

    // Idempotent per order key.
    let first = catalog
        .reserve_stock(authorized(reserve("k"), &app.admin_token()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.state(), catalog_pb::ReservationState::Reserved);
    let again = catalog
        .reserve_stock(authorized(reserve("k"), &app.admin_token()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.state(), catalog_pb::ReservationState::Reserved);
    assert_eq!(stock_of(&app, p).await, 3, "reserved once");

    let released = catalog
        .release_reservation(authorized(
            catalog_pb::ReleaseReservationRequest {
                order_key: "k".into(),
            },
            &app.admin_token(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released.state(), catalog_pb::ReservationState::Released);
    catalog
        .release_reservation(authorized(
            catalog_pb::ReleaseReservationRequest {
                order_key: "k".into(),
            },
            &app.admin_token(),
        ))
        .await
        .unwrap();
    assert_eq!(stock_of(&app, p).await, 5, "released once");

    // No REST route reaches them.
    let rest = app
        .post_json("/products/reserve", &json!({}), Some(&app.admin_token()))
        .await;
    assert!(rest.status().is_client_error());
}

#[tokio::test]
async fn an_interrupted_checkout_gives_its_stock_back_at_expiry() {
    let app = spawn_app().await;
    let p = product(&app, "Thing", 1_000, 0.0, 5).await;
    let mut catalog = CatalogServiceClient::new(app.grpc_channel().await);

    // A checkout reserves, then "crashes" before the order is recorded or committed.
    catalog
        .reserve_stock(authorized(
            catalog_pb::ReserveStockRequest {
                order_key: "ORD-CRASHED".into(),
                lines: vec![catalog_pb::StockLine {
                    product_id: p,
                    quantity: 3,
                }],
                ttl_seconds: 900,
            },
            &app.admin_token(),
        ))
        .await
        .unwrap();
    // A committed order alongside must keep its stock.
    place(&app, &[(p, 1)], &app.user_token()).await;
    assert_eq!(stock_of(&app, p).await, 1);

    let cache = ecom::cache::Cache::new(ecom::kv::Kv::memory("sweep-test:"));
    let early = ecom::catalog::reservations::release_expired(&app.db, &cache, app.clock.now())
        .await
        .unwrap();
    assert_eq!(early, 0, "nothing expires before its time");

    app.clock.advance(chrono::Duration::minutes(16));
    let released = ecom::catalog::reservations::release_expired(&app.db, &cache, app.clock.now())
        .await
        .unwrap();

    assert_eq!(released, 1);
    assert_eq!(
        stock_of(&app, p).await,
        4,
        "the crashed checkout's 3 units are back; the order's 1 is not"
    );
    let again = ecom::catalog::reservations::release_expired(&app.db, &cache, app.clock.now())
        .await
        .unwrap();
    assert_eq!(again, 0);
    // A late commit of the crashed checkout finds it released.
    let late = catalog
        .commit_reservation(authorized(
            catalog_pb::CommitReservationRequest {
                order_key: "ORD-CRASHED".into(),
            },
            &app.admin_token(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(late.state(), catalog_pb::ReservationState::Released);
    assert_eq!(stock_of(&app, p).await, 4);
}

#[tokio::test]
async fn in_mesh_mode_orders_reserve_through_a_remote_catalog() {
    // App A runs the catalog (and its stock); app B's orders service reaches it at CATALOG_URL.
    let catalog_app = spawn_app().await;
    let p = product(&catalog_app, "Remote thing", 1_000, 0.0, 3).await;
    let orders_app = common::spawn_app_with(&["--catalog-url", &catalog_app.grpc]).await;

    let order = place(&orders_app, &[(p, 2)], &orders_app.user_token()).await;
    assert_eq!(order["total"], 31.59);
    assert_eq!(
        stock_of(&catalog_app, p).await,
        1,
        "reserved in the remote catalog"
    );

    let short = post_order(
        &orders_app,
        &order_body(&[(p, 2)]),
        &orders_app.user_token(),
        None,
    )
    .await;
    assert_error(short, 422, "INSUFFICIENT_STOCK").await;
}

// ---- Orders and payments agree (issue 5) ----

/// Creates a sandbox intent of `amount` cents for the token's user; returns its id.
async fn intent_of(app: &TestApp, amount: i64, token: &str) -> String {
    let response = app
        .post_json("/payments/intents", &json!({"amount": amount}), Some(token))
        .await;
    assert_eq!(response.status(), 201);
    json(response).await["id"].as_str().unwrap().to_owned()
}

async fn confirm_visa(app: &TestApp, intent: &str, token: &str) {
    let response = app
        .post_json(
            &format!("/payments/intents/{intent}/confirm"),
            &json!({"paymentMethodId": "pm_card_visa"}),
            Some(token),
        )
        .await;
    assert_eq!(response.status(), 200);
}

/// An order's total in cents, from its JSON.
fn cents(order: &Value) -> i64 {
    (order["total"].as_f64().unwrap() * 100.0).round() as i64
}

#[tokio::test]
async fn an_order_with_a_payment_intent_checks_owner_use_and_amount_and_gets_paid() {
    let app = spawn_app().await;
    let p = product(&app, "Thing", 5_000, 0.0, 10).await;
    let user = app.user_token();
    // 50.00 + 8% tax + 9.99 shipping.
    let total = 6_399;

    let mut body = order_body(&[(p, 1)]);
    body["paymentIntentId"] = json!(intent_of(&app, total, &app.other_user_token()).await);
    assert_error(
        post_order(&app, &body, &user, None).await,
        404,
        "PAYMENT_INTENT_NOT_FOUND",
    )
    .await;
    body["paymentIntentId"] = json!("pi_unknown");
    assert_error(
        post_order(&app, &body, &user, None).await,
        404,
        "PAYMENT_INTENT_NOT_FOUND",
    )
    .await;
    body["paymentIntentId"] = json!(intent_of(&app, total - 1, &user).await);
    let wrong = assert_error(
        post_order(&app, &body, &user, None).await,
        422,
        "AMOUNT_MISMATCH",
    )
    .await;
    assert_eq!(wrong["details"]["orderTotal"], total);
    assert_eq!(
        stock_of(&app, p).await,
        10,
        "a refused order reserves nothing"
    );

    let intent = intent_of(&app, total, &user).await;
    body["paymentIntentId"] = json!(intent);
    let response = post_order(&app, &body, &user, None).await;
    assert_eq!(response.status(), 201);
    let order = json(response).await;
    assert_eq!(cents(&order), total);
    assert_eq!(order["paymentIntentId"], intent.as_str());
    assert_eq!(order["paymentStatus"], "unpaid");
    assert_eq!(order["status"], "pending");
    let id = order["id"].as_str().unwrap().to_owned();

    // One intent pays one order.
    assert_error(
        post_order(&app, &body, &user, None).await,
        409,
        "PAYMENT_INTENT_IN_USE",
    )
    .await;

    confirm_visa(&app, &intent, &user).await;
    let read = json(app.get_as(&format!("/orders/{id}"), &user).await).await;
    assert_eq!(read["paymentStatus"], "paid");
    assert_eq!(read["status"], "processing");
    let history = read["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["status"], "processing");
    assert_eq!(history[1]["note"], "Payment received");
    assert_eq!(history[1]["byUserId"], 0);
    // The admin's list of full orders shows it too.
    let list = json(app.get_as("/orders/all", &app.admin_token()).await).await;
    assert_eq!(list["products"][0]["id"], id.as_str());
    assert_eq!(list["products"][0]["paymentStatus"], "paid");
}

#[tokio::test]
async fn an_order_with_an_intent_paid_already_is_paid_at_once() {
    let app = spawn_app().await;
    let p = product(&app, "Thing", 5_000, 0.0, 10).await;
    let user = app.user_token();
    let intent = intent_of(&app, 6_399, &user).await;
    confirm_visa(&app, &intent, &user).await;

    let mut body = order_body(&[(p, 1)]);
    body["paymentIntentId"] = json!(intent);
    let response = post_order(&app, &body, &user, None).await;
    assert_eq!(response.status(), 201);
    let order = json(response).await;
    assert_eq!(order["paymentStatus"], "paid");
    assert_eq!(order["status"], "processing");
    let read = json(
        app.get_as(&format!("/orders/{}", order["id"].as_str().unwrap()), &user)
            .await,
    )
    .await;
    assert_eq!(read["paymentStatus"], "paid");
    assert_eq!(read["status"], "processing");
    assert_eq!(read["history"][1]["note"], "Payment received");
}

#[tokio::test]
async fn cancelling_a_paid_order_refunds_it() {
    let app = spawn_app().await;
    let p = product(&app, "Thing", 5_000, 0.0, 10).await;
    let user = app.user_token();
    let intent = intent_of(&app, 6_399, &user).await;
    let mut body = order_body(&[(p, 1)]);
    body["paymentIntentId"] = json!(intent);
    let order = json(post_order(&app, &body, &user, None).await).await;
    let id = order["id"].as_str().unwrap().to_owned();
    confirm_visa(&app, &intent, &user).await;

    let cancelled = app
        .put_json(
            &format!("/orders/{id}/cancel"),
            &json!({"reason": "Changed my mind"}),
            Some(&user),
        )
        .await;
    assert_eq!(cancelled.status(), 200);
    let read = json(app.get_as(&format!("/orders/{id}"), &user).await).await;
    assert_eq!(read["status"], "cancelled");
    assert_eq!(read["paymentStatus"], "refunded");
    let refunded: bool =
        sqlx::query_scalar("SELECT refunded_at IS NOT NULL FROM payment_intents WHERE id = $1")
            .bind(&intent)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(refunded, "the intent records its refund");
    assert_eq!(stock_of(&app, p).await, 10);

    // An unpaid order cancels without a refund.
    let unpaid = place(&app, &[(p, 1)], &user).await;
    let id = unpaid["id"].as_str().unwrap();
    let cancelled = app
        .put_json(&format!("/orders/{id}/cancel"), &json!({}), Some(&user))
        .await;
    assert_eq!(cancelled.status(), 200);
    let read = json(app.get_as(&format!("/orders/{id}"), &user).await).await;
    assert_eq!(read["paymentStatus"], "unpaid");

    // An unpaid order's intent is cancelled with it: it can no longer pay.
    let intent = intent_of(&app, 6_399, &user).await;
    let mut body = order_body(&[(p, 1)]);
    body["paymentIntentId"] = json!(intent);
    let order = json(post_order(&app, &body, &user, None).await).await;
    let id = order["id"].as_str().unwrap();
    let cancelled = app
        .put_json(&format!("/orders/{id}/cancel"), &json!({}), Some(&user))
        .await;
    assert_eq!(cancelled.status(), 200);
    let confirm = app
        .post_json(
            &format!("/payments/intents/{intent}/confirm"),
            &json!({"paymentMethodId": "pm_card_visa"}),
            Some(&user),
        )
        .await;
    assert_error(confirm, 422, "PAYMENT_FAILED").await;
    let read = json(app.get_as(&format!("/orders/{id}"), &user).await).await;
    assert_eq!(read["paymentStatus"], "unpaid");
}

#[tokio::test]
async fn another_users_intent_over_grpc_is_not_found_and_internal_rpcs_need_admin() {
    let app = spawn_app().await;
    let p = product(&app, "Thing", 5_000, 0.0, 10).await;
    let intent = intent_of(&app, 6_399, &app.other_user_token()).await;
    let mut client = OrdersServiceClient::new(app.grpc_channel().await);
    let request = pb::CreateOrderRequest {
        products: vec![pb::LineItem { id: p, quantity: 1 }],
        shipping_address: Some(ecom::proto::ecom::common::v1::ShippingAddress {
            first_name: "John".into(),
            last_name: "Doe".into(),
            address: "1 Main St".into(),
            city: "Boston".into(),
            state: "MA".into(),
            zip_code: "02101".into(),
            country: "USA".into(),
            phone: String::new(),
        }),
        billing_address: None,
        payment_method: "card".into(),
        payment_intent_id: Some(intent.clone()),
        ..Default::default()
    };
    let err = client
        .create_order(authorized(request, &app.user_token()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let info = tonic_types::StatusExt::get_error_details(&err)
        .error_info()
        .cloned()
        .expect("ErrorInfo");
    assert_eq!(info.reason, "PAYMENT_INTENT_NOT_FOUND");

    // A customer cannot tell orders that an intent paid.
    let forged = client
        .record_payment(authorized(
            pb::RecordPaymentRequest {
                payment_intent_id: intent,
                order_id: None,
                user_id: USER_ID,
                amount_cents: 6_399,
                succeeded: true,
                refunded: false,
            },
            &app.user_token(),
        ))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn concurrent_orders_with_one_intent_make_one_order_and_no_500() {
    let app = Arc::new(spawn_app().await);
    let p = product(&app, "Thing", 5_000, 0.0, 10).await;
    let user = app.user_token();
    let intent = intent_of(&app, 6_399, &user).await;
    let mut body = order_body(&[(p, 1)]);
    body["paymentIntentId"] = json!(intent);

    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (app, body, user) = (app.clone(), body.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            let response = post_order(&app, &body, &user, None).await;
            let status = response.status().as_u16();
            (status, json(response).await)
        }));
    }
    let mut created = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            201 => created += 1,
            409 => assert_eq!(body["code"], "PAYMENT_INTENT_IN_USE", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(stock_of(&app, p).await, 9, "the losers' stock came back");
}

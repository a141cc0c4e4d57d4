//! After the sale (issue 5): the invoice PDF of GET /orders/{id}/invoice (read back
//! with an independent PDF parser), returns of delivered orders, and the order
//! confirmation and shipping mails through the outbox, over REST and gRPC.

use crate::common;
use std::time::Duration;

use crate::common::{TestApp, assert_error, authorized, json, pdf_text, spawn_app, spawn_app_with};
use ecom::proto::ecom::orders::v1 as pb;
use ecom::proto::ecom::orders::v1::orders_service_client::OrdersServiceClient;
use reqwest::Method;
use serde_json::{Value, json};
use tonic::Code;

/// Inserts a product with an exact price (cents), discount and stock; returns its id.
async fn product(app: &TestApp, title: &str, price_cents: i64, discount: f64, stock: i32) -> i64 {
    app.insert_product(title, price_cents, discount, stock)
        .await
}

fn shipping_address() -> Value {
    json!({
        "firstName": "John", "lastName": "Doe", "address": "123 Main St", "city": "New York",
        "state": "NY", "zipCode": "10001", "country": "USA", "phone": "+1234567890"
    })
}

fn billing_address() -> Value {
    json!({
        "firstName": "Jane", "lastName": "Smith", "address": "9 Billing Road", "city": "Boston",
        "state": "MA", "zipCode": "02101", "country": "USA", "phone": "+1987654321"
    })
}

/// Places an order as `token` (201 expected) and returns it.
async fn place(app: &TestApp, lines: &[(i64, i32)], token: &str) -> Value {
    let products: Vec<Value> = lines
        .iter()
        .map(|(id, q)| json!({"id": id, "quantity": q}))
        .collect();
    let body = json!({
        "products": products, "shippingAddress": shipping_address(),
        "billingAddress": billing_address(), "paymentMethod": "card"
    });
    let response = app.post_json("/orders", &body, Some(token)).await;
    assert_eq!(response.status().as_u16(), 201, "order placed");
    json(response).await
}

/// Moves an order through the admin's status changes (200 each).
async fn advance(app: &TestApp, id: &str, steps: &[Value]) {
    for step in steps {
        let response = app
            .put_json(
                &format!("/orders/{id}/status"),
                step,
                Some(&app.admin_token()),
            )
            .await;
        assert_eq!(response.status().as_u16(), 200, "status change {step}");
    }
}

fn ship() -> Value {
    json!({"status": "shipped", "trackingNumber": "1Z999AA10123456784", "carrier": "UPS"})
}

async fn deliver(app: &TestApp, id: &str) {
    advance(
        app,
        id,
        &[
            json!({"status": "processing"}),
            ship(),
            json!({"status": "delivered"}),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_invoice_is_a_pdf_with_the_figures_of_the_order() {
    let app = spawn_app_with(&[
        "--seller-name",
        "Acme Trading Ltd",
        "--seller-address",
        "1 Harbour Way; Springfield, IL 62701",
    ])
    .await;
    // A real account, so the invoice names the buyer from the users table.
    let buyer = app.register("buyer@example.com").await;
    let phone = product(&app, "iPhone 15 Pro", 119_999, 5.5, 10).await;
    let cable = product(&app, "USB-C Cable (2 m)", 1_999, 10.0, 10).await;
    let order = place(&app, &[(phone, 2), (cable, 3)], &buyer.token).await;
    let id = order["id"].as_str().unwrap();
    // 2 x 1199.99 - 5.5 % = 2267.98; 3 x 19.99 - 10 % = 53.97 (53.973);
    // tax 8 % of 2321.95 = 185.76 (185.756); free shipping above 100.
    assert_eq!(order["subtotal"], 2321.95);
    assert_eq!(order["tax"], 185.76);
    assert_eq!(order["total"], 2507.71);

    let response = app
        .request(
            Method::GET,
            &format!("/orders/{id}/invoice"),
            Some(&buyer.token),
        )
        .header("Accept", "application/pdf")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert_eq!(
        response.headers()["content-disposition"],
        format!("attachment; filename=\"invoice-{id}.pdf\"").as_str()
    );
    let bytes = response.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-"), "a PDF file");
    let text = pdf_text(&bytes);
    if let Ok(path) = std::env::var("INVOICE_DUMP") {
        std::fs::write(path, &bytes).unwrap();
    }

    let date = app.clock.now().format("%Y-%m-%d").to_string();
    for expected in [
        // Order id and date.
        format!("invoice-{id}"),
        id.to_owned(),
        date,
        // Seller from the settings.
        "Acme Trading Ltd".to_owned(),
        "1 Harbour Way".to_owned(),
        "Springfield, IL 62701".to_owned(),
        // Buyer from the account; both addresses from the order.
        "Jane Smith".to_owned(),
        "buyer@example.com".to_owned(),
        "John Doe".to_owned(),
        "123 Main St".to_owned(),
        "New York, NY 10001".to_owned(),
        "9 Billing Road".to_owned(),
        "Boston, MA 02101".to_owned(),
        // Lines: title, quantity, unit price, discount, line total, in that order.
        "iPhone 15 Pro\n2\n$1,199.99\n5.5%\n$2,267.98".to_owned(),
        "USB-C Cable (2 m)\n3\n$19.99\n10%\n$53.97".to_owned(),
        // Totals.
        "Subtotal\n$2,321.95".to_owned(),
        "Tax\n$185.76".to_owned(),
        "Shipping\n$0.00".to_owned(),
        "Total\n$2,507.71".to_owned(),
    ] {
        assert!(text.contains(&expected), "`{expected}` not in:\n{text}");
    }

    // Owner or admin only; another user's is 404, like the order itself.
    let admin = app
        .get_as(&format!("/orders/{id}/invoice"), &app.admin_token())
        .await;
    assert_eq!(admin.status().as_u16(), 200);
    assert_eq!(admin.headers()["content-type"], "application/pdf");
    let other = app
        .get_as(&format!("/orders/{id}/invoice"), &app.other_user_token())
        .await;
    assert_error(other, 404, "ORDER_NOT_FOUND").await;
    let missing = app
        .get_as("/orders/ORD-2000010199/invoice", &buyer.token)
        .await;
    assert_error(missing, 404, "ORDER_NOT_FOUND").await;
    let anonymous = app.get(&format!("/orders/{id}/invoice")).await;
    assert_error(anonymous, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn the_invoice_over_grpc_is_an_http_body_with_its_disposition() {
    let app = spawn_app().await;
    let p = product(&app, "Thing", 2_500, 0.0, 10).await;
    // A token without an account row: the buyer is named from the billing address.
    let order = place(&app, &[(p, 2)], &app.user_token()).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let mut client = OrdersServiceClient::new(app.grpc_channel().await);

    let response = client
        .get_invoice(authorized(
            pb::GetInvoiceRequest { id: id.clone() },
            &app.user_token(),
        ))
        .await
        .unwrap();
    assert_eq!(
        response.metadata().get("content-disposition").unwrap(),
        format!("attachment; filename=\"invoice-{id}.pdf\"").as_str()
    );
    let body = response.into_inner();
    assert_eq!(body.content_type, "application/pdf");
    let text = pdf_text(&body.data);
    // Defaults of SELLER_NAME and SELLER_ADDRESS.
    assert!(text.contains("ecom Store Inc."), "{text}");
    assert!(text.contains("123 Commerce Street"), "{text}");
    assert!(text.contains("Jane Smith"), "billing name: {text}");
    assert!(text.contains("Thing\n2\n$25.00\n0%\n$50.00"), "{text}");
    // 50.00 + 4.00 tax + 9.99 shipping below the free-shipping threshold.
    assert!(text.contains("Shipping\n$9.99"), "{text}");
    assert!(text.contains("Total\n$63.99"), "{text}");

    let other = client
        .get_invoice(authorized(
            pb::GetInvoiceRequest { id },
            &app.other_user_token(),
        ))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::NotFound);
}

async fn request_return(app: &TestApp, id: &str, body: &Value, token: &str) -> reqwest::Response {
    app.post_json(&format!("/orders/{id}/return"), body, Some(token))
        .await
}

#[tokio::test]
async fn returns_of_delivered_orders_by_their_buyer() {
    let app = spawn_app().await;
    let a = product(&app, "Shoes", 5_000, 0.0, 10).await;
    let b = product(&app, "Socks", 1_000, 0.0, 10).await;
    let order = place(&app, &[(a, 2), (b, 1)], &app.user_token()).await;
    let id = order["id"].as_str().unwrap();
    let reason = json!({"reason": "Too small"});

    // Not delivered yet.
    let pending = request_return(&app, id, &reason, &app.user_token()).await;
    assert_error(pending, 422, "RETURN_NOT_ALLOWED").await;
    advance(&app, id, &[json!({"status": "processing"}), ship()]).await;
    let shipped = request_return(&app, id, &reason, &app.user_token()).await;
    assert_error(shipped, 422, "RETURN_NOT_ALLOWED").await;
    advance(&app, id, &[json!({"status": "delivered"})]).await;

    // Only the buyer.
    let other = request_return(&app, id, &reason, &app.other_user_token()).await;
    assert_error(other, 404, "ORDER_NOT_FOUND").await;
    let admin = request_return(&app, id, &reason, &app.admin_token()).await;
    assert_error(admin, 403, "FORBIDDEN").await;
    let missing = request_return(&app, "ORD-2000010199", &reason, &app.user_token()).await;
    assert_error(missing, 404, "ORDER_NOT_FOUND").await;

    // A reason is required, 1 to 500 characters.
    let no_reason = request_return(&app, id, &json!({}), &app.user_token()).await;
    let body = assert_error(no_reason, 400, "VALIDATION_ERROR").await;
    assert!(body["details"].to_string().contains("reason"), "{body}");
    let long = json!({"reason": "x".repeat(501)});
    let body = assert_error(
        request_return(&app, id, &long, &app.user_token()).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(body["details"].to_string().contains("reason"), "{body}");

    // Items must be lines of the order, 1..=ordered units, each once.
    let bad = json!({"reason": "Too small", "items": [
        {"id": a, "quantity": 3}, {"id": 999_999, "quantity": 1}, {"id": b, "quantity": 0}
    ]});
    let body = assert_error(
        request_return(&app, id, &bad, &app.user_token()).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    let details = body["details"].to_string();
    for field in ["items[0].quantity", "items[1].id", "items[2].quantity"] {
        assert!(details.contains(field), "{field} in {body}");
    }

    // Late in the window (29 days after delivery): one unit of the shoes.
    app.clock.advance(chrono::Duration::days(29));
    let partial = json!({"reason": "Too small", "items": [{"id": a, "quantity": 1}]});
    let response = request_return(&app, id, &partial, &app.user_token()).await;
    assert_eq!(response.status().as_u16(), 200);
    let returned = json(response).await;
    assert_eq!(returned["status"], "delivered", "a return is not a status");
    let ret = &returned["return"];
    assert_eq!(ret["status"], "requested", "{returned}");
    assert_eq!(ret["reason"], "Too small");
    assert_eq!(ret["items"], json!([{"id": a, "quantity": 1}]));
    // Stored to the microsecond, as PostgreSQL keeps it.
    let requested_at = chrono::SubsecRound::trunc_subsecs(app.clock.now(), 6);
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(ret["requestedAt"].as_str().unwrap()).unwrap(),
        requested_at
    );
    let last = returned["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["status"], "delivered");
    assert_eq!(last["note"], "Return requested: Too small");
    assert_eq!(last["byUserId"], common::USER_ID);

    // Visible on the order; a second one is refused while it is open.
    let read = json(
        app.get_as(&format!("/orders/{id}"), &app.user_token())
            .await,
    )
    .await;
    assert_eq!(read["return"], returned["return"]);
    let again = request_return(&app, id, &reason, &app.user_token()).await;
    assert_error(again, 409, "RETURN_EXISTS").await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM order_returns")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn the_return_window_is_counted_from_delivery_and_configurable() {
    let app = spawn_app_with(&["--return-window-days", "7"]).await;
    let a = product(&app, "Shoes", 5_000, 0.0, 10).await;
    let b = product(&app, "Socks", 1_000, 0.0, 10).await;
    let early = place(&app, &[(a, 2), (b, 1)], &app.user_token()).await;
    let late = place(&app, &[(a, 1)], &app.user_token()).await;
    let (early, late) = (early["id"].as_str().unwrap(), late["id"].as_str().unwrap());
    deliver(&app, late).await;
    // Ten days pass before the first order is even delivered: the window starts then.
    app.clock.advance(chrono::Duration::days(10));
    deliver(&app, early).await;
    app.clock.advance(chrono::Duration::days(7));

    // Exactly 7 days after delivery: still inside; no items means the whole order.
    let whole = request_return(
        &app,
        early,
        &json!({"reason": "Changed my mind"}),
        &app.user_token(),
    )
    .await;
    assert_eq!(whole.status().as_u16(), 200);
    let whole = json(whole).await;
    assert_eq!(
        whole["return"]["items"],
        json!([{"id": a, "quantity": 2}, {"id": b, "quantity": 1}])
    );

    // 17 days after its delivery.
    let expired = request_return(
        &app,
        late,
        &json!({"reason": "Changed my mind"}),
        &app.user_token(),
    )
    .await;
    assert_error(expired, 422, "RETURN_WINDOW_EXPIRED").await;
}

#[tokio::test]
async fn concurrent_return_requests_open_one_return() {
    let app = spawn_app().await;
    let a = product(&app, "Shoes", 5_000, 0.0, 10).await;
    let order = place(&app, &[(a, 1)], &app.user_token()).await;
    let id = order["id"].as_str().unwrap().to_owned();
    deliver(&app, &id).await;
    let token = app.user_token();
    let body = json!({"reason": "Broken"});
    let requests = (0..8).map(|_| request_return(&app, &id, &body, &token));
    let mut statuses: Vec<u16> = futures::future::join_all(requests)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 409, 409, 409, 409, 409, 409, 409]);
}

#[tokio::test]
async fn returns_over_grpc() {
    let app = spawn_app().await;
    let a = product(&app, "Shoes", 5_000, 0.0, 10).await;
    let order = place(&app, &[(a, 3)], &app.user_token()).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let mut client = OrdersServiceClient::new(app.grpc_channel().await);
    let request = |quantity| pb::RequestReturnRequest {
        id: id.clone(),
        reason: "Wrong colour".into(),
        items: vec![pb::LineItem { id: a, quantity }],
    };

    let early = client
        .request_return(authorized(request(1), &app.user_token()))
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition);
    deliver(&app, &id).await;
    let too_many = client
        .request_return(authorized(request(4), &app.user_token()))
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
    let order = client
        .request_return(authorized(request(2), &app.user_token()))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let ret = order.return_request.unwrap();
    assert_eq!(ret.status, pb::ReturnStatus::Requested as i32);
    assert_eq!(ret.items, vec![pb::LineItem { id: a, quantity: 2 }]);
    let again = client
        .request_return(authorized(request(1), &app.user_token()))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
}

/// The outbox rows of mails about `order_id`.
async fn outbox_rows(app: &TestApp, order_id: &str) -> Vec<(String, bool)> {
    sqlx::query_as(
        "SELECT subject, sent_at IS NOT NULL FROM mail_outbox WHERE subject LIKE '%' || $1 || '%' ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn order_confirmation_and_shipping_mails_go_out_once() {
    let (app, smtp) = common::smtp::app_with_mail().await;
    let buyer = app.register("mailme@example.com").await;
    let p = product(&app, "iPhone 15 Pro", 119_999, 5.5, 3).await;
    // Placed with an Idempotency-Key and retried: one order, one confirmation.
    let body = json!({"products": [{"id": p, "quantity": 2}], "shippingAddress": shipping_address(), "paymentMethod": "card"});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = app
            .request(Method::POST, "/orders", Some(&buyer.token))
            .header("Idempotency-Key", "checkout-1")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
        ids.push(json(response).await["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids[0], ids[1], "the retry replays the order");
    let id = ids[0].as_str();

    let mails = smtp
        .wait_for("mailme@example.com", 1, Duration::from_secs(10))
        .await;
    let confirmation = &mails[0].data;
    for expected in [
        format!("Subject: Order {id} confirmed"),
        "Hello Jane,".to_owned(),
        "2 x iPhone 15 Pro: $2,267.98".to_owned(),
        "Subtotal: $2,267.98".to_owned(),
        "Tax: $181.44".to_owned(),
        "Shipping: $0.00".to_owned(),
        "Total: $2,449.42".to_owned(),
        "123 Main St".to_owned(),
    ] {
        assert!(
            confirmation.contains(&expected),
            "`{expected}` not in:\n{confirmation}"
        );
    }

    // A refused order (short stock) writes no mail; nor does a status change short of shipping.
    let products = json!([{"id": p, "quantity": 5}]);
    let short = app
        .post_json(
            "/orders",
            &json!({"products": products, "shippingAddress": shipping_address(), "paymentMethod": "card"}),
            Some(&buyer.token),
        )
        .await;
    assert_error(short, 422, "INSUFFICIENT_STOCK").await;
    advance(&app, id, &[json!({"status": "processing"})]).await;
    // A shipment without a tracking number is refused, and mails nothing.
    let untracked = app
        .put_json(
            &format!("/orders/{id}/status"),
            &json!({"status": "shipped", "carrier": "UPS"}),
            Some(&app.admin_token()),
        )
        .await;
    assert_error(untracked, 400, "VALIDATION_ERROR").await;
    advance(&app, id, &[ship()]).await;

    let mails = smtp
        .wait_for("mailme@example.com", 2, Duration::from_secs(10))
        .await;
    let shipping = &mails[1].data;
    for expected in [
        format!("Subject: Order {id} has shipped"),
        "Carrier: UPS".to_owned(),
        "Tracking number: 1Z999AA10123456784".to_owned(),
        "https://www.ups.com/track?tracknum=1Z999AA10123456784".to_owned(),
    ] {
        assert!(
            shipping.contains(&expected),
            "`{expected}` not in:\n{shipping}"
        );
    }

    // Delivery mails a delivery notice (order.delivered); every mail was sent exactly once.
    advance(&app, id, &[json!({"status": "delivered"})]).await;
    smtp.wait_for("mailme@example.com", 3, Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(smtp.mails().len(), 3, "no other mail");
    assert_eq!(
        outbox_rows(&app, id).await,
        [
            (format!("Order {id} confirmed"), true),
            (format!("Order {id} has shipped"), true),
            (format!("Order {id} was delivered"), true)
        ]
    );
}

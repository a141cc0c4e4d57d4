//! A customer's whole journey, once over REST and once over gRPC: register, log in, browse,
//! fill the cart, order, pay, webhook, ship, deliver, download the invoice, request a return.
//! Each step checks what the next one stands on, so a break anywhere fails here.

use crate::common;
use crate::common::{TestApp, authorized, json, pdf_text, spawn_app_with};
use ecom::payments::webhook;
use ecom::proto::ecom::auth::v1 as auth_pb;
use ecom::proto::ecom::auth::v1::auth_service_client::AuthServiceClient;
use ecom::proto::ecom::catalog::v1 as catalog_pb;
use ecom::proto::ecom::catalog::v1::catalog_service_client::CatalogServiceClient;
use ecom::proto::ecom::common::v1::ShippingAddress;
use ecom::proto::ecom::orders::v1 as orders_pb;
use ecom::proto::ecom::orders::v1::orders_service_client::OrdersServiceClient;
use ecom::proto::ecom::payments::v1 as payments_pb;
use ecom::proto::ecom::payments::v1::payments_service_client::PaymentsServiceClient;
use serde_json::{Value, json};

const WEBHOOK_SECRET: &str = "whsec_journey";
const PASSWORD: &str = "Journey2Pass";

async fn app() -> TestApp {
    let app = spawn_app_with(&["--stripe-webhook-secret", WEBHOOK_SECRET]).await;
    app.seed_catalog(30).await;
    app
}

/// The amount in cents of a JSON money value.
fn cents(v: &Value) -> i64 {
    (v.as_f64().expect("a number") * 100.0).round() as i64
}

/// Dollars as the invoice writes them: `$5,405.44`.
fn usd(amount: f64) -> String {
    let cents = (amount * 100.0).round() as i64;
    let digits = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("${grouped}.{:02}", cents % 100)
}

/// A signed `payment_intent.succeeded` event: its body and Stripe-Signature.
fn succeeded_event(app: &TestApp, intent: &str) -> (String, String) {
    let body = json!({"id": format!("evt_{intent}"), "type": "payment_intent.succeeded",
                      "data": {"object": {"id": intent}}})
    .to_string();
    let signature = webhook::sign(
        WEBHOOK_SECRET.as_bytes(),
        app.clock.now().timestamp(),
        body.as_bytes(),
    );
    (body, signature)
}

async fn ok(response: reqwest::Response, status: u16) -> Value {
    let code = response.status().as_u16();
    let body = json(response).await;
    assert_eq!(code, status, "{body}");
    body
}

#[tokio::test]
async fn the_whole_journey_over_rest() {
    let app = app().await;

    // Register and log in (DummyJSON style, by username).
    let registered = ok(
        app.post_json(
            "/auth/register",
            &json!({"email": "ada@example.com", "password": PASSWORD,
                    "firstName": "Ada", "lastName": "Lovelace"}),
            None,
        )
        .await,
        201,
    )
    .await;
    let username = registered["user"]["username"].as_str().unwrap().to_owned();
    let login = ok(
        app.post_json(
            "/auth/login",
            &json!({"username": username, "password": PASSWORD}),
            None,
        )
        .await,
        200,
    )
    .await;
    let token = login["accessToken"].as_str().unwrap().to_owned();
    let user_id = login["id"].as_i64().unwrap();

    // Browse: a page, the categories, a search for a word of a title, one product.
    let page = ok(app.get("/products?limit=5").await, 200).await;
    assert_eq!(page["products"].as_array().unwrap().len(), 5);
    let categories = ok(app.get("/products/categories").await, 200).await;
    assert!(!categories.as_array().unwrap().is_empty());
    let first = &page["products"][0];
    let word = first["title"].as_str().unwrap().split(' ').next().unwrap();
    let found = ok(app.get(&format!("/products/search?q={word}")).await, 200).await;
    assert!(
        found["products"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == first["id"]),
        "searching {word:?} finds {first}"
    );
    let (a, b) = (
        page["products"][0]["id"].as_i64().unwrap(),
        page["products"][1]["id"].as_i64().unwrap(),
    );
    ok(app.get(&format!("/products/{a}")).await, 200).await;

    // Fill the cart.
    let lines = json!([{"id": a, "quantity": 1}, {"id": b, "quantity": 2}]);
    ok(
        app.post_json(
            "/carts/add",
            &json!({"userId": user_id, "products": lines}),
            Some(&token),
        )
        .await,
        201,
    )
    .await;
    let cart = ok(app.get_as("/cart", &token).await, 200).await;
    assert_eq!(cart["totalQuantity"], 3);

    // Order what is in the cart; the cart empties.
    let address = json!({"firstName": "Ada", "lastName": "Lovelace", "address": "12 St James's Sq",
                         "city": "London", "state": "LDN", "zipCode": "SW1Y 4JH",
                         "country": "UK", "phone": "+441234567890"});
    let order = ok(
        app.post_json(
            "/orders",
            &json!({"products": lines, "shippingAddress": address, "paymentMethod": "card"}),
            Some(&token),
        )
        .await,
        201,
    )
    .await;
    let order_id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(order["status"], "pending");
    assert_eq!(order["paymentStatus"], "unpaid");
    let emptied = ok(app.get_as("/cart", &token).await, 200).await;
    assert_eq!(emptied["totalQuantity"], 0);

    // Pay the order's total; the order moves to processing.
    let intent = ok(
        app.post_json(
            "/payments/intents",
            &json!({"amount": cents(&order["total"]), "metadata": {"orderId": order_id}}),
            Some(&token),
        )
        .await,
        201,
    )
    .await;
    let intent_id = intent["id"].as_str().unwrap().to_owned();
    let confirmed = ok(
        app.post_json(
            &format!("/payments/intents/{intent_id}/confirm"),
            &json!({"paymentMethodId": "pm_card_visa"}),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(confirmed["status"], "succeeded");
    let paid = ok(
        app.get_as(&format!("/orders/{order_id}"), &token).await,
        200,
    )
    .await;
    assert_eq!(paid["status"], "processing");
    assert_eq!(paid["paymentStatus"], "paid");

    // The provider's webhook for the same payment changes nothing more.
    let (body, signature) = succeeded_event(&app, &intent_id);
    let delivered = app
        .request(reqwest::Method::POST, "/payments/webhook", None)
        .header("content-type", "application/json")
        .header("stripe-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    ok(delivered, 200).await;
    let after_webhook = ok(
        app.get_as(&format!("/orders/{order_id}"), &token).await,
        200,
    )
    .await;
    assert_eq!(after_webhook["history"], paid["history"]);

    // Ship and deliver (admin), with tracking.
    let admin = app.admin_token();
    ok(
        app.put_json(
            &format!("/orders/{order_id}/status"),
            &json!({"status": "shipped", "trackingNumber": "1Z999AA10123456784", "carrier": "UPS"}),
            Some(&admin),
        )
        .await,
        200,
    )
    .await;
    let tracking = ok(
        app.get_as(&format!("/orders/{order_id}/tracking"), &token)
            .await,
        200,
    )
    .await;
    assert_eq!(tracking["carrier"], "UPS");
    assert!(
        tracking["trackingUrl"]
            .as_str()
            .unwrap()
            .contains("1Z999AA10123456784")
    );
    ok(
        app.put_json(
            &format!("/orders/{order_id}/status"),
            &json!({"status": "delivered"}),
            Some(&admin),
        )
        .await,
        200,
    )
    .await;

    // The invoice is a PDF with the order's total.
    let invoice = app
        .get_as(&format!("/orders/{order_id}/invoice"), &token)
        .await;
    assert_eq!(invoice.status().as_u16(), 200);
    assert_eq!(invoice.headers()["content-type"], "application/pdf");
    let text = pdf_text(&invoice.bytes().await.unwrap());
    assert!(text.contains(&order_id), "{text}");
    assert!(
        text.contains(&format!("Total\n{}", usd(order["total"].as_f64().unwrap()))),
        "{text}"
    );

    // Return it.
    let returned = ok(
        app.post_json(
            &format!("/orders/{order_id}/return"),
            &json!({"reason": "Changed my mind"}),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(returned["return"]["status"], "requested");
    assert_eq!(returned["status"], "delivered");
}

#[tokio::test]
async fn the_whole_journey_over_grpc() {
    let app = app().await;
    let channel = app.grpc_channel().await;
    let mut auth = AuthServiceClient::new(channel.clone());
    let mut catalog = CatalogServiceClient::new(channel.clone());
    let mut orders = OrdersServiceClient::new(channel.clone());
    let mut payments = PaymentsServiceClient::new(channel.clone());

    auth.register(auth_pb::RegisterRequest {
        email: "grace@example.com".into(),
        password: PASSWORD.into(),
        first_name: "Grace".into(),
        last_name: "Hopper".into(),
        username: None,
    })
    .await
    .unwrap();
    let login = auth
        .login(auth_pb::LoginRequest {
            email: "grace@example.com".into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let token = login.token.clone();

    let page = catalog
        .list_products(catalog_pb::ListProductsRequest {
            limit: Some(5),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (a, b) = (page.products[0].id, page.products[1].id);
    let word = page.products[0].title.split(' ').next().unwrap().to_owned();
    let found = catalog
        .search_products(catalog_pb::SearchProductsRequest {
            q: word,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(found.products.iter().any(|p| p.id == a));

    let lines = vec![
        orders_pb::LineItem { id: a, quantity: 1 },
        orders_pb::LineItem { id: b, quantity: 2 },
    ];
    let cart = orders
        .replace_cart(authorized(
            orders_pb::ReplaceCartRequest {
                products: lines.clone(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cart.cart.unwrap().total_quantity, 3);

    let order = orders
        .create_order(authorized(
            orders_pb::CreateOrderRequest {
                products: lines,
                shipping_address: Some(ShippingAddress {
                    first_name: "Grace".into(),
                    last_name: "Hopper".into(),
                    address: "1 Navy Yard".into(),
                    city: "Arlington".into(),
                    state: "VA".into(),
                    zip_code: "22202".into(),
                    country: "USA".into(),
                    phone: String::new(),
                }),
                billing_address: None,
                payment_method: "card".into(),
                payment_intent_id: None,
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();

    let intent = payments
        .create_payment_intent(authorized(
            payments_pb::CreatePaymentIntentRequest {
                amount: (order.total * 100.0).round() as i64,
                currency: String::new(),
                metadata: [("orderId".to_owned(), order.id.clone())].into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .payment_intent
        .unwrap();
    payments
        .confirm_payment_intent(authorized(
            payments_pb::ConfirmPaymentIntentRequest {
                id: intent.id.clone(),
                payment_method_id: "pm_card_visa".into(),
            },
            &token,
        ))
        .await
        .unwrap();

    // The webhook, as a gRPC caller would relay it: the raw body and the signature metadata.
    let (body, signature) = succeeded_event(&app, &intent.id);
    let mut relay = tonic::Request::new(payments_pb::HandleWebhookRequest {
        body: Some(ecom::proto::google::api::HttpBody {
            content_type: "application/json".into(),
            data: body.into_bytes(),
            extensions: vec![],
        }),
    });
    relay
        .metadata_mut()
        .insert("stripe-signature", signature.parse().unwrap());
    assert!(
        payments
            .handle_webhook(relay)
            .await
            .unwrap()
            .into_inner()
            .received
    );

    let get = |id: &str| orders_pb::GetOrderRequest { id: id.to_owned() };
    let paid = orders
        .get_order(authorized(get(&order.id), &token))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(paid.status(), orders_pb::OrderStatus::Processing);
    assert_eq!(paid.payment_status(), orders_pb::PaymentState::Paid);

    let admin = app.admin_token();
    for (status, tracking, carrier) in [
        (
            orders_pb::OrderStatus::Shipped,
            Some("9400111899223"),
            Some("USPS"),
        ),
        (orders_pb::OrderStatus::Delivered, None, None),
    ] {
        orders
            .update_order_status(authorized(
                orders_pb::UpdateOrderStatusRequest {
                    id: order.id.clone(),
                    status: status as i32,
                    tracking_number: tracking.map(str::to_owned),
                    carrier: carrier.map(str::to_owned),
                    note: None,
                },
                &admin,
            ))
            .await
            .unwrap();
    }

    let invoice = orders
        .get_invoice(authorized(
            orders_pb::GetInvoiceRequest {
                id: order.id.clone(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(invoice.content_type, "application/pdf");
    let text = pdf_text(&invoice.data);
    assert!(
        text.contains(&format!("Total\n{}", usd(order.total))),
        "{text}"
    );

    let returned = orders
        .request_return(authorized(
            orders_pb::RequestReturnRequest {
                id: order.id.clone(),
                reason: "Too small".into(),
                items: vec![],
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert!(returned.return_request.is_some());
}

// ---------------------------------------------------------------- a real browser (#17)

/// Serves `tests/browser/page.html` at `/` on `addr` until the test ends.
async fn serve_page(addr: &str) -> tokio::task::JoinHandle<()> {
    let html = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/browser/page.html"
    ))
    .expect("tests/browser/page.html");
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("binding {addr} for the browser page: {e}"));
    let router = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    })
}

/// What the page found in Debian's chromium (tests/browser/drive.mjs), as JSON.
async fn browse(url: String) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/drive.mjs");
    let output = tokio::process::Command::new("node")
        .arg(script)
        .arg(&url)
        .output()
        .await
        .expect("node runs (scripts/test.sh installs chromium and tests/browser's packages)");
    assert!(
        output.status.success(),
        "the browser run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the page's report is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// CORS is only really checked by a browser: a page on an allowed origin
/// (http://localhost:5173, the default CORS_ORIGINS) logs in, lists every product with
/// `limit=0`, makes a preflighted request with `Authorization` and shows a product picture;
/// the same page on a disallowed origin gets nothing from the API.
#[tokio::test]
async fn a_real_browser_on_an_allowed_origin_uses_the_api_and_another_origin_is_blocked() {
    let port = common::free_port().to_string();
    let public = format!("http://127.0.0.1:{port}");
    let app = spawn_app_with(&["--port", &port, "--public-url", &public]).await;
    app.seed_catalog(30).await;
    let account = app.register("browser@example.com").await;
    let _allowed = serve_page("127.0.0.1:5173").await;
    let query = format!(
        "api={public}/api/v1&user={}&password={}",
        account.email,
        common::identity::PASSWORD
    );

    let found = browse(format!("http://localhost:5173/?{query}")).await;
    assert_eq!(found["error"], Value::Null, "{found}");
    assert_eq!(found["loginStatus"], 200, "{found}");
    assert_eq!(found["products"], 30, "{found}");
    assert_eq!(found["total"], 30, "{found}");
    assert_eq!(found["meStatus"], 200, "{found}");
    assert_eq!(found["email"], "browser@example.com", "{found}");
    assert_eq!(found["imageWidth"], 320, "{found}");

    // A second listener on a free port: an origin CORS_ORIGINS does not list.
    let other = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let _page = serve_page(&format!("127.0.0.1:{port}")).await;
        browse(format!("http://127.0.0.1:{port}/?{query}")).await
    };
    assert!(
        other["error"]
            .as_str()
            .is_some_and(|e| e.contains("Failed to fetch")),
        "the disallowed origin must be blocked: {other}"
    );
    assert_eq!(other["loginStatus"], Value::Null, "{other}");
}

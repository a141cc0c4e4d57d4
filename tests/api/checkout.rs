//! Checkout (issue #14): coupons (admin CRUD, apply/remove on the cart, redemption by
//! POST /orders, race-free limits over two instances, given back on cancellation), shipping
//! methods and rates (one pricing function for the rates and the order), and tax by the
//! shipping address; through the real REST edge, and once over gRPC.

use std::sync::Arc;

use crate::common::{TestApp, USER_ID, assert_error, authorized, json, pdf_text, spawn_app};
use ecom::proto::ecom::common::v1::ShippingAddress;
use ecom::proto::ecom::orders::v1 as pb;
use ecom::proto::ecom::orders::v1::orders_service_client::OrdersServiceClient;
use reqwest::Method;
use serde_json::{Value, json};
use tonic::Code;

fn address(country: &str, state: &str) -> Value {
    json!({
        "firstName": "John", "lastName": "Doe", "address": "123 Main St", "city": "Somewhere",
        "state": state, "zipCode": "10001", "country": country, "phone": "+1234567890"
    })
}

fn order_body(lines: &[(i64, i32)], extra: Value) -> Value {
    let products: Vec<Value> = lines
        .iter()
        .map(|(id, q)| json!({"id": id, "quantity": q}))
        .collect();
    let mut body = json!({
        "products": products, "shippingAddress": address("USA", "NY"), "paymentMethod": "card"
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn post_order(app: &TestApp, body: &Value, token: &str) -> reqwest::Response {
    app.post_json("/orders", body, Some(token)).await
}

async fn ok(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body = json(response).await;
    assert_eq!(got, status, "{body}");
    body
}

async fn create_coupon(app: &TestApp, coupon: Value) -> Value {
    ok(
        app.post_json("/admin/coupons", &coupon, Some(&app.admin_token()))
            .await,
        201,
    )
    .await
}

async fn set_weight(app: &TestApp, id: i64, kg: f64) {
    sqlx::query("UPDATE products SET weight = $2::float8::numeric WHERE id = $1")
        .bind(id)
        .bind(kg)
        .execute(&app.db)
        .await
        .unwrap();
}

async fn fill_cart(app: &TestApp, lines: &[(i64, i32)], token: &str) {
    let products: Vec<Value> = lines
        .iter()
        .map(|(id, q)| json!({"id": id, "quantity": q}))
        .collect();
    ok(
        app.post_json("/cart", &json!({"products": products}), Some(token))
            .await,
        200,
    )
    .await;
}

#[tokio::test]
async fn admins_create_read_list_replace_and_delete_coupons_by_code() {
    let app = spawn_app().await;
    let admin = app.admin_token();

    let created = create_coupon(
        &app,
        json!({"code": "summer-10", "kind": "percentage", "percentOff": 10,
               "minSubtotal": 50.0, "usageLimit": 100, "perUserLimit": 1,
               "categories": ["Smartphones"], "productIds": [7]}),
    )
    .await;
    assert_eq!(created["code"], "SUMMER-10");
    assert_eq!(created["kind"], "percentage");
    assert_eq!(created["percentOff"], 10);
    assert_eq!(created["minSubtotal"], 50.0);
    assert_eq!(created["categories"], json!(["smartphones"]));
    assert_eq!(created["used"], 0);
    assert_eq!(created["active"], true);

    // Case-insensitive by code.
    let read = ok(app.get_as("/admin/coupons/Summer-10", &admin).await, 200).await;
    assert_eq!(read["id"], created["id"]);
    // The code is taken, in any case.
    assert_error(
        app.post_json(
            "/admin/coupons",
            &json!({"code": "SUMMER-10", "kind": "free_shipping"}),
            Some(&admin),
        )
        .await,
        409,
        "COUPON_EXISTS",
    )
    .await;
    create_coupon(
        &app,
        json!({"code": "FIVEOFF", "kind": "fixed_amount", "amountOff": 5.0}),
    )
    .await;
    let list = ok(app.get_as("/admin/coupons?limit=1", &admin).await, 200).await;
    assert_eq!(list["total"], 2);
    assert_eq!(list["coupons"].as_array().unwrap().len(), 1);
    assert_eq!(list["coupons"][0]["code"], "FIVEOFF", "newest first");

    let replaced = ok(
        app.put_json(
            "/admin/coupons/summer-10",
            &json!({"code": "IGNORED", "kind": "fixed_amount", "amountOff": 12.5,
                    "active": false}),
            Some(&admin),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(replaced["code"], "SUMMER-10");
    assert_eq!(replaced["kind"], "fixed_amount");
    assert_eq!(replaced["amountOff"], 12.5);
    assert!(replaced.get("percentOff").is_none(), "{replaced}");
    assert_eq!(replaced["categories"], json!([]));
    assert_eq!(replaced["active"], false);

    let deleted = ok(
        app.delete("/admin/coupons/SUMMER-10", Some(&admin)).await,
        200,
    )
    .await;
    assert_eq!(deleted["code"], "SUMMER-10");
    assert_error(
        app.get_as("/admin/coupons/SUMMER-10", &admin).await,
        404,
        "COUPON_NOT_FOUND",
    )
    .await;
    assert_error(
        app.delete("/admin/coupons/SUMMER-10", Some(&admin)).await,
        404,
        "COUPON_NOT_FOUND",
    )
    .await;

    // Customers may not; bad terms name their fields.
    assert_error(
        app.get_as("/admin/coupons", &app.user_token()).await,
        403,
        "FORBIDDEN",
    )
    .await;
    let bad = assert_error(
        app.post_json(
            "/admin/coupons",
            &json!({"code": "x!", "kind": "percentage", "percentOff": 0,
                    "usageLimit": 0}),
            Some(&admin),
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    let mut fields: Vec<&String> = bad["details"].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["code", "percentOff", "usageLimit"], "{bad}");
}

#[tokio::test]
async fn an_applied_coupon_prices_the_cart_and_the_order_redeems_it_and_shows_it() {
    let app = spawn_app().await;
    let token = app.user_token();
    let shirt = app.insert_product("Plain shirt", 10_000, 0.0, 50).await;
    fill_cart(&app, &[(shirt, 2)], &token).await;
    create_coupon(
        &app,
        json!({"code": "SAVE10", "kind": "percentage", "percentOff": 10}),
    )
    .await;

    // 200.00 - 10 % = 180.00; NY 8 % = 14.40; free standard shipping from 100.
    let cart = ok(
        app.post_json(
            "/checkout/apply-coupon",
            &json!({"code": "save10", "shippingAddress": address("US", "NY")}),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(cart["subtotal"], 200.0);
    assert_eq!(cart["discount"], 20.0);
    assert_eq!(cart["tax"], 14.4);
    assert_eq!(cart["taxRate"], 0.08);
    assert_eq!(cart["shipping"], 0.0);
    assert_eq!(cart["total"], 194.4);
    assert_eq!(cart["couponCode"], "SAVE10");
    assert_eq!(cart["totalQuantity"], 2);

    // Without an address: the fallback tax and the flat-fee estimate.
    let removed = ok(
        app.delete("/checkout/remove-coupon", Some(&token)).await,
        200,
    )
    .await;
    assert_eq!(removed["discount"], 0.0);
    assert!(removed.get("couponCode").is_none(), "{removed}");
    assert_eq!(removed["total"], 216.0);
    let again = ok(
        app.post_json(
            "/checkout/apply-coupon",
            &json!({"code": "SAVE10"}),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(again["total"], 194.4);

    // The order names no coupon: the cart's is redeemed; to California (7.25 %).
    let order = ok(
        post_order(
            &app,
            &json!({"products": [{"id": shirt, "quantity": 2}],
                    "shippingAddress": address("USA", "CA"), "paymentMethod": "card"}),
            &token,
        )
        .await,
        201,
    )
    .await;
    assert_eq!(order["subtotal"], 200.0);
    assert_eq!(order["discount"], 20.0);
    assert_eq!(order["couponCode"], "SAVE10");
    assert_eq!(order["tax"], 13.05); // 180.00 * 7.25 % = 13.05
    assert_eq!(order["taxRate"], 0.0725);
    assert_eq!(order["shipping"], 0.0);
    assert_eq!(order["shippingMethod"], "standard");
    assert_eq!(order["total"], 193.05);
    let id = order["id"].as_str().unwrap().to_owned();
    let coupon = ok(
        app.get_as("/admin/coupons/SAVE10", &app.admin_token())
            .await,
        200,
    )
    .await;
    assert_eq!(coupon["used"], 1);

    // The cart is empty and carries no coupon any more.
    let after = ok(
        app.delete("/checkout/remove-coupon", Some(&token)).await,
        200,
    )
    .await;
    assert_eq!(after["totalQuantity"], 0);

    // GET reads the same; the invoice shows the code, the discount and the rate.
    let read = ok(app.get_as(&format!("/orders/{id}"), &token).await, 200).await;
    assert_eq!(read["discount"], 20.0);
    assert_eq!(read["taxRate"], 0.0725);
    let response = app
        .request(Method::GET, &format!("/orders/{id}/invoice"), Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = pdf_text(&response.bytes().await.unwrap());
    assert!(text.contains("Discount (SAVE10)\n-$20.00"), "{text}");
    assert!(text.contains("Tax rate:\n7.25%"), "{text}");
    assert!(text.contains("Shipping:\nstandard"), "{text}");
    assert!(text.contains("Total\n$193.05"), "{text}");

    // An explicit empty code orders without the coupon even when one is applied.
    fill_cart(&app, &[(shirt, 1)], &token).await;
    ok(
        app.post_json(
            "/checkout/apply-coupon",
            &json!({"code": "SAVE10"}),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    let plain = ok(
        post_order(
            &app,
            &order_body(&[(shirt, 1)], json!({"couponCode": ""})),
            &token,
        )
        .await,
        201,
    )
    .await;
    assert_eq!(plain["discount"], 0.0);
    assert!(plain.get("couponCode").is_none(), "{plain}");
}

#[tokio::test]
async fn each_coupon_refusal_has_its_code_and_status() {
    let app = spawn_app().await;
    let token = app.user_token();
    let cheap = app.insert_product("Cheap phone case", 2_000, 0.0, 50).await;
    fill_cart(&app, &[(cheap, 1)], &token).await;
    let now = app.clock.now();
    let day = chrono::Duration::days(1);
    let rfc = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339();
    create_coupon(
        &app,
        json!({"code": "OLD", "kind": "free_shipping",
                               "startsAt": rfc(now - day * 2), "endsAt": rfc(now - day)}),
    )
    .await;
    create_coupon(
        &app,
        json!({"code": "LATER", "kind": "free_shipping", "startsAt": rfc(now + day)}),
    )
    .await;
    create_coupon(
        &app,
        json!({"code": "BIGSPEND", "kind": "fixed_amount", "amountOff": 10.0,
                               "minSubtotal": 100.0}),
    )
    .await;
    create_coupon(
        &app,
        json!({"code": "LAPTOPS", "kind": "percentage", "percentOff": 20,
                               "categories": ["laptops"]}),
    )
    .await;
    create_coupon(
        &app,
        json!({"code": "ONCE", "kind": "fixed_amount", "amountOff": 1.0,
                               "usageLimit": 1}),
    )
    .await;
    create_coupon(
        &app,
        json!({"code": "ONEEACH", "kind": "fixed_amount", "amountOff": 1.0,
                               "perUserLimit": 1}),
    )
    .await;
    create_coupon(
        &app,
        json!({"code": "OFF", "kind": "free_shipping", "active": false}),
    )
    .await;

    let apply = |code: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            app.post_json(
                "/checkout/apply-coupon",
                &json!({"code": code}),
                Some(&token),
            )
            .await
        }
    };
    for (code, status, error) in [
        ("NOPE", 404, "COUPON_NOT_FOUND"),
        ("OFF", 404, "COUPON_NOT_FOUND"),
        ("OLD", 422, "COUPON_EXPIRED"),
        ("LATER", 422, "COUPON_NOT_STARTED"),
        ("BIGSPEND", 422, "COUPON_MIN_SUBTOTAL"),
        ("LAPTOPS", 422, "COUPON_NOT_APPLICABLE"),
    ] {
        let body = assert_error(apply(code).await, status, error).await;
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    assert_error(apply("x").await, 400, "VALIDATION_ERROR").await;
    // Nothing was kept on the cart by a refusal.
    let order = ok(
        post_order(&app, &order_body(&[(cheap, 1)], json!({})), &token).await,
        201,
    )
    .await;
    assert_eq!(order["discount"], 0.0);

    // The total limit, then the per-user limit, through POST /orders.
    let with = |code: &str| order_body(&[(cheap, 1)], json!({"couponCode": code}));
    let first = ok(post_order(&app, &with("once"), &token).await, 201).await;
    assert_eq!(first["discount"], 1.0);
    assert_error(
        post_order(&app, &with("ONCE"), &app.other_user_token()).await,
        422,
        "COUPON_USAGE_LIMIT",
    )
    .await;
    assert_error(apply("ONCE").await, 422, "COUPON_USAGE_LIMIT").await;
    ok(post_order(&app, &with("ONEEACH"), &token).await, 201).await;
    assert_error(
        post_order(&app, &with("ONEEACH"), &token).await,
        422,
        "COUPON_USAGE_LIMIT",
    )
    .await;
    ok(
        post_order(&app, &with("ONEEACH"), &app.other_user_token()).await,
        201,
    )
    .await;
    // A refused order took no stock: 50 - 4 orders.
    let stock: i32 = sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
        .bind(cheap)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stock, 46);

    // Cancelling gives the use back: the buyer may redeem it again.
    let id = first["id"].as_str().unwrap();
    ok(
        app.put_json(
            &format!("/orders/{id}/cancel"),
            &json!({"reason": "changed my mind"}),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    let again = ok(
        post_order(&app, &with("ONCE"), &app.other_user_token()).await,
        201,
    )
    .await;
    assert_eq!(again["couponCode"], "ONCE");
}

#[tokio::test]
async fn shipping_methods_and_rates_price_like_the_order_does() {
    let app = spawn_app().await;
    let token = app.user_token();
    let heavy = app.insert_product("Cast iron pan", 4_000, 0.0, 50).await;
    set_weight(&app, heavy, 2.5).await;

    let methods = ok(app.get("/shipping/methods").await, 200).await;
    let codes: Vec<&str> = methods["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["standard", "express", "overnight"]);
    assert_eq!(methods["methods"][0]["freeOverThreshold"], true);
    assert_eq!(methods["methods"][1]["freeOverThreshold"], false);

    // Anonymous, explicit lines: 5 kg to New York; the first kilogram is in the base rate.
    let rates = ok(
        app.post_json(
            "/shipping/rates",
            &json!({"address": {"country": "US", "state": "NY"},
                    "items": [{"productId": heavy, "quantity": 2}]}),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(rates["weight"], 5.0);
    assert_eq!(rates["subtotal"], 80.0);
    let priced: Vec<(String, f64)> = rates["rates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_owned(),
                r["amount"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        priced,
        [
            ("standard".to_owned(), 13.99),
            ("express".to_owned(), 27.99),
            ("overnight".to_owned(), 51.99)
        ]
    );
    // Alaska has its own standard rate.
    let alaska = ok(
        app.post_json(
            "/shipping/rates",
            &json!({"address": {"country": "USA", "state": "AK"}, "items": [{"productId": heavy, "quantity": 2}]}),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(alaska["rates"][0]["amount"], 29.99);

    // Signed in without lines: the cart's; abroad, no overnight.
    fill_cart(&app, &[(heavy, 3)], &token).await;
    let uk = ok(
        app.post_json(
            "/shipping/rates",
            &json!({"address": {"country": "UK"}}),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(uk["weight"], 7.5);
    let uk_rates = uk["rates"].as_array().unwrap();
    assert_eq!(uk_rates.len(), 2, "{uk}");
    // 120.00 of goods: standard is free from the threshold, express never.
    assert_eq!(uk_rates[0]["amount"], 0.0);
    assert_eq!(uk_rates[0]["free"], true);
    assert_eq!(uk_rates[1]["amount"], 74.99); // 39.99 + 7 started kg above the first * 5.00

    assert_error(
        app.post_json(
            "/shipping/rates",
            &json!({"address": {"country": "KP"}}),
            Some(&token),
        )
        .await,
        422,
        "SHIPPING_UNAVAILABLE",
    )
    .await;
    assert_error(
        app.post_json(
            "/shipping/rates",
            &json!({"address": {"country": "US"}}),
            None,
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;

    // The order prices its method with the same function.
    let express = ok(
        post_order(
            &app,
            &order_body(&[(heavy, 2)], json!({"shippingMethod": "express"})),
            &token,
        )
        .await,
        201,
    )
    .await;
    assert_eq!(express["shipping"], 27.99);
    assert_eq!(express["shippingMethod"], "express");
    assert_eq!(express["total"], 114.39); // 80.00 + 6.40 tax + 27.99
    let standard = ok(
        post_order(&app, &order_body(&[(heavy, 2)], json!({})), &token).await,
        201,
    )
    .await;
    assert_eq!(standard["shipping"], 13.99);
    assert_eq!(standard["shippingMethod"], "standard");

    let unknown = assert_error(
        post_order(
            &app,
            &order_body(&[(heavy, 1)], json!({"shippingMethod": "teleport"})),
            &token,
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(unknown["details"]["shippingMethod"].is_array(), "{unknown}");
    let mut overseas = order_body(&[(heavy, 1)], json!({"shippingMethod": "overnight"}));
    overseas["shippingAddress"] = address("Germany", "");
    assert_error(
        post_order(&app, &overseas, &token).await,
        422,
        "SHIPPING_UNAVAILABLE",
    )
    .await;
    overseas["shippingAddress"] = address("Atlantis", "");
    overseas["shippingMethod"] = json!("standard");
    assert_error(
        post_order(&app, &overseas, &token).await,
        422,
        "SHIPPING_UNAVAILABLE",
    )
    .await;
}

#[tokio::test]
async fn tax_follows_the_shipping_address_and_admins_edit_the_rates() {
    let app = spawn_app().await;
    let token = app.user_token();
    let admin = app.admin_token();
    let item = app.insert_product("Desk lamp", 20_000, 0.0, 50).await;
    let to = |country: &str, state: &str| {
        let mut body = order_body(&[(item, 1)], json!({}));
        body["shippingAddress"] = address(country, state);
        body
    };
    for (country, state, rate, tax) in [
        ("USA", "NY", 0.08, 16.0),
        ("US", "or", 0.0, 0.0),
        ("United Kingdom", "", 0.2, 40.0),
        ("Canada", "ON", 0.13, 26.0),
        ("Canada", "AB", 0.05, 10.0),
        // Unknown state of a country without a country-wide row: TAX_RATE.
        ("US", "ZZ", 0.08, 16.0),
    ] {
        let order = ok(post_order(&app, &to(country, state), &token).await, 201).await;
        assert_eq!(order["taxRate"], rate, "{country}/{state}: {order}");
        assert_eq!(order["tax"], tax, "{country}/{state}");
    }

    let listed = ok(app.get_as("/admin/tax-rates", &admin).await, 200).await;
    assert_eq!(listed["fallbackRate"], 0.08);
    assert!(listed["rates"].as_array().unwrap().len() > 60);
    let set = ok(
        app.put_json(
            "/admin/tax-rates",
            &json!({"country": "us", "state": "ny", "rate": 0.08875}),
            Some(&admin),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        set,
        json!({"country": "US", "state": "NY", "rate": 0.08875})
    );
    let order = ok(post_order(&app, &to("USA", "NY"), &token).await, 201).await;
    assert_eq!(order["tax"], 17.75); // 200.00 * 8.875 %
    assert_eq!(order["taxRate"], 0.08875);

    assert_error(
        app.put_json(
            "/admin/tax-rates",
            &json!({"country": "USA", "rate": 2}),
            Some(&admin),
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_error(
        app.put_json(
            "/admin/tax-rates",
            &json!({"country": "US", "rate": 0.1}),
            Some(&token),
        )
        .await,
        403,
        "FORBIDDEN",
    )
    .await;
}

#[tokio::test]
async fn a_coupon_limited_to_ten_is_redeemed_ten_times_by_200_concurrent_orders_on_two_instances() {
    let app = Arc::new(spawn_app().await);
    let sibling = Arc::new(app.spawn_sibling().await);
    let item = app.insert_product("Limited drop", 5_000, 0.0, 1_000).await;
    create_coupon(
        &app,
        json!({"code": "TEN", "kind": "fixed_amount", "amountOff": 5.0,
                               "usageLimit": 10}),
    )
    .await;
    let token = app.user_token();

    let mut tasks = Vec::new();
    for n in 0..200 {
        let target = if n % 2 == 0 {
            app.clone()
        } else {
            sibling.clone()
        };
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let body = order_body(&[(item, 1)], json!({"couponCode": "TEN"}));
            let response = post_order(&target, &body, &token).await;
            (response.status().as_u16(), json(response).await)
        }));
    }
    let (mut created, mut refused) = (0, 0);
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            201 => {
                assert_eq!(body["discount"], 5.0, "{body}");
                assert_eq!(body["couponCode"], "TEN");
                created += 1;
            }
            422 => {
                assert_eq!(body["code"], "COUPON_USAGE_LIMIT", "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((created, refused), (10, 190));
    let (used, redemptions): (i32, i64) = sqlx::query_as(
        "SELECT used, (SELECT count(*) FROM coupon_redemptions) FROM coupons WHERE code = 'TEN'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((used, redemptions), (10, 10));
    // The refused orders gave their stock back.
    let stock: i32 = sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
        .bind(item)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stock, 990);

    // Cancelling one (by an admin, through the status route) frees one use.
    let order: String = sqlx::query_scalar("SELECT order_id FROM coupon_redemptions LIMIT 1")
        .fetch_one(&app.db)
        .await
        .unwrap();
    ok(
        sibling
            .put_json(
                &format!("/orders/{order}/status"),
                &json!({"status": "cancelled", "note": "fraud check"}),
                Some(&app.admin_token()),
            )
            .await,
        200,
    )
    .await;
    let body = order_body(&[(item, 1)], json!({"couponCode": "TEN"}));
    let next = ok(post_order(&app, &body, &token).await, 201).await;
    assert_eq!(next["discount"], 5.0);
    assert_error(
        post_order(&sibling, &body, &token).await,
        422,
        "COUPON_USAGE_LIMIT",
    )
    .await;
}

#[tokio::test]
async fn over_grpc_a_coupon_is_applied_and_an_order_redeems_it() {
    let app = spawn_app().await;
    let token = app.user_token();
    let item = app.insert_product("Headphones", 15_000, 10.0, 20).await;
    set_weight(&app, item, 0.4).await;
    fill_cart(&app, &[(item, 1)], &token).await;
    create_coupon(&app, json!({"code": "FREESHIP", "kind": "free_shipping"})).await;
    let mut client = OrdersServiceClient::new(app.grpc_channel().await);
    let address = ShippingAddress {
        first_name: "Jane".into(),
        last_name: "Roe".into(),
        address: "1 Elm St".into(),
        city: "Austin".into(),
        state: "TX".into(),
        zip_code: "73301".into(),
        country: "US".into(),
        phone: String::new(),
    };

    let applied = client
        .apply_coupon(authorized(
            pb::ApplyCouponRequest {
                code: "freeship".into(),
                shipping_address: Some(address.clone()),
                shipping_method: "express".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .cart
        .unwrap();
    // 135.00; a free-shipping coupon does not make express free; Texas 6.25 %.
    assert_eq!(applied.subtotal, 135.0);
    assert_eq!(applied.discount, 0.0);
    assert_eq!(applied.shipping, 19.99);
    assert_eq!(applied.tax, 8.44);
    assert_eq!(applied.coupon_code.as_deref(), Some("FREESHIP"));

    let order = client
        .create_order(authorized(
            pb::CreateOrderRequest {
                products: vec![pb::LineItem {
                    id: item,
                    quantity: 1,
                }],
                shipping_address: Some(address),
                payment_method: "card".into(),
                shipping_method: "standard".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(order.user_id, USER_ID);
    assert_eq!(order.coupon_code.as_deref(), Some("FREESHIP"));
    assert_eq!(order.shipping, 0.0);
    assert_eq!(order.tax_rate, Some(0.0625));
    assert_eq!(order.total, 143.44);

    let refused = client
        .apply_coupon(authorized(
            pb::ApplyCouponRequest {
                code: "NOSUCH".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    let anonymous = client
        .list_coupons(pb::ListCouponsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

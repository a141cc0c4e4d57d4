//! The phase 2 journey over REST: sign in -> wishlist -> review -> shipping rates -> apply a
//! coupon -> order -> pay -> ship -> deliver, and the mails the domain events bring (the
//! confirmation with the discount, the shipping notice with the tracking link, the delivery
//! notice), through the real edge, NATS JetStream and the loopback SMTP server.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{self, json};

async fn ok(response: reqwest::Response, status: u16) -> Value {
    let code = response.status().as_u16();
    let body = json(response).await;
    assert_eq!(code, status, "{body}");
    body
}

/// The amount in cents of a JSON money value.
fn cents(v: &Value) -> i64 {
    (v.as_f64().expect("a number") * 100.0).round() as i64
}

#[tokio::test]
async fn the_phase_two_journey_over_rest() {
    let (app, smtp) = common::smtp::app_with_mail().await;
    let admin = app.admin_token();
    let buyer = app.register("grace@example.com").await;
    let token = buyer.token.clone();
    let lamp = app.insert_product("Desk Lamp", 4_000, 0.0, 20).await;
    let chair = app.insert_product("Office Chair", 12_000, 0.0, 20).await;

    // Wishlist: added once, twice is still one entry.
    ok(
        app.post_json("/wishlist", &json!({"productId": chair}), Some(&token))
            .await,
        201,
    )
    .await;
    ok(
        app.post_json("/wishlist", &json!({"productId": chair}), Some(&token))
            .await,
        200,
    )
    .await;
    let wishlist = ok(app.get_as("/wishlist", &token).await, 200).await;
    assert_eq!(wishlist["total"], 1, "{wishlist}");

    // A review changes the product's rating and reviews.
    ok(
        app.post_json(
            &format!("/products/{lamp}/reviews"),
            &json!({"rating": 4, "comment": "Bright and steady."}),
            Some(&token),
        )
        .await,
        201,
    )
    .await;
    let product = ok(app.get(&format!("/products/{lamp}")).await, 200).await;
    assert_eq!(product["rating"], 4.0, "{product}");
    assert_eq!(product["reviews"][0]["comment"], "Bright and steady.");

    // Shipping rates for the cart's lines to Boston.
    let address = json!({"firstName": "Grace", "lastName": "Hopper", "address": "1 Main St",
        "city": "Boston", "state": "MA", "zipCode": "02101", "country": "US", "phone": "+15550100"});
    let lines = json!([{"id": lamp, "quantity": 1}, {"id": chair, "quantity": 1}]);
    let rates = ok(
        app.post_json(
            "/shipping/rates",
            &json!({"address": address, "items": [{"productId": lamp, "quantity": 1},
                                                   {"productId": chair, "quantity": 1}]}),
            None,
        )
        .await,
        200,
    )
    .await;
    assert!(
        rates["rates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["method"] == "express" || r["code"] == "express"),
        "{rates}"
    );

    // The cart, and a coupon applied to it.
    ok(
        app.post_json(
            "/carts/add",
            &json!({"userId": buyer.id, "products": lines}),
            Some(&token),
        )
        .await,
        201,
    )
    .await;
    ok(
        app.post_json(
            "/admin/coupons",
            &json!({"code": "JOURNEY10", "kind": "percentage", "percentOff": 10}),
            Some(&admin),
        )
        .await,
        201,
    )
    .await;
    let priced = ok(
        app.post_json(
            "/checkout/apply-coupon",
            &json!({"code": "journey10", "shippingAddress": address}),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(cents(&priced["discount"]), 1_600, "{priced}");

    // The order carries the coupon and the method.
    let order = ok(
        app.post_json(
            "/orders",
            &json!({"products": lines, "shippingAddress": address, "paymentMethod": "card",
                    "shippingMethod": "express"}),
            Some(&token),
        )
        .await,
        201,
    )
    .await;
    let order_id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(order["couponCode"], "JOURNEY10", "{order}");
    assert_eq!(cents(&order["discount"]), 1_600);
    assert_eq!(order["shippingMethod"], "express");

    // Pay, ship, deliver.
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
    ok(
        app.post_json(
            &format!(
                "/payments/intents/{}/confirm",
                intent["id"].as_str().unwrap()
            ),
            &json!({"paymentMethodId": "pm_card_visa"}),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
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

    // The mails the events brought: confirmation (with the discount), shipping notice (with the
    // tracking link), delivery notice; each once.
    let mails = smtp
        .wait_for("grace@example.com", 3, Duration::from_secs(30))
        .await;
    let about = |subject: &str| {
        mails
            .iter()
            .filter(|m| {
                m.data
                    .contains(&format!("Subject: Order {order_id} {subject}"))
            })
            .count()
    };
    assert_eq!(about("confirmed"), 1, "{mails:#?}");
    let confirmation = mails.iter().find(|m| m.data.contains("confirmed")).unwrap();
    assert!(
        confirmation.data.contains("Discount (JOURNEY10): -$16.00"),
        "{}",
        confirmation.data
    );
    assert_eq!(about("has shipped"), 1, "{mails:#?}");
    assert_eq!(about("was delivered"), 1, "{mails:#?}");
    let shipped = mails
        .iter()
        .find(|m| m.data.contains("has shipped"))
        .unwrap();
    assert!(
        shipped.data.contains("1Z999AA10123456784"),
        "{}",
        shipped.data
    );

    // The delivered order makes the buyer's review a verified purchase.
    let started = std::time::Instant::now();
    loop {
        let product = ok(app.get(&format!("/products/{lamp}")).await, 200).await;
        if product["reviews"][0]["verifiedPurchase"] == true {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the review became verified: {product}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

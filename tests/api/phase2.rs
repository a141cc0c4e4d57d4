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

    // A webhook endpoint for every event, registered by the admin.
    let receiver = crate::webhooks::start_receiver(0, Duration::ZERO).await;
    ok(
        app.post_json(
            "/admin/webhooks",
            &json!({"url": receiver.url, "events": ["*"], "secret": crate::webhooks::SECRET}),
            Some(&admin),
        )
        .await,
        201,
    )
    .await;

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

    // The in-app notifications of the order, newest first.
    let notes = ok(app.get_as("/notifications", &token).await, 200).await;
    assert!(notes["total"].as_i64().unwrap() >= 4, "{notes}");
    assert_eq!(notes["unreadCount"], notes["total"]);

    // The receiver got each of the order's events once, validly signed.
    delivered_once(
        &receiver,
        &order_id,
        &[
            "order.placed",
            "order.paid",
            "order.shipped",
            "order.delivered",
        ],
    )
    .await;

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

/// Waits until `receiver` got each of `kinds` for `order_id`, then checks (after a moment for
/// stragglers) that it got each exactly once, and that every delivery was validly signed.
async fn delivered_once(receiver: &crate::webhooks::Receiver, order_id: &str, kinds: &[&str]) {
    let of_kind = |bodies: &[Value], kind: &str| -> Vec<String> {
        bodies
            .iter()
            .filter(|b| b["type"] == kind && b["data"]["orderId"] == order_id)
            .map(|b| b["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let started = std::time::Instant::now();
    loop {
        let bodies = receiver.bodies.lock().unwrap().clone();
        if kinds.iter().all(|k| !of_kind(&bodies, k).is_empty()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "webhooks delivered: {bodies:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bodies = receiver.bodies.lock().unwrap().clone();
    for kind in kinds {
        let ids = of_kind(&bodies, kind);
        assert_eq!(ids.len(), 1, "{kind} delivered once");
        assert_eq!(receiver.hits(&ids[0]), 1);
    }
    assert_eq!(
        receiver.bad.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "every delivery was validly signed"
    );
}

#[tokio::test]
async fn the_phase_two_journey_over_grpc() {
    use crate::common::authorized;
    use ecom::proto::ecom::catalog::v1 as catalog_pb;
    use ecom::proto::ecom::catalog::v1::catalog_service_client::CatalogServiceClient;
    use ecom::proto::ecom::common::v1::ShippingAddress;
    use ecom::proto::ecom::orders::v1 as orders_pb;
    use ecom::proto::ecom::orders::v1::orders_service_client::OrdersServiceClient;
    use ecom::proto::ecom::payments::v1 as payments_pb;
    use ecom::proto::ecom::payments::v1::payments_service_client::PaymentsServiceClient;
    use ecom::proto::ecom::users::v1 as users_pb;
    use ecom::proto::ecom::users::v1::users_service_client::UsersServiceClient;

    let (app, smtp) = common::smtp::app_with_mail().await;
    let admin = app.admin_token();
    let buyer = app.register("ada@example.com").await;
    let token = buyer.token.clone();
    let lamp = app.insert_product("Desk Lamp", 4_000, 0.0, 20).await;
    let chair = app.insert_product("Office Chair", 12_000, 0.0, 20).await;
    let channel = app.grpc_channel().await;
    let mut catalog = CatalogServiceClient::new(channel.clone());
    let mut orders = OrdersServiceClient::new(channel.clone());
    let mut payments = PaymentsServiceClient::new(channel.clone());
    let mut users = UsersServiceClient::new(channel);

    // A webhook endpoint for every event, registered by the admin over gRPC.
    let receiver = crate::webhooks::start_receiver(0, Duration::ZERO).await;
    users
        .create_webhook(authorized(
            users_pb::CreateWebhookRequest {
                url: receiver.url.clone(),
                events: vec!["*".into()],
                secret: Some(crate::webhooks::SECRET.into()),
                description: None,
            },
            &admin,
        ))
        .await
        .unwrap();

    catalog
        .add_to_wishlist(authorized(
            catalog_pb::AddToWishlistRequest { product_id: chair },
            &token,
        ))
        .await
        .unwrap();
    catalog
        .create_review(authorized(
            catalog_pb::CreateReviewRequest {
                product_id: lamp,
                rating: 5,
                comment: "Exactly the light I wanted.".into(),
            },
            &token,
        ))
        .await
        .unwrap();
    // The same rule as over REST: one review per user and product.
    let again = catalog
        .create_review(authorized(
            catalog_pb::CreateReviewRequest {
                product_id: lamp,
                rating: 1,
                comment: "Second thoughts.".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::AlreadyExists, "{again:?}");

    let address = ShippingAddress {
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        address: "1 Main St".into(),
        city: "Boston".into(),
        state: "MA".into(),
        zip_code: "02101".into(),
        country: "US".into(),
        phone: String::new(),
    };
    let rates = orders
        .get_shipping_rates(orders_pb::GetShippingRatesRequest {
            address: Some(address.clone()),
            items: vec![orders_pb::ShippingItem {
                product_id: lamp,
                quantity: 1,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(rates.rates.iter().any(|r| r.method == "standard"));

    let lines = vec![
        orders_pb::LineItem {
            id: lamp,
            quantity: 1,
        },
        orders_pb::LineItem {
            id: chair,
            quantity: 1,
        },
    ];
    orders
        .replace_cart(authorized(
            orders_pb::ReplaceCartRequest {
                products: lines.clone(),
            },
            &token,
        ))
        .await
        .unwrap();
    orders
        .create_coupon(authorized(
            orders_pb::CreateCouponRequest {
                coupon: Some(orders_pb::CouponInput {
                    code: "GRPC20".into(),
                    kind: orders_pb::CouponKind::FixedAmount as i32,
                    amount_off: Some(20.0),
                    ..Default::default()
                }),
            },
            &admin,
        ))
        .await
        .unwrap();
    let priced = orders
        .apply_coupon(authorized(
            orders_pb::ApplyCouponRequest {
                code: "grpc20".into(),
                shipping_address: Some(address.clone()),
                shipping_method: String::new(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .cart
        .unwrap();
    assert_eq!(priced.discount, 20.0);

    let order = orders
        .create_order(authorized(
            orders_pb::CreateOrderRequest {
                products: lines,
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
    assert_eq!(order.coupon_code.as_deref(), Some("GRPC20"));
    assert_eq!(order.discount, 20.0);

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
                id: intent.id,
                payment_method_id: "pm_card_visa".into(),
            },
            &token,
        ))
        .await
        .unwrap();
    orders
        .update_order_status(authorized(
            orders_pb::UpdateOrderStatusRequest {
                id: order.id.clone(),
                status: orders_pb::OrderStatus::Shipped as i32,
                tracking_number: Some("9400111899223".into()),
                carrier: Some("USPS".into()),
                note: None,
            },
            &admin,
        ))
        .await
        .unwrap();

    let mails = smtp
        .wait_for("ada@example.com", 2, Duration::from_secs(30))
        .await;
    assert!(
        mails.iter().any(|m| m
            .data
            .contains(&format!("Subject: Order {} confirmed", order.id))),
        "{mails:#?}"
    );
    assert!(
        mails.iter().any(|m| m.data.contains("9400111899223")),
        "{mails:#?}"
    );

    // The buyer's notifications over gRPC: placed, paid and shipped, all unread (their
    // consumer runs beside the mails', so they may come a moment later).
    let started = std::time::Instant::now();
    loop {
        let notes = users
            .list_notifications(authorized(
                users_pb::ListNotificationsRequest {
                    skip: 0,
                    limit: 20,
                    unread: false,
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        if notes.total >= 3 {
            assert_eq!(notes.unread_count, notes.total, "{notes:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "notifications: {notes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    delivered_once(
        &receiver,
        &order.id,
        &["order.placed", "order.paid", "order.shipped"],
    )
    .await;
}

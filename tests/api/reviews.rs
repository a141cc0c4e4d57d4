//! Product reviews (issue 14): POST /products/{id}/reviews, PUT and DELETE /reviews/{id}.
//! A product's rating is the mean of its reviews and its `reviews` array shows them, on every
//! instance right after each change; `verifiedPurchase` comes from delivered orders the
//! catalog heard of through the `catalog.purchases` consumer.

use crate::common::{TestApp, assert_error, authorized, json, spawn_app};
use ecom::events::{Consumer as _, Event, EventData, OrderEvent, OrderLine};
use ecom::proto::ecom::catalog::v1 as pb;
use ecom::proto::ecom::catalog::v1::catalog_service_client::CatalogServiceClient;
use serde_json::{Value, json};
use tonic::Code;

async fn review(app: &TestApp, token: &str, product: i64, body: Value) -> reqwest::Response {
    app.post_json(&format!("/products/{product}/reviews"), &body, Some(token))
        .await
}

/// Creates a review expecting 201; returns it.
async fn reviewed(app: &TestApp, token: &str, product: i64, rating: i32, comment: &str) -> Value {
    let response = review(
        app,
        token,
        product,
        json!({ "rating": rating, "comment": comment }),
    )
    .await;
    assert_eq!(response.status().as_u16(), 201);
    json(response).await
}

async fn product(app: &TestApp, id: i64) -> Value {
    let response = app.get(&format!("/products/{id}")).await;
    assert_eq!(response.status().as_u16(), 200);
    json(response).await
}

/// What `app` answers at `path` once `fresh` holds of it, or after 2 s whatever it is (a
/// write reaches the other instance's first cache tier by an asynchronous announcement; see
/// instances.rs).
async fn once_announced(app: &TestApp, path: &str, fresh: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let response = app.get(path).await;
        assert_eq!(response.status().as_u16(), 200);
        let value = json(response).await;
        if fresh(&value) || std::time::Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn details<'a>(body: &'a Value, field: &str) -> &'a Vec<Value> {
    body["details"][field]
        .as_array()
        .unwrap_or_else(|| panic!("no details for {field}: {body}"))
}

#[tokio::test]
async fn the_rating_is_the_mean_of_the_reviews_after_create_edit_and_delete() {
    let app = spawn_app().await;
    let id = app.insert_product("Reviewed Thing", 1999, 0.0, 5).await;
    let jane = app.register("jane@ecom.test").await;
    // Cached before the reviews: every change below must refresh it.
    assert_eq!(product(&app, id).await["rating"], 0.0);

    let first = reviewed(&app, &jane.token, id, 4, "  Solid and well made  ").await;
    assert_eq!(first["rating"], 4);
    assert_eq!(first["comment"], "Solid and well made");
    assert_eq!(first["reviewerName"], "Jane Smith", "from the account");
    assert_eq!(first["reviewerEmail"], "jane@ecom.test");
    assert_eq!(first["verifiedPurchase"], false);
    assert_eq!(first["productId"], id);
    assert_eq!(
        first["date"],
        app.clock.now().format("%Y-%m-%d").to_string()
    );
    let shown = product(&app, id).await;
    assert_eq!(shown["rating"], 4.0);
    assert_eq!(shown["reviews"].as_array().unwrap().len(), 1);
    assert_eq!(shown["reviews"][0], first);

    // Three reviews, mean 7/3: two decimals.
    reviewed(&app, &app.other_user_token(), id, 1, "Broke at once").await;
    let third = app.register("sam@ecom.test").await;
    let third_review = reviewed(&app, &third.token, id, 2, "Meh").await;
    assert_eq!(product(&app, id).await["rating"], 2.33);

    // Edit: 4 -> 5, mean 8/3.
    let edited = app
        .put_json(
            &format!("/reviews/{}", first["id"]),
            &json!({ "rating": 5 }),
            Some(&jane.token),
        )
        .await;
    assert_eq!(edited.status().as_u16(), 200);
    let edited = json(edited).await;
    assert_eq!(edited["rating"], 5);
    assert_eq!(edited["comment"], "Solid and well made", "unchanged");
    let shown = product(&app, id).await;
    assert_eq!(shown["rating"], 2.67);
    assert_eq!(shown["reviews"][0]["rating"], 5);

    // Delete: mean of 5 and 1.
    let deleted = app
        .delete(
            &format!("/reviews/{}", third_review["id"]),
            Some(&third.token),
        )
        .await;
    assert_eq!(deleted.status().as_u16(), 200);
    assert_eq!(json(deleted).await["id"], third_review["id"]);
    let shown = product(&app, id).await;
    assert_eq!(shown["rating"], 3.0);
    assert_eq!(shown["reviews"].as_array().unwrap().len(), 2);

    // The listing pages show the new rating too.
    let page = json(app.get("/products?limit=100").await).await;
    let listed = page["products"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(listed["rating"], 3.0);
}

#[tokio::test]
async fn a_review_without_an_account_row_uses_the_token_email() {
    let app = spawn_app().await;
    let id = app.insert_product("Reviewed Thing", 1999, 0.0, 5).await;
    let body = reviewed(&app, &app.user_token(), id, 3, "Fine").await;
    assert_eq!(body["reviewerEmail"], "user@ecom.test");
    assert_eq!(body["reviewerName"], "user");
}

#[tokio::test]
async fn bad_ratings_and_comments_are_validation_errors() {
    let app = spawn_app().await;
    let id = app.insert_product("Reviewed Thing", 1999, 0.0, 5).await;
    let user = app.user_token();
    for rating in [json!(0), json!(6), json!(-1)] {
        let body = assert_error(
            review(
                &app,
                &user,
                id,
                json!({ "rating": rating, "comment": "Ok" }),
            )
            .await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        assert!(!details(&body, "rating").is_empty(), "{body}");
    }
    for rating in [json!(2.5), json!("five")] {
        assert_error(
            review(
                &app,
                &user,
                id,
                json!({ "rating": rating, "comment": "Ok" }),
            )
            .await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
    }
    for comment in ["", "   ", &"x".repeat(2001), "nul \u{0} inside"] {
        let body = assert_error(
            review(&app, &user, id, json!({ "rating": 3, "comment": comment })).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        assert!(!details(&body, "comment").is_empty(), "{body}");
    }
    // Missing fields.
    let body = assert_error(
        review(&app, &user, id, json!({})).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(!details(&body, "rating").is_empty(), "{body}");
    assert!(!details(&body, "comment").is_empty(), "{body}");
    // Nothing was stored; the longest comment is accepted.
    assert_eq!(product(&app, id).await["reviews"], json!([]));
    reviewed(&app, &user, id, 5, &"é".repeat(2000)).await;

    let mine = product(&app, id).await["reviews"][0]["id"].clone();
    for body in [json!({}), json!({ "rating": 6 }), json!({ "comment": "" })] {
        assert_error(
            app.put_json(&format!("/reviews/{mine}"), &body, Some(&user))
                .await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
    }
}

#[tokio::test]
async fn reviews_need_a_user_and_a_live_product() {
    let app = spawn_app().await;
    let id = app.insert_product("Reviewed Thing", 1999, 0.0, 5).await;
    let ok = json!({ "rating": 3, "comment": "Fine" });
    assert_error(
        app.post_json(&format!("/products/{id}/reviews"), &ok, None)
            .await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_error(
        app.put_json("/reviews/1", &ok, None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_error(app.delete("/reviews/1", None).await, 401, "UNAUTHORIZED").await;

    let user = app.user_token();
    assert_error(
        review(&app, &user, 999_999, ok.clone()).await,
        404,
        "PRODUCT_NOT_FOUND",
    )
    .await;
    app.delete(&format!("/products/{id}"), Some(&app.admin_token()))
        .await;
    assert_error(
        review(&app, &user, id, ok.clone()).await,
        404,
        "PRODUCT_NOT_FOUND",
    )
    .await;
    assert_error(
        app.put_json("/reviews/999999", &ok, Some(&user)).await,
        404,
        "REVIEW_NOT_FOUND",
    )
    .await;
    assert_error(
        app.delete("/reviews/999999", Some(&user)).await,
        404,
        "REVIEW_NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn one_review_per_user_per_product_even_when_racing() {
    let app = spawn_app().await;
    let id = app.insert_product("Reviewed Thing", 1999, 0.0, 5).await;
    let user = app.user_token();
    reviewed(&app, &user, id, 4, "First").await;
    assert_error(
        review(&app, &user, id, json!({ "rating": 2, "comment": "Again" })).await,
        409,
        "REVIEW_EXISTS",
    )
    .await;
    // Another user, and the same user on another product, are fine.
    reviewed(&app, &app.other_user_token(), id, 2, "Mine").await;
    let other_product = app.insert_product("Other Thing", 1999, 0.0, 5).await;

    // Eight concurrent first reviews by one user: exactly one is stored.
    let statuses = futures::future::join_all((0..8).map(|i| {
        let (app, user) = (&app, &user);
        async move {
            review(
                app,
                user,
                other_product,
                json!({ "rating": 1 + i % 5, "comment": format!("Take {i}") }),
            )
            .await
            .status()
            .as_u16()
        }
    }))
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
    let shown = product(&app, other_product).await;
    assert_eq!(shown["reviews"].as_array().unwrap().len(), 1);
    assert_eq!(
        shown["rating"].as_f64().unwrap(),
        shown["reviews"][0]["rating"].as_f64().unwrap()
    );
}

#[tokio::test]
async fn concurrent_reviews_of_one_product_all_count_in_the_rating() {
    let app = spawn_app().await;
    let id = app.insert_product("Reviewed Thing", 1999, 0.0, 5).await;
    let mut tokens = Vec::new();
    for i in 0..6 {
        tokens.push(app.register(&format!("r{i}@ecom.test")).await.token);
    }
    // Ratings 1..=5 then 5: mean 20/6 = 3.33.
    let statuses = futures::future::join_all(tokens.iter().enumerate().map(|(i, t)| {
        let app = &app;
        async move {
            let rating = (i as i32 + 1).min(5);
            review(app, t, id, json!({ "rating": rating, "comment": "Racing" }))
                .await
                .status()
                .as_u16()
        }
    }))
    .await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    assert_eq!(product(&app, id).await["rating"], 3.33);
}

#[tokio::test]
async fn only_the_author_edits_and_the_author_or_an_admin_deletes() {
    let app = spawn_app().await;
    let id = app.insert_product("Reviewed Thing", 1999, 0.0, 5).await;
    let (user, other, admin) = (app.user_token(), app.other_user_token(), app.admin_token());
    let mine = reviewed(&app, &user, id, 4, "Mine").await;
    let path = format!("/reviews/{}", mine["id"]);

    assert_error(
        app.put_json(&path, &json!({ "rating": 1 }), Some(&other))
            .await,
        404,
        "REVIEW_NOT_FOUND",
    )
    .await;
    assert_error(
        app.delete(&path, Some(&other)).await,
        404,
        "REVIEW_NOT_FOUND",
    )
    .await;
    // An admin moderates by deleting, not by rewriting someone's words.
    assert_error(
        app.put_json(&path, &json!({ "rating": 1 }), Some(&admin))
            .await,
        404,
        "REVIEW_NOT_FOUND",
    )
    .await;
    assert_eq!(product(&app, id).await["reviews"][0]["rating"], 4);

    let deleted = app.delete(&path, Some(&admin)).await;
    assert_eq!(deleted.status().as_u16(), 200);
    let shown = product(&app, id).await;
    assert_eq!(shown["reviews"], json!([]));
    assert_eq!(shown["rating"], 0.0);
    assert_error(
        app.delete(&path, Some(&user)).await,
        404,
        "REVIEW_NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn seeded_reviews_count_in_the_mean_and_only_an_admin_deletes_them() {
    let app = spawn_app().await;
    app.seed_catalog(1).await;
    let seeded = product(&app, 1).await;
    let reviews = seeded["reviews"].as_array().unwrap().clone();
    assert!(!reviews.is_empty(), "the demo product has reviews");
    let user = app.user_token();
    assert_error(
        app.delete(&format!("/reviews/{}", reviews[0]["id"]), Some(&user))
            .await,
        404,
        "REVIEW_NOT_FOUND",
    )
    .await;

    reviewed(&app, &user, 1, 1, "Not for me").await;
    let mut stars: Vec<f64> = reviews
        .iter()
        .map(|r| r["rating"].as_f64().unwrap())
        .collect();
    stars.push(1.0);
    let mean = (stars.iter().sum::<f64>() / stars.len() as f64 * 100.0).round() / 100.0;
    assert_eq!(product(&app, 1).await["rating"].as_f64().unwrap(), mean);

    let deleted = app
        .delete(
            &format!("/reviews/{}", reviews[0]["id"]),
            Some(&app.admin_token()),
        )
        .await;
    assert_eq!(deleted.status().as_u16(), 200);
    assert_eq!(
        product(&app, 1).await["reviews"].as_array().unwrap().len(),
        reviews.len()
    );
}

#[tokio::test]
async fn creating_a_review_records_review_created() {
    let app = spawn_app().await;
    let id = app.insert_product("Reviewed Thing", 1999, 0.0, 5).await;
    let body = reviewed(&app, &app.user_token(), id, 5, "Great").await;
    let (kind, data): (String, Value) =
        sqlx::query_as("SELECT kind, data FROM event_outbox WHERE kind = 'review.created'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(kind, "review.created");
    assert_eq!(
        data,
        json!({ "reviewId": body["id"], "productId": id, "userId": 2, "rating": 5 })
    );
    // A refused review records nothing.
    review(
        &app,
        &app.user_token(),
        id,
        json!({ "rating": 5, "comment": "Again" }),
    )
    .await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM event_outbox")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

fn delivered(user_id: i64, products: &[i64]) -> Event {
    Event {
        id: uuid::Uuid::new_v4(),
        occurred_at: chrono::Utc::now(),
        data: EventData::OrderDelivered(OrderEvent {
            order_id: "ord_test".into(),
            user_id,
            status: "delivered".into(),
            items: products
                .iter()
                .map(|&product_id| OrderLine {
                    product_id,
                    title: "Reviewed Thing".into(),
                    quantity: 1,
                    price_cents: 1999,
                })
                .collect(),
            subtotal_cents: 1999,
            discount_cents: 0,
            shipping_cents: 0,
            tax_cents: 0,
            total_cents: 1999,
            coupon_code: None,
            tracking: None,
            reason: None,
        }),
    }
}

/// The `catalog.purchases` consumer, called the way the runner calls it (in a transaction).
async fn deliver(app: &TestApp, event: &Event) {
    let consumer = ecom::catalog::PurchasesConsumer::default();
    assert_eq!(consumer.name(), "catalog.purchases");
    assert!(consumer.wants(event.kind()));
    let mut tx = app.db.begin().await.unwrap();
    consumer.handle(&mut tx, event).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_review_after_a_delivered_order_is_a_verified_purchase() {
    let app = spawn_app().await;
    let bought = app.insert_product("Bought Thing", 1999, 0.0, 5).await;
    let before = app.insert_product("Reviewed Early", 1999, 0.0, 5).await;
    let early = reviewed(&app, &app.user_token(), before, 3, "Waiting for it").await;
    assert_eq!(early["verifiedPurchase"], false);

    let event = delivered(2, &[bought, before, bought]);
    deliver(&app, &event).await;
    // A redelivery has no second effect (and does not fail).
    deliver(&app, &event).await;
    assert!(
        !ecom::catalog::PurchasesConsumer::default().wants(ecom::events::EventKind::OrderPlaced)
    );

    let verified = reviewed(&app, &app.user_token(), bought, 5, "Arrived, great").await;
    assert_eq!(verified["verifiedPurchase"], true);
    assert_eq!(
        product(&app, bought).await["reviews"][0]["verifiedPurchase"],
        true
    );
    // Another user did not buy it.
    let other = reviewed(&app, &app.other_user_token(), bought, 4, "Saw it").await;
    assert_eq!(other["verifiedPurchase"], false);
    // The review written before the delivery is verified now.
    let edited = app
        .put_json(
            &format!("/reviews/{}", early["id"]),
            &json!({ "comment": "Arrived" }),
            Some(&app.user_token()),
        )
        .await;
    assert_eq!(json(edited).await["verifiedPurchase"], true);
}

#[tokio::test]
async fn every_review_change_reaches_the_other_instance() {
    let a = spawn_app().await;
    let b = a.spawn_sibling().await;
    let id = a.insert_product("Reviewed Thing", 1999, 0.0, 5).await;
    let path = format!("/products/{id}");
    let list = "/products?limit=100";
    let rating_in = |page: &Value| {
        page["products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .and_then(|p| p["rating"].as_f64())
    };
    // B caches the product and the page (first tier and Redis).
    assert_eq!(product(&b, id).await["rating"], 0.0);
    assert_eq!(rating_in(&json(b.get(list).await).await), Some(0.0));

    let user = a.user_token();
    let created = reviewed(&a, &user, id, 4, "Good").await;
    let fresh = once_announced(&b, &path, |p| p["rating"] == 4.0).await;
    assert_eq!(fresh["rating"], 4.0);
    assert_eq!(fresh["reviews"][0]["id"], created["id"]);
    let page = once_announced(&b, list, |p| rating_in(p) == Some(4.0)).await;
    assert_eq!(rating_in(&page), Some(4.0));

    // Each write also deletes its keys again 500 ms later (CatalogApp::invalidate); waiting
    // that out makes each step below show its own write's invalidation, not the previous one's.
    // Then B reads again, so its caches hold the state before the next write.
    let settle = || async {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        product(&b, id).await;
        json(b.get(list).await).await;
    };
    settle().await;
    let review_path = format!("/reviews/{}", created["id"]);
    let edited = a
        .put_json(&review_path, &json!({ "rating": 2 }), Some(&user))
        .await;
    assert_eq!(edited.status().as_u16(), 200);
    let fresh = once_announced(&b, &path, |p| p["rating"] == 2.0).await;
    assert_eq!(fresh["reviews"][0]["rating"], 2);

    settle().await;
    assert_eq!(
        a.delete(&review_path, Some(&user)).await.status().as_u16(),
        200
    );
    let fresh = once_announced(&b, &path, |p| p["reviews"] == json!([])).await;
    assert_eq!(fresh["reviews"], json!([]));
    assert_eq!(fresh["rating"], 0.0);
    let page = once_announced(&b, list, |p| rating_in(p) == Some(0.0)).await;
    assert_eq!(rating_in(&page), Some(0.0));
}

#[tokio::test]
async fn reviews_over_grpc() {
    let app = spawn_app().await;
    let id = app.insert_product("Reviewed Thing", 1999, 0.0, 5).await;
    let mut client = CatalogServiceClient::new(app.grpc_channel().await);
    let create = pb::CreateReviewRequest {
        product_id: id,
        rating: 5,
        comment: "Over gRPC".into(),
    };
    let denied = client.create_review(create.clone()).await.unwrap_err();
    assert_eq!(denied.code(), Code::Unauthenticated);

    let token = app.user_token();
    let bad = client
        .create_review(authorized(
            pb::CreateReviewRequest {
                rating: 0,
                ..create.clone()
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    let created = client
        .create_review(authorized(create.clone(), &token))
        .await
        .unwrap()
        .into_inner()
        .review
        .unwrap();
    assert_eq!(created.rating, 5);
    assert_eq!(created.product_id, id);
    let again = client
        .create_review(authorized(create, &token))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);

    let updated = client
        .update_review(authorized(
            pb::UpdateReviewRequest {
                id: created.id,
                rating: Some(3),
                comment: None,
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .review
        .unwrap();
    assert_eq!(updated.rating, 3);
    let other = client
        .delete_review(authorized(
            pb::DeleteReviewRequest { id: created.id },
            &app.other_user_token(),
        ))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::NotFound);
    client
        .delete_review(authorized(
            pb::DeleteReviewRequest { id: created.id },
            &token,
        ))
        .await
        .unwrap();
    assert_eq!(product(&app, id).await["rating"], 0.0);
}

#[tokio::test]
async fn a_review_turned_verified_leaves_the_product_caches_of_every_instance() {
    let a = spawn_app().await;
    let b = a.spawn_sibling().await;
    let id = a.insert_product("Bought Thing", 1999, 0.0, 5).await;
    let early = reviewed(&a, &a.user_token(), id, 4, "Ordered it").await;
    assert_eq!(early["verifiedPurchase"], false);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    // Both instances cache the product with the unverified review.
    for app in [&a, &b] {
        assert_eq!(
            product(app, id).await["reviews"][0]["verifiedPurchase"],
            false
        );
    }

    // The consumer as the runner builds it: on the deployment's shared cache.
    let kv = ecom::kv::Kv::redis(
        &crate::common::redis_url().into(),
        ecom::config::RedisMode::Standalone,
        None,
        &a.redis_prefix,
    )
    .unwrap();
    let consumer = ecom::catalog::PurchasesConsumer::new(
        // With a first tier, as the runtime's: only such a cache announces its writes.
        ecom::cache::Cache::with_local_tier(kv, 1 << 20),
    );
    let mut tx = a.db.begin().await.unwrap();
    consumer
        .handle(&mut tx, &delivered(2, &[id]))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let path = format!("/products/{id}");
    for app in [&a, &b] {
        let verified = |p: &Value| p["reviews"][0]["verifiedPurchase"] == true;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
        let mut shown = product(app, id).await;
        while !verified(&shown) && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            shown = once_announced(app, &path, verified).await;
        }
        assert_eq!(
            shown["reviews"][0]["verifiedPurchase"], true,
            "on {}",
            app.origin
        );
    }
}

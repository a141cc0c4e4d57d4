//! The wishlist (issue 14): GET/POST /wishlist and DELETE /wishlist/{id}, the signed-in
//! caller's own list, served by the catalog with each product's summary.

use crate::common::{TestApp, assert_error, authorized, json, spawn_app};
use ecom::proto::ecom::catalog::v1 as pb;
use ecom::proto::ecom::catalog::v1::catalog_service_client::CatalogServiceClient;
use serde_json::{Value, json};
use tonic::Code;

async fn add(app: &TestApp, token: &str, product: i64) -> reqwest::Response {
    app.post_json("/wishlist", &json!({ "productId": product }), Some(token))
        .await
}

async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app.get_as(&format!("/wishlist{query}"), token).await;
    assert_eq!(response.status().as_u16(), 200);
    json(response).await
}

#[tokio::test]
async fn the_wishlist_needs_a_signed_in_user() {
    let app = spawn_app().await;
    let product = app.insert_product("Kept Thing", 1999, 0.0, 5).await;
    assert_error(app.get("/wishlist").await, 401, "UNAUTHORIZED").await;
    assert_error(
        app.post_json("/wishlist", &json!({ "productId": product }), None)
            .await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_error(
        app.delete(&format!("/wishlist/{product}"), None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
}

#[tokio::test]
async fn adding_answers_201_then_200_with_one_entry_and_the_product() {
    let app = spawn_app().await;
    let user = app.user_token();
    let product = app.insert_product("Kept Thing", 1999, 10.0, 5).await;

    let first = add(&app, &user, product).await;
    assert_eq!(first.status().as_u16(), 201);
    let entry = json(first).await;
    assert_eq!(entry["id"], product, "the entry's id is its product's id");
    assert_eq!(entry["productId"], product);
    assert!(entry["addedAt"].is_string(), "{entry}");
    let p = &entry["product"];
    assert_eq!(p["id"], product);
    assert_eq!(p["title"], "Kept Thing");
    assert_eq!(p["price"], 19.99);
    assert_eq!(p["discountPercentage"], 10.0);
    assert_eq!(p["stock"], 5);
    assert_eq!(p["thumbnail"], "https://cdn.example.com/t.jpg");
    assert!(p["availabilityStatus"].is_string(), "{entry}");

    app.clock.advance(chrono::Duration::seconds(5));
    let again = add(&app, &user, product).await;
    assert_eq!(again.status().as_u16(), 200, "adding twice is not an error");
    assert_eq!(json(again).await, entry, "the same single entry");

    let page = list(&app, &user, "").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0], entry);
}

#[tokio::test]
async fn the_list_is_newest_first_paginated_and_bounded() {
    let app = spawn_app().await;
    let user = app.user_token();
    let mut ids = Vec::new();
    for i in 0..4 {
        let id = app.insert_product(&format!("Thing {i}"), 100, 0.0, 1).await;
        assert_eq!(add(&app, &user, id).await.status().as_u16(), 201);
        app.clock.advance(chrono::Duration::seconds(1));
        ids.push(id);
    }
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();

    let page = list(&app, &user, "").await;
    let got: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, newest_first);
    assert_eq!(page["limit"], 30);

    let second = list(&app, &user, "?skip=1&limit=2").await;
    let got: Vec<i64> = second["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, newest_first[1..3]);
    assert_eq!(second["total"], 4);
    assert_eq!(second["skip"], 1);
    assert_eq!(second["limit"], 2);

    assert_eq!(list(&app, &user, "?limit=100000").await["limit"], 100);
    assert_error(
        app.get_as("/wishlist?limit=-1", &user).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_error(
        app.get_as("/wishlist?skip=-1", &user).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
}

#[tokio::test]
async fn each_user_sees_and_removes_only_their_own_entries() {
    let app = spawn_app().await;
    let (user, other) = (app.user_token(), app.other_user_token());
    let product = app.insert_product("Kept Thing", 1999, 0.0, 5).await;
    assert_eq!(add(&app, &user, product).await.status().as_u16(), 201);

    assert_eq!(list(&app, &other, "").await["total"], 0);
    assert_error(
        app.delete(&format!("/wishlist/{product}"), Some(&other))
            .await,
        404,
        "WISHLIST_ITEM_NOT_FOUND",
    )
    .await;

    let removed = app
        .delete(&format!("/wishlist/{product}"), Some(&user))
        .await;
    assert_eq!(removed.status().as_u16(), 200);
    assert_eq!(json(removed).await["id"], product);
    assert_eq!(list(&app, &user, "").await["total"], 0);
    assert_error(
        app.delete(&format!("/wishlist/{product}"), Some(&user))
            .await,
        404,
        "WISHLIST_ITEM_NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn unknown_and_deleted_products_are_not_found_and_drop_out() {
    let app = spawn_app().await;
    let user = app.user_token();
    assert_error(add(&app, &user, 999_999).await, 404, "PRODUCT_NOT_FOUND").await;

    let kept = app.insert_product("Kept Thing", 1999, 0.0, 5).await;
    let gone = app.insert_product("Gone Thing", 1999, 0.0, 5).await;
    assert_eq!(add(&app, &user, kept).await.status().as_u16(), 201);
    assert_eq!(add(&app, &user, gone).await.status().as_u16(), 201);
    let deleted = app
        .delete(&format!("/products/{gone}"), Some(&app.admin_token()))
        .await;
    assert_eq!(deleted.status().as_u16(), 200);

    let page = list(&app, &user, "").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], kept);
    assert_error(add(&app, &user, gone).await, 404, "PRODUCT_NOT_FOUND").await;
    assert_error(
        app.delete(&format!("/wishlist/{gone}"), Some(&user)).await,
        404,
        "WISHLIST_ITEM_NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn a_full_wishlist_refuses_a_new_product_but_not_a_repeat() {
    let app = spawn_app().await;
    let user = app.user_token();
    let first = app.insert_product("Kept Thing", 1999, 0.0, 5).await;
    assert_eq!(add(&app, &user, first).await.status().as_u16(), 201);
    // 499 more entries behind the service's back, on products made for them.
    sqlx::query(
        r#"WITH made AS (
             INSERT INTO products (title, description, price_cents, category_id, thumbnail)
             SELECT 'Filler ' || n, 'A product made by a test.', 100,
                    (SELECT id FROM categories WHERE slug = 'smartphones'), 'https://cdn.example.com/t.jpg'
             FROM generate_series(1, 499) AS n
             RETURNING id)
           INSERT INTO wishlist_items (user_id, product_id, added_at)
           SELECT 2, id, now() - interval '1 day' FROM made"#,
    )
    .execute(&app.db)
    .await
    .unwrap();
    let one_more = app.insert_product("One Too Many", 1999, 0.0, 5).await;

    let body = assert_error(add(&app, &user, one_more).await, 422, "WISHLIST_FULL").await;
    assert_eq!(body["details"]["maxItems"], 500);
    assert_eq!(add(&app, &user, first).await.status().as_u16(), 200);
    assert_eq!(list(&app, &user, "?limit=1").await["total"], 500);
    // Another user's list is not affected.
    assert_eq!(
        add(&app, &app.other_user_token(), one_more)
            .await
            .status()
            .as_u16(),
        201
    );
}

#[tokio::test]
async fn the_wishlist_over_grpc() {
    let app = spawn_app().await;
    let product = app.insert_product("Kept Thing", 1999, 0.0, 5).await;
    let mut client = CatalogServiceClient::new(app.grpc_channel().await);

    let denied = client
        .add_to_wishlist(pb::AddToWishlistRequest {
            product_id: product,
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::Unauthenticated);

    let token = app.user_token();
    let item = client
        .add_to_wishlist(authorized(
            pb::AddToWishlistRequest {
                product_id: product,
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    assert_eq!(item.id, product);
    assert_eq!(item.product.unwrap().title, "Kept Thing");

    let page = client
        .list_wishlist(authorized(pb::ListWishlistRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].product_id, product);

    client
        .remove_from_wishlist(authorized(
            pb::RemoveFromWishlistRequest { id: product },
            &token,
        ))
        .await
        .unwrap();
    let gone = client
        .remove_from_wishlist(authorized(
            pb::RemoveFromWishlistRequest { id: product },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn the_openapi_document_lists_the_wishlist_and_review_routes() {
    let app = spawn_app().await;
    let doc = json(
        app.client
            .get(format!("{}/openapi.json", app.origin))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/api/v1/wishlist", &["get", "post"][..]),
        ("/api/v1/wishlist/{id}", &["delete"][..]),
        ("/api/v1/products/{product_id}/reviews", &["post"][..]),
        ("/api/v1/reviews/{id}", &["put", "delete"][..]),
    ] {
        let ops = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing: {:?}", paths.keys().collect::<Vec<_>>()));
        for method in methods {
            assert!(ops.get(*method).is_some(), "{method} {path}");
        }
    }
}

//! Carts (/cart and DummyJSON's /carts) through the real REST edge:
//! the signed-in user's cart, the /carts routes, ownership, catalog prices at
//! read time, unknown products, and an order emptying the cart.

use crate::common::{OTHER_USER_ID, TestApp, USER_ID, assert_error, json, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

async fn product(app: &TestApp, title: &str, price_cents: i64, discount: f64, stock: i32) -> i64 {
    app.insert_product(title, price_cents, discount, stock)
        .await
}

fn lines(items: &[(i64, i32)]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|(id, q)| json!({"id": id, "quantity": q}))
            .collect(),
    )
}

#[tokio::test]
async fn the_signed_in_users_cart_is_created_empty_and_replaced() {
    let app = spawn_app().await;
    let phone = product(&app, "iPhone 15 Pro", 119_999, 5.5, 10).await;
    let token = app.user_token();

    let empty = json(app.get_as("/cart", &token).await).await;
    assert_eq!(empty["userId"], USER_ID);
    assert_eq!(empty["totalProducts"], 0);
    let id = empty["id"].clone();

    let replaced = app
        .post_json(
            "/cart",
            &json!({"products": lines(&[(phone, 2)])}),
            Some(&token),
        )
        .await;
    assert_eq!(replaced.status(), 200);
    let cart = json(replaced).await;
    assert_eq!(cart["id"], id);
    assert_eq!(cart["products"][0]["price"], 1199.99);
    assert_eq!(cart["products"][0]["discountedTotal"], 2267.98);
    assert_eq!(cart["total"], 2399.98);
    assert_eq!(cart["discountedTotal"], 2267.98);
    assert_eq!(cart["totalQuantity"], 2);

    // Prices are the catalog's at read time.
    sqlx::query("UPDATE products SET price_cents = 100000, discount_percentage = 0 WHERE id = $1")
        .bind(phone)
        .execute(&app.db)
        .await
        .unwrap();
    let later = json(app.get_as("/cart", &token).await).await;
    assert_eq!(later["products"][0]["price"], 1000.0);
    assert_eq!(later["total"], 2000.0);

    let unknown = app
        .post_json(
            "/cart",
            &json!({"products": lines(&[(phone, 1), (424_242, 1)])}),
            Some(&token),
        )
        .await;
    let body = assert_error(unknown, 404, "PRODUCT_NOT_FOUND").await;
    assert!(body["details"].to_string().contains("424242"), "{body}");
    assert_error(app.get("/cart").await, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn dummyjson_cart_routes_with_ownership() {
    let app = spawn_app().await;
    let a = product(&app, "Product A", 1_000, 0.0, 10).await;
    let b = product(&app, "Product B", 2_000, 10.0, 10).await;
    let token = app.user_token();

    let added = app
        .post_json(
            "/carts/add",
            &json!({"userId": USER_ID, "products": lines(&[(a, 1)])}),
            Some(&token),
        )
        .await;
    assert_eq!(added.status(), 201);
    let cart = json(added).await;
    let id = cart["id"].as_i64().unwrap();
    assert_eq!(cart["totalProducts"], 1);

    let merged = json(
        app.put_json(
            &format!("/carts/{id}"),
            &json!({"merge": true, "products": lines(&[(b, 2)])}),
            Some(&token),
        )
        .await,
    )
    .await;
    assert_eq!(merged["totalProducts"], 2);
    assert_eq!(merged["discountedTotal"], 10.0 + 36.0);

    let removed = json(
        app.put_json(
            &format!("/carts/{id}"),
            &json!({"merge": true, "products": lines(&[(a, 0)])}),
            Some(&token),
        )
        .await,
    )
    .await;
    assert_eq!(removed["totalProducts"], 1);
    assert_eq!(removed["products"][0]["id"], b);

    let replaced = json(
        app.put_json(
            &format!("/carts/{id}"),
            &json!({"merge": false, "products": lines(&[(a, 3)])}),
            Some(&token),
        )
        .await,
    )
    .await;
    assert_eq!(replaced["totalProducts"], 1);
    assert_eq!(replaced["totalQuantity"], 3);

    let by_user = json(app.get_as(&format!("/carts/user/{USER_ID}"), &token).await).await;
    assert_eq!(by_user["total"], 1);
    assert_eq!(by_user["carts"][0]["id"], id);
    assert_eq!(
        json(app.get_as(&format!("/carts/{id}"), &token).await).await["id"],
        id
    );

    // Another user neither reads nor changes it; an admin does.
    let other = app.other_user_token();
    assert_error(
        app.get_as(&format!("/carts/{id}"), &other).await,
        404,
        "CART_NOT_FOUND",
    )
    .await;
    assert_error(
        app.get_as(&format!("/carts/user/{USER_ID}"), &other).await,
        403,
        "FORBIDDEN",
    )
    .await;
    let theirs = app
        .put_json(
            &format!("/carts/{id}"),
            &json!({"merge": true, "products": lines(&[(a, 1)])}),
            Some(&other),
        )
        .await;
    assert_error(theirs, 404, "CART_NOT_FOUND").await;
    let for_me = app
        .post_json(
            "/carts/add",
            &json!({"userId": USER_ID, "products": []}),
            Some(&other),
        )
        .await;
    assert_error(for_me, 403, "FORBIDDEN").await;
    assert_eq!(
        app.get_as(&format!("/carts/{id}"), &app.admin_token())
            .await
            .status(),
        200
    );
    let admin_view = json(
        app.get_as(&format!("/carts/user/{OTHER_USER_ID}"), &app.admin_token())
            .await,
    )
    .await;
    assert_eq!(admin_view["carts"][0]["userId"], OTHER_USER_ID);

    let deleted = app
        .request(Method::DELETE, &format!("/carts/{id}"), Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let deleted = json(deleted).await;
    assert_eq!(deleted["isDeleted"], true);
    assert!(deleted["deletedOn"].is_string());
    assert_error(
        app.get_as(&format!("/carts/{id}"), &token).await,
        404,
        "CART_NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn a_placed_order_empties_the_active_cart() {
    let app = spawn_app().await;
    let a = product(&app, "Product A", 1_000, 0.0, 10).await;
    let token = app.user_token();
    app.post_json(
        "/cart",
        &json!({"products": lines(&[(a, 2)])}),
        Some(&token),
    )
    .await;

    let order = app
        .post_json(
            "/orders",
            &json!({
                "products": lines(&[(a, 2)]),
                "shippingAddress": {"firstName": "J", "lastName": "D", "address": "1 St", "city": "X", "state": "Y",
                                    "zipCode": "1", "country": "US", "phone": ""},
                "paymentMethod": "card"
            }),
            Some(&token),
        )
        .await;
    assert_eq!(order.status(), 201);

    let cart = json(app.get_as("/cart", &token).await).await;
    assert_eq!(cart["totalProducts"], 0);
}

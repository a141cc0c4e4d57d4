//! The catalog (the /products routes) through the real REST edge and gRPC
//! server: every endpoint, each documented error, paging edges, sorting and
//! filtering, admin checks, soft delete and cache invalidation.

use crate::common::{TestApp, assert_error, authorized, ids, json, spawn_app, spawn_app_with};
use ecom::proto::ecom::catalog::v1 as pb;
use ecom::proto::ecom::catalog::v1::catalog_service_client::CatalogServiceClient;
use serde_json::{Value, json};
use tonic::Code;

/// The ten category slugs a DummyJSON storefront expects at /products/categories.
const CONTRACT_CATEGORIES: [&str; 10] = [
    "smartphones",
    "laptops",
    "fragrances",
    "skincare",
    "groceries",
    "home-decoration",
    "furniture",
    "tops",
    "womens-dresses",
    "womens-shoes",
];

/// A valid POST /products/add body.
fn new_product() -> Value {
    json!({
        "title": "iPhone 15 Pro",
        "description": "Latest Apple smartphone with a titanium frame.",
        "price": 1199.99,
        "discountPercentage": 5.5,
        "thumbnail": "https://cdn.example.com/iphone15.jpg",
        "images": ["https://cdn.example.com/iphone15-1.jpg", "https://cdn.example.com/iphone15-2.jpg"],
        "category": "smartphones",
        "brand": "Apple",
        "stock": 50
    })
}

/// Creates a product as the admin and returns the response body.
async fn create(app: &TestApp, body: &Value) -> Value {
    let response = app
        .post_json("/products/add", body, Some(&app.admin_token()))
        .await;
    assert_eq!(response.status().as_u16(), 201, "create failed");
    json(response).await
}

/// GET `path` expecting 200 and JSON.
async fn get_ok(app: &TestApp, path: &str) -> Value {
    let response = app.get(path).await;
    assert_eq!(response.status().as_u16(), 200, "GET {path}");
    json(response).await
}

fn products(page: &Value) -> &Vec<Value> {
    page["products"].as_array().expect("products array")
}

/// The messages of `details[field]` of an error body.
fn details<'a>(body: &'a Value, field: &str) -> &'a Vec<Value> {
    body["details"][field]
        .as_array()
        .unwrap_or_else(|| panic!("no details for {field}: {body}"))
}

// ---------------------------------------------------------------- listing

#[tokio::test]
async fn list_products_defaults_to_the_first_ten_by_id() {
    let app = spawn_app().await;
    app.seed_catalog(30).await;

    let page = get_ok(&app, "/products").await;

    assert_eq!(page["total"], 30);
    assert_eq!(page["skip"], 0);
    assert_eq!(page["limit"], 10);
    let ids = ids(&page);
    assert_eq!(ids.len(), 10);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ascending ids: {ids:?}"
    );
    let first = &products(&page)[0];
    for field in [
        "title",
        "description",
        "thumbnail",
        "category",
        "brand",
        "availabilityStatus",
    ] {
        assert!(first[field].is_string(), "{field}: {first}");
    }
    for field in ["price", "discountPercentage", "rating", "stock"] {
        assert!(first[field].is_number(), "{field}: {first}");
    }
    assert_eq!(first["images"].as_array().unwrap().len(), 3);
    assert!(first["reviews"].is_array());
}

#[tokio::test]
async fn the_page_size_is_clamped_and_limit_zero_means_every_product() {
    let app = spawn_app().await;
    app.seed_catalog(120).await;

    let clamped = get_ok(&app, "/products?limit=1000").await;
    assert_eq!(products(&clamped).len(), 100);
    assert_eq!(clamped["limit"], 100);
    assert_eq!(clamped["total"], 120);

    // Issue #17: DummyJSON's "all items", up to LIST_ALL_MAX (1,000 by default).
    let zero = get_ok(&app, "/products?limit=0").await;
    assert_eq!(products(&zero).len(), 120);
    assert_eq!(zero["limit"], 120);
    assert_eq!(zero["total"], 120);

    let exact = get_ok(&app, "/products?limit=100").await;
    assert_eq!(ids(&exact), ids(&zero)[..100]);

    let last = get_ok(&app, "/products?skip=115&limit=10").await;
    assert_eq!(products(&last).len(), 5);
    assert_eq!(last["skip"], 115);

    let beyond = get_ok(&app, "/products?skip=500").await;
    assert!(products(&beyond).is_empty());
    assert_eq!(beyond["total"], 120);

    // Consecutive pages neither overlap nor skip a product.
    let first = ids(&get_ok(&app, "/products?skip=0&limit=7&sortBy=rating").await);
    let second = ids(&get_ok(&app, "/products?skip=7&limit=7&sortBy=rating").await);
    let both = ids(&get_ok(&app, "/products?skip=0&limit=14&sortBy=rating").await);
    assert_eq!([first, second].concat(), both);
}

#[tokio::test]
async fn negative_paging_is_a_validation_error_per_field() {
    let app = spawn_app().await;

    let body = assert_error(
        app.get("/products?skip=-1&limit=-5").await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(!details(&body, "skip").is_empty());
    assert!(!details(&body, "limit").is_empty());

    let body = assert_error(
        app.get("/products/search?q=x&limit=-1").await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(!details(&body, "limit").is_empty());

    let body = assert_error(
        app.get("/products/category/tops?skip=-3").await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(!details(&body, "skip").is_empty());
}

#[tokio::test]
async fn products_sort_by_price_rating_and_title_in_both_orders() {
    let app = spawn_app().await;
    app.seed_catalog(60).await;

    for (key, field) in [("price", "price"), ("rating", "rating"), ("title", "title")] {
        for order in ["asc", "desc"] {
            let page = get_ok(
                &app,
                &format!("/products?sortBy={key}&order={order}&limit=0"),
            )
            .await;
            let rows = products(&page);
            assert_eq!(rows.len(), 60);
            for pair in rows.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                let ordering = match field {
                    "title" => a[field].as_str().unwrap().cmp(b[field].as_str().unwrap()),
                    _ => a[field]
                        .as_f64()
                        .unwrap()
                        .partial_cmp(&b[field].as_f64().unwrap())
                        .unwrap(),
                };
                let ordering = if order == "desc" {
                    ordering.reverse()
                } else {
                    ordering
                };
                assert!(ordering.is_le(), "{key} {order}: {a} then {b}");
                if ordering.is_eq() {
                    // Ties break on id, in the same direction.
                    let by_id = a["id"].as_i64().unwrap().cmp(&b["id"].as_i64().unwrap());
                    let by_id = if order == "desc" {
                        by_id.reverse()
                    } else {
                        by_id
                    };
                    assert!(by_id.is_lt(), "tie {key} {order}: {a} then {b}");
                }
            }
        }
    }

    // `order` alone applies to the default key, the id.
    let desc = ids(&get_ok(&app, "/products?order=desc").await);
    assert!(desc.windows(2).all(|w| w[0] > w[1]));

    // The same request twice gives the same page (deterministic order).
    let again = ids(&get_ok(&app, "/products?order=desc").await);
    assert_eq!(desc, again);
}

#[tokio::test]
async fn an_unknown_sort_key_or_order_is_a_validation_error() {
    let app = spawn_app().await;

    let body = assert_error(
        app.get("/products?sortBy=stock").await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(!details(&body, "sortBy").is_empty());

    let body = assert_error(
        app.get("/products?sortBy=price&order=up").await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(!details(&body, "order").is_empty());

    let body = assert_error(
        app.get("/products/search?q=a&sortBy=id").await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(!details(&body, "sortBy").is_empty());
}

#[tokio::test]
async fn filters_combine_with_each_other_and_with_sorting() {
    let app = spawn_app().await;
    app.seed_catalog(200).await;
    // `limit=0` is the whole catalog (issue #17).
    let all = products(&get_ok(&app, "/products?limit=0").await).clone();
    assert_eq!(all.len(), 200);

    // Price bounds are inclusive.
    let page = get_ok(
        &app,
        "/products?minPrice=50&maxPrice=300&limit=0&sortBy=price",
    )
    .await;
    let expected = all
        .iter()
        .filter(|p| (50.0..=300.0).contains(&p["price"].as_f64().unwrap()))
        .count();
    assert_eq!(page["total"], expected as i64);
    assert!(
        products(&page)
            .iter()
            .all(|p| (50.0..=300.0).contains(&p["price"].as_f64().unwrap()))
    );

    // Brand, case-insensitively.
    let brand = all[0]["brand"].as_str().unwrap().to_owned();
    let page = get_ok(
        &app,
        &format!(
            "/products?brand={}&limit=0",
            brand.to_uppercase().replace(' ', "%20").replace('&', "%26")
        ),
    )
    .await;
    let expected = all.iter().filter(|p| p["brand"] == brand.as_str()).count();
    assert!(expected > 0);
    assert_eq!(page["total"], expected as i64);
    assert!(products(&page).iter().all(|p| p["brand"] == brand.as_str()));

    // In stock only: the seed has some products without stock.
    let out_of_stock = all.iter().filter(|p| p["stock"] == 0).count();
    assert!(out_of_stock > 0, "the seed has out-of-stock products");
    let page = get_ok(&app, "/products?inStock=true&limit=0").await;
    assert_eq!(page["total"], (200 - out_of_stock) as i64);
    assert!(
        products(&page)
            .iter()
            .all(|p| p["stock"].as_i64().unwrap() > 0)
    );

    // All together, sorted.
    let page = get_ok(
        &app,
        "/products?inStock=true&minPrice=10&maxPrice=500&sortBy=rating&order=desc&limit=0",
    )
    .await;
    let rows = products(&page);
    assert!(rows.iter().all(|p| {
        let price = p["price"].as_f64().unwrap();
        p["stock"].as_i64().unwrap() > 0 && (10.0..=500.0).contains(&price)
    }));
    assert!(
        rows.windows(2)
            .all(|w| w[0]["rating"].as_f64() >= w[1]["rating"].as_f64())
    );

    // Bad bounds.
    let body = assert_error(
        app.get("/products?minPrice=-1").await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(!details(&body, "minPrice").is_empty());
    let body = assert_error(
        app.get("/products?minPrice=20&maxPrice=10").await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(!details(&body, "maxPrice").is_empty());
}

// ------------------------------------------------------------- categories

#[tokio::test]
async fn categories_are_a_bare_array_of_slugs_under_both_paths() {
    let app = spawn_app().await;
    app.seed_catalog(10).await;

    let categories = get_ok(&app, "/products/categories").await;
    let slugs: Vec<&str> = categories
        .as_array()
        .expect("a bare array")
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(slugs.len() >= 24, "{slugs:?}");
    for slug in CONTRACT_CATEGORIES {
        assert!(slugs.contains(&slug), "{slug} missing");
    }
    let mut sorted = slugs.clone();
    sorted.sort_unstable();
    assert_eq!(slugs, sorted);

    assert_eq!(get_ok(&app, "/products/category-list").await, categories);
    // A second read (from the cache) answers the same.
    assert_eq!(get_ok(&app, "/products/categories").await, categories);
}

#[tokio::test]
async fn products_by_category_are_paginated_and_an_unknown_category_is_an_empty_page() {
    let app = spawn_app().await;
    app.seed_catalog(100).await;

    let page = get_ok(&app, "/products/category/smartphones?limit=2").await;
    assert_eq!(products(&page).len(), 2);
    assert_eq!(page["limit"], 2);
    let total = page["total"].as_i64().unwrap();
    assert!(total >= 4);
    let all = get_ok(&app, "/products/category/smartphones?limit=0").await;
    assert_eq!(products(&all).len() as i64, total);
    assert!(
        products(&all)
            .iter()
            .all(|p| p["category"] == "smartphones")
    );

    let sorted = get_ok(&app, "/products/category/laptops?sortBy=price&order=desc").await;
    let prices: Vec<f64> = products(&sorted)
        .iter()
        .map(|p| p["price"].as_f64().unwrap())
        .collect();
    assert!(prices.windows(2).all(|w| w[0] >= w[1]));

    for unknown in [
        "/products/category/no-such-category",
        "/products/category/Not%20A%20Slug",
    ] {
        let empty = get_ok(&app, unknown).await;
        assert_eq!(empty["total"], 0, "{unknown}");
        assert!(products(&empty).is_empty());
        assert_eq!(empty["limit"], 10);
    }
}

// ---------------------------------------------------------------- reading

#[tokio::test]
async fn a_product_reads_with_images_and_reviews() {
    let app = spawn_app().await;
    app.seed_catalog(24).await;
    let reviewed: i64 =
        sqlx::query_scalar("SELECT product_id FROM reviews ORDER BY product_id LIMIT 1")
            .fetch_one(&app.db)
            .await
            .unwrap();

    let product = get_ok(&app, &format!("/products/{reviewed}")).await;

    assert_eq!(product["id"], reviewed);
    let images = product["images"].as_array().unwrap();
    assert_eq!(images.len(), 3);
    // Issue #17: absolute URLs on ecom itself (PUBLIC_URL) when CDN_URL is unset.
    assert_eq!(
        images[0],
        format!("http://localhost:3000/api/v1/media/products/{reviewed}/1.png")
    );
    let review = &product["reviews"][0];
    assert!((1..=5).contains(&review["rating"].as_i64().unwrap()));
    assert_eq!(
        review["date"].as_str().unwrap().len(),
        10,
        "YYYY-MM-DD: {review}"
    );
    assert!(review["reviewerEmail"].as_str().unwrap().contains('@'));
    assert!(product["createdAt"].is_string());
    assert_eq!(product["isDeleted"], false);
}

#[tokio::test]
async fn an_unknown_product_is_product_not_found() {
    let app = spawn_app().await;

    assert_error(app.get("/products/999999").await, 404, "PRODUCT_NOT_FOUND").await;
}

#[tokio::test]
async fn reads_work_over_grpc_too() {
    let app = spawn_app().await;
    app.seed_catalog(12).await;
    let mut client = CatalogServiceClient::new(app.grpc_channel().await);

    let page = client
        .list_products(pb::ListProductsRequest {
            limit: Some(5),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.products.len(), 5);
    assert_eq!(page.total, 12);

    let id = page.products[0].id;
    let product = client
        .get_product(pb::GetProductRequest { id })
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert_eq!(product.id, id);

    let missing = client
        .get_product(pb::GetProductRequest { id: 424_242 })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

// ----------------------------------------------------------------- search

#[tokio::test]
async fn search_is_full_text_ranked_and_tolerates_typos() {
    let app = spawn_app().await;
    app.seed_catalog(48).await;
    let iphone = create(&app, &new_product()).await;
    let case = create(
        &app,
        &json!({
            "title": "Leather Case",
            "description": "A slim case that fits the iPhone 15 and keeps it safe.",
            "price": 29.0,
            "thumbnail": "https://cdn.example.com/case.jpg",
            "category": "mobile-accessories",
            "brand": "Cordwise",
            "stock": 10
        }),
    )
    .await;

    let (iphone, case) = (iphone["id"].as_i64().unwrap(), case["id"].as_i64().unwrap());

    // Full-text hits come first, the title match above the description
    // match; typo-tolerant title matches (the seed's "Phone"s) follow.
    let page = get_ok(&app, "/products/search?q=iphone&limit=0").await;
    assert_eq!(ids(&page)[..2], [iphone, case]);
    assert_eq!(page["total"].as_i64().unwrap() as usize, ids(&page).len());

    // A transposition still finds it.
    let page = get_ok(&app, "/products/search?q=iphnoe").await;
    assert_eq!(ids(&page).first(), Some(&iphone));

    // The brand is searched too.
    let page = get_ok(&app, "/products/search?q=apple").await;
    assert!(ids(&page).contains(&iphone));

    // Filters and sorting apply to search results.
    let page = get_ok(&app, "/products/search?q=iphone&maxPrice=100&limit=0").await;
    assert!(ids(&page).contains(&case) && !ids(&page).contains(&iphone));
    assert!(
        products(&page)
            .iter()
            .all(|p| p["price"].as_f64().unwrap() <= 100.0)
    );
    let page = get_ok(
        &app,
        "/products/search?q=iphone&sortBy=price&order=desc&limit=0",
    )
    .await;
    let prices: Vec<f64> = products(&page)
        .iter()
        .map(|p| p["price"].as_f64().unwrap())
        .collect();
    assert!(prices.windows(2).all(|w| w[0] >= w[1]), "{prices:?}");
    assert!(ids(&page).contains(&iphone) && ids(&page).contains(&case));

    // Nothing matches nonsense.
    let page = get_ok(&app, "/products/search?q=zzzqqqxxx").await;
    assert_eq!(page["total"], 0);

    // An empty query lists everything, paginated.
    let page = get_ok(&app, "/products/search?q=&limit=5").await;
    assert_eq!(page["total"], 50);
    assert_eq!(products(&page).len(), 5);
    let page = get_ok(&app, "/products/search").await;
    assert_eq!(page["total"], 50);
}

// ------------------------------------------------------------------ admin

/// A search is full-text first: titles within a typo join the results only when the full
/// text finds fewer than a page (10), so a common word stays fast on a large catalog (its GIN
/// index, no trigram scan of every title) while a misspelled or rare one is still forgiven.
#[tokio::test]
async fn typo_matches_join_a_search_only_when_the_full_text_finds_fewer_than_ten() {
    let app = spawn_app().await;
    for n in 0..10 {
        app.insert_product(&format!("Walnut Desk {n}"), 10_000, 0.0, 5)
            .await;
    }
    let walnutt = app.insert_product("Walnutt Shelf", 5_000, 0.0, 5).await;
    for n in 0..3 {
        app.insert_product(&format!("Cedar Chest {n}"), 10_000, 0.0, 5)
            .await;
    }
    let cedarr = app.insert_product("Cedarr Bench", 5_000, 0.0, 5).await;

    let page = get_ok(&app, "/products/search?q=walnut&limit=0").await;
    assert_eq!(page["total"], 10, "ten full-text matches: no typo matches");
    assert!(!ids(&page).contains(&walnutt));

    let page = get_ok(&app, "/products/search?q=cedar&limit=0").await;
    assert_eq!(
        page["total"], 4,
        "three full-text matches, then the typo match"
    );
    assert_eq!(ids(&page).last(), Some(&cedarr), "typo matches come last");
    // Every page of one search agrees on the total.
    let second = get_ok(&app, "/products/search?q=cedar&limit=2&skip=2").await;
    assert_eq!(second["total"], 4);
    assert_eq!(ids(&second), ids(&page)[2..]);
}

/// With ten full-text hits or more, the text rank alone orders them: the title weighs more than
/// the description, whatever the ids say, and equal ranks keep the id order.
#[tokio::test]
async fn a_common_word_ranks_a_title_hit_above_description_hits() {
    let app = spawn_app().await;
    app.seed_catalog(0).await; // the categories only
    let mut described = Vec::new();
    for n in 0..11 {
        let product = create(
            &app,
            &json!({
                "title": format!("Oak Desk {n}"),
                "description": "A sturdy desk with walnut trim and two drawers.",
                "price": 199.0,
                "thumbnail": "https://cdn.example.com/desk.jpg",
                "category": "furniture",
                "brand": "Timberline",
                "stock": 4
            }),
        )
        .await;
        described.push(product["id"].as_i64().unwrap());
    }
    let titled = create(
        &app,
        &json!({
            "title": "Walnut Bookshelf",
            "description": "Five shelves, solid wood, easy to assemble.",
            "price": 249.0,
            "thumbnail": "https://cdn.example.com/shelf.jpg",
            "category": "furniture",
            "brand": "Timberline",
            "stock": 2
        }),
    )
    .await["id"]
        .as_i64()
        .unwrap();

    let page = get_ok(&app, "/products/search?q=walnut&limit=0").await;
    assert_eq!(page["total"], 12);
    let mut expected = vec![titled];
    expected.extend(&described);
    assert_eq!(ids(&page), expected);
    // The second page continues the same order.
    let second = get_ok(&app, "/products/search?q=walnut&limit=5&skip=5").await;
    assert_eq!(second["total"], 12);
    assert_eq!(ids(&second), expected[5..10]);
}

/// A listing counts and reads its page on two connections at once when the pool has one to
/// spare, and on one after the other when it has not: a request never holds a connection while
/// it waits for another, so concurrent listings cannot starve each other of the second one.
#[tokio::test]
async fn concurrent_listings_do_not_starve_a_small_pool() {
    let app = spawn_app_with(&["--database-pool-size", "2"]).await;
    app.seed_catalog(60).await;
    // Distinct pages, so that none is answered from the cache.
    let pages = (0..12).map(|skip| {
        let app = &app;
        async move { app.get(&format!("/products?limit=3&skip={skip}")).await }
    });
    for response in futures::future::join_all(pages).await {
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn an_admin_creates_a_product() {
    let app = spawn_app().await;
    app.seed_catalog(5).await;

    let created = create(&app, &new_product()).await;

    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["title"], "iPhone 15 Pro");
    assert_eq!(created["price"], 1199.99);
    assert_eq!(created["discountPercentage"], 5.5);
    assert_eq!(created["category"], "smartphones");
    assert_eq!(created["brand"], "Apple");
    assert_eq!(created["stock"], 50);
    assert_eq!(created["images"].as_array().unwrap().len(), 2);
    assert_eq!(created["sku"], format!("ECOM-{id:08}"));
    assert_eq!(created["availabilityStatus"], "In Stock");
    assert_eq!(get_ok(&app, &format!("/products/{id}")).await, created);
    let cents: i64 = sqlx::query_scalar("SELECT price_cents FROM products WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(cents, 119_999, "money is stored as cents");
}

#[tokio::test]
async fn a_create_reports_every_invalid_field() {
    let app = spawn_app().await;
    app.seed_catalog(1).await;
    let body = json!({
        "title": "ab",
        "description": "short",
        "price": 10.001,
        "discountPercentage": 120,
        "thumbnail": "not a url",
        "images": ["https://ok.example/a.jpg", "ftp://bad.example/b.jpg"],
        "category": "",
        "brand": "",
        "stock": -1
    });

    let response = app
        .post_json("/products/add", &body, Some(&app.admin_token()))
        .await;

    let error = assert_error(response, 400, "VALIDATION_ERROR").await;
    for field in [
        "title",
        "description",
        "price",
        "discountPercentage",
        "thumbnail",
        "images",
        "category",
        "brand",
        "stock",
    ] {
        assert!(!details(&error, field).is_empty(), "{field}: {error}");
    }
}

#[tokio::test]
async fn a_create_needs_a_positive_price_and_at_most_twenty_images() {
    let app = spawn_app().await;
    app.seed_catalog(1).await;
    let admin = app.admin_token();

    let mut body = new_product();
    body["price"] = json!(0);
    let error = assert_error(
        app.post_json("/products/add", &body, Some(&admin)).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(!details(&error, "price").is_empty());

    let mut body = new_product();
    body["images"] = json!(vec!["https://cdn.example.com/x.jpg"; 21]);
    let error = assert_error(
        app.post_json("/products/add", &body, Some(&admin)).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(!details(&error, "images").is_empty());
}

#[tokio::test]
async fn a_create_in_an_unknown_category_is_rejected() {
    let app = spawn_app().await;
    app.seed_catalog(1).await;
    let mut body = new_product();
    body["category"] = json!("electronics");

    let response = app
        .post_json("/products/add", &body, Some(&app.admin_token()))
        .await;

    let error = assert_error(response, 400, "VALIDATION_ERROR").await;
    assert!(
        details(&error, "category")[0]
            .as_str()
            .unwrap()
            .contains("electronics")
    );
}

#[tokio::test]
async fn admin_endpoints_refuse_anonymous_callers_and_customers_over_rest() {
    let app = spawn_app().await;
    app.seed_catalog(3).await;
    let user = app.user_token();
    let body = new_product();
    let patch = json!({ "stock": 1 });

    assert_error(
        app.post_json("/products/add", &body, None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_error(
        app.put_json("/products/1", &patch, None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_error(app.delete("/products/1", None).await, 401, "UNAUTHORIZED").await;

    assert_error(
        app.post_json("/products/add", &body, Some(&user)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_error(
        app.put_json("/products/1", &patch, Some(&user)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_error(
        app.delete("/products/1", Some(&user)).await,
        403,
        "FORBIDDEN",
    )
    .await;

    // Nothing changed.
    let product = get_ok(&app, "/products/1").await;
    assert_eq!(product["isDeleted"], false);
    assert_eq!(get_ok(&app, "/products").await["total"], 3);
}

#[tokio::test]
async fn admin_rpcs_refuse_customers_over_grpc() {
    let app = spawn_app().await;
    app.seed_catalog(3).await;
    let mut client = CatalogServiceClient::new(app.grpc_channel().await);
    let user = app.user_token();
    let create = pb::CreateProductRequest {
        title: "Something".into(),
        description: "Something to sell.".into(),
        price: 1.0,
        thumbnail: "https://cdn.example.com/s.jpg".into(),
        category: "toys".into(),
        brand: "Playmoor".into(),
        ..Default::default()
    };

    let denied = client
        .create_product(authorized(create.clone(), &user))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = client
        .update_product(authorized(
            pb::UpdateProductRequest {
                id: 1,
                stock: Some(0),
                ..Default::default()
            },
            &user,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = client
        .delete_product(authorized(pb::DeleteProductRequest { id: 1 }, &user))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let anonymous = client.create_product(create.clone()).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    let created = client
        .create_product(authorized(create, &app.admin_token()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.product.unwrap().category, "toys");
}

#[tokio::test]
async fn an_update_changes_only_the_fields_present_and_zero_is_a_value() {
    let app = spawn_app().await;
    app.seed_catalog(1).await;
    let admin = app.admin_token();
    let before = create(&app, &new_product()).await;
    let id = before["id"].as_i64().unwrap();

    let response = app
        .put_json(
            &format!("/products/{id}"),
            &json!({ "stock": 0, "discountPercentage": 0 }),
            Some(&admin),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let after = json(response).await;

    assert_eq!(after["stock"], 0);
    assert_eq!(after["discountPercentage"], 0.0);
    assert_eq!(after["availabilityStatus"], "Out of Stock");
    for unchanged in [
        "title",
        "description",
        "price",
        "thumbnail",
        "images",
        "category",
        "brand",
        "createdAt",
    ] {
        assert_eq!(after[unchanged], before[unchanged], "{unchanged}");
    }

    let moved = app
        .put_json(
            &format!("/products/{id}"),
            &json!({ "price": 89.99, "category": "laptops", "images": ["https://cdn.example.com/new.jpg"] }),
            Some(&admin),
        )
        .await;
    let moved = json(moved).await;
    assert_eq!(moved["price"], 89.99);
    assert_eq!(moved["category"], "laptops");
    assert_eq!(moved["images"], json!(["https://cdn.example.com/new.jpg"]));
    assert_eq!(moved["stock"], 0);
}

#[tokio::test]
async fn an_update_validates_the_fields_present_and_needs_a_live_product() {
    let app = spawn_app().await;
    app.seed_catalog(2).await;
    let admin = app.admin_token();

    let body = json!({ "price": -5, "title": "x", "thumbnail": "nope" });
    let error = assert_error(
        app.put_json("/products/1", &body, Some(&admin)).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    for field in ["price", "title", "thumbnail"] {
        assert!(!details(&error, field).is_empty(), "{field}");
    }
    let error = assert_error(
        app.put_json(
            "/products/1",
            &json!({ "category": "nowhere" }),
            Some(&admin),
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(!details(&error, "category").is_empty());

    assert_error(
        app.put_json("/products/999999", &json!({ "stock": 1 }), Some(&admin))
            .await,
        404,
        "PRODUCT_NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn a_deleted_product_is_soft_deleted_and_disappears() {
    let app = spawn_app().await;
    app.seed_catalog(10).await;
    let admin = app.admin_token();
    let product = create(&app, &new_product()).await;
    let id = product["id"].as_i64().unwrap();
    // Cached before the delete.
    get_ok(&app, &format!("/products/{id}")).await;

    let response = app.delete(&format!("/products/{id}"), Some(&admin)).await;

    assert_eq!(response.status().as_u16(), 200);
    let deleted = json(response).await;
    assert_eq!(deleted["id"], id);
    assert_eq!(deleted["title"], "iPhone 15 Pro");
    assert_eq!(deleted["isDeleted"], true);
    assert!(
        deleted["deletedOn"].as_str().unwrap().contains('T'),
        "RFC 3339: {deleted}"
    );

    assert_error(
        app.get(&format!("/products/{id}")).await,
        404,
        "PRODUCT_NOT_FOUND",
    )
    .await;
    let listed = get_ok(&app, "/products?limit=0").await;
    assert_eq!(listed["total"], 10);
    assert!(!ids(&listed).contains(&id));
    assert!(!ids(&get_ok(&app, "/products/search?q=iphone&limit=0").await).contains(&id));
    assert_eq!(
        get_ok(&app, "/products/category/smartphones?limit=0").await["total"]
            .as_i64()
            .unwrap() as usize,
        products(&get_ok(&app, "/products/category/smartphones?limit=0").await).len()
    );
    assert!(!ids(&get_ok(&app, "/products/category/smartphones?limit=0").await).contains(&id));

    // Deleting or updating it again: it is gone.
    assert_error(
        app.delete(&format!("/products/{id}"), Some(&admin)).await,
        404,
        "PRODUCT_NOT_FOUND",
    )
    .await;
    assert_error(
        app.put_json(
            &format!("/products/{id}"),
            &json!({ "stock": 3 }),
            Some(&admin),
        )
        .await,
        404,
        "PRODUCT_NOT_FOUND",
    )
    .await;

    // The row stays for the orders that point at it.
    let kept: bool =
        sqlx::query_scalar("SELECT deleted_at IS NOT NULL FROM products WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(kept);
}

#[tokio::test]
async fn product_reads_are_cached_and_a_write_invalidates_them() {
    let app = spawn_app().await;
    app.seed_catalog(3).await;
    let path = "/products/2";
    let original = get_ok(&app, path).await;

    // A change behind the service's back is not seen: the product is cached.
    sqlx::query("UPDATE products SET title = 'Changed Behind The Back' WHERE id = 2")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(get_ok(&app, path).await["title"], original["title"]);

    // A write through the API evicts the entry: the next read is fresh.
    let response = app
        .put_json(path, &json!({ "price": 12.34 }), Some(&app.admin_token()))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let fresh = get_ok(&app, path).await;
    assert_eq!(fresh["price"], 12.34);
    assert_eq!(fresh["title"], "Changed Behind The Back");
}

#[tokio::test]
async fn seeding_is_deterministic_and_idempotent() {
    let app = spawn_app().await;
    app.seed_catalog(30).await;
    let first = get_ok(&app, "/products?limit=0").await;

    app.seed_catalog(30).await;
    assert_eq!(
        get_ok(&app, "/products?limit=0").await["total"],
        30,
        "a second seed adds nothing"
    );

    let other = spawn_app().await;
    other.seed_catalog(30).await;
    let titles = |page: &Value| -> Vec<String> {
        products(page)
            .iter()
            .map(|p| p["title"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        titles(&get_ok(&other, "/products?limit=0").await),
        titles(&first)
    );
}

#[tokio::test]
async fn listing_pages_are_cached_and_an_admin_write_retires_them_all() {
    let app = spawn_app().await;
    app.seed_catalog(5).await;
    let list = "/products?limit=5&sortBy=price&order=asc";
    // A word of the title product 3 gets behind the service's back: the cached page lacks it.
    let search = "/products/search?q=renamed";
    let before = get_ok(&app, list).await;
    let searched = get_ok(&app, search).await;

    // Behind the service's back: not seen, the pages come from the cache.
    sqlx::query("UPDATE products SET title = 'Quietly Renamed', price_cents = 1 WHERE id = 3")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(get_ok(&app, list).await, before);
    assert_eq!(get_ok(&app, search).await, searched);

    // An admin write to any product retires every cached page at once.
    let response = app
        .put_json(
            "/products/4",
            &json!({ "stock": 7 }),
            Some(&app.admin_token()),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let after = get_ok(&app, list).await;
    assert_eq!(products(&after)[0]["title"], "Quietly Renamed");
    assert_eq!(products(&after)[0]["price"], 0.01);
    assert_ne!(get_ok(&app, search).await, searched);
}

// ------------------------------------------------- a drop-in for DummyJSON frontends (#17)

/// `limit=0` answers every match on searches and category pages too, with `sortBy` and
/// `select` honoured; above LIST_ALL_MAX it answers that many and says so in `limit`.
#[tokio::test]
async fn limit_zero_honours_sorting_select_and_the_list_all_bound() {
    let app = spawn_app_with(&["--list-all-max", "50"]).await;
    app.seed_catalog(120).await;

    let capped = get_ok(&app, "/products?limit=0&sortBy=price&order=desc").await;
    assert_eq!(products(&capped).len(), 50);
    assert_eq!(capped["limit"], 50, "the bound, fewer than total");
    assert_eq!(capped["total"], 120);
    let dearest: f64 = sqlx::query_scalar("SELECT max(price_cents)::float8 / 100 FROM products")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(capped["products"][0]["price"].as_f64().unwrap(), dearest);
    let prices: Vec<f64> = products(&capped)
        .iter()
        .map(|p| p["price"].as_f64().unwrap())
        .collect();
    assert!(prices.windows(2).all(|w| w[0] >= w[1]));

    let category = get_ok(&app, "/products/category/smartphones?limit=0&select=title").await;
    let total = category["total"].as_i64().unwrap();
    assert!(total > 1);
    assert_eq!(products(&category).len() as i64, total);
    assert_eq!(category["limit"], total);
    let keys: Vec<&String> = products(&category)[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "title"]);

    let search = get_ok(&app, "/products/search?q=phone&limit=0").await;
    assert_eq!(
        products(&search).len() as i64,
        search["total"].as_i64().unwrap().min(50)
    );

    // An explicit limit above 100 is still capped at 100, whatever the bound.
    let explicit = spawn_app().await;
    explicit.seed_catalog(120).await;
    assert_eq!(get_ok(&explicit, "/products?limit=500").await["limit"], 100);
    assert_eq!(
        products(&get_ok(&explicit, "/products?limit=0&skip=100").await).len(),
        20
    );
}

/// CATEGORIES_FORMAT=objects answers DummyJSON's objects at /products/categories; the
/// category-list stays names; gRPC callers get both forms whatever the setting.
#[tokio::test]
async fn categories_can_be_objects_with_urls_on_the_public_base() {
    let app = spawn_app_with(&[
        "--categories-format",
        "objects",
        "--public-url",
        "https://shop.example.com/",
    ])
    .await;
    app.seed_catalog(0).await;
    let objects = get_ok(&app, "/products/categories").await;
    let objects = objects.as_array().expect("a bare array");
    let phones = objects
        .iter()
        .find(|c| c["slug"] == "smartphones")
        .expect("smartphones");
    assert_eq!(
        *phones,
        json!({"slug": "smartphones", "name": "Smartphones", "url": "https://shop.example.com/api/v1/products/category/smartphones"})
    );
    let names = get_ok(&app, "/products/category-list").await;
    let names: Vec<&str> = names
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().expect("a slug"))
        .collect();
    let slugs: Vec<&str> = objects
        .iter()
        .map(|c| c["slug"].as_str().unwrap())
        .collect();
    assert_eq!(names, slugs);

    let mut client = CatalogServiceClient::new(app.grpc_channel().await);
    let both = client
        .list_categories(pb::ListCategoriesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(both.categories, names);
    assert_eq!(both.objects.len(), names.len());
    assert_eq!(both.objects[0].slug, names[0]);
}

/// The seeded products' pictures are served by ecom: PNG bytes that decode, with ETag and
/// Cache-Control, 304 on a matching If-None-Match, 404 for unknown files.
#[tokio::test]
async fn seeded_product_pictures_are_served_with_etags() {
    let app = spawn_app().await;
    app.seed_catalog(3).await;
    let product = get_ok(&app, "/products/1").await;
    let thumbnail = product["thumbnail"].as_str().unwrap();
    assert_eq!(
        thumbnail,
        "http://localhost:3000/api/v1/media/products/1/thumbnail.png"
    );
    let mut urls = vec![thumbnail.to_owned()];
    urls.extend(
        product["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_owned()),
    );
    let mut seen = Vec::new();
    for url in &urls {
        let path = url.strip_prefix("http://localhost:3000").unwrap();
        let response = app
            .client
            .get(format!("{}{path}", app.origin))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{url}");
        assert_eq!(response.headers()["content-type"], "image/png");
        assert!(
            response.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age"),
        );
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        let bytes = response.bytes().await.unwrap();
        let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).unwrap();
        assert!(img.width() >= 100);
        assert!(!seen.contains(&bytes), "each picture is its own");
        seen.push(bytes);

        let again = app
            .client
            .get(format!("{}{path}", app.origin))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status().as_u16(), 304, "{url}");
        assert_eq!(again.headers()["etag"], etag.as_str());
        assert!(again.bytes().await.unwrap().is_empty());
        let stale = app
            .client
            .get(format!("{}{path}", app.origin))
            .header("if-none-match", "\"not-it\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status().as_u16(), 200);
    }
    assert_error(
        app.get("/media/products/999/thumbnail.png").await,
        404,
        "NOT_FOUND",
    )
    .await;
}

/// A path that tries to leave the media store is a 404 like any unknown file, sent as raw
/// bytes (an HTTP client would normalise the dots away before sending).
#[tokio::test]
async fn media_paths_cannot_traverse() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = spawn_app().await;
    app.seed_catalog(1).await;
    let authority = app.origin.trim_start_matches("http://").to_owned();
    for target in [
        "/api/v1/media/../../../../etc/passwd",
        "/api/v1/media/products/../../../etc/passwd",
        "/api/v1/media/%2e%2e/%2e%2e/etc/passwd",
        "/api/v1/media/products/1/..%2f..%2f..%2fetc%2fpasswd",
        "/api/v1/media//etc/passwd",
        "/api/v1/media/%2fetc%2fpasswd",
        "/api/v1/media/products/1/%2e%2e",
        "/api/v1/media/products%5c1%5cthumbnail.png",
    ] {
        let mut stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        let status = answer.split(' ').nth(1).unwrap_or("");
        assert!(
            status == "404",
            "{target}: {}",
            answer.lines().next().unwrap_or("")
        );
        assert!(!answer.contains("root:"), "{target}");
    }
}

/// With CDN_URL set, picture URLs point there, as uploaded avatars do.
#[tokio::test]
async fn with_a_cdn_the_picture_urls_point_at_it() {
    let app = spawn_app_with(&["--cdn-url", "https://cdn.example.net/shop/"]).await;
    app.seed_catalog(1).await;
    let product = get_ok(&app, "/products/1").await;
    assert_eq!(
        product["thumbnail"],
        "https://cdn.example.net/shop/products/1/thumbnail.png"
    );
    assert_eq!(
        product["images"][2],
        "https://cdn.example.net/shop/products/1/3.png"
    );
}

//! Cursor pagination of listings, category pages and searches (issue #16, target 4): walking
//! `nextCursor` page by page while products are added in between (no product twice, none of
//! those that existed skipped, in the listing's order, exact totals), the bound on `skip`, and
//! the 400s of a garbage cursor, a cursor reused with another query, and skip with cursor.
//!
//! The products added between pages always sort *before* the position reached (cheaper, a
//! lower rating, a title first in the order, a better search rank): an offset walk would then
//! answer products of the previous page again, which is what a keyset must not do.

use std::collections::HashSet;

use crate::common::{TestApp, assert_error, ids, json, spawn_app};
use ecom::proto::ecom::catalog::v1 as pb;
use ecom::proto::ecom::catalog::v1::catalog_service_client::CatalogServiceClient;
use serde_json::Value;

/// GET `path` expecting 200 and JSON.
async fn get_ok(app: &TestApp, path: &str) -> Value {
    let response = app.get(path).await;
    assert_eq!(response.status().as_u16(), 200, "GET {path}");
    json(response).await
}

/// `nextCursor`, absent or empty on the last page.
fn next_cursor(page: &Value) -> Option<String> {
    page["nextCursor"]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
}

/// `path` with `param` appended.
fn with(path: &str, param: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{param}")
}

/// 24 products of the test category (`smartphones`) and 12 of `laptops`, whose titles hold
/// "zephyr" once or twice (two search ranks) and whose prices and ratings repeat (ties that
/// only the id breaks).
async fn catalog(app: &TestApp) {
    for n in 0..36 {
        let title = if n % 2 == 0 {
            format!("Zephyr lamp {n:02}")
        } else {
            format!("Zephyr zephyr speaker {n:02}")
        };
        app.insert_product(&title, 1000 + (n % 7) * 100, 0.0, 5)
            .await;
    }
    sqlx::query("INSERT INTO categories (slug, name) VALUES ('laptops', 'Laptops')")
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE products SET rating = (id % 4) + 0.5,
                category_id = CASE WHEN id % 3 = 0
                    THEN (SELECT id FROM categories WHERE slug = 'laptops') ELSE category_id END",
    )
    .execute(&app.db)
    .await
    .unwrap();
}

/// Walks `path` with nextCursor to its last page, adding product `inserts[n]` (title, price
/// in cents; rating 0, category `smartphones`) after page n, and checks the walk against
/// `reference` (the whole listing before the walk, `limit=0`): no product twice, every product
/// of the reference in its order, and on every page the exact total of that moment.
async fn assert_walk(app: &TestApp, path: &str, reference: &str, inserts: &[(String, i64)]) {
    let before = ids(&get_ok(app, reference).await);
    assert!(before.len() >= 9, "{reference}: too few products to page");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = 0;
    for page_no in 0.. {
        assert!(page_no < 100, "{path}: no last page");
        let url = match &cursor {
            None => path.to_owned(),
            Some(c) => with(path, &format!("cursor={c}")),
        };
        let page = get_ok(app, &url).await;
        assert_eq!(page["skip"], 0, "{url}");
        assert_eq!(
            page["total"].as_i64().unwrap(),
            (before.len() + added) as i64,
            "exact total on page {page_no} of {path}"
        );
        seen.extend(ids(&page));
        cursor = next_cursor(&page);
        if cursor.is_none() {
            break;
        }
        if let Some((title, price)) = inserts.get(page_no) {
            app.insert_product(title, *price, 0.0, 5).await;
            added += 1;
        }
    }
    assert!(added >= 2, "{path}: the walk must outlast two inserts");
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "{path}: a product twice: {seen:?}"
    );
    let originals: Vec<i64> = seen
        .iter()
        .copied()
        .filter(|id| before.contains(id))
        .collect();
    assert_eq!(originals, before, "{path}: skipped or reordered");
}

fn inserts(title: &str, price: i64) -> Vec<(String, i64)> {
    (0..4).map(|n| (format!("{title} {n}"), price)).collect()
}

#[tokio::test]
async fn a_listing_walks_by_cursor_with_inserts_in_between() {
    let app = spawn_app().await;
    catalog(&app).await;

    assert_walk(
        &app,
        "/products?limit=5&sortBy=price",
        "/products?limit=0&sortBy=price",
        &inserts("Cheap thing", 1),
    )
    .await;
    assert_walk(
        &app,
        "/products?limit=4&sortBy=title&order=desc",
        "/products?limit=0&sortBy=title&order=desc",
        &inserts("Zzz last title", 5000),
    )
    .await;
    // Default order (by id): new products come after; the walk still ends and sees them.
    assert_walk(
        &app,
        "/products?limit=7",
        "/products?limit=0",
        &inserts("Newer thing", 5000),
    )
    .await;
}

#[tokio::test]
async fn a_category_page_walks_by_cursor_with_inserts_in_between() {
    let app = spawn_app().await;
    catalog(&app).await;

    assert_walk(
        &app,
        "/products/category/smartphones?limit=3&sortBy=rating",
        "/products/category/smartphones?limit=0&sortBy=rating",
        &inserts("Unrated phone", 2000),
    )
    .await;
    assert_walk(
        &app,
        "/products/category/smartphones?limit=4&sortBy=price&order=desc",
        "/products/category/smartphones?limit=0&sortBy=price&order=desc",
        &inserts("Dearest phone", 10_000_000),
    )
    .await;
}

#[tokio::test]
async fn a_search_walks_by_cursor_with_inserts_in_between() {
    let app = spawn_app().await;
    catalog(&app).await;

    // By relevance (a rank computed per query): the new titles rank above every other.
    assert_walk(
        &app,
        "/products/search?q=zephyr&limit=4",
        "/products/search?q=zephyr&limit=0",
        &inserts("Zephyr zephyr zephyr", 3000),
    )
    .await;
    assert_walk(
        &app,
        "/products/search?q=zephyr&limit=5&sortBy=price",
        "/products/search?q=zephyr&limit=0&sortBy=price",
        &inserts("Zephyr bargain", 1),
    )
    .await;
}

#[tokio::test]
async fn a_typo_search_keeps_its_ranking_across_cursor_pages() {
    let app = spawn_app().await;
    // Fewer full-text matches than a default page: titles within a typo join (trigram).
    for n in 0..6 {
        app.insert_product(&format!("Quokka plush {n}"), 1000, 0.0, 5)
            .await;
    }
    let reference = ids(&get_ok(&app, "/products/search?q=quokak&limit=0").await);
    assert_eq!(reference.len(), 6, "typo matches");
    let first = get_ok(&app, "/products/search?q=quokak&limit=4").await;
    let cursor = next_cursor(&first).expect("a second page");
    let second = get_ok(
        &app,
        &format!("/products/search?q=quokak&limit=4&cursor={cursor}"),
    )
    .await;
    assert_eq!(second["total"], 6);
    assert_eq!(next_cursor(&second), None);
    assert_eq!([ids(&first), ids(&second)].concat(), reference);
}

#[tokio::test]
async fn the_last_page_has_no_next_cursor_and_the_page_size_may_change() {
    let app = spawn_app().await;
    for n in 0..12 {
        app.insert_product(&format!("Product {n:02}"), 1000, 0.0, 5)
            .await;
    }
    let all = ids(&get_ok(&app, "/products?limit=0").await);

    let first = get_ok(&app, "/products?limit=6").await;
    let cursor = next_cursor(&first).expect("a second page");
    // Exactly full: the last page, though it holds a whole page.
    let last = get_ok(&app, &format!("/products?limit=6&cursor={cursor}")).await;
    assert_eq!(ids(&last).len(), 6);
    assert_eq!(next_cursor(&last), None, "{last}");
    assert_eq!([ids(&first), ids(&last)].concat(), all);

    // A cursor does not fix the page size.
    let bigger = get_ok(&app, &format!("/products?limit=100&cursor={cursor}")).await;
    assert_eq!(ids(&bigger), all[6..]);
    let smaller = get_ok(&app, &format!("/products?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&smaller), all[6..8]);
    assert!(next_cursor(&smaller).is_some());

    // A page by skip gives a cursor too, to go on from there.
    let by_skip = get_ok(&app, "/products?skip=3&limit=3").await;
    let next = next_cursor(&by_skip).expect("a cursor after a skip page");
    let after = get_ok(&app, &format!("/products?limit=3&cursor={next}")).await;
    assert_eq!(ids(&after), all[6..9]);

    // gRPC callers get it as next_cursor.
    let mut client = CatalogServiceClient::new(app.grpc_channel().await);
    let page = client
        .list_products(pb::ListProductsRequest {
            limit: Some(6),
            cursor: Some(cursor),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.products.len(), 6);
    assert_eq!(page.next_cursor, None);
}

#[tokio::test]
async fn skip_is_bounded_with_an_error_that_points_to_the_cursor() {
    let app = spawn_app().await;
    app.insert_product("Only product", 1000, 0.0, 5).await;

    // skip + limit = 10,000: the deepest page by skip.
    let deepest = get_ok(&app, "/products?skip=9990&limit=10").await;
    assert_eq!(deepest["total"], 1);
    assert_eq!(deepest["skip"], 9990);

    for path in [
        "/products?skip=9991&limit=10",
        "/products?skip=900000",
        "/products/search?q=product&skip=10000",
        "/products/category/smartphones?skip=9999&limit=2",
    ] {
        let body = assert_error(app.get(path).await, 400, "VALIDATION_ERROR").await;
        let skip = body["details"]["skip"][0].as_str().unwrap_or_default();
        assert!(
            skip.contains("10000") && skip.contains("cursor"),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn a_garbage_cursor_is_a_validation_error() {
    let app = spawn_app().await;
    for n in 0..4 {
        app.insert_product(&format!("Product {n}"), 1000, 0.0, 5)
            .await;
    }
    let good = next_cursor(&get_ok(&app, "/products?limit=2").await).unwrap();
    let mut flipped = good.clone().into_bytes();
    let n = flipped.len() / 2;
    flipped[n] = if flipped[n] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for cursor in [
        "garbage".to_owned(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        "%25%25%25".to_owned(),
        good[..good.len() - 3].to_owned(),
        flipped,
        "A".repeat(5000),
    ] {
        let path = format!("/products?limit=2&cursor={cursor}");
        let body = assert_error(app.get(&path).await, 400, "VALIDATION_ERROR").await;
        assert!(
            body["details"]["cursor"][0]
                .as_str()
                .is_some_and(|m| m.contains("not a cursor")),
            "{path}: {body}"
        );
    }
    // An empty cursor is no cursor (a client passing back an absent nextCursor).
    assert_eq!(
        ids(&get_ok(&app, "/products?limit=2&cursor=").await).len(),
        2
    );
}

#[tokio::test]
async fn a_cursor_of_another_query_or_with_skip_is_refused() {
    let app = spawn_app().await;
    catalog(&app).await;
    let cursor = next_cursor(&get_ok(&app, "/products?limit=2&sortBy=price").await).unwrap();

    for path in [
        "/products?sortBy=title",
        "/products?sortBy=price&order=desc",
        "/products?sortBy=price&brand=Apple",
        "/products?sortBy=price&minPrice=1",
        "/products?sortBy=price&inStock=true",
        "/products",
        "/products/search?q=zephyr&sortBy=price",
        "/products/category/smartphones?sortBy=price",
    ] {
        let url = with(path, &format!("cursor={cursor}"));
        let body = assert_error(app.get(&url).await, 400, "VALIDATION_ERROR").await;
        assert!(
            body["details"]["cursor"][0]
                .as_str()
                .is_some_and(|m| m.contains("another query")),
            "{url}: {body}"
        );
    }
    // A search's cursor is bound to its text, a category's to its category.
    let search = next_cursor(&get_ok(&app, "/products/search?q=zephyr&limit=2").await).unwrap();
    assert_error(
        app.get(&format!("/products/search?q=lamp&cursor={search}"))
            .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    let category =
        next_cursor(&get_ok(&app, "/products/category/smartphones?limit=2").await).unwrap();
    assert_error(
        app.get(&format!("/products/category/laptops?cursor={category}"))
            .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;

    // Same query, another page size: fine. With skip (even 0): refused.
    get_ok(
        &app,
        &format!("/products?limit=5&sortBy=price&cursor={cursor}"),
    )
    .await;
    let body = assert_error(
        app.get(&format!("/products?skip=0&sortBy=price&cursor={cursor}"))
            .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(body["details"]["skip"][0].is_string(), "{body}");
}

//! Faults under a running application: what keeps answering, and how it recovers.
//! The policies are written down in docs/RELIABILITY.md.

mod common;

use std::time::{Duration, Instant};

use common::redis_server::PrivateRedis;
use common::{json, spawn_app_with};

/// Redis stopped while serving: catalog reads answer from PostgreSQL within the store's
/// deadline, and once Redis is back the cache fills again without a restart.
#[tokio::test]
async fn catalog_reads_survive_redis_going_down_and_the_cache_recovers() {
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let app = spawn_app_with(&["--redis-url", &url]).await;
    app.seed_catalog(3).await;

    let before = json(app.get("/products/1").await).await;
    assert_eq!(before["id"], 1);
    assert_eq!(
        redis.keys("*catalog:product:1").await.len(),
        1,
        "the read filled the cache"
    );

    redis.stop();
    for path in ["/products/1", "/products?limit=2", "/products/categories"] {
        let started = Instant::now();
        let response = app.get(path).await;
        assert_eq!(response.status().as_u16(), 200, "{path} with Redis down");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path} took {:?}",
            started.elapsed()
        );
        if path == "/products/1" {
            assert_eq!(
                json(response).await,
                before,
                "the same product, from PostgreSQL"
            );
        }
    }

    redis.restart().await;
    assert!(redis.keys("*").await.is_empty(), "a fresh, empty Redis");
    // The pool reconnects on its own; the first reads after the restart may still fail over.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(app.get("/products/1").await.status().as_u16(), 200);
        if redis.keys("*catalog:product:1").await.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the cache never filled again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

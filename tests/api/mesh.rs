//! Mesh mode: the catalog service in one process (the test's), the edge in another (the real
//! `ecom` binary, `ecom edge --upstream catalog=...`), talking gRPC over loopback.

use crate::common;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{KillOnDrop, assert_error, free_port, json};
use ecom::clock::Clock;
use ecom::config::{ServiceName, Settings};
use ecom::server::{Application, Mode};

/// A fresh database's URL, and an events stream of its own.
fn fresh_database() -> (String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    (
        format!("postgres://postgres@127.0.0.1:5432/ecom_test_{id}"),
        format!("ECOM_TEST_{}", id.to_uppercase()),
    )
}

/// The settings of one services process on `database_url`, its events through `nats_url`
/// (empty: in-process) on `stream`.
fn process_settings(database_url: &str, nats_url: &str, stream: &str) -> Settings {
    let mut settings = Settings::for_tests(&[
        "--nats-url",
        nats_url,
        "--events-stream",
        stream,
        "--host",
        "127.0.0.1",
        "--grpc-port",
        "0",
        "--database-url",
        database_url,
        "--jwt-secret",
        common::TEST_JWT_SECRET,
        "--seed-demo-data",
        "false",
    ])
    .unwrap();
    settings.validate().unwrap();
    settings
}

/// Without NATS each process hands the outbox to its own event consumers and marks every
/// event delivered: a process running only some services would mark events delivered that
/// the others' consumers never saw. It refuses to start, and says why.
#[tokio::test]
async fn a_process_of_some_services_without_nats_refuses_to_start() {
    let (database_url, _) = fresh_database();
    for (services, missing) in [
        (vec![ServiceName::Catalog], "orders, users"),
        (
            vec![ServiceName::Auth, ServiceName::Payments],
            "catalog, orders, users",
        ),
    ] {
        let mode = Mode::Services {
            services,
            edge: false,
        };
        let settings = process_settings(&database_url, "", "ECOM_EVENTS");
        let err = match Application::build(settings, mode, Clock::system()).await {
            Ok(_) => panic!("started without NATS"),
            Err(err) => format!("{err:#}"),
        };
        assert!(err.contains("NATS_URL is not set"), "{err}");
        assert!(err.contains(&format!("does not run {missing}")), "{err}");
    }
}

#[tokio::test]
async fn the_catalog_serves_through_a_separate_edge_process() {
    // The catalog alone, on a fresh database, without an edge of its own.
    let (database_url, stream) = fresh_database();
    // A process running some services relays its events through NATS (see above).
    let settings = process_settings(&database_url, common::NATS_URL, &stream);
    let mode = Mode::Services {
        services: vec![ServiceName::Catalog],
        edge: false,
    };
    let catalog = Application::build(settings, mode, Clock::system())
        .await
        .unwrap();
    assert!(
        catalog.rest_addr().is_none(),
        "no edge in a services-only process"
    );
    let grpc = catalog.grpc_addr().unwrap();
    let stop = catalog.shutdown_handle();
    tokio::spawn(catalog.run_until_stopped());
    let db = sqlx::PgPool::connect(&database_url).await.unwrap();
    ecom::catalog::seed::seed_demo_catalog(&db, 30)
        .await
        .unwrap();

    // The edge as its own process; other services point at a port where nothing listens.
    let port = free_port();
    let edge = std::process::Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args(["edge", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--upstream")
        .arg(format!("catalog=http://{grpc}"))
        .args(["--default-upstream", "http://127.0.0.1:1"])
        .env("JWT_SECRET", common::TEST_JWT_SECRET)
        .env("RATE_LIMIT_ENABLED", "false")
        .env("LOG_LEVEL", "warn")
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .spawn()
        .expect("ecom binary starts");
    let _edge = KillOnDrop(edge);

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let mut up = false;
    for _ in 0..100 {
        if client
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the edge process did not come up");

    let product = json(
        client
            .get(format!("{base}/products/1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(product["id"], 1);
    let page = json(
        client
            .get(format!("{base}/products?limit=5"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page["products"].as_array().unwrap().len(), 5);

    // A service that is not running: 503 for its routes only, in the contract's shape.
    let down = client
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_error(down, 503, "SERVICE_UNAVAILABLE").await;
    let still = client
        .get(format!("{base}/products/categories"))
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200);

    let _ = stop.send(true);
}

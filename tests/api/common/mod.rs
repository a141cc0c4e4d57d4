//! The test harness: `spawn_app()` starts the real application (REST edge and gRPC server, all
//! services in one process) on free ports, against a fresh PostgreSQL database and its own Redis
//! key prefix, so tests run in parallel without seeing each other.
//!
//! Logs are quiet unless `TEST_LOG` is set (`TEST_LOG=debug cargo test`).

use std::sync::LazyLock;

use ecom::clock::Clock;
use ecom::config::{ServiceName, Settings};
use ecom::server::{Application, Mode};
use ecom::tokens::{Role, Tokens};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::watch;
use tonic::transport::Channel;

/// The signing key of test tokens.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
/// Ids of the users test tokens are minted for.
pub const ADMIN_ID: i64 = 1;
pub const USER_ID: i64 = 2;
pub const OTHER_USER_ID: i64 = 3;

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if let Ok(level) = std::env::var("TEST_LOG") {
        let filter = if level.is_empty() {
            "info".to_owned()
        } else {
            level
        };
        ecom::telemetry::init_subscriber(ecom::telemetry::get_subscriber(
            &filter,
            ecom::config::LogFormat::Pretty,
        ));
    }
});

/// A running application and typed helpers to call it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT` (no base path).
    pub origin: String,
    /// `http://127.0.0.1:PORT/api/v1`.
    pub api: String,
    /// `http://127.0.0.1:GRPC_PORT` (empty for an edge alone, see [`TestApp::spawn_edge_over`]).
    pub grpc: String,
    pub db: PgPool,
    pub db_name: String,
    /// The PostgreSQL server `db` connects to (without a database name).
    pub db_server: String,
    pub redis_prefix: String,
    pub client: reqwest::Client,
    pub tokens: Tokens,
    pub clock: Clock,
    /// What this instance was started with, so [`TestApp::spawn_sibling`] can start another.
    settings: Settings,
    shutdown: watch::Sender<bool>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// The base PostgreSQL URL of test databases (without a database name).
fn postgres_base() -> String {
    std::env::var("TEST_DATABASE_BASE")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// The Redis the tests share (each with its own key prefix).
/// The machine's NATS server with JetStream (scripts/services.sh starts it).
pub const NATS_URL: &str = "nats://127.0.0.1:4222";

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Starts the application with default test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the application with extra settings flags (e.g. `["--rate-limit-max-requests", "4"]`).
pub async fn spawn_app_with(extra: &[&str]) -> TestApp {
    spawn_app_via(&postgres_base(), extra).await
}

/// Like [`spawn_app_with`], the application reaching PostgreSQL at `postgres` (for example
/// through a [`tcp_proxy::TcpProxy`]); the test's own `db` pool still connects directly.
pub async fn spawn_app_via(postgres: &str, extra: &[&str]) -> TestApp {
    let (db_name, redis_prefix) = fresh_names();
    let settings = test_settings(postgres, &db_name, &redis_prefix, extra);
    spawn_with_settings(
        settings,
        db_name,
        postgres_base(),
        Clock::fixed(chrono::Utc::now()),
        Mode::all(),
    )
    .await
}

/// A new test database name and Redis key prefix, unique to one test.
fn fresh_names() -> (String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    (format!("ecom_test_{id}"), format!("ecom-test:{id}:"))
}

/// The settings of a test instance on database `db_name` (at the server `postgres`) and Redis
/// key prefix `redis_prefix`: the test defaults, then `extra` flags (a flag given again
/// overrides the default).
fn test_settings(postgres: &str, db_name: &str, redis_prefix: &str, extra: &[&str]) -> Settings {
    LazyLock::force(&TRACING);
    // `postgres` may carry connection options (`...:5432?sslmode=disable`): they follow the name.
    let database_url = match postgres.split_once('?') {
        Some((server, options)) => format!("{server}/{db_name}?{options}"),
        None => format!("{postgres}/{db_name}"),
    };
    let redis = redis_url();
    // The machine's NATS, on a stream of this test's own (its database's name), kept an hour.
    let stream = db_name.to_uppercase();
    let mut args = vec![
        "--nats-url",
        NATS_URL,
        "--events-stream",
        &stream,
        "--events-max-age",
        "1h",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--grpc-port",
        "0",
        "--database-url",
        &database_url,
        "--redis-url",
        &redis,
        "--redis-key-prefix",
        redis_prefix,
        "--jwt-secret",
        TEST_JWT_SECRET,
        "--rate-limit-enabled",
        "false",
        "--seed-demo-data",
        "false",
        "--database-pool-size",
        "5",
        "--app-env",
        "test",
        // Webhook receivers in tests listen on loopback (webhooks::, phase2::).
        "--webhook-allow-private",
        "true",
    ];
    args.extend_from_slice(extra);
    let mut settings = Settings::for_tests(&args).expect("test settings parse");
    settings.validate().expect("test settings are valid");
    settings
}

async fn spawn_with_settings(
    settings: Settings,
    db_name: String,
    db_server: String,
    clock: Clock,
    mode: Mode,
) -> TestApp {
    let services = matches!(mode, Mode::Services { .. });
    let app = Application::build(settings.clone(), mode, clock.clone())
        .await
        .expect("application starts");
    let rest = app.rest_addr().expect("edge runs");
    let grpc = app
        .grpc_addr()
        .map(|addr| format!("http://{addr}"))
        .unwrap_or_default();
    assert_eq!(services, !grpc.is_empty(), "gRPC runs where services run");
    let shutdown = app.shutdown_handle();
    tokio::spawn(app.run_until_stopped());

    let db = PgPool::connect(&format!("{db_server}/{db_name}"))
        .await
        .expect("test database reachable");
    let tokens = Tokens::new(
        settings.jwt_secret(),
        &settings.jwt_issuer,
        &settings.jwt_audience,
        settings.jwt_expires_in,
        clock.clone(),
    );
    TestApp {
        origin: format!("http://{rest}"),
        api: format!("http://{rest}{}", settings.api_base_path),
        grpc,
        db,
        db_name,
        db_server,
        // What the application uses, also when a test overrode it with `--redis-key-prefix`.
        redis_prefix: settings.redis_key_prefix.clone(),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client"),
        tokens,
        clock,
        settings,
        shutdown,
    }
}

impl TestApp {
    /// A second instance of this deployment: its own REST edge and gRPC server on new ports,
    /// the same settings, the SAME database and Redis key prefix (so the same rate-limit
    /// counters, token deny-list, caches and idempotency keys) and the same clock, as two
    /// `ecom serve` processes behind a load balancer share PostgreSQL, Redis and wall time.
    pub async fn spawn_sibling(&self) -> TestApp {
        self.spawn_sibling_on_grpc_port(0).await
    }

    /// [`TestApp::spawn_sibling`] with its gRPC server on `port` (0: any free one), e.g. the
    /// port of an instance that stopped, to bring it back where an edge expects it.
    pub async fn spawn_sibling_on_grpc_port(&self, port: u16) -> TestApp {
        let mut settings = self.settings.clone();
        settings.grpc_port = port;
        spawn_with_settings(
            settings,
            self.db_name.clone(),
            self.db_server.clone(),
            self.clock.clone(),
            Mode::all(),
        )
        .await
    }

    /// A REST edge alone (`ecom edge`) in front of the gRPC servers of `instances`, every
    /// service balanced over all of them, with this instance's settings (so the same Redis
    /// prefix for rate limits) and clock. Its `grpc` is empty: it runs no services.
    pub async fn spawn_edge_over(&self, instances: &[&TestApp]) -> TestApp {
        let urls: Vec<String> = instances.iter().map(|app| app.grpc.clone()).collect();
        assert!(urls.iter().all(|url| !url.is_empty()), "upstreams run gRPC");
        let upstreams = ServiceName::ALL
            .into_iter()
            .map(|service| (service, urls.clone()))
            .collect();
        spawn_with_settings(
            self.settings.clone(),
            self.db_name.clone(),
            self.db_server.clone(),
            self.clock.clone(),
            Mode::Edge { upstreams },
        )
        .await
    }

    /// An access token of the admin (id [`ADMIN_ID`]).
    pub fn admin_token(&self) -> String {
        self.tokens
            .mint(ADMIN_ID, "admin@ecom.test", Role::Admin, None)
            .0
    }

    /// An access token of a customer (id [`USER_ID`]).
    pub fn user_token(&self) -> String {
        self.tokens
            .mint(USER_ID, "user@ecom.test", Role::User, None)
            .0
    }

    /// An access token of another customer (id [`OTHER_USER_ID`]).
    pub fn other_user_token(&self) -> String {
        self.tokens
            .mint(OTHER_USER_ID, "other@ecom.test", Role::User, None)
            .0
    }

    /// A request to `path` under the API base path, with a bearer token when given.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.api));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// GET without a token.
    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path, None)
            .send()
            .await
            .expect("request sent")
    }

    /// GET with a token.
    pub async fn get_as(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token))
            .send()
            .await
            .expect("request sent")
    }

    /// POST a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        self.request(Method::POST, path, token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// PUT a JSON body.
    pub async fn put_json(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        self.request(Method::PUT, path, token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// DELETE.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::DELETE, path, token)
            .send()
            .await
            .expect("request sent")
    }

    /// A gRPC channel to the application's gRPC port.
    pub async fn grpc_channel(&self) -> Channel {
        Channel::from_shared(self.grpc.clone())
            .expect("valid url")
            .connect()
            .await
            .expect("gRPC server reachable")
    }

    /// Seeds the deterministic demo catalog with `products` products.
    /// Inserts a product with an exact price (cents), discount (percent) and stock, behind
    /// the service's back (nothing cached yet can hold it); returns its id.
    pub async fn insert_product(
        &self,
        title: &str,
        price_cents: i64,
        discount: f64,
        stock: i32,
    ) -> i64 {
        sqlx::query("INSERT INTO categories (slug, name) VALUES ('smartphones', 'Smartphones') ON CONFLICT DO NOTHING")
            .execute(&self.db)
            .await
            .expect("category");
        sqlx::query_scalar(
            r#"INSERT INTO products (title, description, price_cents, discount_percentage, stock, category_id, thumbnail)
               VALUES ($1, 'A product made by a test.', $2, $3::float8::numeric, $4,
                       (SELECT id FROM categories WHERE slug = 'smartphones'), 'https://cdn.example.com/t.jpg')
               RETURNING id"#,
        )
        .bind(title)
        .bind(price_cents)
        .bind(discount)
        .bind(stock)
        .fetch_one(&self.db)
        .await
        .expect("product inserted")
    }

    pub async fn seed_catalog(&self, products: usize) {
        ecom::catalog::seed::seed_demo_catalog(&self.db, products)
            .await
            .expect("catalog seeds");
    }
}

/// A `tonic::Request` carrying a bearer token.
pub fn authorized<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    request
}

/// Reads a response as JSON, failing with the body when it is not.
pub async fn json(response: Response) -> Value {
    let status = response.status();
    let text = response.text().await.expect("body read");
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text}"))
}

/// The ids of a product page (`{"products": [...]}`), in order.
pub fn ids(page: &Value) -> Vec<i64> {
    page["products"]
        .as_array()
        .expect("products array")
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect()
}

/// Asserts the contract's error shape and returns the body.
pub async fn assert_error(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let body = json(response).await;
    assert_eq!(body["status"], status, "body.status: {body}");
    assert_eq!(body["code"], code, "body.code: {body}");
    assert!(body["message"].is_string(), "body.message: {body}");
    body
}

// Identity helpers (tests/api/common/identity.rs, tests/api/common/smtp.rs).
pub mod fake_stripe;
/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process (an `ecom` binary) killed when the test ends, whatever happens.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The text of every page of a PDF, as an independent parser reads it.
pub fn pdf_text(bytes: &[u8]) -> String {
    let doc = lopdf::Document::load_mem(bytes).expect("a PDF lopdf can parse");
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    assert!(!pages.is_empty(), "the PDF has pages");
    doc.extract_text(&pages).expect("text extracted")
}

pub mod identity;
pub mod redis_cluster;
pub mod redis_server;
pub mod replica;
pub mod smtp;
pub mod tcp_proxy;

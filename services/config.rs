//! Configuration: every setting of ecom, read from flags, the environment and a `.env` file
//! (in that order of precedence), each under its documented environment name (the README's
//! Configuration table).
//!
//! This module owns parsing and the start-up checks that refuse an unsafe production
//! configuration. It must never log a secret: secrets are kept in [`secrecy::SecretString`].

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

/// The JWT secret used when none is configured outside production. Logged as a warning.
const DEV_JWT_SECRET: &str = "ecom-development-secret-do-not-use-in-production";

/// `ecom`: the backend of an online shop.
#[derive(Debug, Parser)]
#[command(name = "ecom", version, about, long_about = None, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

/// What to run; `serve` when none is given.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run services and the REST edge in one process (default: all services).
    Serve {
        /// Comma-separated services to run (auth,catalog,orders,users,payments); the edge is
        /// started only when all services run here, unless --edge is given.
        #[arg(long, value_delimiter = ',')]
        services: Vec<ServiceName>,
        /// Also serve the REST edge when only some services run here.
        #[arg(long)]
        edge: bool,
    },
    /// Run the REST edge alone, forwarding to remote services.
    Edge {
        /// `service=url[,url...]`, e.g. `catalog=http://127.0.0.1:50052`; repeatable.
        /// Services with no upstream are reached at --default-upstream.
        #[arg(long = "upstream", value_parser = parse_upstream)]
        upstreams: Vec<(ServiceName, Vec<String>)>,
        /// Where services without an explicit --upstream run.
        #[arg(long)]
        default_upstream: Option<String>,
    },
    /// Create the database if missing and apply migrations.
    Migrate,
    /// Account administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Apply migrations and seed the demo catalog when it is empty.
    Seed {
        /// Number of products to generate (deterministic; up to 1,000,000).
        #[arg(long, default_value_t = DEFAULT_SEED_PRODUCTS)]
        products: usize,
    },
}

/// `ecom admin ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin account, or make an existing account an admin with this password.
    Create {
        /// The admin's email.
        #[arg(long)]
        email: String,
        /// The admin's password (same rules as registration).
        #[arg(long)]
        password: SecretString,
    },
}

/// The five services of ecom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum ServiceName {
    Auth,
    Catalog,
    Orders,
    Users,
    Payments,
}

impl ServiceName {
    /// All services, in start-up order.
    pub const ALL: [ServiceName; 5] = [
        ServiceName::Auth,
        ServiceName::Catalog,
        ServiceName::Orders,
        ServiceName::Users,
        ServiceName::Payments,
    ];

    /// The name `--services` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Auth => "auth",
            ServiceName::Catalog => "catalog",
            ServiceName::Orders => "orders",
            ServiceName::Users => "users",
            ServiceName::Payments => "payments",
        }
    }

    /// The fully-qualified gRPC service name.
    pub fn grpc_name(self) -> &'static str {
        match self {
            ServiceName::Auth => "ecom.auth.v1.AuthService",
            ServiceName::Catalog => "ecom.catalog.v1.CatalogService",
            ServiceName::Orders => "ecom.orders.v1.OrdersService",
            ServiceName::Users => "ecom.users.v1.UsersService",
            ServiceName::Payments => "ecom.payments.v1.PaymentsService",
        }
    }
}

fn parse_upstream(s: &str) -> Result<(ServiceName, Vec<String>), String> {
    let (name, urls) = s
        .split_once('=')
        .ok_or_else(|| format!("expected service=url, got `{s}`"))?;
    let service = ServiceName::from_str(name, true)?;
    let urls: Vec<String> = urls.split(',').map(str::to_owned).collect();
    if urls
        .iter()
        .any(|u| !u.starts_with("http://") && !u.starts_with("https://"))
    {
        return Err(format!(
            "upstream urls must start with http:// or https://: `{s}`"
        ));
    }
    Ok((service, urls))
}

/// Deployment environment; production turns on the strict start-up checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AppEnv {
    Development,
    Test,
    Staging,
    Production,
}

/// What `GET /products/categories` answers (slug names, or DummyJSON's objects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum CategoriesFormat {
    /// A bare array of slugs (the default; what older DummyJSON frontends read).
    #[default]
    Names,
    /// A bare array of `{slug, name, url}` (current DummyJSON frontends).
    Objects,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Every setting. Flags win over the environment, which wins over `.env`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Settings (flag or environment variable)")]
pub struct Settings {
    /// Deployment environment (NODE_ENV is read too, for the contract's name).
    #[arg(
        long,
        env = "APP_ENV",
        value_enum,
        default_value = "development",
        global = true
    )]
    pub app_env: AppEnv,
    /// Address the REST edge and gRPC server bind to.
    #[arg(long, env = "HOST", default_value = "0.0.0.0", global = true)]
    pub host: IpAddr,
    /// REST edge port (0 picks a free port).
    #[arg(long, env = "PORT", default_value_t = 3000, global = true)]
    pub port: u16,
    /// gRPC port (gRPC, gRPC-Web, reflection and health).
    #[arg(long, env = "GRPC_PORT", default_value_t = 50051, global = true)]
    pub grpc_port: u16,
    /// Base path of the REST API.
    #[arg(long, env = "API_BASE_PATH", default_value = "/api/v1", global = true)]
    pub api_base_path: String,
    /// PostgreSQL connection string; the database is created when missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/ecom",
        hide_env_values = true,
        global = true
    )]
    pub database_url: SecretString,
    /// Maximum PostgreSQL connections per process.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 20, global = true)]
    pub database_pool_size: u32,
    /// PostgreSQL streaming replicas for reads, comma-separated connection strings (optional).
    /// Catalog and history reads go to a healthy one; writes, and reads of a caller who
    /// just wrote that the replicas have not replayed yet, go to DATABASE_URL.
    #[arg(
        long,
        env = "DATABASE_READ_URLS",
        value_delimiter = ',',
        hide_env_values = true,
        global = true
    )]
    pub database_read_urls: Vec<SecretString>,
    /// How far behind the primary a replica may fall before reads leave it, e.g. 5s.
    #[arg(long, env = "DATABASE_READ_MAX_LAG", default_value = "5s", value_parser = parse_duration, global = true)]
    pub database_read_max_lag: Duration,
    /// Redis connection string; unset runs cache, rate limits and the token deny-list in-process.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, global = true)]
    pub redis_url: Option<SecretString>,
    /// One Redis server (`standalone`), or a Redis Cluster whose REDIS_URL lists seed nodes,
    /// comma-separated (`cluster`).
    #[arg(
        long,
        env = "REDIS_MODE",
        value_enum,
        default_value_t = RedisMode::Standalone,
        global = true
    )]
    pub redis_mode: RedisMode,
    /// Redis password, when not part of REDIS_URL.
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true, global = true)]
    pub redis_password: Option<SecretString>,
    /// Prefix of every Redis key, so deployments and test runs can share one Redis.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "ecom:", global = true)]
    pub redis_key_prefix: String,
    /// Size of the in-process first cache tier in front of Redis, in MiB (0 turns it off).
    /// It stays correct across instances through announcements on Redis (see cache.rs).
    #[arg(long, env = "CACHE_LOCAL_MAX_MB", default_value_t = 64, global = true)]
    pub cache_local_max_mb: u64,
    /// HS256 signing key of access tokens (at least 32 bytes; required in production).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<SecretString>,
    /// Access token lifetime, e.g. 15m, 1h.
    #[arg(long, env = "JWT_EXPIRES_IN", default_value = "15m", value_parser = parse_duration, global = true)]
    pub jwt_expires_in: Duration,
    /// Refresh token lifetime, e.g. 7d.
    #[arg(long, env = "JWT_REFRESH_EXPIRES_IN", default_value = "7d", value_parser = parse_duration, global = true)]
    pub jwt_refresh_expires_in: Duration,
    /// Issuer (`iss`) of access tokens.
    #[arg(long, env = "JWT_ISSUER", default_value = "ecom", global = true)]
    pub jwt_issuer: String,
    /// Audience (`aud`) of access tokens.
    #[arg(long, env = "JWT_AUDIENCE", default_value = "ecom-api", global = true)]
    pub jwt_audience: String,
    /// Comma-separated origins allowed by CORS (exact match; `*` refused in production).
    #[arg(
        long,
        env = "CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "http://localhost:5173,http://localhost:3000",
        global = true
    )]
    pub cors_origins: Vec<String>,
    /// Largest accepted upload, in bytes.
    #[arg(long, env = "UPLOAD_MAX_SIZE", default_value_t = 5 * 1024 * 1024, global = true)]
    pub upload_max_size: usize,
    /// Largest accepted JSON body, in bytes.
    #[arg(long, env = "BODY_MAX_SIZE", default_value_t = 1024 * 1024, global = true)]
    pub body_max_size: usize,
    /// Folder uploaded files are written to.
    #[arg(long, env = "UPLOAD_DIR", default_value = "./uploads", global = true)]
    pub upload_dir: String,
    /// Public base URL of product pictures and uploaded files; unset: ecom serves them itself,
    /// under PUBLIC_URL.
    #[arg(long, env = "CDN_URL", global = true)]
    pub cdn_url: Option<String>,
    /// The base URL clients reach the edge at (absolute image and category URLs are built on it).
    #[arg(
        long,
        env = "PUBLIC_URL",
        default_value = "http://localhost:3000",
        global = true
    )]
    pub public_url: String,
    /// Most products one `limit=0` page answers (DummyJSON's "all items").
    #[arg(long, env = "LIST_ALL_MAX", default_value_t = 1000, global = true)]
    pub list_all_max: u32,
    /// What GET /products/categories answers: `names` (a bare array of slugs) or `objects`
    /// (DummyJSON's `{slug, name, url}`).
    #[arg(
        long,
        env = "CATEGORIES_FORMAT",
        value_enum,
        default_value = "names",
        global = true
    )]
    pub categories_format: CategoriesFormat,
    /// Rate limiting on or off (off for benchmarks and load tests).
    #[arg(long, env = "RATE_LIMIT_ENABLED", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub rate_limit_enabled: bool,
    /// Window of the per-group limits, in milliseconds.
    #[arg(
        long = "rate-limit-window-ms",
        env = "RATE_LIMIT_WINDOW_MS",
        default_value = "60000",
        value_parser = parse_millis,
        global = true
    )]
    pub rate_limit_window: Duration,
    /// Requests per window for /products/* (and the default for unlisted groups).
    #[arg(
        long,
        env = "RATE_LIMIT_MAX_REQUESTS",
        default_value_t = 100,
        global = true
    )]
    pub rate_limit_max_requests: u64,
    /// Requests per window for /orders/* and /cart*.
    #[arg(
        long,
        env = "RATE_LIMIT_ORDERS_MAX",
        default_value_t = 30,
        global = true
    )]
    pub rate_limit_orders_max: u64,
    /// Requests per window for /payments/*.
    #[arg(
        long,
        env = "RATE_LIMIT_PAYMENTS_MAX",
        default_value_t = 10,
        global = true
    )]
    pub rate_limit_payments_max: u64,
    /// POST /auth/login per client address per 15 minutes.
    #[arg(long, env = "RATE_LIMIT_LOGIN_MAX", default_value_t = 5, global = true)]
    pub rate_limit_login_max: u64,
    /// POST /auth/register per client address per hour.
    #[arg(
        long,
        env = "RATE_LIMIT_REGISTER_MAX",
        default_value_t = 3,
        global = true
    )]
    pub rate_limit_register_max: u64,
    /// POST /auth/forgot-password per client address per hour.
    #[arg(
        long,
        env = "RATE_LIMIT_FORGOT_MAX",
        default_value_t = 3,
        global = true
    )]
    pub rate_limit_forgot_max: u64,
    /// Comma-separated proxy addresses whose X-Forwarded-For is believed.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', global = true)]
    pub trusted_proxies: Vec<IpAddr>,
    /// Deadline of every call from the edge to a service, in milliseconds.
    #[arg(
        long = "upstream-timeout-ms",
        env = "UPSTREAM_TIMEOUT_MS",
        default_value = "10000",
        value_parser = parse_millis,
        global = true
    )]
    pub upstream_timeout: Duration,
    /// On SIGTERM, how long /ready answers 503 while requests are still served, so that load
    /// balancers stop sending new ones before the listeners close, e.g. 1s.
    #[arg(long, env = "SHUTDOWN_DRAIN", default_value = "1s", value_parser = parse_duration, global = true)]
    pub shutdown_drain: Duration,
    /// After the drain, how long in-flight requests may take before the process exits anyway.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration, global = true)]
    pub shutdown_grace: Duration,
    /// Strict-Transport-Security max-age in seconds; unset sends no HSTS header.
    #[arg(long, env = "HSTS_MAX_AGE", value_parser = parse_seconds, global = true)]
    pub hsts_max_age: Option<Duration>,
    /// Log filter (tracing env-filter syntax), e.g. info, debug, ecom=debug.
    #[arg(long, env = "LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,
    /// Log format.
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "pretty",
        global = true
    )]
    pub log_format: LogFormat,
    /// Answer searches from the catalog's in-memory search index (built from PostgreSQL at
    /// start-up and kept up to date; services/catalog/search_index.rs) instead of PostgreSQL's
    /// full text alone. Off: the SQL search (the benches compare the two).
    #[arg(long, env = "SEARCH_INDEX", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub search_index: bool,
    /// Seed the demo catalog at start-up when the database has no products.
    #[arg(long, env = "SEED_DEMO_DATA", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub seed_demo_data: bool,

    // Identity (auth and users services): mail, lockout, the bootstrap admin, deletion.
    /// SMTP server of outgoing mail; unset logs mails instead of sending them (not in production).
    #[arg(long, env = "SMTP_HOST", global = true)]
    pub smtp_host: Option<String>,
    /// SMTP port.
    #[arg(long, env = "SMTP_PORT", default_value_t = 587, global = true)]
    pub smtp_port: u16,
    /// SMTP user name.
    #[arg(long, env = "SMTP_USER", hide_env_values = true, global = true)]
    pub smtp_user: Option<SecretString>,
    /// SMTP password.
    #[arg(long, env = "SMTP_PASS", hide_env_values = true, global = true)]
    pub smtp_pass: Option<SecretString>,
    /// SMTP transport security.
    #[arg(
        long,
        env = "SMTP_TLS",
        value_enum,
        default_value = "starttls",
        global = true
    )]
    pub smtp_tls: SmtpTls,
    /// Sender address of outgoing mail.
    #[arg(
        long,
        env = "EMAIL_FROM",
        default_value = "ecom <no-reply@ecom.local>",
        global = true
    )]
    pub email_from: String,
    /// Public URL of the shop's frontend; password reset links point there (never at the Host header).
    #[arg(
        long,
        env = "FRONTEND_URL",
        default_value = "http://localhost:5173",
        global = true
    )]
    pub frontend_url: String,
    /// Failed logins of one account within the window that lock it.
    #[arg(
        long,
        env = "LOGIN_LOCKOUT_THRESHOLD",
        default_value_t = 5,
        global = true
    )]
    pub login_lockout_threshold: i32,
    /// Window in which failed logins are counted, e.g. 15m.
    #[arg(long, env = "LOGIN_LOCKOUT_WINDOW", default_value = "15m", value_parser = parse_duration, global = true)]
    pub login_lockout_window: Duration,
    /// How long a locked account stays locked, e.g. 15m.
    #[arg(long, env = "LOGIN_LOCKOUT_DURATION", default_value = "15m", value_parser = parse_duration, global = true)]
    pub login_lockout_duration: Duration,
    /// Longest access token a client may ask for with `expiresInMins` (DummyJSON), in minutes.
    #[arg(
        long,
        env = "JWT_MAX_EXPIRES_IN_MINS",
        default_value_t = 60,
        global = true
    )]
    pub jwt_max_expires_in_mins: u32,
    /// Grace period of a deleted account before its personal data is purged, e.g. 30d.
    #[arg(long, env = "ACCOUNT_DELETION_GRACE", default_value = "30d", value_parser = parse_duration, global = true)]
    pub account_deletion_grace: Duration,
    /// First retry delay of a failed webhook delivery, doubling up to 1 h, e.g. 5s.
    #[arg(long, env = "WEBHOOK_RETRY_BASE", default_value = "5s", value_parser = parse_duration, global = true)]
    pub webhook_retry_base: Duration,
    /// Whether webhook URLs may reach loopback, private or link-local addresses. Off: an admin
    /// account must not make the server call into its own network (services/https.rs). Tests
    /// and local receivers turn it on.
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub webhook_allow_private: bool,
    /// Email of an admin account ensured at start-up (with ADMIN_PASSWORD).
    #[arg(long, env = "ADMIN_EMAIL", global = true)]
    pub admin_email: Option<String>,
    /// Password of the ADMIN_EMAIL account.
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true, global = true)]
    pub admin_password: Option<SecretString>,

    // Domain events (services/events).
    /// NATS server with JetStream that carries the domain events, e.g. nats://127.0.0.1:4222.
    /// Unset: each process hands its outbox to its own consumers (one machine, no broker).
    #[arg(long, env = "NATS_URL", global = true)]
    pub nats_url: Option<String>,
    /// JetStream stream of the domain events (its subjects are `<name>.<event type>`), so
    /// deployments and test runs can share one NATS server.
    #[arg(
        long,
        env = "EVENTS_STREAM",
        default_value = "ECOM_EVENTS",
        global = true
    )]
    pub events_stream: String,
    /// How long the stream keeps an event, e.g. 7d.
    #[arg(long, env = "EVENTS_MAX_AGE", default_value = "7d", value_parser = parse_duration, global = true)]
    pub events_max_age: Duration,
    /// Stock at or below which a product's fall raises an inventory alert (once per crossing).
    #[arg(long, env = "LOW_STOCK_THRESHOLD", default_value_t = 5, global = true)]
    pub low_stock_threshold: i32,

    // Commerce: orders, carts and payments (services/orders, services/payments).
    /// Tax rate of a location without a row in the `tax_rates` table (and of a cart priced
    /// before an address is known), applied to the discounted subtotal, e.g. 0.08 for 8 %.
    #[arg(long, env = "TAX_RATE", default_value_t = 0.08, global = true)]
    pub tax_rate: f64,
    /// Shipping estimated for a cart priced before an address is known, below the
    /// free-shipping threshold, in currency units (orders use the `shipping_rates` table).
    #[arg(long, env = "SHIPPING_FLAT_FEE", default_value_t = 9.99, global = true)]
    pub shipping_flat_fee: f64,
    /// Discounted subtotal from which shipping is free, in currency units.
    #[arg(
        long,
        env = "FREE_SHIPPING_THRESHOLD",
        default_value_t = 100.0,
        global = true
    )]
    pub free_shipping_threshold: f64,
    /// Days after delivery during which a return may be requested.
    #[arg(
        long,
        env = "RETURN_WINDOW_DAYS",
        default_value_t = DEFAULT_RETURN_WINDOW_DAYS,
        global = true
    )]
    pub return_window_days: u32,
    /// Seller's name on invoices.
    #[arg(
        long,
        env = "SELLER_NAME",
        default_value = DEFAULT_SELLER_NAME,
        global = true
    )]
    pub seller_name: String,
    /// Seller's postal address on invoices, lines separated by `;`.
    #[arg(
        long,
        env = "SELLER_ADDRESS",
        default_value = DEFAULT_SELLER_ADDRESS,
        global = true
    )]
    pub seller_address: String,
    /// Payment provider: sandbox (local, Stripe's test payment methods; default) or stripe.
    #[arg(
        long,
        env = "PAYMENT_PROVIDER",
        value_enum,
        default_value_t = PaymentProviderKind::Sandbox,
        global = true
    )]
    pub payment_provider: PaymentProviderKind,
    /// Stripe secret API key (PAYMENT_PROVIDER=stripe).
    #[arg(long, env = "STRIPE_SECRET_KEY", hide_env_values = true, global = true)]
    pub stripe_secret_key: Option<SecretString>,
    /// Secret that signs Stripe webhook events (Stripe-Signature).
    #[arg(
        long,
        env = "STRIPE_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub stripe_webhook_secret: Option<SecretString>,
    /// Base URL of the Stripe API (a fake server in tests).
    #[arg(
        long,
        env = "STRIPE_API_BASE",
        default_value = "https://api.stripe.com",
        global = true
    )]
    pub stripe_api_base: String,
    /// How long one call to Stripe may take before it counts as unavailable (503), e.g. 15s.
    #[arg(long, env = "STRIPE_TIMEOUT", default_value = "15s", value_parser = parse_duration, global = true)]
    pub stripe_timeout: Duration,
    /// Where the orders service reaches the catalog service over gRPC; unset: in-process.
    #[arg(long, env = "CATALOG_URL", global = true)]
    pub catalog_url: Option<String>,
    /// Where the payments service reaches the orders service over gRPC; unset: in-process.
    #[arg(long, env = "ORDERS_URL", global = true)]
    pub orders_url: Option<String>,
    /// Where the orders service reaches the payments service over gRPC; unset: in-process.
    #[arg(long, env = "PAYMENTS_URL", global = true)]
    pub payments_url: Option<String>,
}

/// Which payment provider moves the money (PAYMENT_PROVIDER).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PaymentProviderKind {
    /// Decided locally from Stripe's test payment methods (`pm_card_visa`); no network.
    Sandbox,
    /// Stripe's Payment Intents API (needs STRIPE_SECRET_KEY).
    Stripe,
}

/// What REDIS_URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RedisMode {
    /// One server (or a proxy in front of several).
    Standalone,
    /// A Redis Cluster: REDIS_URL lists seed nodes, the client follows the slot map.
    Cluster,
}

/// How the mail sender secures its SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption (loopback test servers only).
    #[value(name = "none")]
    Plain,
}

impl Settings {
    /// Reads `.env` (when present) into the environment, then parses flags and variables.
    pub fn cli_from_env() -> Cli {
        // A missing .env is the normal case; a malformed one is worth stopping for.
        if let Err(e) = dotenvy::dotenv()
            && !e.not_found()
        {
            eprintln!("error: could not read .env: {e}");
            std::process::exit(2);
        }
        // NODE_ENV is the contract's name for APP_ENV.
        if std::env::var_os("APP_ENV").is_none()
            && let Ok(node_env) = std::env::var("NODE_ENV")
        {
            // Changing the environment is unsafe in edition 2024, so hand the value to clap
            // as a flag instead (global flags may come before the subcommand).
            let mut args: Vec<String> = std::env::args().collect();
            args.insert(1, format!("--app-env={}", node_env.to_lowercase()));
            return Cli::parse_from(args);
        }
        Cli::parse()
    }

    /// Refuses configurations that are unsafe in production; fills development defaults.
    pub fn validate(&mut self) -> anyhow::Result<()> {
        let production = self.app_env == AppEnv::Production;
        match &self.jwt_secret {
            Some(secret) if secret.expose_secret().len() < 32 => {
                if production {
                    bail!("JWT_SECRET must be at least 32 bytes in production");
                }
                tracing::warn!("JWT_SECRET is shorter than 32 bytes");
            }
            Some(_) => {}
            None if production => bail!("JWT_SECRET must be set in production"),
            None => {
                tracing::warn!("JWT_SECRET is not set: using the development secret");
                self.jwt_secret = Some(SecretString::from(DEV_JWT_SECRET));
            }
        }
        if production && self.cors_origins.iter().any(|o| o.trim() == "*") {
            bail!("CORS_ORIGINS must list exact origins in production, not `*`");
        }
        if !self.api_base_path.starts_with('/') || self.api_base_path.ends_with('/') {
            bail!("API_BASE_PATH must start with `/` and not end with one");
        }
        for (name, url) in [
            ("PUBLIC_URL", Some(&self.public_url)),
            ("CDN_URL", self.cdn_url.as_ref()),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                bail!("{name} must be an absolute http(s) URL, got `{url}`");
            }
        }
        if self.list_all_max == 0 {
            bail!("LIST_ALL_MAX must be at least 1");
        }
        Ok(())
    }

    /// The JWT signing key (after [`Settings::validate`]).
    pub fn jwt_secret(&self) -> &SecretString {
        self.jwt_secret
            .as_ref()
            .expect("validate() fills the development secret")
    }

    /// Where product pictures are: CDN_URL when set, else ecom's own `GET <api>/media/...`
    /// under PUBLIC_URL. No trailing slash.
    pub fn media_base(&self) -> String {
        match &self.cdn_url {
            Some(cdn) => cdn.trim_end_matches('/').to_owned(),
            None => format!(
                "{}{}/media",
                self.public_url.trim_end_matches('/'),
                self.api_base_path
            ),
        }
    }

    /// Which addresses webhook deliveries may go to (WEBHOOK_ALLOW_PRIVATE).
    pub fn webhook_targets(&self) -> crate::https::Targets {
        if self.webhook_allow_private {
            crate::https::Targets::Any
        } else {
            crate::https::Targets::PublicOnly
        }
    }

    /// Where uploaded files (avatars) are: CDN_URL when set, else ecom's own `/uploads`
    /// under PUBLIC_URL. No trailing slash.
    pub fn uploads_base(&self) -> String {
        match &self.cdn_url {
            Some(cdn) => cdn.trim_end_matches('/').to_owned(),
            None => format!("{}/uploads", self.public_url.trim_end_matches('/')),
        }
    }

    /// The absolute URL of the REST API's base (categories' `url` is built on it).
    pub fn api_url(&self) -> String {
        format!(
            "{}{}",
            self.public_url.trim_end_matches('/'),
            self.api_base_path
        )
    }

    /// True in production mode.
    pub fn is_production(&self) -> bool {
        self.app_env == AppEnv::Production
    }

    /// Parses settings for tests from an explicit argument list (no environment, no .env).
    pub fn for_tests(args: &[&str]) -> anyhow::Result<Settings> {
        let mut all = vec!["ecom"];
        all.extend_from_slice(args);
        let cli = Cli::try_parse_from(all).context("parsing test settings")?;
        Ok(cli.settings)
    }
}

/// The size of the demo catalog (SEED_DEMO_DATA, `ecom seed`).
pub const DEFAULT_SEED_PRODUCTS: usize = 240;
/// SELLER_NAME's default: the seller on invoices. The one source for every default seller.
pub const DEFAULT_SELLER_NAME: &str = "ecom Store Inc.";
/// SELLER_ADDRESS's default, lines separated by `;` (see [`address_lines`]).
pub const DEFAULT_SELLER_ADDRESS: &str = "123 Commerce Street;New York, NY 10001;USA";
/// RETURN_WINDOW_DAYS's default.
pub const DEFAULT_RETURN_WINDOW_DAYS: u32 = 30;

/// The lines of a `;`-separated postal address (SELLER_ADDRESS), trimmed, empty ones dropped.
pub fn address_lines(s: &str) -> Vec<String> {
    s.split(';')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses a whole number of milliseconds (the settings documented in ms, e.g.
/// UPSTREAM_TIMEOUT_MS=10000) into a duration.
pub fn parse_millis(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse()
        .map(Duration::from_millis)
        .map_err(|_| format!("`{s}` is not a whole number of milliseconds"))
}

/// Parses a whole number of seconds (the settings documented in seconds, e.g.
/// HSTS_MAX_AGE=31536000) into a duration.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse()
        .map(Duration::from_secs)
        .map_err(|_| format!("`{s}` is not a whole number of seconds"))
}

/// Parses `900`, `900s`, `15m`, `1h`, `7d` into a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 15m, 1h or 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use s, m, h or d)")),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_millis("10000"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("60"), Ok(Duration::from_secs(60)));
        assert!(parse_millis("10s").is_err());
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("15x").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn production_refuses_missing_or_short_secret_and_wildcard_cors() {
        let mut s = Settings::for_tests(&["--app-env", "production"]).unwrap();
        assert!(s.validate().unwrap_err().to_string().contains("JWT_SECRET"));

        let mut s =
            Settings::for_tests(&["--app-env", "production", "--jwt-secret", "short"]).unwrap();
        assert!(s.validate().unwrap_err().to_string().contains("32 bytes"));

        let secret = "x".repeat(32);
        let mut s = Settings::for_tests(&[
            "--app-env",
            "production",
            "--jwt-secret",
            &secret,
            "--cors-origins",
            "*",
        ])
        .unwrap();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("CORS_ORIGINS")
        );
    }

    #[test]
    fn the_payment_provider_is_sandbox_by_default_and_one_of_two() {
        let s = Settings::for_tests(&[]).unwrap();
        assert_eq!(s.payment_provider, PaymentProviderKind::Sandbox);
        let s = Settings::for_tests(&["--payment-provider", "stripe"]).unwrap();
        assert_eq!(s.payment_provider, PaymentProviderKind::Stripe);
        let err = format!(
            "{:#}",
            Settings::for_tests(&["--payment-provider", "paypal"]).unwrap_err()
        );
        assert!(
            err.contains("paypal") && err.contains("sandbox, stripe"),
            "{err}"
        );
    }

    #[test]
    fn development_fills_a_secret() {
        let mut s = Settings::for_tests(&[]).unwrap();
        s.validate().unwrap();
        assert!(s.jwt_secret().expose_secret().len() >= 32);
    }
}

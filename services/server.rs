//! The composition root: builds every service, their transports, the gRPC server and its layer
//! stack, and the REST edge ([`crate::edge`]) from [`Settings`],
//! and runs them until a shutdown signal.
//!
//! One process can run all five services and the edge (the default), some services only
//! (`ecom serve --services catalog`), or the edge alone in front of remote services
//! (`ecom edge --upstream catalog=http://...`). The code above the channel is the same in each
//! case: the edge reaches a service in the same process through its tower stack (no socket),
//! and a remote one through a tonic `Channel`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower::util::BoxCloneSyncService;

use crate::accounts::profiles::Profiles;
use crate::authn::{Authenticate, AuthenticateLayer, Authenticator};
use crate::cache::Cache;
use crate::catalog::{CatalogServer, CatalogService};
use crate::clock::Clock;
use crate::config::{PaymentProviderKind, ServiceName, Settings};
use crate::db::consistency::{ReadYourWrites, ReadYourWritesLayer};
use crate::edge::{self, EdgeDeps};
use crate::grpc_metrics::{GrpcMetrics, GrpcMetricsLayer};
use crate::kv::Kv;
use crate::proto::ecom::auth::v1::auth_service_server::AuthServiceServer;
use crate::proto::ecom::orders::v1::orders_service_server::OrdersServiceServer;
use crate::proto::ecom::payments::v1::payments_service_server::PaymentsServiceServer;
use crate::proto::ecom::users::v1::users_service_server::UsersServiceServer;
use crate::readiness::Readiness;
use crate::tokens::Tokens;
use crate::{auth, balancer, db, internal, orders, payments, proto, telemetry, users};

/// What the process runs.
#[derive(Debug, Clone)]
pub enum Mode {
    /// These services on the gRPC port, and the edge in front of them when `edge` is true.
    Services {
        services: Vec<ServiceName>,
        edge: bool,
    },
    /// The edge alone; each service at its upstream addresses (several are balanced).
    Edge {
        upstreams: HashMap<ServiceName, Vec<String>>,
    },
}

impl Mode {
    /// Everything in one process.
    pub fn all() -> Mode {
        Mode::Services {
            services: ServiceName::ALL.to_vec(),
            edge: true,
        }
    }
}

/// A running ecom process: its addresses and the tasks serving them.
pub struct Application {
    rest_addr: Option<SocketAddr>,
    grpc_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    draining: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

/// The connections and helpers this process builds once from settings, from which the
/// composition root hands each service exactly what it uses. Private: no service sees it.
#[derive(Clone)]
struct Runtime {
    settings: Arc<Settings>,
    /// The primary; `database` adds the read replicas, for the services' reads.
    db: PgPool,
    database: db::Database,
    kv: Kv,
    cache: Cache,
    tokens: Tokens,
    authenticator: Authenticator,
    clock: Clock,
}

impl Runtime {
    /// Connects the pools (lazily) from settings.
    fn new(settings: Settings, clock: Clock) -> anyhow::Result<Runtime> {
        let database = db::database(
            &settings.database_url,
            &settings.database_read_urls,
            settings.database_pool_size,
            settings.database_read_max_lag,
        )?;
        let kv = match &settings.redis_url {
            Some(url) => Kv::redis(
                url,
                settings.redis_mode,
                settings.redis_password.as_ref(),
                &settings.redis_key_prefix,
            )?,
            None => {
                tracing::info!(
                    "REDIS_URL is not set: cache, rate limits and token deny-list run in-process"
                );
                Kv::memory(&settings.redis_key_prefix)
            }
        };
        let tokens = Tokens::new(
            settings.jwt_secret(),
            &settings.jwt_issuer,
            &settings.jwt_audience,
            settings.jwt_expires_in,
            clock.clone(),
        );
        Ok(Runtime {
            authenticator: Authenticator::new(tokens.clone(), kv.clone()),
            cache: Cache::with_local_tier(kv.clone(), settings.cache_local_max_mb << 20),
            settings: Arc::new(settings),
            db: database.primary().clone(),
            database,
            kv,
            tokens,
            clock,
        })
    }

    /// The edge's share of the runtime.
    fn edge_deps(&self) -> EdgeDeps<'_> {
        EdgeDeps {
            settings: &self.settings,
            kv: &self.kv,
            tokens: &self.tokens,
            authenticator: &self.authenticator,
        }
    }
}

impl Runtime {
    /// The read-consistency layer of every gRPC stack (db::consistency).
    fn read_your_writes(&self) -> ReadYourWritesLayer {
        ReadYourWrites::layer(self.database.clone(), self.kv.clone())
    }
}

impl Application {
    /// Prepares the database (when services run here), binds the ports and starts serving.
    pub async fn build(
        settings: Settings,
        mode: Mode,
        clock: Clock,
    ) -> anyhow::Result<Application> {
        let metrics = telemetry::prometheus_handle();
        let shared = Runtime::new(settings, clock)?;
        let settings = shared.settings.clone();
        let (shutdown, stop) = watch::channel(false);
        // Set first on SIGTERM: /ready answers 503 while requests are still served.
        let (draining, drain) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut grpc_addr = None;
        let mut rest_addr = None;

        match mode {
            Mode::Services { services, edge } => {
                // Checked first: a process that would lose events does not start at all.
                let broker = event_broker(&settings);
                let consumers = event_consumers(&shared, &services, &broker)?;
                db::migrate(&settings.database_url).await?;
                if settings.seed_demo_data && services.contains(&ServiceName::Catalog) {
                    crate::catalog::seed::seed_demo_catalog(
                        &shared.db,
                        crate::config::DEFAULT_SEED_PRODUCTS,
                    )
                    .await
                    .context("seeding the demo catalog")?;
                }
                // Identity: accounts that must exist, and the background jobs of auth and users.
                if services.contains(&ServiceName::Auth) || services.contains(&ServiceName::Users) {
                    identity_start(&shared, &services, &stop).await?;
                }
                // Built only where orders or payments run: a catalog-only process
                // needs no payment provider settings.
                let commerce = if services.contains(&ServiceName::Orders)
                    || services.contains(&ServiceName::Payments)
                {
                    Some(commerce(&shared)?)
                } else {
                    None
                };
                let grpc = grpc_services(&shared, &services, commerce.as_ref());
                shared.cache.listen(stop.clone()).await;
                tokio::spawn(shared.database.clone().monitor(stop.clone()));
                tokio::spawn(crate::events::run(
                    shared.db.clone(),
                    broker,
                    consumers,
                    stop.clone(),
                ));
                tokio::spawn(commerce_sweeper(
                    shared.clone(),
                    services.clone(),
                    commerce,
                    stop.clone(),
                ));
                let listener = TcpListener::bind((settings.host, settings.grpc_port))
                    .await
                    .with_context(|| format!("binding the gRPC port {}", settings.grpc_port))?;
                grpc_addr = Some(listener.local_addr()?);
                tasks.push(tokio::spawn(serve_grpc(
                    listener,
                    grpc.routes,
                    shared.clone(),
                    services.clone(),
                    (drain.clone(), stop.clone()),
                )));

                if edge {
                    // Each service behind the layers the gRPC server has.
                    let upstreams = grpc
                        .each
                        .into_iter()
                        .map(|(name, server)| {
                            let local = service_layers(&shared).service(server);
                            (name, transcoder::Upstream::in_process(local))
                        })
                        .collect();
                    let listener = edge::bind(&settings).await?;
                    rest_addr = Some(listener.local_addr()?);
                    let readiness =
                        Readiness::local(shared.db.clone(), shared.kv.clone(), drain.clone());
                    let app = edge::router(shared.edge_deps(), upstreams, metrics, readiness)?;
                    tasks.push(tokio::spawn(edge::serve(listener, app, stop.clone())));
                }
            }
            Mode::Edge { upstreams } => {
                let mut map = Vec::new();
                for (service, urls) in upstreams {
                    map.push((
                        service.grpc_name(),
                        transcoder::Upstream::channel(balancer::channel(
                            service,
                            &urls,
                            stop.clone(),
                        )?),
                    ));
                }
                let listener = edge::bind(&settings).await?;
                rest_addr = Some(listener.local_addr()?);
                let readiness = Readiness::edge(drain.clone());
                let app = edge::router(shared.edge_deps(), map, metrics, readiness)?;
                tasks.push(tokio::spawn(edge::serve(listener, app, stop.clone())));
            }
        }
        tokio::spawn(telemetry::pool_gauges(shared.db.clone(), stop));
        Ok(Application {
            rest_addr,
            grpc_addr,
            shutdown,
            draining,
            tasks,
        })
    }

    /// Where the REST edge listens, when this process runs it.
    pub fn rest_addr(&self) -> Option<SocketAddr> {
        self.rest_addr
    }

    /// Where the gRPC server listens, when this process runs services.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_addr
    }

    /// A handle that stops the servers gracefully when sent `true`: the listeners close,
    /// in-flight requests finish.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// A handle that marks the process as draining when sent `true`: /ready answers 503
    /// (and stays so), everything else is served as before. See `ecom serve`'s SIGTERM.
    pub fn drain_handle(&self) -> watch::Sender<bool> {
        self.draining.clone()
    }

    /// Serves until every server has stopped (after a shutdown signal or an error).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        for task in self.tasks {
            task.await.context("server task panicked")??;
        }
        Ok(())
    }
}

/// Identity start-up: checks the mail settings, ensures ADMIN_EMAIL, seeds the demo users
/// (never in production), and spawns the mail sender and the account purge job.
async fn identity_start(
    shared: &Runtime,
    services: &[ServiceName],
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let settings = &shared.settings;
    crate::mail::check_settings(settings)?;
    // Computed now, so the first login of an unknown email is not slower than the others.
    crate::accounts::password::dummy_hash().await;
    if let (Some(email), Some(password)) = (&settings.admin_email, &settings.admin_password) {
        crate::auth::seed::ensure_admin(&shared.db, email, password)
            .await
            .context("ensuring ADMIN_EMAIL")?;
    }
    if settings.seed_demo_data && !settings.is_production() {
        crate::auth::seed::seed_demo_users(&shared.db)
            .await
            .context("seeding demo users")?;
    }
    if services.contains(&ServiceName::Auth) {
        tokio::spawn(crate::mail::run_sender(
            shared.db.clone(),
            settings.clone(),
            stop.clone(),
        ));
    }
    if services.contains(&ServiceName::Users) {
        tokio::spawn(users::run_purge(
            shared.db.clone(),
            shared.clock.clone(),
            settings.account_deletion_grace,
            Duration::from_secs(3600),
            stop.clone(),
        ));
        // Every instance sends webhooks; claims keep them from sending the same delivery.
        let sender = users::WebhookSender::new(
            shared.db.clone(),
            settings.webhook_retry_base,
            settings.webhook_targets(),
        )
        .context("building the webhook client")?;
        tokio::spawn(users::run_webhook_sender(sender, stop.clone()));
    }
    Ok(())
}

/// Where domain events go (NATS_URL, EVENTS_STREAM, EVENTS_MAX_AGE).
fn event_broker(settings: &Settings) -> crate::events::Broker {
    crate::events::Broker {
        // An empty NATS_URL is unset (so a flag can turn the broker off).
        nats_url: settings
            .nats_url
            .clone()
            .filter(|url| !url.trim().is_empty()),
        stream: settings.events_stream.clone(),
        max_age: settings.events_max_age,
    }
}

/// The domain-event consumers of the services this process runs. Each is durable under its
/// name and shared by every instance that runs it (services/events).
///
/// Without NATS the relay hands each outbox row to this process's consumers and then marks it
/// delivered, so a process that lacks some of them would mark events delivered that those
/// consumers never saw: such a process refuses to start (mesh deployments set `NATS_URL`).
fn event_consumers(
    shared: &Runtime,
    services: &[ServiceName],
    broker: &crate::events::Broker,
) -> anyhow::Result<Vec<Arc<dyn crate::events::Consumer>>> {
    if broker.nats_url.is_none() {
        let missing: Vec<&str> = ServiceName::ALL
            .iter()
            .filter(|s| !services.contains(s) && !service_consumers(shared, **s).is_empty())
            .map(|s| s.as_str())
            .collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "NATS_URL is not set, so this process would deliver domain events to its own \
                 consumers only, and it does not run {}: set NATS_URL (a JetStream server) when \
                 services run in separate processes",
                missing.join(", ")
            );
        }
    }
    Ok(services
        .iter()
        .flat_map(|s| service_consumers(shared, *s))
        .collect())
}

/// The event consumers of one service.
fn service_consumers(
    shared: &Runtime,
    service: ServiceName,
) -> Vec<Arc<dyn crate::events::Consumer>> {
    match service {
        ServiceName::Orders => vec![
            Arc::new(orders::OrderMails::new(shared.db.clone())),
            Arc::new(orders::StockAlertMails),
        ],
        ServiceName::Catalog => vec![Arc::new(crate::catalog::PurchasesConsumer::new(
            shared.cache.clone(),
        ))],
        ServiceName::Users => users::consumers(),
        ServiceName::Auth | ServiceName::Payments => Vec::new(),
    }
}

/// The gRPC services this process runs, plus reflection and health.
fn grpc_services(
    shared: &Runtime,
    services: &[ServiceName],
    commerce: Option<&Commerce>,
) -> GrpcServices {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor set is valid");
    let mut grpc = GrpcServices {
        routes: Routes::new(reflection),
        each: Vec::new(),
    };
    // Auth and users write the same profile cache through.
    let profiles = Profiles::new(shared.db.clone(), shared.cache.clone());
    for service in services {
        grpc = match (service, commerce) {
            (ServiceName::Auth, _) => grpc.add_service(AuthServiceServer::new(auth::AuthApi::new(
                shared.db.clone(),
                shared.kv.clone(),
                profiles.clone(),
                shared.tokens.clone(),
                shared.authenticator.clone(),
                shared.clock.clone(),
                auth::AuthSettings::from_settings(&shared.settings),
            ))),
            (ServiceName::Catalog, _) => {
                let mut catalog = CatalogService::new(
                    shared.database.clone(),
                    shared.cache.clone(),
                    crate::catalog::CatalogConfig::from_settings(&shared.settings),
                )
                .with_clock(shared.clock.clone());
                // One index per process, for the catalog that serves requests (the orders'
                // in-process catalog never searches). It follows the primary, where every
                // change lands first.
                if shared.settings.search_index {
                    match crate::catalog::SearchIndex::new() {
                        Ok(index) => {
                            index.follow(shared.db.clone());
                            catalog = catalog.with_search_index(index);
                        }
                        Err(err) => tracing::error!(
                            error = format!("{err:#}"),
                            "no search index: searches use PostgreSQL's full text"
                        ),
                    }
                }
                grpc.add_service(CatalogServer::new(catalog))
            }
            (ServiceName::Orders, Some(commerce)) => {
                grpc.add_service(OrdersServiceServer::new(commerce.orders.clone()))
            }
            (ServiceName::Users, _) => {
                grpc.add_service(UsersServiceServer::new(users::UsersApi::new(
                    shared.database.clone(),
                    profiles.clone(),
                    shared.authenticator.clone(),
                    shared.clock.clone(),
                    users::UsersSettings::from_settings(&shared.settings),
                )))
            }
            (ServiceName::Payments, Some(commerce)) => {
                grpc.add_service(PaymentsServiceServer::new(commerce.payments.clone()))
            }
            (ServiceName::Orders | ServiceName::Payments, None) => {
                unreachable!("commerce is built when orders or payments run")
            }
        };
    }
    grpc
}

/// A generated tonic server of this process, boxed, for the edge's in-process calls.
type LocalServer = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    std::convert::Infallible,
>;

/// The gRPC services of this process: all of them behind tonic's router (the gRPC port), and
/// each by itself under its full name, for the edge in this process. The edge knows which
/// service an RPC belongs to, so its calls skip the router (its path match and the two body
/// boxings of its axum router); with the edge's own unary call that took a cached product
/// from 76,522 to 68,251 instructions per request (docs/BENCHMARKS.md).
struct GrpcServices {
    routes: Routes,
    each: Vec<(&'static str, LocalServer)>,
}

impl GrpcServices {
    fn add_service<S>(mut self, server: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.each
            .push((S::NAME, BoxCloneSyncService::new(server.clone())));
        self.routes = self.routes.add_service(server);
        self
    }
}

/// The type of [`service_layers`]' stack (tower names the innermost layer first).
type ServiceLayers = Stack<
    ReadYourWritesLayer,
    Stack<
        AuthenticateLayer,
        Stack<GrpcMetricsLayer, Stack<transcoder::layers::GrpcCatchPanic, Identity>>,
    >,
>;

/// The layers around every gRPC service of this process, on the gRPC port and for the edge
/// in this process alike, top to bottom.
fn service_layers(shared: &Runtime) -> ServiceBuilder<ServiceLayers> {
    ServiceBuilder::new()
        // A panicking handler answers INTERNAL instead of leaving its stream open.
        .layer(transcoder::layers::GrpcCatchPanic::layer())
        .layer(GrpcMetrics::layer())
        .layer(Authenticate::layer(shared.authenticator.clone()))
        // Inside authentication: it reads the caller.
        .layer(shared.read_your_writes())
}

/// The orders and payments services, which call each other: each reaches the
/// other at its URL (ORDERS_URL, PAYMENTS_URL) or in this process, through a
/// [`internal::Late`] transport bound once both exist. `links` holds those
/// bindings: keep it as long as the services serve.
struct Commerce {
    orders: orders::OrdersService,
    payments: payments::PaymentsService,
    links: (internal::Late, internal::Late),
}

fn commerce(shared: &Runtime) -> anyhow::Result<Commerce> {
    let settings = &shared.settings;
    let to_orders = internal::Late::new();
    let to_payments = internal::Late::new();
    let orders_transport = match &settings.orders_url {
        Some(url) => internal::remote(url, "ORDERS_URL")?,
        None => to_orders.transport(),
    };
    let payments_transport = match &settings.payments_url {
        Some(url) => internal::remote(url, "PAYMENTS_URL")?,
        None => to_payments.transport(),
    };
    let orders = orders_service(
        shared,
        orders::Payments::new(payments_transport, shared.tokens.clone()),
    )?;
    let payments = payments_service(
        shared,
        payments::Orders::new(orders_transport, shared.tokens.clone()),
    )?;
    to_orders.bind(internal::in_process(
        OrdersServiceServer::new(orders.clone()),
        shared.authenticator.clone(),
        shared.read_your_writes(),
    ));
    to_payments.bind(internal::in_process(
        PaymentsServiceServer::new(payments.clone()),
        shared.authenticator.clone(),
        shared.read_your_writes(),
    ));
    Ok(Commerce {
        orders,
        payments,
        links: (to_orders, to_payments),
    })
}

/// The orders service, reaching the catalog in this process or at CATALOG_URL.
fn orders_service(
    shared: &Runtime,
    payments: orders::Payments,
) -> anyhow::Result<orders::OrdersService> {
    let settings = &shared.settings;
    let catalog_transport = match &settings.catalog_url {
        Some(url) => internal::remote(url, "CATALOG_URL")?,
        None => internal::in_process(
            CatalogServer::new(
                CatalogService::new(
                    shared.database.clone(),
                    shared.cache.clone(),
                    crate::catalog::CatalogConfig::from_settings(&shared.settings),
                )
                .with_clock(shared.clock.clone()),
            ),
            shared.authenticator.clone(),
            shared.read_your_writes(),
        ),
    };
    let catalog = orders::Catalog::new(catalog_transport, shared.tokens.clone());
    let cents = |v: f64, name: &str| {
        crate::money::from_wire_non_negative(v)
            .with_context(|| format!("{name} must be an amount in currency units"))
    };
    let pricing = orders::domain::PricingRules {
        fallback_tax: orders::domain::TaxRate::from_fraction(settings.tax_rate)
            .context("TAX_RATE must be a fraction between 0 and 1")?,
        shipping_fee_cents: cents(settings.shipping_flat_fee, "SHIPPING_FLAT_FEE")?,
        free_shipping_threshold_cents: cents(
            settings.free_shipping_threshold,
            "FREE_SHIPPING_THRESHOLD",
        )?,
    };
    let after_sales = orders::AfterSales {
        seller: orders::invoice::Seller {
            name: settings.seller_name.trim().to_owned(),
            address: crate::config::address_lines(&settings.seller_address),
        },
        return_window_days: settings.return_window_days,
    };
    Ok(orders::OrdersService::new(
        shared.database.clone(),
        catalog,
        payments,
        shared.clock.clone(),
        pricing,
    )
    .with_after_sales(after_sales))
}

/// The payments service with the configured provider (PAYMENT_PROVIDER).
fn payments_service(
    shared: &Runtime,
    orders: payments::Orders,
) -> anyhow::Result<payments::PaymentsService> {
    let settings = &shared.settings;
    let provider: Arc<dyn payments::provider::PaymentProvider> = match settings.payment_provider {
        PaymentProviderKind::Sandbox => Arc::new(payments::provider::Sandbox),
        PaymentProviderKind::Stripe => {
            let key = settings
                .stripe_secret_key
                .clone()
                .context("PAYMENT_PROVIDER=stripe needs STRIPE_SECRET_KEY")?;
            Arc::new(payments::provider::Stripe::new(
                &settings.stripe_api_base,
                key,
                settings.stripe_timeout,
            )?)
        }
    };
    Ok(payments::PaymentsService::new(
        shared.db.clone(),
        shared.clock.clone(),
        provider,
        settings.stripe_webhook_secret.clone(),
        orders,
    ))
}

/// Every minute: the catalog releases expired stock reservations, the orders
/// service reconciles orders whose reservation commit was not confirmed, and
/// idempotency keys older than 24 hours are purged. Holds the links between
/// orders and payments (`commerce.links`) until the shutdown.
async fn commerce_sweeper(
    shared: Runtime,
    services: Vec<ServiceName>,
    commerce: Option<Commerce>,
    mut stop: watch::Receiver<bool>,
) {
    let orders = commerce
        .as_ref()
        .filter(|_| services.contains(&ServiceName::Orders))
        .map(|commerce| commerce.orders.clone());
    let _links = commerce.as_ref().map(|commerce| &commerce.links);
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = shared.clock.now();
        if services.contains(&ServiceName::Catalog)
            && let Err(err) =
                crate::catalog::reservations::release_expired(&shared.db, &shared.cache, now).await
        {
            tracing::warn!(error = ?err, "releasing expired reservations");
        }
        if let Some(orders) = &orders {
            if let Err(err) = orders.reconcile().await {
                tracing::warn!(error = ?err, "reconciling orders");
            }
            if let Err(err) = crate::idempotency::purge(&shared.db, now).await {
                tracing::warn!(error = ?err, "purging idempotency keys");
            }
        }
    }
}

/// Serves gRPC (HTTP/2), gRPC-Web (HTTP/1.1) and health on `listener`.
async fn serve_grpc(
    listener: TcpListener,
    routes: Routes,
    shared: Runtime,
    services: Vec<ServiceName>,
    (mut drain, mut stop): (watch::Receiver<bool>, watch::Receiver<bool>),
) -> anyhow::Result<()> {
    // grpc.health.v1 answers SERVING for the services this process runs (others: NOT_FOUND),
    // and NOT_SERVING for all of them once it drains, so a health-checking balancer (ecom's
    // edge with several addresses) stops sending before the listener closes.
    let (reporter, health) = tonic_health::server::health_reporter();
    for service in &services {
        reporter
            .set_service_status(service.grpc_name(), tonic_health::ServingStatus::Serving)
            .await;
    }
    tokio::spawn(async move {
        if drain.wait_for(|d| *d).await.is_ok() {
            for service in &services {
                reporter
                    .set_service_status(
                        service.grpc_name(),
                        tonic_health::ServingStatus::NotServing,
                    )
                    .await;
            }
        }
    });
    let routes = routes.add_service(health);
    tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(service_layers(&shared))
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY, small unary responses wait on Nagle and delayed ACKs, which
            // set a floor under the gRPC p50 of benches/load.rs (docs/BENCHMARKS.md).
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        )
        .await
        .context("gRPC server failed")
}

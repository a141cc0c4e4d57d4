//! The `ecom` binary: `ecom serve` (default), `ecom edge`, `ecom migrate`, `ecom seed`.
//! `ecom --help` lists every setting with its environment variable.

#![forbid(unsafe_code)]

use std::collections::HashMap;

use anyhow::Context;
use ecom::clock::Clock;
use ecom::config::{AdminCommand, Command, ServiceName, Settings};
use ecom::server::{Application, Mode};
use ecom::telemetry::{get_subscriber, init_subscriber};

/// mimalloc instead of glibc's malloc: under load, glibc's allocator took about a tenth of a
/// cached read's CPU, part of it waiting on arena locks (perf over `benches/load.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        // The chain, once, without a backtrace: start-up errors are configuration problems.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Settings::cli_from_env();
    let mut settings = cli.settings;
    init_subscriber(get_subscriber(&settings.log_level, settings.log_format));
    settings.validate()?;

    let mode = match cli.command.unwrap_or(Command::Serve {
        services: Vec::new(),
        edge: false,
    }) {
        Command::Migrate => {
            ecom::db::migrate(&settings.database_url).await?;
            tracing::info!("migrations applied");
            return Ok(());
        }
        Command::Seed { products } => {
            let db = ecom::db::migrate(&settings.database_url).await?;
            ecom::catalog::seed::seed_demo_catalog(&db, products)
                .await
                .context("seeding the catalog")?;
            tracing::info!(products, "catalog seeded");
            return Ok(());
        }
        Command::Admin {
            command: AdminCommand::Create { email, password },
        } => {
            let db = ecom::db::migrate(&settings.database_url).await?;
            let id = ecom::auth::seed::ensure_admin(&db, &email, &password).await?;
            tracing::info!(id, %email, "admin account ready");
            return Ok(());
        }
        Command::Serve { services, edge } => {
            let all = services.is_empty() || ServiceName::ALL.iter().all(|s| services.contains(s));
            let services = if services.is_empty() {
                ServiceName::ALL.to_vec()
            } else {
                services
            };
            Mode::Services {
                services,
                edge: edge || all,
            }
        }
        Command::Edge {
            upstreams,
            default_upstream,
        } => {
            let mut map: HashMap<ServiceName, Vec<String>> = upstreams.into_iter().collect();
            for service in ServiceName::ALL {
                if let std::collections::hash_map::Entry::Vacant(slot) = map.entry(service) {
                    let url = default_upstream.clone().with_context(|| {
                        format!("no --upstream for {service:?} and no --default-upstream")
                    })?;
                    slot.insert(vec![url]);
                }
            }
            Mode::Edge { upstreams: map }
        }
    };

    let app = Application::build(settings.clone(), mode, Clock::system()).await?;
    if let Some(addr) = app.rest_addr() {
        tracing::info!("REST edge on http://{addr}{}", settings.api_base_path);
    }
    if let Some(addr) = app.grpc_addr() {
        tracing::info!("gRPC (reflection, health, gRPC-Web) on {addr}");
    }

    if settings.seed_demo_data && !settings.is_production() && app.grpc_addr().is_some() {
        for (email, username, _, _, role, password) in ecom::auth::seed::DEMO_USERS {
            tracing::info!("demo login ({role}): {email} or {username} / {password}");
        }
    }

    // SIGTERM: first not ready (load balancers stop sending), then the listeners close and
    // in-flight requests finish, and the process exits within the grace period regardless.
    let (shutdown, draining) = (app.shutdown_handle(), app.drain_handle());
    let (drain, grace) = (settings.shutdown_drain, settings.shutdown_grace);
    let (signalled, signal) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!(?drain, "shutting down: not ready, draining");
        let _ = draining.send(true);
        let _ = signalled.send(());
        tokio::time::sleep(drain).await;
        tracing::info!(
            ?grace,
            "closing the listeners, finishing in-flight requests"
        );
        let _ = shutdown.send(true);
    });
    let deadline = async {
        if signal.await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(drain + grace).await;
    };
    tokio::select! {
        stopped = app.run_until_stopped() => stopped,
        () = deadline => {
            tracing::warn!("grace period over: exiting with requests still in flight");
            Ok(())
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

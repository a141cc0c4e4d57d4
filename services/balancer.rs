//! The edge's connection to a remote service: a tonic `Channel` balanced over the service's
//! addresses, with a health prober that keeps only the addresses answering SERVING in
//! rotation. It knows nothing about the services behind it but their gRPC health names.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::config::ServiceName;

/// How often the edge checks each address of a service it balances over several.
const UPSTREAM_PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long one check may take before the address counts as down.
const UPSTREAM_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A balanced channel over `urls` of `service`; connections are made lazily, so the edge starts
/// before its services and reconnects by itself after a service restarts.
///
/// With several addresses, each is checked every [`UPSTREAM_PROBE_EVERY`] (the standard gRPC
/// health check of `service`) and only those answering SERVING stay in the balancer. tonic
/// keeps a dead address in rotation (its connection reports ready and then fails the call), so
/// without the checks a stopped instance would fail its share of requests with 503 for as long
/// as it stays down (measured: about one request in three of two instances). When no address
/// answers, every one stays in: the answer is 503 either way, and the first one back serves at
/// once.
pub fn channel(
    service: ServiceName,
    urls: &[String],
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Channel> {
    let endpoints = urls
        .iter()
        .map(|u| {
            Endpoint::from_shared(u.clone())
                .with_context(|| format!("invalid upstream url `{u}`"))
                .map(|e| {
                    e.connect_timeout(Duration::from_secs(1))
                        .tcp_nodelay(true)
                        .http2_keep_alive_interval(Duration::from_secs(30))
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if endpoints.len() < 2 {
        return Ok(Channel::balance_list(endpoints.into_iter()));
    }
    let (channel, changes) = Channel::balance_channel(2 * endpoints.len());
    for (key, endpoint) in endpoints.iter().enumerate() {
        changes
            .try_send(Change::Insert(key, endpoint.clone()))
            .context("filling the balancer")?;
    }
    tokio::spawn(probe_upstreams(service, endpoints, changes, stop));
    Ok(channel)
}

/// Keeps the balancer of `service` to the addresses that answer its health check (see
/// [`channel`]); ends with the edge, or when the channel is gone.
async fn probe_upstreams(
    service: ServiceName,
    endpoints: Vec<Endpoint>,
    changes: tokio::sync::mpsc::Sender<Change<usize, Endpoint>>,
    mut stop: watch::Receiver<bool>,
) {
    let probes: Vec<HealthClient<Channel>> = endpoints
        .iter()
        .map(|e| HealthClient::new(e.connect_lazy()))
        .collect();
    let mut in_rotation = vec![true; endpoints.len()];
    let mut tick = tokio::time::interval(UPSTREAM_PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let healthy =
            futures::future::join_all(probes.iter().map(|p| serving(p.clone(), service))).await;
        let none = !healthy.iter().any(|h| *h);
        for (key, healthy) in healthy.into_iter().enumerate() {
            let wanted = healthy || none;
            if wanted == in_rotation[key] {
                continue;
            }
            let uri = endpoints[key].uri();
            let change = if wanted {
                tracing::info!(service = service.grpc_name(), %uri, "upstream back in rotation");
                Change::Insert(key, endpoints[key].clone())
            } else {
                tracing::warn!(service = service.grpc_name(), %uri, "upstream down; out of rotation");
                Change::Remove(key)
            };
            if changes.send(change).await.is_err() {
                return;
            }
            in_rotation[key] = wanted;
        }
    }
}

/// Whether the health check of `service` at `probe` answers SERVING in time.
async fn serving(mut probe: HealthClient<Channel>, service: ServiceName) -> bool {
    let request = HealthCheckRequest {
        service: service.grpc_name().to_owned(),
    };
    matches!(
        tokio::time::timeout(UPSTREAM_PROBE_TIMEOUT, probe.check(request)).await,
        Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32
    )
}

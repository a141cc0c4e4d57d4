//! The edge's connection to a remote service: a tonic `Channel` balanced over the service's
//! addresses, with a health prober that keeps only the addresses answering SERVING in
//! rotation. It knows nothing about the services behind it but their gRPC health names.
//!
//! An upstream URL naming a host (not an IP address) is re-resolved every
//! [`RESOLVE_EVERY`], and each address it resolves to is balanced over on its own: behind a
//! Kubernetes headless Service (deploy/), DNS answers every ready pod, so the edge spreads its
//! calls over the pods and follows them as they come and go. One connection to the name would
//! pin every call of this edge to whichever pod it reached first.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use tokio::sync::watch;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::config::ServiceName;

/// How often the edge checks each address of a service it balances over several.
const UPSTREAM_PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long one check may take before the address counts as down.
const UPSTREAM_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often an upstream named by host is resolved again (Kubernetes' DNS caches for 5 s).
const RESOLVE_EVERY: Duration = Duration::from_secs(5);

/// A balanced channel over `urls` of `service`; connections are made lazily, so the edge starts
/// before its services and reconnects by itself after a service restarts.
///
/// One URL with an IP address is a plain channel. Otherwise each address (each URL, and each
/// address a host name resolves to) is checked every [`UPSTREAM_PROBE_EVERY`] (the standard
/// gRPC health check of `service`) and only those answering SERVING stay in the balancer. tonic
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
    let sources = urls
        .iter()
        .map(|u| {
            Endpoint::from_shared(u.clone())
                .with_context(|| format!("invalid upstream url `{u}`"))
                .map(configure)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let [only] = sources.as_slice()
        && host_to_resolve(only.uri()).is_none()
    {
        return Ok(Channel::balance_list(sources.into_iter()));
    }
    let (channel, changes) = Channel::balance_channel(64);
    let upstreams = Upstreams {
        service,
        sources,
        resolve: Box::new(|host, port| Box::pin(resolve(host, port))),
        resolve_every: RESOLVE_EVERY,
    };
    tokio::spawn(upstreams.maintain(changes, stop));
    Ok(channel)
}

/// The connection settings of every upstream address.
fn configure(endpoint: Endpoint) -> Endpoint {
    endpoint
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
}

/// The host and port to resolve when `uri` names a host over plaintext; `None` for an IP
/// address, and for `https` (its certificate names the host, so the name is kept).
fn host_to_resolve(uri: &Uri) -> Option<(String, u16)> {
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let host = uri.host()?;
    if host
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok()
    {
        return None;
    }
    Some((host.to_owned(), uri.port_u16().unwrap_or(80)))
}

/// The system resolver.
async fn resolve(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok(tokio::net::lookup_host((host.as_str(), port))
        .await?
        .collect())
}

/// Resolves a host and port to addresses.
type Resolve =
    Box<dyn Fn(String, u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> + Send + Sync>;

/// The upstream URLs of one service and how their names are resolved.
struct Upstreams {
    service: ServiceName,
    sources: Vec<Endpoint>,
    resolve: Resolve,
    resolve_every: Duration,
}

/// One address in the balancer's view.
struct Member {
    endpoint: Endpoint,
    probe: HealthClient<Channel>,
    in_rotation: bool,
}

impl Upstreams {
    /// Keeps the balancer of the service to the addresses its URLs name and that answer its
    /// health check (see [`channel`]); ends with the edge, or when the channel is gone.
    async fn maintain(
        self,
        changes: tokio::sync::mpsc::Sender<Change<String, Endpoint>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let service = self.service;
        let mut members: BTreeMap<String, Member> = BTreeMap::new();
        let mut resolved_at: Option<tokio::time::Instant> = None;
        let mut tick = tokio::time::interval(UPSTREAM_PROBE_EVERY.min(self.resolve_every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if resolved_at.is_none_or(|at| at.elapsed() >= self.resolve_every) {
                resolved_at = Some(tokio::time::Instant::now());
                let wanted = self.addresses(&members).await;
                for key in members.keys().cloned().collect::<Vec<_>>() {
                    if !wanted.contains_key(&key) {
                        let gone = members.remove(&key).expect("listed");
                        tracing::info!(service = service.grpc_name(), uri = %gone.endpoint.uri(), "upstream address gone");
                        if gone.in_rotation && changes.send(Change::Remove(key)).await.is_err() {
                            return;
                        }
                    }
                }
                for (key, endpoint) in wanted {
                    if members.contains_key(&key) {
                        continue;
                    }
                    // In rotation from the start, as a configured address always was; the
                    // next check takes it out if it does not answer.
                    if changes
                        .send(Change::Insert(key.clone(), endpoint.clone()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let probe = HealthClient::new(endpoint.connect_lazy());
                    members.insert(
                        key,
                        Member {
                            endpoint,
                            probe,
                            in_rotation: true,
                        },
                    );
                }
            }
            let healthy = futures::future::join_all(
                members.values().map(|m| serving(m.probe.clone(), service)),
            )
            .await;
            let none = !healthy.iter().any(|h| *h);
            for ((key, member), healthy) in members.iter_mut().zip(healthy) {
                let wanted = healthy || none;
                if wanted == member.in_rotation {
                    continue;
                }
                let uri = member.endpoint.uri();
                let change = if wanted {
                    tracing::info!(service = service.grpc_name(), %uri, "upstream back in rotation");
                    Change::Insert(key.clone(), member.endpoint.clone())
                } else {
                    tracing::warn!(service = service.grpc_name(), %uri, "upstream down; out of rotation");
                    Change::Remove(key.clone())
                };
                if changes.send(change).await.is_err() {
                    return;
                }
                member.in_rotation = wanted;
            }
        }
    }

    /// Every address the URLs name now, keyed by URL index and address. A name that does not
    /// resolve keeps the addresses it had (a DNS blip must not empty the balancer).
    async fn addresses(&self, current: &BTreeMap<String, Member>) -> BTreeMap<String, Endpoint> {
        let mut wanted = BTreeMap::new();
        for (index, source) in self.sources.iter().enumerate() {
            let Some((host, port)) = host_to_resolve(source.uri()) else {
                wanted.insert(format!("{index}"), source.clone());
                continue;
            };
            match (self.resolve)(host.clone(), port).await {
                Ok(addrs) if !addrs.is_empty() => {
                    for addr in addrs {
                        match Endpoint::from_shared(format!("http://{addr}")) {
                            Ok(endpoint) => {
                                wanted.insert(format!("{index}/{addr}"), configure(endpoint));
                            }
                            Err(err) => tracing::warn!(%addr, error = %err, "unusable address"),
                        }
                    }
                }
                outcome => {
                    tracing::warn!(
                        service = self.service.grpc_name(), %host,
                        error = ?outcome.err(), "upstream name did not resolve; keeping its addresses"
                    );
                    let prefix = format!("{index}/");
                    for (key, member) in current.range(prefix.clone()..) {
                        if !key.starts_with(&prefix) {
                            break;
                        }
                        wanted.insert(key.clone(), member.endpoint.clone());
                    }
                }
            }
        }
        wanted
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A gRPC server on a free loopback port whose health service answers SERVING for the
    /// catalog and for `marker`, so a check of `marker` tells which server answered.
    async fn health_server(marker: &'static str) -> SocketAddr {
        let (reporter, health) = tonic_health::server::health_reporter();
        for name in [ServiceName::Catalog.grpc_name(), marker] {
            reporter
                .set_service_status(name, tonic_health::ServingStatus::Serving)
                .await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _reporter = reporter;
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
        });
        addr
    }

    /// How many of 40 checks of "one" through `channel` the server marked "one" answered.
    async fn answered_by_one(channel: &Channel) -> usize {
        let mut client = HealthClient::new(channel.clone());
        let mut by_one = 0;
        for _ in 0..40 {
            let check = client.check(HealthCheckRequest {
                service: "one".to_owned(),
            });
            if check.await.is_ok() {
                by_one += 1;
            }
        }
        by_one
    }

    /// Polls `answered_by_one` until `done` holds (up to 5 s); the last count.
    async fn until(channel: &Channel, done: impl Fn(usize) -> bool) -> usize {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let n = answered_by_one(channel).await;
            if done(n) || tokio::time::Instant::now() > deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_host_name_is_balanced_over_every_address_it_resolves_to_and_followed() {
        let (one, two) = (health_server("one").await, health_server("two").await);
        // What "DNS" answers for catalog.test: an error (`None`) or addresses.
        let dns = Arc::new(Mutex::new(Some(vec![one, two])));
        let answers = dns.clone();
        let (channel, changes) = Channel::balance_channel(64);
        let (_stop, stop) = watch::channel(false);
        let upstreams = Upstreams {
            service: ServiceName::Catalog,
            sources: vec![Endpoint::from_static("http://catalog.test:50051")],
            resolve: Box::new(move |host, port| {
                assert_eq!((host.as_str(), port), ("catalog.test", 50051));
                let answer = answers.lock().unwrap().clone();
                Box::pin(async move { answer.ok_or_else(|| io::Error::other("no such host")) })
            }),
            resolve_every: Duration::from_millis(100),
        };
        tokio::spawn(upstreams.maintain(changes, stop));

        // Both addresses serve (the port of the URL is not used: each address has its own).
        let both = until(&channel, |n| n > 0 && n < 40).await;
        assert!(both > 0 && both < 40, "{both} of 40 answered by one");
        // A pod goes away: its address leaves the balancer.
        *dns.lock().unwrap() = Some(vec![two]);
        assert_eq!(until(&channel, |n| n == 0).await, 0);
        // A DNS failure keeps what was there.
        *dns.lock().unwrap() = None;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(answered_by_one(&channel).await, 0);
        // A new pod joins.
        *dns.lock().unwrap() = Some(vec![one]);
        assert_eq!(until(&channel, |n| n == 40).await, 40);
    }

    #[test]
    fn only_plaintext_host_names_are_resolved() {
        let uri = |s: &'static str| Uri::from_static(s);
        assert_eq!(
            host_to_resolve(&uri("http://catalog:50051")),
            Some(("catalog".to_owned(), 50051))
        );
        assert_eq!(host_to_resolve(&uri("http://127.0.0.1:50051")), None);
        assert_eq!(host_to_resolve(&uri("http://[::1]:50051")), None);
        assert_eq!(host_to_resolve(&uri("https://catalog.example.com")), None);
    }
}

//! The one outbound HTTPS client shape of the services (the Stripe provider, the webhook
//! sender): hyper's pooled client over rustls with ring and Mozilla's roots (webpki-roots, so
//! no system certificate store is needed in the container), HTTP/1.1, and plain http allowed
//! for loopback fakes in tests.
//!
//! A client may be kept to public addresses ([`Targets::PublicOnly`]): webhook URLs are typed
//! by admins, and a URL that reaches the shop's own network (its database, a cloud metadata
//! service at 169.254.169.254) would let whoever holds an admin account probe it from inside
//! (server-side request forgery). The check runs where it cannot be dodged: on every address a
//! name resolves to, at connect time (a name that resolved to a public address when it was
//! registered may resolve to 127.0.0.1 later), and on IP literals, which skip the resolver.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::rt::TokioExecutor;

/// A pooled HTTPS (and HTTP) client sending whole bodies.
pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector<Resolver>>, Full<Bytes>>;

/// Which addresses an outbound client may connect to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Targets {
    /// Any address (the payment provider's fixed URL; receivers on loopback in tests).
    Any,
    /// Public unicast addresses only: no loopback, private, link-local, shared (CGNAT),
    /// unspecified, broadcast or multicast address.
    PublicOnly,
}

impl Targets {
    /// Why a URL's `host` (a name, an IPv4 literal or a bracketed IPv6 literal) is refused,
    /// if it is. Names other than `localhost` pass here and are checked on each address they
    /// resolve to when a connection is made.
    pub fn refuses_host(self, host: &str) -> Option<&'static str> {
        if self == Targets::Any {
            return None;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") {
            return Some("Must not point to this machine (localhost)");
        }
        match host.parse::<IpAddr>() {
            Ok(ip) if !is_public(ip) => {
                Some("Must not point to a loopback, private or link-local address")
            }
            _ => None,
        }
    }
}

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                // "This network" 0.0.0.0/8 and shared address space (CGNAT) 100.64.0.0/10.
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // ::ffff:127.0.0.1 reaches 127.0.0.1.
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local())
            }
        },
    }
}

/// The system resolver, keeping only the addresses [`Targets`] allows.
#[derive(Clone)]
pub struct Resolver {
    inner: GaiResolver,
    targets: Targets,
}

impl tower::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let targets = self.targets;
        let lookup = self.inner.call(name.clone());
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = lookup
                .await?
                .filter(|a| targets == Targets::Any || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{name} resolves to no public address"),
                ));
            }
            Ok(addrs.into_iter())
        })
    }
}

/// Builds an [`HttpsClient`] that connects to `targets`.
pub fn client(targets: Targets) -> anyhow::Result<HttpsClient> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut http = HttpConnector::new_with_resolver(Resolver {
        inner: GaiResolver::new(),
        targets,
    });
    // The TLS connector below speaks https; the HTTP connector must let it through.
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} is not public");
        }
        for ip in ["8.8.8.8", "93.184.216.34", "100.128.0.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn public_only_refuses_private_literals_and_localhost() {
        let t = Targets::PublicOnly;
        for host in [
            "localhost",
            "LOCALHOST.",
            "api.localhost",
            "127.0.0.1",
            "[::1]",
            "169.254.169.254",
        ] {
            assert!(t.refuses_host(host).is_some(), "{host} is refused");
        }
        for host in ["example.com", "8.8.8.8", "[2606:4700::1111]"] {
            assert_eq!(t.refuses_host(host), None, "{host} passes");
        }
        assert_eq!(Targets::Any.refuses_host("127.0.0.1"), None);
    }

    /// The connect-time check: a name is resolved, then its private addresses are dropped.
    /// `localhost` stands for any name that resolves to this machine (it is in /etc/hosts, so
    /// no DNS server is needed).
    #[tokio::test]
    async fn the_resolver_keeps_a_public_only_client_off_private_addresses() {
        use std::str::FromStr as _;
        use tower::ServiceExt as _;
        let resolver = |targets| Resolver {
            inner: GaiResolver::new(),
            targets,
        };
        let name = Name::from_str("localhost").unwrap();
        let any: Vec<SocketAddr> = resolver(Targets::Any)
            .oneshot(name.clone())
            .await
            .unwrap()
            .collect();
        assert!(any.iter().any(|a| a.ip().is_loopback()), "{any:?}");
        let refused = resolver(Targets::PublicOnly)
            .oneshot(name)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
    }
}

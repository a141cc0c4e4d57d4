//! The client's address, decided once at the edge: the socket peer, or the nearest untrusted
//! address in `X-Forwarded-For` when the peer is one of TRUSTED_PROXIES. Everything after this
//! layer (rate limits, the `x-forwarded-for` metadata sent to services) reads
//! [`transcoder::ClientAddr`] and never the raw header.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use tower::{Layer, Service};
use transcoder::ClientAddr;

/// Tower layer resolving the client address.
#[derive(Clone)]
pub struct ClientIpLayer {
    trusted: Arc<[IpAddr]>,
}

/// The service made by [`ClientIpLayer`].
#[derive(Clone)]
pub struct ClientIp<S> {
    inner: S,
    trusted: Arc<[IpAddr]>,
}

impl ClientIp<()> {
    /// Believes `X-Forwarded-For` only from `trusted` peers.
    pub fn layer(trusted: Vec<IpAddr>) -> ClientIpLayer {
        ClientIpLayer {
            trusted: trusted.into(),
        }
    }
}

impl<S> Layer<S> for ClientIpLayer {
    type Service = ClientIp<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ClientIp {
            inner,
            trusted: self.trusted.clone(),
        }
    }
}

impl<S, B> Service<http::Request<B>> for ClientIp<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied()
        {
            let ip = resolve(peer.ip(), req.headers(), &self.trusted);
            req.extensions_mut()
                .insert(ClientAddr(SocketAddr::new(ip, peer.port())));
        }
        self.inner.call(req)
    }
}

/// Walks `X-Forwarded-For` from the right while the hop is a trusted proxy.
fn resolve(peer: IpAddr, headers: &http::HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|hop| !trusted.contains(hop))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client: IpAddr = "203.0.113.9".parse().unwrap();
        let spoofed = headers("1.2.3.4, 203.0.113.9");
        assert_eq!(resolve(client, &spoofed, &[proxy]), client);
        assert_eq!(resolve(proxy, &spoofed, &[proxy]), client);
        assert_eq!(resolve(proxy, &http::HeaderMap::new(), &[proxy]), proxy);
    }
}

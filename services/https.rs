//! The one outbound HTTPS client shape of the services (the Stripe provider, the webhook
//! sender): hyper's pooled client over rustls with ring and Mozilla's roots (webpki-roots, so
//! no system certificate store is needed in the container), HTTP/1.1, and plain http allowed
//! for loopback fakes in tests.

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A pooled HTTPS (and HTTP) client sending whole bodies.
pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds an [`HttpsClient`].
pub fn client() -> anyhow::Result<HttpsClient> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

//! DummyJSON's authenticated aliases: `/auth/<resource>` (for example `/auth/products/1`)
//! serves the same resource as `/<resource>` but only to a caller with a valid token.
//!
//! An edge layer, because the alias is a REST spelling only: gRPC callers call the RPC itself.
//! It rewrites the path and lets the request through when the bearer token is valid (signature,
//! expiry, deny-list: the same [`Authenticator`] the services use), and answers 401 in the
//! contract's shape otherwise. Paths the edge serves itself under `/auth/` (`/auth/login`,
//! `/auth/me`, ...) keep their meaning: only a path no route serves is an alias.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use tower::{Layer, Service};
use transcoder::Transcoder;

use crate::authn::{self, Authenticator};

/// Tower layer for the `/auth/<resource>` aliases.
#[derive(Clone)]
pub struct AuthAliasLayer {
    prefix: String,
    base_path: String,
    routes: Transcoder,
    authenticator: Authenticator,
}

/// The service made by [`AuthAliasLayer`].
#[derive(Clone)]
pub struct AuthAlias<S> {
    inner: S,
    layer: AuthAliasLayer,
}

impl AuthAlias<()> {
    /// The layer for the API under `base_path`, whose routes `routes` serves.
    pub fn layer(
        base_path: &str,
        routes: Transcoder,
        authenticator: Authenticator,
    ) -> AuthAliasLayer {
        AuthAliasLayer {
            prefix: format!("{base_path}/auth/"),
            base_path: base_path.to_owned(),
            routes,
            authenticator,
        }
    }
}

impl<S> Layer<S> for AuthAliasLayer {
    type Service = AuthAlias<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthAlias {
            inner,
            layer: self.clone(),
        }
    }
}

impl AuthAliasLayer {
    /// The path and query `/auth/<resource>` stands for, when `uri` is an alias.
    fn target(&self, uri: &http::Uri) -> Option<PathAndQuery> {
        let rest = uri.path().strip_prefix(&self.prefix)?;
        if rest.is_empty() || self.routes.serves_path(uri.path()) {
            return None;
        }
        let target = match uri.query() {
            Some(query) => format!("{}/{rest}?{query}", self.base_path),
            None => format!("{}/{rest}", self.base_path),
        };
        target.parse().ok()
    }
}

impl<S, B> Service<http::Request<B>> for AuthAlias<S>
where
    S: Service<http::Request<B>, Response = http::Response<transcoder::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(target) = self.layer.target(req.uri()) else {
            return Box::pin(inner.call(req));
        };
        let authenticator = self.layer.authenticator.clone();
        Box::pin(async move {
            // Preflights carry no credentials; CORS answers them further out anyway.
            if req.method() != http::Method::OPTIONS {
                let header = req.headers().get(http::header::AUTHORIZATION);
                let caller = authenticator.caller(header.map(|v| v.as_bytes())).await;
                if let Err(refusal) = authn::principal_of(Some(&caller)) {
                    let status = tonic::Status::from(refusal);
                    return Ok(transcoder::error::EdgeError::from_status(&status).into_response());
                }
            }
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = Some(target);
            if let Ok(uri) = http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
            inner.call(req).await
        })
    }
}

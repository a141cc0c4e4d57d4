//! Rate limiting: one mechanism for the whole edge, per route group (logins, registrations,
//! password resets, products, orders and carts, payments).
//!
//! Each request falls in at most one group, chosen by its path under the API base path; the
//! group's counter is kept per signed-in user (when the bearer token verifies) or else per
//! client address ([`transcoder::ClientAddr`]), in fixed windows in the shared store, so the
//! limits hold across instances. Over the limit: 429 RATE_LIMITED with `details.retryAfter`
//! and a `Retry-After` header.
//!
//! Failure policy: when the store cannot be reached the request is let through (fail open) and
//! the failure is logged and counted: an outage of Redis must not take the shop down with it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{Layer, Service};
use transcoder::ClientAddr;

use crate::config::Settings;
use crate::kv::Kv;
use crate::tokens::Tokens;

/// One row of the limits table: requests whose path (under the base path) starts with
/// `prefix` share a budget of `max` per `window`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub group: &'static str,
    pub prefix: &'static str,
    pub max: u64,
    pub window: Duration,
}

/// The limit of each route group (RATE_LIMIT_* settings), most specific first.
pub fn rules(settings: &Settings) -> Vec<Rule> {
    let minute = settings.rate_limit_window;
    vec![
        Rule {
            group: "auth-login",
            prefix: "/auth/login",
            max: settings.rate_limit_login_max,
            window: Duration::from_secs(15 * 60),
        },
        Rule {
            group: "auth-register",
            prefix: "/auth/register",
            max: settings.rate_limit_register_max,
            window: Duration::from_secs(3600),
        },
        Rule {
            group: "auth-forgot",
            prefix: "/auth/forgot-password",
            max: settings.rate_limit_forgot_max,
            window: Duration::from_secs(3600),
        },
        Rule {
            group: "products",
            prefix: "/products",
            max: settings.rate_limit_max_requests,
            window: minute,
        },
        Rule {
            group: "orders",
            prefix: "/orders",
            max: settings.rate_limit_orders_max,
            window: minute,
        },
        Rule {
            group: "orders",
            prefix: "/cart",
            max: settings.rate_limit_orders_max,
            window: minute,
        },
        Rule {
            group: "orders",
            prefix: "/carts",
            max: settings.rate_limit_orders_max,
            window: minute,
        },
        Rule {
            group: "payments",
            prefix: "/payments",
            max: settings.rate_limit_payments_max,
            window: minute,
        },
    ]
}

#[derive(Clone)]
struct Limiter {
    rules: Arc<[Rule]>,
    base_path: Arc<str>,
    kv: Kv,
    tokens: Tokens,
}

impl Limiter {
    fn rule_for(&self, path: &str) -> Option<&Rule> {
        let rest = path.strip_prefix(&*self.base_path)?;
        self.rules.iter().find(|r| {
            rest.strip_prefix(r.prefix)
                .is_some_and(|tail| tail.is_empty() || tail.starts_with('/'))
        })
    }

    fn subject<B>(&self, req: &http::Request<B>) -> String {
        let user = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| self.tokens.verify(t.trim()).ok());
        match (user, req.extensions().get::<ClientAddr>()) {
            (Some(claims), _) => format!("u:{}", claims.sub),
            (None, Some(ClientAddr(addr))) => format!("ip:{}", addr.ip()),
            (None, None) => "ip:unknown".to_owned(),
        }
    }

    /// `Some(retry_after)` when the request is over its group's limit.
    async fn check(&self, rule: &Rule, subject: &str) -> Option<Duration> {
        let key = format!("rl:{}:{subject}", rule.group);
        match self.kv.hit(&key, rule.window).await {
            Ok((count, _)) if count <= rule.max => None,
            Ok((_, left)) => Some(left),
            Err(e) => {
                metrics::counter!("rate_limit_errors_total").increment(1);
                tracing::warn!(error = %e, "rate limit store unavailable; failing open");
                None
            }
        }
    }
}

/// Tower layer enforcing the limits.
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Limiter,
}

/// The service made by [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    limiter: Limiter,
}

impl RateLimit<()> {
    /// Limits from `rules`, counted in `kv`, under `base_path`.
    pub fn layer(rules: Vec<Rule>, base_path: &str, kv: Kv, tokens: Tokens) -> RateLimitLayer {
        RateLimitLayer {
            limiter: Limiter {
                rules: rules.into(),
                base_path: base_path.into(),
                kv,
                tokens,
            },
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

impl<S, B> Service<http::Request<B>> for RateLimit<S>
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

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        Box::pin(async move {
            // Preflights are never counted: they carry no credentials and browsers send many.
            if req.method() == http::Method::OPTIONS {
                return inner.call(req).await;
            }
            let Some(rule) = limiter.rule_for(req.uri().path()).cloned() else {
                return inner.call(req).await;
            };
            let subject = limiter.subject(&req);
            match limiter.check(&rule, &subject).await {
                None => inner.call(req).await,
                Some(left) => Ok(too_many_requests(left)),
            }
        })
    }
}

fn too_many_requests(left: Duration) -> http::Response<transcoder::Body> {
    // Round up: telling a client to come back in 0 seconds invites a hot loop.
    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut details = serde_json::Map::new();
    details.insert("retryAfter".to_owned(), seconds.into());
    let mut response = transcoder::error_response(
        http::StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        &format!("Rate limit exceeded. Try again in {seconds} seconds."),
        details,
    );
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
    response
}

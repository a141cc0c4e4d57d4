//! The domain of notifications and webhooks: pages, webhook endpoint forms valid by
//! construction, the text of a notification for an event, the retry schedule and the
//! signature. No SQL, no proto.

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::events::{Event, EventData, EventKind, OrderEvent};
use crate::https::Targets;
use crate::validation::Violations;

/// Largest page of any list here.
pub const MAX_LIMIT: i32 = 100;
/// Page size when the request names none.
pub const DEFAULT_LIMIT: i32 = 20;

/// A checked `skip` and `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub skip: i32,
    pub limit: i32,
}

impl Page {
    /// `limit` 0 is the default (proto3 cannot tell absent from 0); 1..=100 otherwise.
    pub fn parse(skip: i32, limit: i32) -> Result<Page, Violations> {
        let mut v = Violations::default();
        if skip < 0 {
            v.push("skip", "Must not be negative");
        }
        let limit = match limit {
            0 => DEFAULT_LIMIT,
            l if (1..=MAX_LIMIT).contains(&l) => l,
            _ => {
                v.push("limit", format!("Must be between 1 and {MAX_LIMIT}"));
                DEFAULT_LIMIT
            }
        };
        v.finish(|| Page { skip, limit })
    }
}

/// What a new notification says; the consumer adds the user and the time.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationDraft {
    pub kind: &'static str,
    pub title: String,
    pub body: String,
    pub data: BTreeMap<String, String>,
}

/// Who a notification about an event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    User(i64),
    Admins,
}

/// The notification an event gives, and to whom; `None` for events nobody is told of in-app.
pub fn notification_for(event: &Event) -> Option<(Audience, NotificationDraft)> {
    let order = |o: &OrderEvent, title: &str, body: String| {
        let mut data = BTreeMap::from([
            ("orderId".to_owned(), o.order_id.clone()),
            ("status".to_owned(), o.status.clone()),
        ]);
        if let Some(t) = &o.tracking {
            data.insert("carrier".to_owned(), t.carrier.clone());
            data.insert("trackingNumber".to_owned(), t.tracking_number.clone());
            if let Some(url) = &t.tracking_url {
                data.insert("trackingUrl".to_owned(), url.clone());
            }
        }
        (
            Audience::User(o.user_id),
            NotificationDraft {
                kind: event.kind().as_str(),
                title: title.to_owned(),
                body: clip(body, 2000),
                data,
            },
        )
    };
    let reason = |o: &OrderEvent| match &o.reason {
        Some(r) if !r.trim().is_empty() => format!(" Reason: {}", r.trim()),
        _ => String::new(),
    };
    Some(match &event.data {
        EventData::OrderPlaced(o) => order(
            o,
            "Order placed",
            format!(
                "We received your order {} ({}).",
                o.order_id,
                dollars(o.total_cents)
            ),
        ),
        EventData::OrderPaid(o) => order(
            o,
            "Payment received",
            format!("Your payment for order {} was received.", o.order_id),
        ),
        EventData::OrderShipped(o) => {
            let how = match &o.tracking {
                Some(t) => format!(" with {}, tracking number {}", t.carrier, t.tracking_number),
                None => String::new(),
            };
            order(
                o,
                "Order shipped",
                format!("Your order {} has shipped{how}.", o.order_id),
            )
        }
        EventData::OrderDelivered(o) => order(
            o,
            "Order delivered",
            format!("Your order {} was delivered.", o.order_id),
        ),
        EventData::OrderCancelled(o) => order(
            o,
            "Order cancelled",
            format!("Your order {} was cancelled.{}", o.order_id, reason(o)),
        ),
        EventData::OrderRefunded(o) => order(
            o,
            "Order refunded",
            format!(
                "Your order {} was refunded ({}).{}",
                o.order_id,
                dollars(o.total_cents),
                reason(o)
            ),
        ),
        EventData::StockLow(s) => (
            Audience::Admins,
            NotificationDraft {
                kind: "inventory.low_stock",
                title: "Low stock".to_owned(),
                body: clip(
                    format!(
                        "{} (product {}) is down to {} in stock (threshold {}).",
                        s.title, s.product_id, s.stock, s.threshold
                    ),
                    2000,
                ),
                data: BTreeMap::from([
                    ("productId".to_owned(), s.product_id.to_string()),
                    ("stock".to_owned(), s.stock.to_string()),
                ]),
            },
        ),
        // Processing and the like are not worth a message; reviews tell nobody.
        EventData::OrderStatusChanged(_) | EventData::ReviewCreated(_) => return None,
    })
}

/// Which event kinds give a notification (what the consumer subscribes to).
pub fn notifies(kind: EventKind) -> bool {
    !matches!(
        kind,
        EventKind::OrderStatusChanged | EventKind::ReviewCreated
    )
}

/// `$12.34` (the shop currency, cents as integers).
fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}${}.{:02}", c / 100, c % 100)
}

fn clip(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        s
    } else {
        s.chars().take(max).collect()
    }
}

/// Longest URL accepted (what browsers and most proxies handle).
pub const MAX_URL_LEN: usize = 2048;
/// Bounds of a secret an admin supplies.
pub const SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=128;
pub const MAX_DESCRIPTION_LEN: usize = 500;
/// Most event names on one endpoint (there are fewer kinds than this).
pub const MAX_EVENTS: usize = 32;

/// An absolute http(s) URL whose host `targets` allows.
fn parse_url(v: &mut Violations, url: &str, targets: Targets) -> Option<String> {
    let url = url.trim();
    if url.is_empty() {
        v.push("url", "URL is required");
        return None;
    }
    if url.chars().count() > MAX_URL_LEN {
        v.push("url", format!("Must be at most {MAX_URL_LEN} characters"));
        return None;
    }
    let host = url.parse::<http::Uri>().ok().and_then(|u| {
        let host = u.authority().map(|a| a.host().to_owned())?;
        (matches!(u.scheme_str(), Some("http" | "https")) && !host.is_empty()).then_some(host)
    });
    let Some(host) = host else {
        v.push("url", "Must be an absolute http(s) URL");
        return None;
    };
    if let Some(why) = targets.refuses_host(&host) {
        v.push("url", why);
        return None;
    }
    Some(url.to_owned())
}

/// Known event names, or `*`; deduplicated in the order given. `*` alone stands for all.
fn parse_events(v: &mut Violations, events: &[String]) -> Option<Vec<String>> {
    if events.is_empty() {
        v.push("events", "At least one event type (or \"*\") is required");
        return None;
    }
    if events.len() > MAX_EVENTS {
        v.push("events", format!("At most {MAX_EVENTS} event types"));
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    for name in events {
        let name = name.trim();
        if name != "*" && EventKind::parse(name).is_none() {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            v.push(
                "events",
                format!(
                    "Unknown event type `{}` (known: *, {})",
                    clip(name.to_owned(), 64),
                    known.join(", ")
                ),
            );
            return None;
        }
        if !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    }
    if out.iter().any(|n| n == "*") {
        out = vec!["*".to_owned()];
    }
    Some(out)
}

fn parse_description(v: &mut Violations, d: &str) -> Option<String> {
    let d = d.trim();
    if d.chars().count() > MAX_DESCRIPTION_LEN {
        v.push(
            "description",
            format!("Must be at most {MAX_DESCRIPTION_LEN} characters"),
        );
        return None;
    }
    Some(d.to_owned())
}

/// A new endpoint, valid.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
    pub description: String,
}

impl NewWebhook {
    /// Validates every field; a secret is generated when none is given (Stripe's way: the
    /// shop decides, the receiver copies it once).
    pub fn parse(
        url: &str,
        events: &[String],
        secret: Option<&str>,
        description: Option<&str>,
        targets: Targets,
    ) -> Result<NewWebhook, Violations> {
        let mut v = Violations::default();
        let url = parse_url(&mut v, url, targets);
        let events = parse_events(&mut v, events);
        let secret = match secret {
            None => Some(generate_secret()),
            Some(s) => {
                let n = s.chars().count();
                if !SECRET_LEN.contains(&n) {
                    v.push(
                        "secret",
                        format!(
                            "Must be between {} and {} characters",
                            SECRET_LEN.start(),
                            SECRET_LEN.end()
                        ),
                    );
                    None
                } else if !s.chars().all(|c| c.is_ascii_graphic()) {
                    v.push("secret", "Must be printable ASCII without spaces");
                    None
                } else {
                    Some(s.to_owned())
                }
            }
        };
        let description = parse_description(&mut v, description.unwrap_or(""));
        match (url, events, secret, description) {
            (Some(url), Some(events), Some(secret), Some(description)) if v.is_empty() => {
                Ok(NewWebhook {
                    url,
                    events,
                    secret,
                    description,
                })
            }
            _ => Err(v),
        }
    }
}

/// A partial update of an endpoint, valid; `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

impl WebhookPatch {
    /// `events` empty means "unchanged" (a repeated field cannot be absent in proto3).
    pub fn parse(
        url: Option<&str>,
        events: &[String],
        enabled: Option<bool>,
        description: Option<&str>,
        targets: Targets,
    ) -> Result<WebhookPatch, Violations> {
        let mut v = Violations::default();
        let patch = WebhookPatch {
            url: url.and_then(|u| parse_url(&mut v, u, targets)),
            events: if events.is_empty() {
                None
            } else {
                parse_events(&mut v, events)
            },
            enabled,
            description: description.and_then(|d| parse_description(&mut v, d)),
        };
        v.finish(|| patch)
    }
}

/// `whsec_` and 48 hex digits (192 random bits).
pub fn generate_secret() -> String {
    format!("whsec_{}", hex::encode(rand::random::<[u8; 24]>()))
}

/// The `Ecom-Signature` header: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, as
/// Stripe signs: the timestamp inside the MAC lets receivers refuse replays.
pub fn signature(secret: &str, unix: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// How long after attempt number `attempts` (1-based) the next one is due: `base` doubling,
/// capped at an hour (5 s, 10 s, 20 s, ... 1 h, 1 h, ...: about 30 attempts in 24 h).
pub fn backoff(base: Duration, attempts: i32) -> Duration {
    const CAP: Duration = Duration::from_secs(3600);
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    base.saturating_mul(1 << doublings).min(CAP)
}

/// How long deliveries are retried after the event.
pub const RETRY_WINDOW: Duration = Duration::from_secs(24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{StockLow, TrackingInfo};
    use chrono::DateTime;
    use uuid::Uuid;

    fn ev(data: EventData) -> Event {
        Event {
            id: Uuid::nil(),
            occurred_at: DateTime::from_timestamp(0, 0).unwrap(),
            data,
        }
    }

    fn order() -> OrderEvent {
        OrderEvent {
            order_id: "ord_1".into(),
            user_id: 7,
            status: "shipped".into(),
            items: vec![],
            subtotal_cents: 1000,
            discount_cents: 0,
            shipping_cents: 0,
            tax_cents: 0,
            total_cents: 1000,
            coupon_code: None,
            tracking: Some(TrackingInfo {
                carrier: "UPS".into(),
                tracking_number: "1Z999".into(),
                tracking_url: None,
            }),
            reason: None,
        }
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(Page::parse(0, 0).unwrap(), Page { skip: 0, limit: 20 });
        assert_eq!(Page::parse(5, 100).unwrap().limit, 100);
        assert!(Page::parse(0, 101).is_err());
        assert!(Page::parse(-1, 10).is_err());
        assert!(Page::parse(0, -3).is_err());
    }

    #[test]
    fn a_shipped_order_tells_its_user_the_carrier_and_tracking() {
        let (who, n) = notification_for(&ev(EventData::OrderShipped(order()))).unwrap();
        assert_eq!(who, Audience::User(7));
        assert_eq!(n.kind, "order.shipped");
        assert!(
            n.body.contains("UPS") && n.body.contains("1Z999"),
            "{}",
            n.body
        );
        assert_eq!(n.data["trackingNumber"], "1Z999");
        assert_eq!(n.data["orderId"], "ord_1");
    }

    #[test]
    fn low_stock_goes_to_the_admins_and_status_changes_to_nobody() {
        let low = ev(EventData::StockLow(StockLow {
            product_id: 3,
            title: "Mascara".into(),
            stock: 2,
            threshold: 5,
        }));
        let (who, n) = notification_for(&low).unwrap();
        assert_eq!(who, Audience::Admins);
        assert_eq!(n.data["productId"], "3");
        assert!(notification_for(&ev(EventData::OrderStatusChanged(order()))).is_none());
        assert!(!notifies(EventKind::ReviewCreated));
        assert!(notifies(EventKind::OrderRefunded));
    }

    #[test]
    fn webhook_forms_validate_every_field() {
        let ok = NewWebhook::parse(
            "https://example.com/hooks",
            &["order.placed".into(), "order.placed".into()],
            None,
            None,
            Targets::PublicOnly,
        )
        .unwrap();
        assert_eq!(ok.events, vec!["order.placed"]);
        assert!(ok.secret.starts_with("whsec_") && ok.secret.len() == 54);
        let all = NewWebhook::parse(
            "http://h:8080/x",
            &["*".into(), "order.paid".into()],
            None,
            None,
            Targets::PublicOnly,
        );
        assert_eq!(all.unwrap().events, vec!["*"]);
        let bad = NewWebhook::parse(
            "ftp://x",
            &["order.nope".into()],
            Some("short"),
            None,
            Targets::PublicOnly,
        )
        .unwrap_err();
        let fields: Vec<&str> = bad.as_slice().iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, vec!["url", "events", "secret"]);
        assert!(
            NewWebhook::parse("/relative", &["*".into()], None, None, Targets::PublicOnly).is_err()
        );
        assert!(NewWebhook::parse("https://x.com", &[], None, None, Targets::PublicOnly).is_err());
        let long = format!("https://x.com/{}", "a".repeat(2048));
        assert!(NewWebhook::parse(&long, &["*".into()], None, None, Targets::PublicOnly).is_err());
        assert!(WebhookPatch::parse(Some("nope"), &[], None, None, Targets::PublicOnly).is_err());
        // Private targets: refused unless WEBHOOK_ALLOW_PRIVATE.
        for url in [
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://169.254.169.254/",
        ] {
            let refused = NewWebhook::parse(url, &["*".into()], None, None, Targets::PublicOnly);
            assert_eq!(refused.unwrap_err().as_slice()[0].0, "url", "{url}");
            assert!(NewWebhook::parse(url, &["*".into()], None, None, Targets::Any).is_ok());
        }
        assert!(
            WebhookPatch::parse(Some("http://[::1]/"), &[], None, None, Targets::PublicOnly)
                .is_err()
        );
        assert_eq!(
            WebhookPatch::parse(None, &[], Some(false), None, Targets::PublicOnly).unwrap(),
            WebhookPatch {
                enabled: Some(false),
                ..Default::default()
            }
        );
    }

    #[test]
    fn the_signature_is_stripes_scheme() {
        // HMAC-SHA256("secret", "1700000000.{}") computed independently (openssl dgst).
        let sig = signature("whsec_test_secret_0001", 1_700_000_000, b"{}");
        assert_eq!(
            sig,
            "t=1700000000,v1=2da0568af2cb121b0d5a4f818868c7b28690cb042cfa278c86151e5b42a53bd9"
        );
        assert_ne!(
            sig,
            signature("whsec_test_secret_0002", 1_700_000_000, b"{}")
        );
    }

    #[test]
    fn backoff_doubles_and_caps_at_an_hour() {
        let base = Duration::from_secs(5);
        assert_eq!(backoff(base, 1), Duration::from_secs(5));
        assert_eq!(backoff(base, 2), Duration::from_secs(10));
        assert_eq!(backoff(base, 4), Duration::from_secs(40));
        assert_eq!(backoff(base, 12), Duration::from_secs(3600));
        assert_eq!(backoff(base, 1000), Duration::from_secs(3600));
    }
}

//! The webhook sender: on every instance, claims due deliveries (see
//! [`store::claim_due_deliveries`]: SKIP LOCKED and a lease, so two instances never send the
//! same delivery at once), POSTs each signed body, records the attempt, and schedules the
//! next one with exponential backoff until 24 h after the event.
//!
//! Retry times are wall-clock (`Utc::now()`), not the application clock: they pace a
//! transport, like a timeout does.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use chrono::Utc;
use http_body_util::Full;
use sqlx::PgPool;
use tokio::sync::watch;

use super::notices;
use super::store::{self, ClaimedDelivery};
use crate::https::{HttpsClient, Targets};

/// How long one POST may take before it counts as failed.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How many deliveries one instance sends at once.
const BATCH: i64 = 16;
/// How often an idle sender looks for due deliveries.
const POLL: Duration = Duration::from_millis(500);

/// Sends the webhook deliveries of the shared database.
#[derive(Clone)]
pub struct WebhookSender {
    db: PgPool,
    client: HttpsClient,
    targets: Targets,
    retry_base: Duration,
}

impl WebhookSender {
    /// A sender whose retries start `retry_base` after a failure (WEBHOOK_RETRY_BASE), and
    /// that connects to `targets` only (WEBHOOK_ALLOW_PRIVATE).
    pub fn new(
        db: PgPool,
        retry_base: Duration,
        targets: Targets,
    ) -> anyhow::Result<WebhookSender> {
        Ok(WebhookSender {
            db,
            client: crate::https::client(targets)?,
            targets,
            retry_base,
        })
    }

    /// Claims and sends one batch of due deliveries; answers how many were claimed.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let now = Utc::now();
        // The lease outlives the send timeout by a margin: only an instance that died
        // mid-send leaves a claimed row, and it is retried when the lease ends.
        let lease = now + chrono::Duration::from_std(SEND_TIMEOUT * 3).expect("short");
        let claimed = store::claim_due_deliveries(&self.db, now, lease, BATCH)
            .await
            .context("claiming due webhook deliveries")?;
        let n = claimed.len();
        let sends = claimed.into_iter().map(|d| self.deliver(d));
        for result in futures::future::join_all(sends).await {
            if let Err(e) = result {
                tracing::warn!(error = ?e, "recording a webhook attempt failed; retried after the lease");
            }
        }
        Ok(n)
    }

    async fn deliver(&self, d: ClaimedDelivery) -> anyhow::Result<()> {
        let attempted_at = Utc::now();
        let started = Instant::now();
        let outcome = self.post(&d, attempted_at.timestamp()).await;
        let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let done_at = Utc::now();
        let (status, http_status, error) = match outcome {
            Ok(code) if (200..300).contains(&code) => ("delivered", Some(code), String::new()),
            Ok(code) => ("pending", Some(code), format!("HTTP {code}")),
            Err(e) => ("pending", None, e),
        };
        let next = done_at
            + chrono::Duration::from_std(notices::backoff(self.retry_base, d.attempt_count))
                .expect("at most an hour");
        let (status, completed_at) = match status {
            "delivered" => ("delivered", Some(done_at)),
            // Past the window: the last attempt failed, stop.
            _ if next > d.expires_at => ("failed", Some(done_at)),
            _ => ("pending", None),
        };
        if status != "delivered" {
            tracing::info!(
                delivery.id = d.id,
                attempt = d.attempt_count,
                status,
                error = %error,
                "webhook attempt failed"
            );
        }
        let mut tx = self.db.begin().await?;
        store::record_attempt(
            &mut tx,
            d.id,
            attempted_at,
            http_status,
            &error,
            duration_ms,
            status,
            next,
            completed_at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One POST; the receiver's status, or why there was none (never naming the secret).
    async fn post(&self, d: &ClaimedDelivery, unix: i64) -> Result<i32, String> {
        // Checked when the endpoint was saved, and again here: IP literals skip the resolver's
        // check, and the setting may have changed since.
        let uri: http::Uri = d.url.parse().map_err(|e| format!("bad URL: {e}"))?;
        if let Some(why) = uri.host().and_then(|h| self.targets.refuses_host(h)) {
            return Err(format!("refused: {why}"));
        }
        let request = http::Request::post(uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "ecom-webhooks/1")
            .header("Ecom-Event-Id", d.event_id.to_string())
            .header(
                "Ecom-Signature",
                notices::signature(&d.secret, unix, d.body.as_bytes()),
            )
            .body(Full::new(Bytes::from(d.body.clone())))
            .map_err(|e| format!("bad request: {e}"))?;
        let exchange = async {
            let response = self.client.request(request).await?;
            // The body is not read: only the status counts (and receivers should answer fast).
            Ok::<_, hyper_util::client::legacy::Error>(response.status().as_u16())
        };
        match tokio::time::timeout(SEND_TIMEOUT, exchange).await {
            Err(_) => Err(format!("timed out after {} s", SEND_TIMEOUT.as_secs())),
            Ok(Err(e)) => Err(clip(&format!("{e}: {}", source_of(&e)))),
            Ok(Ok(code)) => Ok(i32::from(code)),
        }
    }
}

fn source_of(e: &dyn std::error::Error) -> String {
    let mut s = String::new();
    let mut cur = e.source();
    while let Some(c) = cur {
        if !s.is_empty() {
            s.push_str(": ");
        }
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn clip(s: &str) -> String {
    s.chars().take(1000).collect()
}

/// The sender's loop: a batch at once while there is work, else a poll every half second,
/// until `stop`.
pub async fn run_webhook_sender(sender: WebhookSender, mut stop: watch::Receiver<bool>) {
    loop {
        let busy = match sender.run_once().await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::warn!(error = ?e, "webhook sender failed; retrying later");
                false
            }
        };
        if *stop.borrow() {
            return;
        }
        if busy {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

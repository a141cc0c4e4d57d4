//! Moves recorded events from the outbox to the consumers.
//!
//! - **With NATS** (`NATS_URL`): the *relay* publishes unpublished outbox rows to the JetStream
//!   stream `EVENTS_STREAM` (subject `<stream>.<kind>`, message id = event id, so the stream's
//!   duplicate window drops a republish after a relay crash between publish and mark), then
//!   marks them published. Each consumer is a durable pull consumer of that stream, shared by
//!   every instance: an event goes to one instance's copy, and again if it is not acked.
//! - **Without NATS**: the relay hands each row to this process's consumers directly and marks
//!   it published once every consumer has handled it; a failure leaves it for a later try with
//!   back-off. Several instances share the outbox through `FOR UPDATE SKIP LOCKED`.
//!
//! Either way [`apply`] makes a delivery's effect happen once: it records `(consumer, event)`
//! in `event_consumptions` in the transaction of the consumer's effect.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::AckPolicy, stream};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use super::{Consumer, Event, EventData};

/// How often an idle relay looks at the outbox.
const POLL: Duration = Duration::from_millis(100);
/// Rows a relay claims at once.
const BATCH: i64 = 100;
/// How long JetStream waits for an ack before it redelivers.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// How often a relay deletes what is past the retention (see [`purge`]).
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// Rows one purge statement deletes: short statements, short locks.
const PURGE_BATCH: i64 = 10_000;

/// Where events go: a JetStream stream, or this process's consumers.
#[derive(Clone, Debug)]
pub struct Broker {
    /// NATS server URL; `None`: in-process.
    pub nats_url: Option<String>,
    /// The stream's name; its subjects are `<name>.>`.
    pub stream: String,
    /// How long the stream keeps an event, and the outbox a published one (see [`purge`]).
    pub max_age: Duration,
}

impl Broker {
    /// The stream the relay publishes to and the consumers read, created by whichever
    /// reaches it first.
    fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects: vec![format!("{}.>", self.stream)],
            max_age: self.max_age,
            ..Default::default()
        }
    }
}

/// Runs the relay and `consumers` until `stop`.
pub async fn run(
    db: PgPool,
    broker: Broker,
    consumers: Vec<Arc<dyn Consumer>>,
    stop: watch::Receiver<bool>,
) {
    tokio::spawn(purge_periodically(db.clone(), broker.max_age, stop.clone()));
    let Some(url) = broker.nats_url.clone() else {
        relay(db, None, consumers, stop).await;
        return;
    };
    // Connects in the background and keeps reconnecting: a broker that is down at start-up
    // delays events, it does not stop the process.
    let client = match async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(url.as_str())
        .await
    {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "NATS_URL is invalid; events are not delivered");
            return;
        }
    };
    let js = jetstream::new(client);
    let target = Publish {
        js: js.clone(),
        broker: broker.clone(),
    };
    for consumer in consumers {
        tokio::spawn(consume(
            db.clone(),
            js.clone(),
            broker.clone(),
            consumer,
            stop.clone(),
        ));
    }
    relay(db, Some(target), Vec::new(), stop).await;
}

/// What [`purge`] deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub events: u64,
    pub consumptions: u64,
}

/// Deletes outbox rows published more than `retention` ago, and consumption records older
/// than that, in batches; every instance runs it every ten minutes.
///
/// Why that is safe: a published row is never read again, and past `retention` (the stream's
/// `max_age`) JetStream holds the event no more, so nothing can deliver it again and its
/// consumption record has nothing left to stop. A record whose event is still unpublished (an
/// in-process consumer that keeps failing while another handled it) is kept however old, or
/// the one that handled it would act again when the event finally goes.
pub async fn purge(db: &PgPool, retention: Duration) -> anyhow::Result<Purged> {
    let cutoff = Utc::now()
        - chrono::Duration::from_std(retention).context("the events retention is too long")?;
    let events = in_batches(|| async {
        sqlx::query!(
            r#"DELETE FROM event_outbox WHERE id IN (
                   SELECT id FROM event_outbox WHERE published_at < $1 LIMIT $2)"#,
            cutoff,
            PURGE_BATCH
        )
        .execute(db)
        .await
        .context("purging published events")
        .map(|done| done.rows_affected())
    })
    .await?;
    let consumptions = in_batches(|| async {
        sqlx::query!(
            r#"DELETE FROM event_consumptions WHERE (consumer, event_id) IN (
                   SELECT c.consumer, c.event_id FROM event_consumptions c
                   WHERE c.handled_at < $1 AND NOT EXISTS (
                       SELECT 1 FROM event_outbox o
                       WHERE o.id = c.event_id AND o.published_at IS NULL)
                   LIMIT $2)"#,
            cutoff,
            PURGE_BATCH
        )
        .execute(db)
        .await
        .context("purging event consumptions")
        .map(|done| done.rows_affected())
    })
    .await?;
    Ok(Purged {
        events,
        consumptions,
    })
}

/// Runs `batch` (a delete of at most [`PURGE_BATCH`] rows) until it deletes fewer; how many
/// rows it deleted in all.
async fn in_batches<F, Fut>(mut batch: F) -> anyhow::Result<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let mut total = 0;
    loop {
        let n = batch().await?;
        total += n;
        if n < PURGE_BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Runs [`purge`] every [`PURGE_EVERY`] until `stop`.
async fn purge_periodically(db: PgPool, retention: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PURGE_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match purge(&db, retention).await {
            Ok(purged) if purged != Purged::default() => {
                tracing::info!(
                    events = purged.events,
                    consumptions = purged.consumptions,
                    "purged past the events retention"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = ?err, "purging events: retrying later"),
        }
    }
}

/// The JetStream side of the relay.
struct Publish {
    js: jetstream::Context,
    broker: Broker,
}

impl Publish {
    async fn stream(&self) -> anyhow::Result<()> {
        self.js
            .get_or_create_stream(self.broker.stream_config())
            .await
            .context("creating the events stream")?;
        Ok(())
    }

    async fn publish(&self, event: &Event) -> anyhow::Result<()> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.id.to_string().as_str());
        let subject = format!("{}.{}", self.broker.stream, event.kind().as_str());
        let body = serde_json::to_vec(event).context("encoding an event")?;
        self.js
            .publish_with_headers(subject, headers, body.into())
            .await
            .context("publishing an event")?
            .await
            .context("the stream did not acknowledge an event")?;
        Ok(())
    }
}

/// One outbox row.
struct Row {
    id: Uuid,
    kind: String,
    data: serde_json::Value,
    occurred_at: DateTime<Utc>,
    attempts: i32,
}

/// The event a row holds.
fn event_of(row: &Row) -> anyhow::Result<Event> {
    let data: EventData = serde_json::from_value(serde_json::json!({
        "type": row.kind,
        "data": row.data,
    }))
    .with_context(|| format!("event {} ({}) does not parse", row.id, row.kind))?;
    Ok(Event {
        id: row.id,
        occurred_at: row.occurred_at,
        data,
    })
}

/// Publishes (or, in-process, delivers) the outbox until `stop`.
async fn relay(
    db: PgPool,
    target: Option<Publish>,
    local: Vec<Arc<dyn Consumer>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut stream_ready = false;
    let mut backoff = POLL;
    loop {
        let result = async {
            if let Some(target) = &target
                && !stream_ready
            {
                target.stream().await?;
                stream_ready = true;
            }
            relay_batch(&db, target.as_ref(), &local).await
        }
        .await;
        let pause = match result {
            Ok(n) if n as i64 == BATCH => {
                backoff = POLL;
                Duration::ZERO
            }
            Ok(_) => {
                backoff = POLL;
                POLL
            }
            Err(err) => {
                tracing::warn!(error = ?err, "event relay: retrying later");
                stream_ready = false;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                backoff
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One batch of the relay: claims due rows, publishes or delivers each, marks what went.
async fn relay_batch(
    db: &PgPool,
    target: Option<&Publish>,
    local: &[Arc<dyn Consumer>],
) -> anyhow::Result<usize> {
    let mut tx = db.begin().await?;
    // SKIP LOCKED: instances share the outbox, each row is relayed by one of them at a time.
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, kind, data, occurred_at, attempts FROM event_outbox
           WHERE published_at IS NULL AND next_attempt_at <= now()
           ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED"#,
        BATCH
    )
    .fetch_all(&mut *tx)
    .await
    .context("reading the event outbox")?;
    let n = rows.len();
    let mut done = Vec::with_capacity(n);
    for row in rows {
        let outcome = match event_of(&row) {
            Ok(event) => match target {
                // Publishing fails for the broker, not the event: stop here, keep order.
                Some(target) => {
                    if let Err(err) = target.publish(&event).await {
                        mark(&mut tx, &done).await?;
                        tx.commit().await?;
                        return Err(err);
                    }
                    Ok(())
                }
                None => deliver_locally(db, local, &event).await,
            },
            Err(err) => Err(err),
        };
        match outcome {
            Ok(()) => done.push(row.id),
            Err(err) => {
                // Retried with back-off: 1 s doubling to 10 minutes.
                let delay = 2f64.powi(row.attempts.min(10)).min(600.0);
                tracing::warn!(event = %row.id, kind = row.kind, attempts = row.attempts + 1, error = ?err, "event not handled; retrying later");
                sqlx::query!(
                    r#"UPDATE event_outbox SET attempts = attempts + 1,
                           next_attempt_at = now() + make_interval(secs => $2)
                       WHERE id = $1"#,
                    row.id,
                    delay
                )
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    mark(&mut tx, &done).await?;
    tx.commit().await?;
    Ok(n)
}

async fn mark(tx: &mut sqlx::PgConnection, ids: &[Uuid]) -> anyhow::Result<()> {
    if !ids.is_empty() {
        sqlx::query!(
            "UPDATE event_outbox SET published_at = now() WHERE id = ANY($1)",
            ids
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// In-process delivery: every local consumer that wants it, each once.
async fn deliver_locally(
    db: &PgPool,
    consumers: &[Arc<dyn Consumer>],
    event: &Event,
) -> anyhow::Result<()> {
    for consumer in consumers {
        if consumer.wants(event.kind()) {
            apply(db, consumer.as_ref(), event).await?;
        }
    }
    Ok(())
}

/// Applies `event` to `consumer` once: the consumption record and the effect commit together,
/// and a delivery that finds the record has no effect. Answers whether it had an effect now.
pub async fn apply(db: &PgPool, consumer: &dyn Consumer, event: &Event) -> anyhow::Result<bool> {
    let mut tx = db.begin().await?;
    // A concurrent delivery of the same event waits here on the primary key until the
    // first commits (and then finds the row) or rolls back (and then goes on).
    let fresh = sqlx::query!(
        r#"INSERT INTO event_consumptions (consumer, event_id) VALUES ($1, $2)
           ON CONFLICT DO NOTHING"#,
        consumer.name(),
        event.id
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        return Ok(false);
    }
    consumer
        .handle(&mut tx, event)
        .await
        .with_context(|| format!("{} handling {}", consumer.name(), event.id))?;
    tx.commit().await?;
    Ok(true)
}

/// A JetStream durable name from a consumer name (durable names may not contain dots).
fn durable_name(name: &str) -> String {
    name.replace(['.', '*', '>', ' '], "_")
}

/// One durable consumer on this instance, until `stop`; reconnects after errors.
async fn consume(
    db: PgPool,
    js: jetstream::Context,
    broker: Broker,
    consumer: Arc<dyn Consumer>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = tokio::select! {
            result = consume_messages(&db, &js, &broker, consumer.as_ref()) => result,
            _ = stop.wait_for(|s| *s) => return,
        };
        if let Err(err) = result {
            tracing::warn!(consumer = consumer.name(), error = ?err, "event consumer: reconnecting");
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn consume_messages(
    db: &PgPool,
    js: &jetstream::Context,
    broker: &Broker,
    consumer: &dyn Consumer,
) -> anyhow::Result<()> {
    let stream = js
        .get_or_create_stream(broker.stream_config())
        .await
        .context("opening the events stream")?;
    let durable = durable_name(consumer.name());
    let pull = stream
        .get_or_create_consumer(
            &durable,
            jetstream::consumer::pull::Config {
                durable_name: Some(durable.clone()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                ..Default::default()
            },
        )
        .await
        .context("opening the durable consumer")?;
    let mut messages = pull.messages().await.context("pulling events")?;
    while let Some(message) = messages.next().await {
        let message = message.context("receiving an event")?;
        let event: Event = match serde_json::from_slice(&message.payload) {
            Ok(event) => event,
            Err(err) => {
                // Not ours to fix by retrying: logged and acknowledged.
                tracing::error!(subject = %message.subject, error = %err, "an event that does not parse");
                message.ack().await.ok();
                continue;
            }
        };
        if consumer.wants(event.kind()) {
            let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
            if let Err(err) = apply(db, consumer, &event).await {
                let delay = Duration::from_secs(2u64.saturating_pow(delivered.clamp(1, 10) as u32))
                    .min(Duration::from_secs(600));
                tracing::warn!(consumer = consumer.name(), event = %event.id, error = ?err, "event not handled; redelivered later");
                message
                    .ack_with(jetstream::AckKind::Nak(Some(delay)))
                    .await
                    .ok();
                continue;
            }
        }
        // A lost ack means a redelivery, which `apply` absorbs.
        message.ack().await.ok();
    }
    anyhow::bail!("the event subscription ended")
}

//! Outgoing mail, the kernel's one way to send it: [`enqueue`] a mail, addressed by hand or to
//! an account ([`to_account`]), and the background sender that drains the `mail_outbox` table
//! over SMTP.
//!
//! RPCs never talk to the mail server: they insert a row in the same transaction as the change
//! that warrants the mail (the transactional outbox), so a mail server that is down delays
//! mail but loses none, and a change that rolls back sends none. The sender retries with exponential back-off (1 s doubling to 10 min)
//! and gives up after [`MAX_ATTEMPTS`]. Without SMTP_HOST (development) it logs the mail.

use std::time::Duration;

use anyhow::Context as _;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use sqlx::{PgExecutor, PgPool};
use tokio::sync::watch;

use crate::accounts::store::{self as accounts, Contact};
use crate::config::{Settings, SmtpTls};

/// Attempts before a mail is given up (and left in the table with its last error).
pub const MAX_ATTEMPTS: i32 = 12;
/// How often the sender looks for due mail.
const POLL: Duration = Duration::from_millis(200);

/// A mail to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub body: String,
}

/// Queues `mail` to `recipient`; call it in the transaction of the change it tells of.
pub async fn enqueue(
    ex: impl PgExecutor<'_>,
    recipient: &str,
    mail: &Mail,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO mail_outbox (recipient, subject, body) VALUES ($1, $2, $3)"#,
        recipient,
        mail.subject,
        mail.body
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// Queues the mail `compose` writes for account `user_id`, in the caller's transaction;
/// `false` (and no mail) when the account does not exist or was purged.
pub async fn to_account(
    conn: &mut sqlx::PgConnection,
    user_id: i64,
    compose: impl FnOnce(&Contact) -> Mail,
) -> Result<bool, sqlx::Error> {
    let Some(contact) = accounts::contact(&mut *conn, user_id).await? else {
        return Ok(false);
    };
    enqueue(&mut *conn, &contact.email, &compose(&contact)).await?;
    Ok(true)
}

/// Where mail goes.
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Log,
}

/// Builds the SMTP transport from settings.
fn transport(settings: &Settings) -> anyhow::Result<Transport> {
    let Some(host) = settings.smtp_host.as_deref() else {
        return Ok(Transport::Log);
    };
    let mut builder = match settings.smtp_tls {
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .context("configuring SMTP (STARTTLS)")?,
        SmtpTls::Tls => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(host).context("configuring SMTP (TLS)")?
        }
        SmtpTls::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
    }
    .port(settings.smtp_port)
    .timeout(Some(Duration::from_secs(10)));
    if let (Some(user), Some(pass)) = (&settings.smtp_user, &settings.smtp_pass) {
        builder = builder.credentials(Credentials::new(
            user.expose_secret().to_owned(),
            pass.expose_secret().to_owned(),
        ));
    }
    Ok(Transport::Smtp(builder.build()))
}

/// Checks the mail settings at start-up; production requires an SMTP server.
pub fn check_settings(settings: &Settings) -> anyhow::Result<()> {
    settings.email_from.parse::<Mailbox>().with_context(|| {
        format!(
            "EMAIL_FROM `{}` is not a valid mailbox",
            settings.email_from
        )
    })?;
    if settings.smtp_host.is_none() && settings.is_production() {
        anyhow::bail!("SMTP_HOST must be set in production (password reset mails)");
    }
    transport(settings).map(|_| ())
}

/// One due mail.
struct Pending {
    id: i64,
    recipient: String,
    subject: String,
    body: String,
    attempts: i32,
}

/// Sends due mail until `stop` turns true.
pub async fn run_sender(
    db: PgPool,
    settings: std::sync::Arc<Settings>,
    mut stop: watch::Receiver<bool>,
) {
    let transport = match transport(&settings) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = ?e, "mail sender not started");
            return;
        }
    };
    let from: Mailbox = match settings.email_from.parse() {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "EMAIL_FROM is invalid; mail sender not started");
            return;
        }
    };
    loop {
        match send_due(&db, &transport, &from).await {
            Ok(0) | Err(_) => {}
            Ok(_) => continue,
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Sends up to a batch of due mails; returns how many were attempted.
async fn send_due(db: &PgPool, transport: &Transport, from: &Mailbox) -> anyhow::Result<usize> {
    let result = async {
        let mut tx = db.begin().await.context("begin")?;
        // SKIP LOCKED: several instances share the outbox without sending a mail twice.
        let due = sqlx::query_as!(
            Pending,
            r#"SELECT id, recipient, subject, body, attempts FROM mail_outbox
               WHERE sent_at IS NULL AND attempts < $1 AND next_attempt_at <= now()
               ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED"#,
            MAX_ATTEMPTS
        )
        .fetch_all(&mut *tx)
        .await
        .context("reading the outbox")?;
        let n = due.len();
        for mail in due {
            match deliver(transport, from, &mail).await {
                Ok(()) => {
                    sqlx::query!("UPDATE mail_outbox SET sent_at = now(), attempts = attempts + 1 WHERE id = $1", mail.id)
                        .execute(&mut *tx)
                        .await?;
                }
                Err(e) => {
                    let backoff = 2f64.powi(mail.attempts.min(10)).min(600.0);
                    tracing::warn!(mail.id = mail.id, attempts = mail.attempts + 1, error = %e, "mail delivery failed; retrying later");
                    sqlx::query!(
                        r#"UPDATE mail_outbox SET attempts = attempts + 1, last_error = $2,
                               next_attempt_at = now() + make_interval(secs => $3)
                           WHERE id = $1"#,
                        mail.id,
                        format!("{e:#}"),
                        backoff
                    )
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await.context("commit")?;
        anyhow::Ok(n)
    }
    .await;
    if let Err(e) = &result {
        tracing::warn!(error = ?e, "mail outbox unavailable");
    }
    result
}

async fn deliver(transport: &Transport, from: &Mailbox, mail: &Pending) -> anyhow::Result<()> {
    match transport {
        Transport::Log => {
            tracing::info!(to = %mail.recipient, subject = %mail.subject, body = %mail.body, "mail (SMTP_HOST unset: logged, not sent)");
            Ok(())
        }
        Transport::Smtp(smtp) => {
            let message = Message::builder()
                .from(from.clone())
                .to(mail.recipient.parse().context("recipient")?)
                .subject(mail.subject.clone())
                .body(mail.body.clone())
                .context("building the message")?;
            smtp.send(message).await.context("SMTP")?;
            Ok(())
        }
    }
}

//! Idempotency-Key, for every service whose creations honour it (POST /orders,
//! POST /payments/intents): the claim -> run -> record / replay / abandon sequence, once.
//!
//! The edge forwards the `Idempotency-Key` header as gRPC metadata. The first
//! request with a key inserts a `pending` row (the primary key makes exactly
//! one request the owner); the owner stores its encoded response in the same
//! transaction as its effect (see [`finish`]) and the row becomes `done`.
//! Duplicates with the same body wait for `done` and replay the stored response
//! (with the response metadata `idempotent-replayed: true`); a different body is
//! [`Error::Reused`]. A failed owner deletes its row, so a retry runs again.
//! Keys live 24 hours: older rows are ignored and purged.
//!
//! The module knows no service: each service maps [`Error`] onto its own error enum
//! (`From<idempotency::Error>`), and the scope of a key names the RPC it guards.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::validation::Violations;

/// The metadata key the edge forwards the header as.
pub const HEADER: &str = "idempotency-key";
/// The response metadata of a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// How long a key is kept.
pub fn retention() -> chrono::Duration {
    chrono::Duration::hours(24)
}
/// How long a duplicate waits for the first request before giving up (409).
const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(25);

/// A key the caller sent, with what it guards.
#[derive(Debug, Clone)]
pub struct Key {
    pub user_id: i64,
    pub scope: &'static str,
    pub key: String,
    pub request_hash: Vec<u8>,
}

/// Why a keyed request cannot run or be replayed. Each service maps these onto its own
/// error enum; the doc of each variant says what the services answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The header itself is bad (empty, too long, not visible characters): 400
    /// VALIDATION_ERROR on `Idempotency-Key`.
    #[error("invalid Idempotency-Key: {0}")]
    Invalid(#[from] Violations),
    /// The key was used with another request body: 422 IDEMPOTENCY_KEY_REUSED.
    #[error("idempotency key reused with another request")]
    Reused,
    /// A request with the key is still running after the wait: 409 (ABORTED).
    #[error("a request with this idempotency key is still in progress")]
    InProgress,
    /// The stored response of a finished request does not decode: 500.
    #[error("the stored idempotent response is unreadable")]
    Corrupt(#[source] prost::DecodeError),
    /// A query failed: 503 when PostgreSQL cannot be reached, else 500.
    #[error("idempotency keys: {0}")]
    Database(#[from] sqlx::Error),
}

/// What [`run`] did.
#[derive(Debug)]
pub enum Outcome<R> {
    /// The work ran (no key, or this request owned it).
    Ran(R),
    /// An earlier request with the key finished: its stored, encoded response.
    Replayed(Vec<u8>),
}

/// What to do with a request that carries a key.
enum Claim {
    /// This request owns the key: run it, then [`finish`] (or [`abandon`]).
    Owner,
    /// An earlier request finished: answer its stored response.
    Replay(Vec<u8>),
}

/// The key of a request, if it has one: `body` is the encoded request body.
pub fn key_of<T>(
    request: &tonic::Request<T>,
    user_id: i64,
    scope: &'static str,
    body: &[u8],
) -> Result<Option<Key>, Error> {
    let Some(value) = request.metadata().get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| Violations::one("Idempotency-Key", "must be 1 to 255 visible characters"))?;
    Ok(Some(Key {
        user_id,
        scope,
        key: key.to_owned(),
        request_hash: Sha256::digest(body).to_vec(),
    }))
}

/// Runs `work` under `key`: without a key it just runs; with one, the first request
/// claims the key and runs (`work` calls [`finish`] in the transaction of its effect),
/// a duplicate of a finished request gets its stored response, and a failed owner gives
/// the key up before its error is returned, so that a retry runs again.
pub async fn run<R, E: From<Error>>(
    db: &PgPool,
    key: Option<&Key>,
    now: DateTime<Utc>,
    work: impl AsyncFnOnce() -> Result<R, E>,
) -> Result<Outcome<R>, E> {
    let Some(key) = key else {
        return work().await.map(Outcome::Ran);
    };
    match claim(db, key, now).await? {
        Claim::Replay(bytes) => Ok(Outcome::Replayed(bytes)),
        Claim::Owner => match work().await {
            Ok(ran) => Ok(Outcome::Ran(ran)),
            Err(err) => {
                abandon(db, key).await;
                Err(err)
            }
        },
    }
}

/// Claims `key`: owner, replay, or an error (reused with another body, or still running).
async fn claim(db: &PgPool, key: &Key, now: DateTime<Utc>) -> Result<Claim, Error> {
    let cutoff = now - retention();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let inserted = sqlx::query!(
            r#"INSERT INTO idempotency_keys (user_id, scope, key, request_hash, created_at)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"#,
            key.user_id,
            key.scope,
            key.key,
            key.request_hash,
            now
        )
        .execute(db)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Owner);
        }
        let row = sqlx::query!(
            r#"SELECT request_hash, status, response, created_at FROM idempotency_keys
               WHERE user_id = $1 AND scope = $2 AND key = $3"#,
            key.user_id,
            key.scope,
            key.key
        )
        .fetch_optional(db)
        .await?;
        match row {
            // The owner failed and gave the key up meanwhile: try again.
            None => continue,
            Some(r) if r.created_at < cutoff => {
                // Expired: forget it and claim afresh.
                sqlx::query!(
                    "DELETE FROM idempotency_keys WHERE user_id = $1 AND scope = $2 AND key = $3 AND created_at < $4",
                    key.user_id,
                    key.scope,
                    key.key,
                    cutoff
                )
                .execute(db)
                .await?;
                continue;
            }
            Some(r) if r.request_hash != key.request_hash => return Err(Error::Reused),
            Some(r) if r.status == "done" => {
                return Ok(Claim::Replay(r.response.unwrap_or_default()));
            }
            Some(_) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::InProgress);
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

/// Stores the owner's response; call in the transaction of the request's effect.
pub async fn finish(
    conn: &mut sqlx::PgConnection,
    key: &Key,
    response: &[u8],
) -> Result<(), Error> {
    sqlx::query!(
        r#"UPDATE idempotency_keys SET status = 'done', response = $4
           WHERE user_id = $1 AND scope = $2 AND key = $3"#,
        key.user_id,
        key.scope,
        key.key,
        response
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives the key up after the owner failed, so that a retry runs again.
async fn abandon(db: &PgPool, key: &Key) {
    let result = sqlx::query!(
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND scope = $2 AND key = $3 AND status = 'pending'",
        key.user_id,
        key.scope,
        key.key
    )
    .execute(db)
    .await;
    if let Err(err) = result {
        tracing::warn!(error = %err, "could not release an idempotency key");
    }
}

/// Deletes keys older than the retention; returns how many.
pub async fn purge(db: &PgPool, now: DateTime<Utc>) -> anyhow::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM idempotency_keys WHERE created_at < $1",
        now - retention()
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// A replayed answer: the stored response decoded, marked `idempotent-replayed: true`.
pub fn replayed<T: prost::Message + Default>(bytes: &[u8]) -> Result<tonic::Response<T>, Error> {
    let message = T::decode(bytes).map_err(Error::Corrupt)?;
    let mut response = tonic::Response::new(message);
    response.metadata_mut().insert(
        REPLAYED,
        tonic::metadata::MetadataValue::from_static("true"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(header: Option<&str>) -> tonic::Request<()> {
        let mut request = tonic::Request::new(());
        if let Some(value) = header {
            request
                .metadata_mut()
                .insert(HEADER, value.parse().expect("ASCII metadata"));
        }
        request
    }

    #[test]
    fn no_header_is_no_key() {
        assert!(matches!(key_of(&request(None), 1, "s", b"body"), Ok(None)));
    }

    #[test]
    fn a_key_is_trimmed_and_guards_the_body_it_came_with() {
        let key = key_of(&request(Some("  abc-1 ")), 7, "scope", b"body")
            .unwrap()
            .unwrap();
        assert_eq!(
            (key.user_id, key.scope, key.key.as_str()),
            (7, "scope", "abc-1")
        );
        assert_eq!(key.request_hash, Sha256::digest(b"body").to_vec());
        let other = key_of(&request(Some("abc-1")), 7, "scope", b"other")
            .unwrap()
            .unwrap();
        assert_ne!(key.request_hash, other.request_hash);
    }

    #[test]
    fn an_empty_or_overlong_key_is_a_violation_of_the_header() {
        let long = "k".repeat(256);
        for bad in ["", "   ", long.as_str()] {
            match key_of(&request(Some(bad)), 1, "s", b"") {
                Err(Error::Invalid(v)) => assert_eq!(
                    v.into_inner(),
                    [(
                        "Idempotency-Key".to_owned(),
                        "must be 1 to 255 visible characters".to_owned()
                    )]
                ),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let longest = "k".repeat(255);
        assert!(matches!(
            key_of(&request(Some(&longest)), 1, "s", b""),
            Ok(Some(_))
        ));
    }

    #[test]
    fn a_non_visible_key_is_a_violation() {
        let mut request = tonic::Request::new(());
        request.metadata_mut().insert(
            HEADER,
            tonic::metadata::MetadataValue::try_from(&b"caf\xc3\xa9"[..]).unwrap(),
        );
        assert!(matches!(
            key_of(&request, 1, "s", b""),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn a_replay_is_marked_and_a_corrupt_one_is_an_error() {
        let response: tonic::Response<prost_types::Duration> =
            replayed(&prost::Message::encode_to_vec(&prost_types::Duration {
                seconds: 3,
                nanos: 0,
            }))
            .unwrap();
        assert_eq!(response.metadata().get(REPLAYED).unwrap(), "true");
        assert_eq!(response.get_ref().seconds, 3);
        assert!(matches!(
            replayed::<prost_types::Duration>(&[0xff]),
            Err(Error::Corrupt(_))
        ));
    }
}

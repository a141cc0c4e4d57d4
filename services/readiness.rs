//! `/ready`: whether this process should receive traffic. A process running services is ready
//! when PostgreSQL and the shared store answer; the edge alone is ready when it serves (the
//! services report their own readiness). Either is not ready once it drains (SIGTERM), while
//! requests are still served.

use axum::response::{IntoResponse, Response};
use sqlx::PgPool;
use tokio::sync::watch;

use crate::kv::Kv;

/// What `/ready` checks.
#[derive(Clone)]
enum Check {
    /// PostgreSQL and the shared store.
    Local { db: PgPool, kv: Kv },
    /// The edge alone: it is ready when it serves (services report their own readiness).
    Edge,
}

/// The readiness of this process; cheap to clone.
#[derive(Clone)]
pub struct Readiness {
    check: Check,
    /// True once the process drains (SIGTERM): not ready any more.
    draining: watch::Receiver<bool>,
}

impl Readiness {
    /// A process running services: ready while `db` and `kv` answer.
    pub fn local(db: PgPool, kv: Kv, draining: watch::Receiver<bool>) -> Readiness {
        Readiness {
            check: Check::Local { db, kv },
            draining,
        }
    }

    /// The edge alone: ready while it serves.
    pub fn edge(draining: watch::Receiver<bool>) -> Readiness {
        Readiness {
            check: Check::Edge,
            draining,
        }
    }

    /// The answer of `/ready`: 200 `{"status":"ready",..}`, or 503 in the contract's error shape.
    pub async fn answer(&self) -> Response {
        if *self.draining.borrow() {
            return not_ready("shutting down");
        }
        let (db, kv) = match &self.check {
            Check::Edge => {
                return axum::Json(serde_json::json!({ "status": "ready" })).into_response();
            }
            Check::Local { db, kv } => (db, kv),
        };
        let db = sqlx::query("SELECT 1").execute(db).await;
        let kv = kv.ping().await;
        match (db, kv) {
            (Ok(_), Ok(())) => axum::Json(
                serde_json::json!({ "status": "ready", "postgres": "up", "redis": "up" }),
            )
            .into_response(),
            (db, kv) => {
                let mut details = serde_json::Map::new();
                details.insert(
                    "postgres".into(),
                    if db.is_ok() { "up" } else { "down" }.into(),
                );
                details.insert(
                    "redis".into(),
                    if kv.is_ok() { "up" } else { "down" }.into(),
                );
                transcoder::error_response(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "SERVICE_UNAVAILABLE",
                    "Not ready",
                    details,
                )
                .into_response()
            }
        }
    }
}

fn not_ready(why: &str) -> Response {
    transcoder::error_response(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
        why,
        serde_json::Map::new(),
    )
    .into_response()
}

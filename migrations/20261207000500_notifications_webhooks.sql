-- In-app notifications and outbound webhooks (users service, issue #14).
--
-- Both are filled by event consumers (services/users/consumers.rs) in the transaction that
-- records the event as handled, so a redelivered event adds nothing.

-- One message to one user: order updates, and inventory alerts to admins.
CREATE TABLE notifications (
    id          BIGSERIAL CONSTRAINT notifications_pkey PRIMARY KEY,
    user_id     BIGINT NOT NULL CONSTRAINT notifications_user_fkey REFERENCES users (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CONSTRAINT notifications_kind_length CHECK (char_length(kind) BETWEEN 1 AND 64),
    title       TEXT NOT NULL CONSTRAINT notifications_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
    body        TEXT NOT NULL CONSTRAINT notifications_body_length CHECK (char_length(body) <= 2000),
    -- String values only (orderId, productId, trackingNumber...): what the client links to.
    data        JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- The event it tells of: at most one notification per event and user (a backstop to the
    -- consumer's own idempotency).
    event_id    UUID,
    created_at  TIMESTAMPTZ NOT NULL,
    read_at     TIMESTAMPTZ,
    CONSTRAINT notifications_event_user_key UNIQUE (event_id, user_id)
);
CREATE INDEX notifications_user_created_idx ON notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_user_unread_idx ON notifications (user_id) WHERE read_at IS NULL;

-- An endpoint admins registered; `events` holds dotted event names or '*'.
CREATE TABLE webhook_endpoints (
    id          BIGSERIAL CONSTRAINT webhook_endpoints_pkey PRIMARY KEY,
    url         TEXT NOT NULL CONSTRAINT webhook_endpoints_url_length CHECK (char_length(url) BETWEEN 1 AND 2048),
    events      TEXT[] NOT NULL CONSTRAINT webhook_endpoints_events_nonempty CHECK (cardinality(events) BETWEEN 1 AND 32),
    -- The HMAC key; needed in clear to sign, never logged, shown once at creation.
    secret      TEXT NOT NULL CONSTRAINT webhook_endpoints_secret_length CHECK (char_length(secret) BETWEEN 16 AND 128),
    description TEXT NOT NULL DEFAULT '' CONSTRAINT webhook_endpoints_description_length CHECK (char_length(description) <= 500),
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- One event to one endpoint. The worker claims due rows with FOR UPDATE SKIP LOCKED and
-- pushes next_attempt_at past the send timeout (a lease) before sending, so no two instances
-- send the same delivery at once, and a crashed sender's row is retried after the lease.
CREATE TABLE webhook_deliveries (
    id              BIGSERIAL CONSTRAINT webhook_deliveries_pkey PRIMARY KEY,
    endpoint_id     BIGINT NOT NULL CONSTRAINT webhook_deliveries_endpoint_fkey REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        UUID NOT NULL,
    event_type      TEXT NOT NULL CONSTRAINT webhook_deliveries_event_type_length CHECK (char_length(event_type) BETWEEN 1 AND 64),
    -- The exact bytes signed and sent (the event's JSON).
    body            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CONSTRAINT webhook_deliveries_status_check CHECK (status IN ('pending', 'delivered', 'failed')),
    attempt_count   INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    -- Retries stop here (24 h after the event): the delivery is then `failed`.
    expires_at      TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    completed_at    TIMESTAMPTZ,
    CONSTRAINT webhook_deliveries_endpoint_event_key UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);

-- Every POST of a delivery, for the admins.
CREATE TABLE webhook_attempts (
    id           BIGSERIAL CONSTRAINT webhook_attempts_pkey PRIMARY KEY,
    delivery_id  BIGINT NOT NULL CONSTRAINT webhook_attempts_delivery_fkey REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at TIMESTAMPTZ NOT NULL,
    http_status  INT,
    error        TEXT NOT NULL DEFAULT '' CONSTRAINT webhook_attempts_error_length CHECK (char_length(error) <= 1000),
    duration_ms  INT NOT NULL
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

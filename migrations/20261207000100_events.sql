-- Domain events (services/events): the transactional outbox every service writes its events
-- to, and the record of which consumer has handled which event.
--
-- A service inserts its event in the same transaction as the change it tells of, so an event
-- exists exactly when its change committed. The relay publishes unpublished rows to NATS
-- JetStream (with the event id as the message id, so a relay that crashes after publishing
-- and before marking is deduplicated by the stream), or, with no NATS_URL, the consumers read
-- this table directly.
CREATE TABLE event_outbox (
    id           UUID CONSTRAINT event_outbox_pkey PRIMARY KEY,
    -- Dotted name of the event, e.g. `order.placed` (events::EventKind).
    kind         TEXT NOT NULL CONSTRAINT event_outbox_kind_length CHECK (char_length(kind) BETWEEN 1 AND 64),
    data         JSONB NOT NULL,
    occurred_at  TIMESTAMPTZ NOT NULL,
    -- Monotonic order of insertion (the in-process dispatcher's cursor).
    seq          BIGSERIAL NOT NULL CONSTRAINT event_outbox_seq_key UNIQUE,
    published_at TIMESTAMPTZ,
    -- In-process delivery only: failed tries, and when to try again.
    attempts        INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX event_outbox_unpublished_idx ON event_outbox (seq) WHERE published_at IS NULL;

-- One row per (consumer, event) handled: inserted in the same transaction as the consumer's
-- effect, so a redelivered event finds its row and has no second effect.
CREATE TABLE event_consumptions (
    consumer    TEXT NOT NULL,
    event_id    UUID NOT NULL,
    handled_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT event_consumptions_pkey PRIMARY KEY (consumer, event_id)
);

-- Payments schema (services/payments/): payment intents and the webhook
-- events already applied. No card data is stored: only the provider's
-- reference and the payment method's id as the client sent it.

CREATE TABLE payment_intents (
    id             TEXT NOT NULL CONSTRAINT payment_intents_pkey PRIMARY KEY,
    user_id        BIGINT NOT NULL,
    amount_cents   BIGINT NOT NULL CONSTRAINT payment_intents_amount_positive CHECK (amount_cents > 0),
    currency       TEXT NOT NULL CONSTRAINT payment_intents_currency_format CHECK (currency ~ '^[a-z]{3}$'),
    status         TEXT NOT NULL DEFAULT 'requires_payment_method'
        CONSTRAINT payment_intents_status_valid CHECK (status IN
            ('requires_payment_method', 'requires_confirmation', 'processing', 'succeeded', 'failed')),
    client_secret  TEXT NOT NULL,
    metadata       JSONB NOT NULL DEFAULT '{}',
    provider       TEXT NOT NULL,
    -- The provider's id of the intent (the same id for the sandbox).
    provider_ref   TEXT NOT NULL CONSTRAINT payment_intents_provider_ref_key UNIQUE,
    failure_reason TEXT NULL,
    refunded_at    TIMESTAMPTZ NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX payment_intents_user_id_idx ON payment_intents (user_id, created_at DESC);

-- Each provider event takes effect once: its id is inserted in the same
-- transaction as its effect.
CREATE TABLE payment_webhook_events (
    id          TEXT NOT NULL CONSTRAINT payment_webhook_events_pkey PRIMARY KEY,
    type        TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL
);

-- Orders schema (services/orders/): orders, their lines, history and notes,
-- the per-day order number counter and the idempotency keys of POST /orders
-- and POST /payments/intents.
--
-- Owned by the orders service. Products are not referenced by foreign key:
-- they belong to the catalog service, and a line keeps the title and prices
-- it was sold at. Money is integer cents.

-- Order numbers: ORD-YYYYMMDD + the day's counter; a number is taken in its
-- own statement, so a failed order leaves a gap and a number is never reused.
CREATE TABLE order_numbers (
    day  DATE NOT NULL CONSTRAINT order_numbers_pkey PRIMARY KEY,
    last INTEGER NOT NULL
);

CREATE TABLE orders (
    id                TEXT NOT NULL CONSTRAINT orders_pkey PRIMARY KEY,
    user_id           BIGINT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'pending'
        CONSTRAINT orders_status_valid CHECK (status IN ('pending', 'processing', 'shipped', 'delivered', 'cancelled')),
    subtotal_cents    BIGINT NOT NULL CONSTRAINT orders_subtotal_non_negative CHECK (subtotal_cents >= 0),
    tax_cents         BIGINT NOT NULL CONSTRAINT orders_tax_non_negative CHECK (tax_cents >= 0),
    shipping_cents    BIGINT NOT NULL CONSTRAINT orders_shipping_non_negative CHECK (shipping_cents >= 0),
    total_cents       BIGINT NOT NULL
        CONSTRAINT orders_total_sum CHECK (total_cents = subtotal_cents + tax_cents + shipping_cents),
    shipping_address  JSONB NOT NULL,
    billing_address   JSONB NOT NULL,
    payment_method    TEXT NOT NULL,
    -- One intent pays at most one order.
    payment_intent_id TEXT NULL CONSTRAINT orders_payment_intent_id_key UNIQUE,
    payment_status    TEXT NOT NULL DEFAULT 'unpaid'
        CONSTRAINT orders_payment_status_valid CHECK (payment_status IN ('unpaid', 'paid', 'refunded')),
    tracking_number   TEXT NULL,
    carrier           TEXT NULL,
    cancel_reason     TEXT NULL,
    cancelled_at      TIMESTAMPTZ NULL,
    -- False until the catalog confirmed the stock reservation as committed;
    -- the reconciler retries the commit of orders left false by a crash.
    stock_committed   BOOLEAN NOT NULL DEFAULT false,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE INDEX orders_user_id_created_at_idx ON orders (user_id, created_at DESC);
CREATE INDEX orders_status_created_at_idx ON orders (status, created_at DESC);
CREATE INDEX orders_created_at_idx ON orders (created_at DESC);
CREATE INDEX orders_uncommitted_idx ON orders (created_at) WHERE NOT stock_committed;

CREATE TABLE order_items (
    order_id               TEXT NOT NULL
        CONSTRAINT order_items_order_id_fkey REFERENCES orders (id) ON DELETE CASCADE,
    position               INTEGER NOT NULL,
    product_id             BIGINT NOT NULL,
    title                  TEXT NOT NULL,
    price_cents            BIGINT NOT NULL,
    quantity               INTEGER NOT NULL CONSTRAINT order_items_quantity_positive CHECK (quantity > 0),
    total_cents            BIGINT NOT NULL,
    discount_basis_points  INTEGER NOT NULL,
    discounted_total_cents BIGINT NOT NULL,
    thumbnail              TEXT NOT NULL,
    CONSTRAINT order_items_pkey PRIMARY KEY (order_id, position)
);

-- Every status change, with who made it and why (the first entry is `pending`).
CREATE TABLE order_history (
    id         BIGSERIAL CONSTRAINT order_history_pkey PRIMARY KEY,
    order_id   TEXT NOT NULL
        CONSTRAINT order_history_order_id_fkey REFERENCES orders (id) ON DELETE CASCADE,
    status     TEXT NOT NULL,
    note       TEXT NOT NULL DEFAULT '',
    by_user_id BIGINT NOT NULL,
    at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX order_history_order_id_idx ON order_history (order_id, id);

CREATE TABLE order_notes (
    id         BIGSERIAL CONSTRAINT order_notes_pkey PRIMARY KEY,
    order_id   TEXT NOT NULL
        CONSTRAINT order_notes_order_id_fkey REFERENCES orders (id) ON DELETE CASCADE,
    note       TEXT NOT NULL CONSTRAINT order_notes_note_length CHECK (char_length(note) BETWEEN 1 AND 2000),
    by_user_id BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX order_notes_order_id_idx ON order_notes (order_id, id);

-- Idempotency-Key: the first request with a key inserts a `pending` row and
-- owns the key; duplicates wait for it to become `done` and replay its
-- response. Rows older than 24 hours are ignored and purged.
CREATE TABLE idempotency_keys (
    user_id      BIGINT NOT NULL,
    -- The operation the key belongs to, e.g. `orders.create`.
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL CONSTRAINT idempotency_keys_key_length CHECK (char_length(key) BETWEEN 1 AND 255),
    request_hash BYTEA NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending'
        CONSTRAINT idempotency_keys_status_valid CHECK (status IN ('pending', 'done')),
    -- The encoded protobuf response, once done.
    response     BYTEA NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (user_id, scope, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

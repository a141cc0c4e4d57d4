-- Returns of delivered orders (services/orders/returns.rs, contract 6.1
-- POST /orders/:id/return). Owned by the orders service.
--
-- A return names the lines it sends back as `[{id, quantity}]` (product id
-- and units), kept as JSONB: it is written once, read whole with its order and
-- never queried by line. "One open return per order" is a partial unique
-- index, so two concurrent requests race in the database, not in a
-- check-then-insert: the loser gets a unique violation (409).
--
-- Order mails (confirmation, shipping) need no table of their own: they go to
-- the identity schema's `mail_outbox` in the order's own transaction.
CREATE TABLE order_returns (
    id           BIGSERIAL CONSTRAINT order_returns_pkey PRIMARY KEY,
    order_id     TEXT NOT NULL
        CONSTRAINT order_returns_order_id_fkey REFERENCES orders (id) ON DELETE CASCADE,
    status       TEXT NOT NULL DEFAULT 'requested'
        CONSTRAINT order_returns_status_valid CHECK (status IN ('requested', 'approved', 'rejected', 'completed')),
    reason       TEXT NOT NULL CONSTRAINT order_returns_reason_length CHECK (char_length(reason) BETWEEN 1 AND 500),
    items        JSONB NOT NULL,
    requested_by BIGINT NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- At most one open (requested or approved) return per order.
CREATE UNIQUE INDEX order_returns_one_open_idx ON order_returns (order_id)
    WHERE status IN ('requested', 'approved');
CREATE INDEX order_returns_order_id_idx ON order_returns (order_id, id);

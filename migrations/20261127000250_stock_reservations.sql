-- Stock reservations of the catalog service (services/catalog/reservations.rs).
--
-- One row per (order, product). Reserving takes the units off `products.stock`
-- in the same transaction that inserts these rows, so stock is never lost:
-- a row in `reserved` holds units until it is committed (the order was placed),
-- released (the order failed or was cancelled) or it expires (the sweeper
-- releases it and gives the units back). The primary key makes a retried
-- reservation for the same order a no-op instead of a second decrement.
CREATE TABLE stock_reservations (
    order_key  TEXT NOT NULL,
    product_id BIGINT NOT NULL
        CONSTRAINT stock_reservations_product_id_fkey REFERENCES products (id),
    quantity   INTEGER NOT NULL
        CONSTRAINT stock_reservations_quantity_positive CHECK (quantity > 0),
    status     TEXT NOT NULL DEFAULT 'reserved'
        CONSTRAINT stock_reservations_status_valid CHECK (status IN ('reserved', 'committed', 'released')),
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT stock_reservations_pkey PRIMARY KEY (order_key, product_id)
);

-- The sweeper's query: reserved rows past their expiry.
CREATE INDEX stock_reservations_expiry_idx ON stock_reservations (expires_at) WHERE status = 'reserved';

CREATE TRIGGER stock_reservations_updated_at BEFORE UPDATE ON stock_reservations
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Carts (services/orders/carts.rs): the server-side cart of contract 15.2 and
-- DummyJSON's /carts. Lines keep only product ids and quantities: prices come
-- from the catalog each time a cart is read.

CREATE TABLE carts (
    id         BIGSERIAL CONSTRAINT carts_pkey PRIMARY KEY,
    user_id    BIGINT NOT NULL,
    -- The user's current cart; older ones stay readable by id until deleted.
    is_active  BOOLEAN NOT NULL DEFAULT true,
    deleted_at TIMESTAMPTZ NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
-- One active cart per user; the database settles concurrent first accesses.
CREATE UNIQUE INDEX carts_one_active_per_user ON carts (user_id) WHERE is_active AND deleted_at IS NULL;

CREATE TABLE cart_items (
    cart_id    BIGINT NOT NULL CONSTRAINT cart_items_cart_id_fkey REFERENCES carts (id) ON DELETE CASCADE,
    product_id BIGINT NOT NULL,
    quantity   INTEGER NOT NULL CONSTRAINT cart_items_quantity_positive CHECK (quantity > 0),
    position   BIGSERIAL,
    CONSTRAINT cart_items_pkey PRIMARY KEY (cart_id, product_id)
);

-- Wishlists and customer reviews (issue 14), both owned by the catalog.

-- Reviews written through the API belong to an account; the seeded DummyJSON reviews have
-- none (user_id NULL) and keep their reviewer name and email as seeded.
ALTER TABLE reviews
    ADD COLUMN user_id           BIGINT NULL,
    ADD COLUMN updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The author had a delivered order with the product when writing (or since: the
    -- catalog.purchases consumer marks reviews written before the delivery).
    ADD COLUMN verified_purchase BOOLEAN NOT NULL DEFAULT false,
    -- NOT VALID: the seeded rows are not rescanned; every new or edited row is checked.
    ADD CONSTRAINT reviews_comment_length CHECK (char_length(comment) BETWEEN 1 AND 2000) NOT VALID;

-- One review per user per product: the race-free rule behind 409 REVIEW_EXISTS (two
-- concurrent first reviews cannot both commit).
CREATE UNIQUE INDEX reviews_one_per_user_product ON reviews (product_id, user_id)
    WHERE user_id IS NOT NULL;

-- Which products each user has received (an order of theirs with the product was
-- delivered), filled from order.delivered events by the catalog.purchases consumer, so the
-- catalog never reads the orders' tables. No foreign key: an event is applied whatever
-- the state of the product.
CREATE TABLE catalog_purchases (
    user_id           BIGINT NOT NULL,
    product_id        BIGINT NOT NULL,
    first_delivered_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT catalog_purchases_pkey PRIMARY KEY (user_id, product_id)
);

-- A user's wishlist: one entry per product (the entry's id on the wire is the product id).
CREATE TABLE wishlist_items (
    user_id    BIGINT NOT NULL,
    product_id BIGINT NOT NULL
        CONSTRAINT wishlist_items_product_id_fkey REFERENCES products (id) ON DELETE CASCADE,
    added_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT wishlist_items_pkey PRIMARY KEY (user_id, product_id)
);

-- The list's order: newest first.
CREATE INDEX wishlist_items_user_added_idx ON wishlist_items (user_id, added_at DESC, product_id DESC);

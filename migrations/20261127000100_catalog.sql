-- Catalog schema: categories, products, their images and reviews
-- (contract sections 5 and 14, indexes of section 12.3).
--
-- Owned by the catalog service (services/catalog/): no other service reads
-- these tables; they ask CatalogService over gRPC. The commerce team updates
-- `products.stock` through the catalog's own API, atomically
-- (`UPDATE .. SET stock = stock - $n WHERE stock >= $n`), so stock stays a
-- plain column guarded by a CHECK.
--
-- Money is integer cents (`price_cents`); it becomes a decimal number only
-- at the JSON edge. Deleting a product is soft (`deleted_at`): orders keep
-- pointing at it, and every catalog read filters `deleted_at IS NULL`.

-- Trigram matching for typo-tolerant search ("iphnoe" finds "iPhone").
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Keeps `updated_at` honest whatever code path writes the row. Shared by
-- later migrations (CREATE OR REPLACE keeps it idempotent).
CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TABLE categories (
    id   BIGSERIAL CONSTRAINT categories_pkey PRIMARY KEY,
    -- The public identifier: GET /products/category/:slug.
    slug TEXT NOT NULL
        CONSTRAINT categories_slug_key UNIQUE
        CONSTRAINT categories_slug_format CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    name TEXT NOT NULL
        CONSTRAINT categories_name_not_blank CHECK (btrim(name) <> '')
);

CREATE TABLE products (
    id                     BIGSERIAL CONSTRAINT products_pkey PRIMARY KEY,
    title                  TEXT NOT NULL
        CONSTRAINT products_title_length CHECK (char_length(title) BETWEEN 3 AND 200),
    description            TEXT NOT NULL
        CONSTRAINT products_description_length CHECK (char_length(description) BETWEEN 10 AND 5000),
    price_cents            BIGINT NOT NULL
        CONSTRAINT products_price_positive CHECK (price_cents > 0),
    discount_percentage    NUMERIC(5, 2) NOT NULL DEFAULT 0
        CONSTRAINT products_discount_range CHECK (discount_percentage BETWEEN 0 AND 100),
    brand                  TEXT NULL,
    stock                  INTEGER NOT NULL DEFAULT 0
        CONSTRAINT products_stock_non_negative CHECK (stock >= 0),
    -- Average review rating, 0 when unrated.
    rating                 NUMERIC(3, 2) NOT NULL DEFAULT 0
        CONSTRAINT products_rating_range CHECK (rating BETWEEN 0 AND 5),
    category_id            BIGINT NOT NULL
        CONSTRAINT products_category_id_fkey REFERENCES categories (id),
    thumbnail              TEXT NOT NULL,
    sku                    TEXT NULL CONSTRAINT products_sku_key UNIQUE,
    tags                   TEXT[] NOT NULL DEFAULT '{}',
    weight                 NUMERIC(8, 2) NULL,
    width                  NUMERIC(8, 2) NULL,
    height                 NUMERIC(8, 2) NULL,
    depth                  NUMERIC(8, 2) NULL,
    warranty_information   TEXT NULL,
    shipping_information   TEXT NULL,
    -- Derived, so it can never disagree with `stock`.
    availability_status    TEXT GENERATED ALWAYS AS (
        CASE
            WHEN stock = 0 THEN 'Out of Stock'
            WHEN stock < 10 THEN 'Low Stock'
            ELSE 'In Stock'
        END
    ) STORED,
    return_policy          TEXT NULL,
    minimum_order_quantity INTEGER NOT NULL DEFAULT 1
        CONSTRAINT products_minimum_order_quantity_positive CHECK (minimum_order_quantity >= 1),
    barcode                TEXT NULL,
    qr_code                TEXT NULL,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Soft delete: set once by DELETE /products/:id.
    deleted_at             TIMESTAMPTZ NULL,
    -- Full-text search document (GET /products/search): the title weighs
    -- most, then the brand, then the description.
    search_document        TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A')
        || setweight(to_tsvector('english', coalesce(brand, '')), 'B')
        || setweight(to_tsvector('english', description), 'C')
    ) STORED
);

CREATE TRIGGER products_set_updated_at
    BEFORE UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Section 12.3, restricted to live rows (every catalog read filters them),
-- with `id` appended where the listing tie-breaks on it.
CREATE INDEX products_category_id_idx ON products (category_id, id) WHERE deleted_at IS NULL;
-- The brand filter is case-insensitive.
CREATE INDEX products_brand_idx ON products (lower(brand)) WHERE deleted_at IS NULL;
CREATE INDEX products_price_idx ON products (price_cents, id) WHERE deleted_at IS NULL;
-- The other two sort keys of GET /products?sortBy=.
CREATE INDEX products_rating_idx ON products (rating, id) WHERE deleted_at IS NULL;
CREATE INDEX products_title_idx ON products (title, id) WHERE deleted_at IS NULL;
-- Search: full text, and trigrams on the title for typos.
CREATE INDEX products_search_document_idx ON products USING GIN (search_document)
    WHERE deleted_at IS NULL;
CREATE INDEX products_title_trgm_idx ON products USING GIN (title gin_trgm_ops)
    WHERE deleted_at IS NULL;

CREATE TABLE product_images (
    product_id BIGINT NOT NULL
        CONSTRAINT product_images_product_id_fkey REFERENCES products (id) ON DELETE CASCADE,
    -- 0-based order of the gallery.
    position   SMALLINT NOT NULL
        CONSTRAINT product_images_position_range CHECK (position BETWEEN 0 AND 19),
    url        TEXT NOT NULL,
    CONSTRAINT product_images_pkey PRIMARY KEY (product_id, position)
);

CREATE TABLE reviews (
    id             BIGSERIAL CONSTRAINT reviews_pkey PRIMARY KEY,
    product_id     BIGINT NOT NULL
        CONSTRAINT reviews_product_id_fkey REFERENCES products (id) ON DELETE CASCADE,
    rating         SMALLINT NOT NULL
        CONSTRAINT reviews_rating_range CHECK (rating BETWEEN 1 AND 5),
    comment        TEXT NOT NULL,
    -- A calendar date on the wire ("2025-12-20").
    date           DATE NOT NULL DEFAULT current_date,
    reviewer_name  TEXT NOT NULL,
    reviewer_email TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX reviews_product_id_idx ON reviews (product_id, id);

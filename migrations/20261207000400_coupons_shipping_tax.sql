-- Coupons, shipping methods and rates, and tax rates by location (issue #14), owned by the
-- orders service (services/orders/): the rules that read them are pure functions in
-- services/orders/domain/{coupon,shipping,tax}.rs; the rows here are their data.

-- Coupons. `used` counts live redemptions: an order redeems with one conditional UPDATE
-- (`used < usage_limit`) in its own transaction, and a cancelled order gives it back.
CREATE TABLE coupons (
    id                 BIGSERIAL CONSTRAINT coupons_pkey PRIMARY KEY,
    -- Stored upper-case; the API compares case-insensitively by upper-casing the input.
    code               TEXT NOT NULL CONSTRAINT coupons_code_key UNIQUE
        CONSTRAINT coupons_code_format CHECK (code ~ '^[A-Z0-9_-]{3,32}$'),
    kind               TEXT NOT NULL
        CONSTRAINT coupons_kind_valid CHECK (kind IN ('percentage', 'fixed_amount', 'free_shipping')),
    -- Percentage coupons: 1..100 percent off the eligible lines.
    percent_off        INTEGER NULL CONSTRAINT coupons_percent_off_range CHECK (percent_off BETWEEN 1 AND 100),
    -- Fixed-amount coupons: cents off the eligible lines (shop currency), at most their sum.
    amount_off_cents   BIGINT NULL CONSTRAINT coupons_amount_off_positive CHECK (amount_off_cents > 0),
    min_subtotal_cents BIGINT NULL CONSTRAINT coupons_min_subtotal_non_negative CHECK (min_subtotal_cents >= 0),
    starts_at          TIMESTAMPTZ NULL,
    ends_at            TIMESTAMPTZ NULL,
    usage_limit        INTEGER NULL CONSTRAINT coupons_usage_limit_positive CHECK (usage_limit > 0),
    per_user_limit     INTEGER NULL CONSTRAINT coupons_per_user_limit_positive CHECK (per_user_limit > 0),
    used               INTEGER NOT NULL DEFAULT 0 CONSTRAINT coupons_used_non_negative CHECK (used >= 0),
    -- Restrictions: when either is non-empty, only lines of these products or categories
    -- (catalog slugs) are discounted.
    product_ids        BIGINT[] NOT NULL DEFAULT '{}',
    categories         TEXT[] NOT NULL DEFAULT '{}',
    active             BOOLEAN NOT NULL DEFAULT true,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    CONSTRAINT coupons_value_of_kind CHECK (
        (kind = 'percentage' AND percent_off IS NOT NULL AND amount_off_cents IS NULL)
        OR (kind = 'fixed_amount' AND amount_off_cents IS NOT NULL AND percent_off IS NULL)
        OR (kind = 'free_shipping' AND percent_off IS NULL AND amount_off_cents IS NULL)
    ),
    CONSTRAINT coupons_window CHECK (starts_at IS NULL OR ends_at IS NULL OR starts_at < ends_at)
);

-- One row per order that redeemed a coupon (deleted when the order is cancelled, in the
-- cancellation's transaction, with `used` decremented). The per-user limit counts these rows,
-- under the coupon row's lock taken by the redeeming UPDATE.
CREATE TABLE coupon_redemptions (
    order_id       TEXT NOT NULL CONSTRAINT coupon_redemptions_pkey PRIMARY KEY
        CONSTRAINT coupon_redemptions_order_id_fkey REFERENCES orders (id),
    coupon_id      BIGINT NOT NULL
        CONSTRAINT coupon_redemptions_coupon_id_fkey REFERENCES coupons (id) ON DELETE CASCADE,
    user_id        BIGINT NOT NULL,
    discount_cents BIGINT NOT NULL,
    redeemed_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX coupon_redemptions_coupon_user_idx ON coupon_redemptions (coupon_id, user_id);

-- The coupon applied to a cart (POST /checkout/apply-coupon), by code: checked again when
-- the order is placed, so a coupon changed or deleted since is refused then.
ALTER TABLE carts ADD COLUMN coupon_code TEXT NULL;

-- What an order was priced with. Orders placed before this migration: no coupon, standard
-- shipping, tax rate not recorded (NULL).
ALTER TABLE orders
    ADD COLUMN discount_cents BIGINT NOT NULL DEFAULT 0
        CONSTRAINT orders_discount_non_negative CHECK (discount_cents >= 0),
    ADD COLUMN coupon_code TEXT NULL,
    ADD COLUMN shipping_method TEXT NOT NULL DEFAULT 'standard',
    -- Parts per million of the discounted subtotal (8 % = 80000, 8.875 % = 88750).
    ADD COLUMN tax_rate_ppm INTEGER NULL
        CONSTRAINT orders_tax_rate_range CHECK (tax_rate_ppm BETWEEN 0 AND 1000000);
ALTER TABLE orders DROP CONSTRAINT orders_total_sum;
ALTER TABLE orders ADD CONSTRAINT orders_total_sum
    CHECK (total_cents = subtotal_cents - discount_cents + tax_cents + shipping_cents);

-- Shipping methods, in the order they are offered. `free_over_threshold`: the method is free
-- from FREE_SHIPPING_THRESHOLD (and with a free-shipping coupon); express and overnight never are.
CREATE TABLE shipping_methods (
    code                TEXT NOT NULL CONSTRAINT shipping_methods_pkey PRIMARY KEY
        CONSTRAINT shipping_methods_code_format CHECK (code ~ '^[a-z][a-z0-9_]{0,31}$'),
    name                TEXT NOT NULL,
    position            INTEGER NOT NULL,
    free_over_threshold BOOLEAN NOT NULL
);

-- Rates by destination zone: a country (ISO 3166-1 alpha-2), optionally narrowed to a state
-- (US states, '' for the whole country). The price is `base_cents` plus `per_kg_cents` for every
-- started kilogram above the first. A country with no row for a method is not served by it.
CREATE TABLE shipping_rates (
    method       TEXT NOT NULL CONSTRAINT shipping_rates_method_fkey REFERENCES shipping_methods (code),
    country      TEXT NOT NULL CONSTRAINT shipping_rates_country_format CHECK (country ~ '^[A-Z]{2}$'),
    state        TEXT NOT NULL DEFAULT '' CONSTRAINT shipping_rates_state_format CHECK (state ~ '^[A-Z0-9]{0,3}$'),
    base_cents   BIGINT NOT NULL CONSTRAINT shipping_rates_base_non_negative CHECK (base_cents >= 0),
    per_kg_cents BIGINT NOT NULL CONSTRAINT shipping_rates_per_kg_non_negative CHECK (per_kg_cents >= 0),
    min_days     INTEGER NOT NULL CONSTRAINT shipping_rates_min_days_positive CHECK (min_days >= 1),
    max_days     INTEGER NOT NULL,
    CONSTRAINT shipping_rates_pkey PRIMARY KEY (method, country, state),
    CONSTRAINT shipping_rates_days_order CHECK (max_days >= min_days)
);

INSERT INTO shipping_methods (code, name, position, free_over_threshold) VALUES
    ('standard', 'Standard shipping', 1, true),
    ('express', 'Express shipping', 2, false),
    ('overnight', 'Overnight shipping', 3, false);

-- Standard to the contiguous US is today's flat fee (9.99, SHIPPING_FLAT_FEE's default).
INSERT INTO shipping_rates (method, country, state, base_cents, per_kg_cents, min_days, max_days) VALUES
    ('standard',  'US', '',    999,  100, 3, 5),
    ('standard',  'US', 'AK', 1999,  250, 5, 9),
    ('standard',  'US', 'HI', 1999,  250, 5, 9),
    ('standard',  'US', 'PR', 1999,  250, 5, 9),
    ('express',   'US', '',   1999,  200, 1, 2),
    ('express',   'US', 'AK', 3499,  400, 2, 4),
    ('express',   'US', 'HI', 3499,  400, 2, 4),
    ('overnight', 'US', '',   3999,  300, 1, 1),
    ('standard',  'CA', '',   1499,  200, 5, 8),
    ('express',   'CA', '',   2999,  350, 2, 3),
    ('standard',  'MX', '',   1999,  250, 6, 10),
    ('express',   'MX', '',   3499,  400, 3, 4),
    ('standard',  'GB', '',   1999,  300, 6, 10),
    ('express',   'GB', '',   3999,  500, 2, 4),
    ('standard',  'IE', '',   1999,  300, 6, 10),
    ('express',   'IE', '',   3999,  500, 2, 4),
    ('standard',  'DE', '',   1999,  300, 6, 10),
    ('express',   'DE', '',   3999,  500, 2, 4),
    ('standard',  'FR', '',   1999,  300, 6, 10),
    ('express',   'FR', '',   3999,  500, 2, 4),
    ('standard',  'IT', '',   1999,  300, 7, 11),
    ('express',   'IT', '',   3999,  500, 3, 5),
    ('standard',  'ES', '',   1999,  300, 7, 11),
    ('express',   'ES', '',   3999,  500, 3, 5),
    ('standard',  'NL', '',   1999,  300, 6, 10),
    ('express',   'NL', '',   3999,  500, 2, 4),
    ('standard',  'AU', '',   2499,  400, 8, 14),
    ('express',   'AU', '',   4999,  600, 3, 6),
    ('standard',  'JP', '',   2499,  400, 7, 12),
    ('express',   'JP', '',   4999,  600, 3, 5);

-- Tax rates by location, in parts per million of the discounted subtotal: US states' sales tax
-- (the state rate; states without a sales tax at 0), Canadian GST/HST, VAT elsewhere. A
-- location without a row pays TAX_RATE. New York is at 8 % (4 % state plus the typical local
-- 4 %), the contract's worked example. Admins change rows with PUT /admin/tax-rates.
CREATE TABLE tax_rates (
    country    TEXT NOT NULL CONSTRAINT tax_rates_country_format CHECK (country ~ '^[A-Z]{2}$'),
    state      TEXT NOT NULL DEFAULT '' CONSTRAINT tax_rates_state_format CHECK (state ~ '^[A-Z0-9]{0,3}$'),
    rate_ppm   INTEGER NOT NULL CONSTRAINT tax_rates_rate_range CHECK (rate_ppm BETWEEN 0 AND 1000000),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT tax_rates_pkey PRIMARY KEY (country, state)
);

INSERT INTO tax_rates (country, state, rate_ppm) VALUES
    ('US', 'AL', 40000), ('US', 'AK', 0), ('US', 'AZ', 56000), ('US', 'AR', 65000),
    ('US', 'CA', 72500), ('US', 'CO', 29000), ('US', 'CT', 63500), ('US', 'DE', 0),
    ('US', 'DC', 60000), ('US', 'FL', 60000), ('US', 'GA', 40000), ('US', 'HI', 40000),
    ('US', 'ID', 60000), ('US', 'IL', 62500), ('US', 'IN', 70000), ('US', 'IA', 60000),
    ('US', 'KS', 65000), ('US', 'KY', 60000), ('US', 'LA', 44500), ('US', 'ME', 55000),
    ('US', 'MD', 60000), ('US', 'MA', 62500), ('US', 'MI', 60000), ('US', 'MN', 68750),
    ('US', 'MS', 70000), ('US', 'MO', 42250), ('US', 'MT', 0), ('US', 'NE', 55000),
    ('US', 'NV', 68500), ('US', 'NH', 0), ('US', 'NJ', 66250), ('US', 'NM', 48750),
    ('US', 'NY', 80000), ('US', 'NC', 47500), ('US', 'ND', 50000), ('US', 'OH', 57500),
    ('US', 'OK', 45000), ('US', 'OR', 0), ('US', 'PA', 60000), ('US', 'RI', 70000),
    ('US', 'SC', 60000), ('US', 'SD', 42000), ('US', 'TN', 70000), ('US', 'TX', 62500),
    ('US', 'UT', 61000), ('US', 'VT', 60000), ('US', 'VA', 53000), ('US', 'WA', 65000),
    ('US', 'WV', 60000), ('US', 'WI', 50000), ('US', 'WY', 40000),
    ('CA', '', 50000), ('CA', 'ON', 130000), ('CA', 'NS', 140000), ('CA', 'NB', 150000),
    ('CA', 'NL', 150000), ('CA', 'PE', 150000),
    ('GB', '', 200000), ('IE', '', 230000), ('DE', '', 190000), ('FR', '', 200000),
    ('IT', '', 220000), ('ES', '', 210000), ('NL', '', 210000), ('MX', '', 160000),
    ('AU', '', 100000), ('JP', '', 100000);

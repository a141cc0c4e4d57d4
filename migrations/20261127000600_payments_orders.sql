-- Payments and orders agree (issue 5): what an intent records beyond the
-- provider's id. Still no card data: only the last four digits, when the
-- provider gives them.
ALTER TABLE payment_intents
    ADD COLUMN card_last4 TEXT NULL
        CONSTRAINT payment_intents_card_last4_format CHECK (card_last4 ~ '^[0-9]{4}$'),
    -- The order the intent was created for (metadata.orderId, checked against
    -- that order's owner and total at creation).
    ADD COLUMN order_id TEXT NULL;

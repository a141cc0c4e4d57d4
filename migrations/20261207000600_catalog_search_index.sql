-- The catalog's search index follows the products table (issue #16, target 3).
--
-- Each catalog process keeps an in-memory full-text index of the live products
-- (services/catalog/search_index.rs) and brings it up to date before every search that
-- reaches the store, and every second in the background. What it needs from PostgreSQL is
-- "the rows whose searchable state changed since I last looked", exactly, with no row
-- missed however transactions interleave. An `updated_at` watermark cannot say that
-- (`now()` is when a transaction started, not when it committed: a long transaction commits
-- rows older than the watermark) and neither can a sequence (numbers are taken before the
-- commit, in another order).
--
-- So each row carries the id of the transaction that last changed what the index holds of
-- it (`search_xid`), and the follower remembers the snapshot it last read
-- (`pg_current_snapshot()`). The rows to read again are exactly those whose `search_xid` that
-- snapshot did not see: `search_xid >= pg_snapshot_xmin(previous)` (every transaction below
-- its xmin had ended, so was seen or aborted) and `NOT pg_visible_in_snapshot(search_xid,
-- previous)`. The index below makes that a short range scan.
--
-- The trigger sets it only when a searched or filtered column changes: a reservation that
-- takes stock from 7 to 6 changes nothing the index holds (only whether stock is above 0),
-- so order traffic does not make the followers re-read products.
ALTER TABLE products
    ADD COLUMN search_xid xid8 NOT NULL DEFAULT pg_current_xact_id();

CREATE FUNCTION products_set_search_xid() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.title, NEW.description, NEW.brand, NEW.category_id, NEW.price_cents,
        NEW.rating, NEW.stock > 0, NEW.deleted_at)
       IS DISTINCT FROM
       (OLD.title, OLD.description, OLD.brand, OLD.category_id, OLD.price_cents,
        OLD.rating, OLD.stock > 0, OLD.deleted_at) THEN
        NEW.search_xid := pg_current_xact_id();
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER products_set_search_xid
    BEFORE UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION products_set_search_xid();

CREATE INDEX products_search_xid_idx ON products (search_xid);

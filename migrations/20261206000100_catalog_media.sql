-- Catalog: stored pictures, served at GET /api/v1/media/{path} (issue #17). The demo seed
-- writes one set per product (a thumbnail and three gallery pictures). In PostgreSQL rather
-- than on a disk, so every instance serves the same bytes and a restart keeps them.
CREATE TABLE media (
    path         text PRIMARY KEY CHECK (path ~ '^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$'),
    content_type text NOT NULL,
    -- A digest of the bytes: the HTTP ETag (quoted on the wire).
    etag         text NOT NULL,
    bytes        bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

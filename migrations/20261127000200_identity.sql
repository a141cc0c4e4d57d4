-- Identity schema: accounts, refresh tokens, password resets, the mail
-- outbox, preferences and addresses (contract sections 4, 7, 9 and 14).
--
-- Owned by the auth and users services (services/auth/, services/users/):
-- other services learn about users through their gRPC APIs only.
--
-- Emails and usernames are unique case-insensitively (unique indexes on
-- lower(..)), so two concurrent registrations race in the database, not in
-- a check-then-insert. Secrets are never stored in the clear: passwords as
-- argon2id PHC strings, refresh and reset tokens as SHA-256 digests.

CREATE TABLE users (
    id               BIGSERIAL CONSTRAINT users_pkey PRIMARY KEY,
    email            TEXT NOT NULL,
    username         TEXT NOT NULL,
    password_hash    TEXT NOT NULL,
    first_name       TEXT NOT NULL,
    last_name        TEXT NOT NULL,
    gender           TEXT NOT NULL DEFAULT '',
    image            TEXT NOT NULL DEFAULT '',
    phone            TEXT NOT NULL DEFAULT '',
    age              INTEGER CONSTRAINT users_age_check CHECK (age BETWEEN 0 AND 150),
    role             TEXT NOT NULL DEFAULT 'user'
                     CONSTRAINT users_role_check CHECK (role IN ('user', 'admin')),
    -- Lockout (spec 4.2.1, 423 ACCOUNT_LOCKED): failures counted in a window
    -- that starts with the first failure.
    failed_logins    INTEGER NOT NULL DEFAULT 0,
    failures_since   TIMESTAMPTZ,
    locked_until     TIMESTAMPTZ,
    -- Soft delete (spec 7.2.6): set by POST /users/me/delete, cleared by a
    -- login during the grace period; the purge job anonymises the row after.
    deletion_requested_at TIMESTAMPTZ,
    deletion_reason  TEXT,
    purged_at        TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE INDEX users_deletion_requested_at_idx ON users (deletion_requested_at)
    WHERE deletion_requested_at IS NOT NULL AND purged_at IS NULL;

CREATE TRIGGER users_set_updated_at
    BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Refresh tokens (spec 4.2.5): opaque, stored hashed, grouped in families.
-- Each refresh rotates (the presented row gets `rotated_at`, a new row joins
-- the family); presenting a rotated token again revokes the whole family.
CREATE TABLE refresh_tokens (
    id          BIGSERIAL CONSTRAINT refresh_tokens_pkey PRIMARY KEY,
    token_hash  BYTEA NOT NULL CONSTRAINT refresh_tokens_token_hash_key UNIQUE,
    family_id   UUID NOT NULL,
    user_id     BIGINT NOT NULL CONSTRAINT refresh_tokens_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    expires_at  TIMESTAMPTZ NOT NULL,
    rotated_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);

-- Password reset tokens (spec 4.2.6/4.2.7): 256 random bits, stored hashed,
-- single use, valid 30 minutes.
CREATE TABLE password_resets (
    id          BIGSERIAL CONSTRAINT password_resets_pkey PRIMARY KEY,
    token_hash  BYTEA NOT NULL CONSTRAINT password_resets_token_hash_key UNIQUE,
    user_id     BIGINT NOT NULL CONSTRAINT password_resets_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX password_resets_user_id_idx ON password_resets (user_id);

-- Transactional outbox of mail: written in the transaction that decides to
-- send, delivered by the background sender with retries and back-off, so a
-- mail server that is down loses nothing.
CREATE TABLE mail_outbox (
    id            BIGSERIAL CONSTRAINT mail_outbox_pkey PRIMARY KEY,
    recipient     TEXT NOT NULL,
    subject       TEXT NOT NULL,
    body          TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error    TEXT,
    sent_at       TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX mail_outbox_pending_idx ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;

-- Preferences (spec 7.2.4); a user without a row has the defaults.
CREATE TABLE user_preferences (
    user_id             BIGINT CONSTRAINT user_preferences_pkey PRIMARY KEY
                        CONSTRAINT user_preferences_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    theme               TEXT NOT NULL DEFAULT 'light'
                        CONSTRAINT user_preferences_theme_check CHECK (theme IN ('light', 'dark')),
    notifications       BOOLEAN NOT NULL DEFAULT true,
    email_notifications BOOLEAN NOT NULL DEFAULT true,
    currency            TEXT NOT NULL DEFAULT 'USD',
    language            TEXT NOT NULL DEFAULT 'en',
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TRIGGER user_preferences_set_updated_at
    BEFORE UPDATE ON user_preferences
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Saved addresses (spec 7.2.5); at most one default per user, enforced by a
-- partial unique index (switching the default happens in one transaction).
CREATE TABLE addresses (
    id          BIGSERIAL CONSTRAINT addresses_pkey PRIMARY KEY,
    user_id     BIGINT NOT NULL CONSTRAINT addresses_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    label       TEXT NOT NULL DEFAULT '',
    first_name  TEXT NOT NULL,
    last_name   TEXT NOT NULL,
    address     TEXT NOT NULL,
    city        TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT '',
    zip_code    TEXT NOT NULL,
    country     TEXT NOT NULL,
    phone       TEXT NOT NULL DEFAULT '',
    is_default  BOOLEAN NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX addresses_user_id_idx ON addresses (user_id);
CREATE UNIQUE INDEX addresses_one_default_key ON addresses (user_id) WHERE is_default;

CREATE TRIGGER addresses_set_updated_at
    BEFORE UPDATE ON addresses
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

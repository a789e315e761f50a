-- The release manager (seed 003): who made a release, users and their
-- sessions, environments per product, and approvals.
ALTER TABLE releases ADD COLUMN created_by TEXT;

CREATE TABLE users (
    id            TEXT        PRIMARY KEY,
    email         TEXT        NOT NULL UNIQUE,
    name          TEXT        NOT NULL,
    role          TEXT        NOT NULL,
    password_hash TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_login    TIMESTAMPTZ,
    disabled_at   TIMESTAMPTZ,
    failed_logins INTEGER     NOT NULL DEFAULT 0
);

-- A session token is kept only as its SHA-256, like an API key.
CREATE TABLE sessions (
    id         TEXT        PRIMARY KEY,
    token_hash TEXT        NOT NULL UNIQUE,
    user_id    TEXT        NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    ended_at   TIMESTAMPTZ
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- A product's environments, whole as JSON beside their order. A product with
-- no rows has the built-in defaults.
CREATE TABLE environments (
    product  TEXT    NOT NULL,
    name     TEXT    NOT NULL,
    position INTEGER NOT NULL,
    body     JSONB   NOT NULL,
    PRIMARY KEY (product, name)
);

-- Append-only, like the events: a change of mind is a new row.
CREATE TABLE approvals (
    id          TEXT        PRIMARY KEY,
    release_id  BIGINT      NOT NULL,
    environment TEXT        NOT NULL,
    actor       TEXT        NOT NULL,
    role        TEXT        NOT NULL,
    decision    TEXT        NOT NULL,
    comment     TEXT,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX approvals_by_release ON approvals (release_id, environment, created_at);

-- Deployments by product and environment (the release manager's lookups).
CREATE INDEX deployments_by_product_env ON deployments ((body->>'product'), (body->>'environment'), start_time);

-- Canary deployments, the event log, workers, API keys, and lane observations.
-- A deployment is stored whole as JSON (`body`), with the columns that queries and
-- constraints need beside it. `live` is 1 until the deployment is completed or failed.
CREATE TABLE deployments (
    id          TEXT    PRIMARY KEY,
    queue_name  TEXT    NOT NULL,
    tenant_key  TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    live        INTEGER NOT NULL,
    revision    INTEGER NOT NULL,
    start_time  INTEGER NOT NULL,
    body        TEXT    NOT NULL
);
-- One live deployment per target and tenant (seed 004's DEPLOYMENT_EXISTS).
CREATE UNIQUE INDEX deployments_one_live_per_target ON deployments (queue_name, tenant_key) WHERE live = 1;
CREATE INDEX deployments_by_start ON deployments (start_time);

-- Append-only: no route updates or deletes these rows.
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY,
    id            TEXT    NOT NULL UNIQUE,
    deployment_id TEXT,
    kind          TEXT    NOT NULL,
    resource_type TEXT    NOT NULL,
    resource_id   TEXT    NOT NULL,
    actor         TEXT    NOT NULL,
    message       TEXT    NOT NULL,
    data          TEXT    NOT NULL,
    ts            INTEGER NOT NULL
);
CREATE INDEX events_by_deployment ON events (deployment_id, seq);
CREATE INDEX events_by_resource ON events (resource_type, resource_id, seq);

CREATE TABLE workers (
    id        TEXT    PRIMARY KEY,
    lane      TEXT    NOT NULL,
    status    TEXT    NOT NULL,
    last_seen INTEGER NOT NULL,
    body      TEXT    NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    key_hash     TEXT    NOT NULL UNIQUE,
    prefix       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    created_by   TEXT    NOT NULL,
    revoked_at   INTEGER
);

-- What each lane of a deployment did: outcomes, latencies, gauges.
CREATE TABLE observations (
    id            INTEGER PRIMARY KEY,
    deployment_id TEXT    NOT NULL,
    lane          TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    value         REAL    NOT NULL,
    ts            INTEGER NOT NULL
);
CREATE INDEX observations_by_deployment_ts ON observations (deployment_id, ts);

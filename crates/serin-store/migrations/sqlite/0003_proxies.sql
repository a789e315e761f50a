-- What proxies report: one row per second, lane, deployment and proxy instance.
-- A proxy reports each finished second once under its instance id, so a retried
-- report changes nothing (INSERT OR IGNORE on the key). `latency` is the sparse
-- JSON histogram of serin-core.
CREATE TABLE lane_buckets (
    deployment_id  TEXT    NOT NULL,
    second         INTEGER NOT NULL,
    lane           TEXT    NOT NULL,
    source         TEXT    NOT NULL,
    requests       INTEGER NOT NULL,
    errors_5xx     INTEGER NOT NULL,
    errors_connect INTEGER NOT NULL,
    errors_timeout INTEGER NOT NULL,
    latency        TEXT    NOT NULL,
    PRIMARY KEY (deployment_id, second, lane, source)
) WITHOUT ROWID;

-- Proxies the control plane has heard from.
CREATE TABLE proxies (
    id              TEXT    PRIMARY KEY,
    name            TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    route_version   TEXT    NOT NULL,
    last_contact    INTEGER NOT NULL,
    dropped_buckets INTEGER NOT NULL
);

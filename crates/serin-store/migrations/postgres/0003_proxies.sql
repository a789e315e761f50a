-- What proxies report: one row per second, lane, deployment and proxy instance.
-- A proxy reports each finished second once under its instance id, so a retried
-- report changes nothing (ON CONFLICT DO NOTHING on the key). `latency` is the
-- sparse JSON histogram of serin-core.
CREATE TABLE lane_buckets (
    deployment_id  TEXT   NOT NULL,
    second         BIGINT NOT NULL,
    lane           TEXT   NOT NULL,
    source         TEXT   NOT NULL,
    requests       BIGINT NOT NULL,
    errors_5xx     BIGINT NOT NULL,
    errors_connect BIGINT NOT NULL,
    errors_timeout BIGINT NOT NULL,
    latency        JSONB  NOT NULL,
    PRIMARY KEY (deployment_id, second, lane, source)
);

-- Proxies the control plane has heard from.
CREATE TABLE proxies (
    id              TEXT        PRIMARY KEY,
    name            TEXT        NOT NULL,
    kind            TEXT        NOT NULL,
    route_version   TEXT        NOT NULL,
    last_contact    TIMESTAMPTZ NOT NULL,
    dropped_buckets BIGINT      NOT NULL
);

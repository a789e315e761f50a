-- The outside calls a leader makes for a rollout (hooks, webhook gates), one
-- row per call key (the `delivery_id` its receiver sees): claimed before the
-- call, each attempt counted before it is sent, the answer recorded after, so
-- a restarted server reuses an answer instead of calling again. Times are
-- microseconds since the epoch.
CREATE TABLE outside_calls (
    key           TEXT    PRIMARY KEY,
    deployment_id TEXT    NOT NULL,
    attempts      INTEGER NOT NULL,
    claimed_until INTEGER NOT NULL,
    finished_at   INTEGER,
    ok            INTEGER,
    output        TEXT
);
CREATE INDEX outside_calls_by_deployment ON outside_calls (deployment_id);

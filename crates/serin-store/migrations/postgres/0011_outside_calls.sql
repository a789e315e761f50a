-- The outside calls a leader makes for a rollout (hooks, webhook gates), one
-- row per call key (the `delivery_id` its receiver sees). A leader claims the
-- row before it calls (until `claimed_until`), counts every attempt before it
-- is sent, and records the answer after; a later leader reuses a recorded
-- answer instead of calling again, and waits out a claim that hasn't lapsed.
CREATE TABLE outside_calls (
    key           TEXT        PRIMARY KEY,
    deployment_id TEXT        NOT NULL,
    attempts      INTEGER     NOT NULL,
    claimed_until TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    ok            BOOLEAN,
    output        TEXT
);
CREATE INDEX outside_calls_by_deployment ON outside_calls (deployment_id);

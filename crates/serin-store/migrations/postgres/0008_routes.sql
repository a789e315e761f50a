-- The route set without reading history: `routed` marks deployments with
-- upstreams, `routes` holds each target's newest routed deployment (what
-- proxies serve), and `route_generation` grows in the same transaction as
-- every change that can alter the route set. Writers update its one row, so
-- they commit in the order of the numbers they wrote: a watcher that sees n
-- has seen every change up to n, on any replica.
ALTER TABLE deployments ADD COLUMN routed BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE deployments SET routed = TRUE
 WHERE COALESCE(jsonb_array_length(body->'upstreams'->'stable'), 0) > 0
    OR COALESCE(jsonb_array_length(body->'upstreams'->'canary'), 0) > 0;
CREATE INDEX deployments_routed_by_target
    ON deployments (queue_name, tenant_key, start_time, id) WHERE routed;

CREATE TABLE routes (
    queue_name    TEXT NOT NULL,
    tenant_key    TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    PRIMARY KEY (queue_name, tenant_key)
);
INSERT INTO routes (queue_name, tenant_key, deployment_id)
SELECT DISTINCT ON (queue_name, tenant_key) queue_name, tenant_key, id FROM deployments
 WHERE routed
 ORDER BY queue_name, tenant_key, start_time DESC, id DESC;

CREATE TABLE route_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT  NOT NULL
);
INSERT INTO route_generation (id, n) VALUES (1, 1);

-- The route set without reading history: `routed` marks deployments with
-- upstreams, `routes` holds each target's newest routed deployment (what
-- proxies serve), and `route_generation` grows in the same transaction as
-- every change that can alter the route set, so a watcher on any replica
-- reloads exactly when something changed.
ALTER TABLE deployments ADD COLUMN routed INTEGER NOT NULL DEFAULT 0;
UPDATE deployments SET routed = 1
 WHERE COALESCE(json_array_length(body, '$.upstreams.stable'), 0) > 0
    OR COALESCE(json_array_length(body, '$.upstreams.canary'), 0) > 0;
CREATE INDEX deployments_routed_by_target
    ON deployments (queue_name, tenant_key, start_time, id) WHERE routed = 1;

CREATE TABLE routes (
    queue_name    TEXT    NOT NULL,
    tenant_key    TEXT    NOT NULL,
    deployment_id TEXT    NOT NULL,
    PRIMARY KEY (queue_name, tenant_key)
);
INSERT INTO routes (queue_name, tenant_key, deployment_id)
SELECT d.queue_name, d.tenant_key, d.id FROM deployments d
 WHERE d.routed = 1
   AND NOT EXISTS (
     SELECT 1 FROM deployments n
      WHERE n.routed = 1 AND n.queue_name = d.queue_name AND n.tenant_key = d.tenant_key
        AND (n.start_time > d.start_time OR (n.start_time = d.start_time AND n.id > d.id)));

CREATE TABLE route_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO route_generation (id, n) VALUES (1, 1);

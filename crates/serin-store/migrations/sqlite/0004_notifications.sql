-- Outbound notifications. The notifier reads events after its cursor and turns
-- each wanted one into deliveries, moving the cursor in the same transaction.
CREATE TABLE notifier_cursor (
    name TEXT    PRIMARY KEY,
    seq  INTEGER NOT NULL
);

-- One event sent to one target; retried until delivered or given up.
CREATE TABLE deliveries (
    id              TEXT    PRIMARY KEY,
    event_id        TEXT    NOT NULL,
    deployment_id   TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    format          TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    last_error      TEXT,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    payload         TEXT    NOT NULL,
    UNIQUE (event_id, url)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_by_deployment ON deliveries (deployment_id);

-- The controller's per-tick queries on deployments beyond the live ones.
CREATE INDEX deployments_hooks_pending ON deployments (json_extract(body, '$.rollout.hooks_pending')) WHERE live = 0;
CREATE INDEX deployments_by_group ON deployments (json_extract(body, '$.rollout.group'));

-- Wrong passwords per caller and email (the key is a hash of both), kept in
-- the database like every other limit a restart should not reset. Times are
-- microseconds since the epoch.
CREATE TABLE login_failures (
    key      TEXT    PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_at  INTEGER NOT NULL
);
CREATE INDEX login_failures_by_age ON login_failures (last_at);

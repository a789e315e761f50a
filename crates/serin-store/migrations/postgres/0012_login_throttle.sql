-- Wrong passwords per caller and email (the key is a hash of both), shared by
-- every replica so a guesser gets the same waits whichever replica answers.
CREATE TABLE login_failures (
    key      TEXT        PRIMARY KEY,
    failures INTEGER     NOT NULL,
    last_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX login_failures_by_age ON login_failures (last_at);

-- Secrets an admin stores for plans to name (secret:NAME). The value arrives
-- sealed by the server (ChaCha20-Poly1305 under a key the database never
-- sees), so a copy of the database holds no usable secret.
CREATE TABLE secrets (
    name       TEXT        PRIMARY KEY,
    sealed     BYTEA        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    updated_by TEXT        NOT NULL
);

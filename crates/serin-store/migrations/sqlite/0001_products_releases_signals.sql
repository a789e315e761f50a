-- Products, their releases, and signals about the lanes of a release.
-- Instants are INTEGER microseconds since the Unix epoch, UTC.
CREATE TABLE products (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    description TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE releases (
    id          INTEGER PRIMARY KEY,
    product_id  INTEGER NOT NULL REFERENCES products(id),
    version     TEXT    NOT NULL,
    status      TEXT    NOT NULL
        CHECK (status IN ('draft', 'approved', 'released', 'cancelled', 'rolled_back')),
    description TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    released_at INTEGER,
    CONSTRAINT releases_product_version UNIQUE (product_id, version)
);
CREATE INDEX releases_by_product_status ON releases (product_id, status);

CREATE TABLE signals (
    id          INTEGER PRIMARY KEY,
    release_id  INTEGER NOT NULL REFERENCES releases(id),
    lane        TEXT    NOT NULL CHECK (lane IN ('stable', 'canary')),
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('outcome', 'latency', 'counter', 'gauge')),
    value       REAL    NOT NULL,
    tags        TEXT,
    ts          INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX signals_by_release_ts ON signals (release_id, ts);

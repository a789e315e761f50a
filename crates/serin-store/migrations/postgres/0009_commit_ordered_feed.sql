-- A commit-ordered feed of events for the notifier. `seq` is taken when a row
-- is inserted, before its transaction commits, so a later number can become
-- visible first. Each event also records its transaction's id; a reader takes
-- only events whose transaction is older than every transaction still running
-- (`pg_snapshot_xmin`), in (xid, seq) order, so nothing it has passed can still
-- appear. Events stored before this migration have xid 0 and come first.
ALTER TABLE events ADD COLUMN xid BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ALTER COLUMN xid SET DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX events_by_xid ON events (xid, seq);

ALTER TABLE notifier_cursor ADD COLUMN xid BIGINT NOT NULL DEFAULT 0;

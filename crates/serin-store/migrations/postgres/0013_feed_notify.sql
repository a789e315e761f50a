-- Replicas following the event feed are woken when events commit: a
-- statement that inserts events notifies channel `serin_events` (delivered at
-- commit, once per transaction) with the schema's name as the payload, so a
-- listener wakes only for its own database schema.
CREATE FUNCTION serin_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('serin_events', current_schema());
    RETURN NULL;
END
$$;
CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION serin_events_notify();

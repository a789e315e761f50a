-- An API key's name is its actor in the audit log, so no two keys may share
-- one (compared without case), revoked keys included: a name never comes back
-- to mean another key. Earlier duplicates keep the oldest name; the others get
-- their id appended.
UPDATE api_keys SET name = name || ' (' || id || ')'
WHERE EXISTS (
    SELECT 1 FROM api_keys o
    WHERE lower(o.name) = lower(api_keys.name)
      AND (o.created_at < api_keys.created_at
           OR (o.created_at = api_keys.created_at AND o.id < api_keys.id))
);
CREATE UNIQUE INDEX api_keys_name_unique ON api_keys (lower(name));

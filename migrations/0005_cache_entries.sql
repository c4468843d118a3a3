-- Up Migration
-- The assistant's PostgreSQL-side cache (tool results, rendered answers). Deleted after 7 days,
-- and never more than a capped number of rows (oldest first).

CREATE TABLE cache_entries (
  key        text PRIMARY KEY,
  value      jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  CONSTRAINT cache_entries_expires_after_created CHECK (expires_at > created_at)
);
COMMENT ON TABLE cache_entries IS 'Cached values; deleted after 7 days, capped in rows.';
CREATE INDEX cache_entries_created_at_idx ON cache_entries (created_at);
CREATE INDEX cache_entries_expires_at_idx ON cache_entries (expires_at);

-- Down Migration
DROP TABLE cache_entries;

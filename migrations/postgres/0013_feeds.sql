-- Feeds: operator-managed block lists filled from an external URL on a schedule. The list itself
-- is a custom_lists row (its entries, visibility and subscriptions are those of any list); this
-- row holds where the entries come from and the state of the last refresh. Deleting the list
-- deletes its feed.
CREATE TABLE feeds (
    name             TEXT PRIMARY KEY REFERENCES custom_lists(name) ON DELETE CASCADE,
    url              TEXT NOT NULL,
    format           TEXT NOT NULL,
    api_key          TEXT,
    every_secs       BIGINT NOT NULL,
    max_bytes        BIGINT NOT NULL,
    max_entries      BIGINT NOT NULL,
    min_count        BIGINT NOT NULL,
    lifetime_secs    BIGINT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    -- Validators of the last copy loaded, sent back as If-None-Match / If-Modified-Since.
    etag             TEXT,
    last_modified    TEXT,
    last_attempt_at  TIMESTAMPTZ,
    last_success_at  TIMESTAMPTZ,
    -- The last time a body was parsed and applied (a 304 is a success, not a load).
    last_loaded_at   TIMESTAMPTZ,
    last_error       TEXT,
    entry_count      BIGINT NOT NULL DEFAULT 0,
    -- Failed attempts since the last success.
    failures         BIGINT NOT NULL DEFAULT 0,
    -- A replica refreshing the feed holds it until then, so two never fetch it at once.
    claimed_until    TIMESTAMPTZ
);

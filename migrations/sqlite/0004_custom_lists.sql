-- Operator-managed blocklists and allowlists. Their entries live in blocklist_entries and
-- blocklist_changes under the list's name, so they share the seq cursor and the serving path.
CREATE TABLE custom_lists (
    name         TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('block', 'allow')),
    description  TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);

-- Which machines receive which custom lists on their CrowdSec streams.
CREATE TABLE list_subscriptions (
    machine_id   INTEGER NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    list         TEXT NOT NULL REFERENCES custom_lists(name) ON DELETE CASCADE,
    PRIMARY KEY (machine_id, list)
);

-- The append-only event log (DESIGN.md section 15). Each row is written in the transaction of
-- the change it records. No foreign keys: an event outlives the workspace it names.
-- `detail` is JSON text; it never holds a secret value or token.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at            BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    actor         TEXT NOT NULL,
    org_id        TEXT,
    workspace_id  TEXT,
    detail        TEXT NOT NULL
);
CREATE INDEX events_by_org ON events (org_id, id);
CREATE INDEX events_by_workspace ON events (workspace_id, id);
CREATE INDEX events_by_kind ON events (kind, id);

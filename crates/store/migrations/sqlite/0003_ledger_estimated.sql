-- A ledger row whose usage was estimated from the content the proxy relayed: the stream
-- ended (cut, abandoned, timed out) without reporting its usage (DESIGN.md section 13).
ALTER TABLE ledger ADD COLUMN estimated BOOLEAN NOT NULL DEFAULT FALSE;

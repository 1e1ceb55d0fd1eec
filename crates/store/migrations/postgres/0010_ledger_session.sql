-- The agent's session id (Claude Code's X-Claude-Code-Session-Id, Codex's session-id), bounded
-- and validated by the proxy, so that usage can be grouped by session (DESIGN.md section 19).
ALTER TABLE ledger ADD COLUMN session_id TEXT;
CREATE INDEX ledger_by_session ON ledger (session_id) WHERE session_id IS NOT NULL;

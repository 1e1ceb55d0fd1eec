-- Suspension (DESIGN.md section 14): an org or a workspace stopped with a reason, since a time
-- (Unix milliseconds), by `admin` or an alarm. NULL reason: not suspended (the three columns
-- are set and cleared together).
ALTER TABLE orgs ADD COLUMN suspended_reason TEXT;
ALTER TABLE orgs ADD COLUMN suspended_at INTEGER;
ALTER TABLE orgs ADD COLUMN suspended_by TEXT;
ALTER TABLE workspaces ADD COLUMN suspended_reason TEXT;
ALTER TABLE workspaces ADD COLUMN suspended_at INTEGER;
ALTER TABLE workspaces ADD COLUMN suspended_by TEXT;

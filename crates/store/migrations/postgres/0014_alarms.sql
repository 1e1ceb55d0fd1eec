-- Drain alarms and budget notices (DESIGN.md section 15).
-- `alarms`: the rules of an org or workspace as JSON text (a list; NULL: none set, so an org
-- gets the default rule; '[]': none, the default turned off).
ALTER TABLE orgs ADD COLUMN alarms TEXT;
ALTER TABLE workspaces ADD COLUMN alarms TEXT;

-- Whether a rule's condition held at its owner's last evaluation: a rule fires when the
-- conditional upsert turns `firing` from 0 to 1 (exactly one instance wins, and records
-- `alarm.fired` in that transaction), and re-arms when the condition clears. `changed_at` is
-- the evaluation's time (Unix milliseconds): an evaluation older than the last change does
-- not change the row, so a late instance cannot undo a newer one.
CREATE TABLE alarm_states (
    scope      TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    rule_key   TEXT NOT NULL,
    firing     INTEGER NOT NULL,
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (scope, owner_id, rule_key)
);
CREATE INDEX alarm_states_firing ON alarm_states (firing);

-- The budget notices recorded, one per (owner, period, kind): the insert that adds the row
-- records the event, so a notice is recorded once per period across instances.
CREATE TABLE budget_notices (
    scope       TEXT NOT NULL,
    owner_id    TEXT NOT NULL,
    period      TEXT NOT NULL,
    notice      TEXT NOT NULL,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (scope, owner_id, period, notice)
);

-- The evaluator's window sums: spend by time (only rows in the window are read) and a
-- workspace's spend by time (its baseline).
CREATE INDEX ledger_by_time ON ledger (created_at);
CREATE INDEX ledger_by_workspace_time ON ledger (workspace_id, created_at);

-- Spend controls (DESIGN.md section 14): the `limits` of orgs and workspaces, one nullable
-- column per field (NULL: no such limit), and the hard budgets' bookkeeping.
ALTER TABLE orgs ADD COLUMN budget_micros_per_day BIGINT;
ALTER TABLE orgs ADD COLUMN budget_micros_per_month BIGINT;
ALTER TABLE orgs ADD COLUMN soft_budget_percent BIGINT;
ALTER TABLE orgs ADD COLUMN requests_per_minute BIGINT;
ALTER TABLE orgs ADD COLUMN tokens_per_minute BIGINT;
ALTER TABLE orgs ADD COLUMN max_concurrent_requests BIGINT;
-- Model ids one per line ('' allows none), NULL for no narrowing, as for workspaces.
ALTER TABLE orgs ADD COLUMN allowed_models TEXT;
ALTER TABLE workspaces ADD COLUMN budget_micros_per_day BIGINT;
ALTER TABLE workspaces ADD COLUMN budget_micros_per_month BIGINT;
ALTER TABLE workspaces ADD COLUMN soft_budget_percent BIGINT;
ALTER TABLE workspaces ADD COLUMN requests_per_minute BIGINT;
ALTER TABLE workspaces ADD COLUMN tokens_per_minute BIGINT;
ALTER TABLE workspaces ADD COLUMN max_concurrent_requests BIGINT;

-- Spend per budget and period: `spent` is settled cost, `reserved` the worst cases of
-- requests in flight. A request is admitted only if spent + reserved + its worst case fits
-- every budget that applies, checked and reserved in one transaction with these rows locked,
-- so any number of instances together never exceed a budget.
CREATE TABLE budget_usage (
    scope    TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    period   TEXT NOT NULL,
    spent    BIGINT NOT NULL DEFAULT 0,
    reserved BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, owner_id, period)
);
-- One row per admitted request holding a budget reservation: `budgets` lists the
-- budget_usage keys it reserved in (scope, owner id, period; tab-separated, one per line).
-- Settling moves `amount` out of `reserved` and the cost into `spent`; a hold past
-- `expires_at` (its instance died) is reclaimed by any instance.
CREATE TABLE budget_holds (
    id         TEXT PRIMARY KEY,
    budgets    TEXT NOT NULL,
    amount     BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX budget_holds_by_expiry ON budget_holds (expires_at);

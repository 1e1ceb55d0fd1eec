-- Price plans and pricing fidelity (DESIGN.md section 20): an org's markup on the provider's
-- price; per ledger row, what the provider bills (provider_cost_micros) beside what the org is
-- charged (cost_micros), the 1-hour part of the cache writes and the service tier served.
ALTER TABLE orgs ADD COLUMN markup_percent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN provider_cost_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN service_tier TEXT;
-- Rows written before price plans were charged the provider's price.
UPDATE ledger SET provider_cost_micros = cost_micros;

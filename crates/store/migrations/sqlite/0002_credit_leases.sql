-- Credit leases: each proxy instance moves a block of an org's credit into its lease, serves
-- its requests' reservations from it in memory, and writes their ledger rows (charging the
-- lease) in batches. `amount` is the credit the lease still holds; a lease not renewed
-- before `expires_at` (its instance died) is reclaimed by any instance: `amount` goes back
-- to the org. An org's balance as shown is `orgs.credit_micros` plus its leases' amounts.
CREATE TABLE credit_leases (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    amount     INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX credit_leases_by_org ON credit_leases (org_id);
CREATE INDEX credit_leases_by_expiry ON credit_leases (expires_at);

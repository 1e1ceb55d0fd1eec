-- The plan's fingerprint at provision (DESIGN.md section 16, PLAN_DRIFT): JSON of its mode,
-- provider, credential names and routing names; never a value. NULL for provisions recorded
-- before this column existed (drift is then unknown, not assumed).
ALTER TABLE provisions ADD COLUMN fingerprint TEXT;

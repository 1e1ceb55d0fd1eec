-- The id of the master key that encrypted each secret (DESIGN.md section 18, key rotation).
-- NULL: written before key ids existed; such a row is tried with every configured key.
ALTER TABLE secrets ADD COLUMN key_id TEXT;

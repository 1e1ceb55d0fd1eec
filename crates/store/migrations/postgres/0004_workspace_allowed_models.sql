-- The models a workspace may use, narrowing its runtime's platform models (DESIGN.md section
-- 14, `limits.allowed_models`): model ids one per line ('' allows none), NULL for no narrowing.
ALTER TABLE workspaces ADD COLUMN allowed_models TEXT;

-- Reverts migration 0042 (see examples/fleet/db/schema.sql), all or nothing.
BEGIN;
ALTER TABLE projects DROP COLUMN IF EXISTS new_column;
ALTER TABLE instances RENAME COLUMN new_name TO old_name;
ALTER TABLE nodes ADD COLUMN deprecated_field TEXT;
UPDATE nodes SET deprecated_field =
  (SELECT b.deprecated_field FROM nodes_backup b WHERE b.id = nodes.id)
WHERE EXISTS (SELECT 1 FROM nodes_backup b WHERE b.id = nodes.id);
DELETE FROM schema_migrations WHERE version > '0041';
COMMIT;

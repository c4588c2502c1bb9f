-- The fleet's database as migration 0042 left it: a new column, a renamed column, a dropped
-- column kept in nodes_backup, and its row in schema_migrations. The seed's rollback (and
-- plans/database-migration-rollback.yaml) reverts exactly this.
CREATE TABLE projects (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, new_column TEXT);
CREATE TABLE instances (id INT PRIMARY KEY, new_name VARCHAR(100));
CREATE TABLE nodes (id INT PRIMARY KEY, hostname VARCHAR(100) NOT NULL);
CREATE TABLE nodes_backup (id INT PRIMARY KEY, deprecated_field TEXT);
CREATE TABLE migration_history (version VARCHAR(20) NOT NULL, status VARCHAR(20) NOT NULL,
                                applied_at TIMESTAMP NOT NULL);
CREATE TABLE schema_migrations (version VARCHAR(20) PRIMARY KEY);
INSERT INTO projects VALUES (1, 'storefront', 'added by 0042'), (2, 'checkout', NULL);
INSERT INTO instances VALUES (1, 'storefront-1'), (2, 'checkout-1');
INSERT INTO nodes VALUES (1, 'us-east-worker-1'), (2, 'us-east-worker-2'), (3, 'eu-west-worker-1'),
                         (4, 'eu-west-worker-2'), (5, 'ap-south-worker-1');
INSERT INTO nodes_backup VALUES (1, 'rack-a'), (2, 'rack-b'), (3, NULL), (4, 'rack-d');
INSERT INTO migration_history VALUES
  ('0040', 'success', '2026-11-01 00:00:00'), ('0041', 'success', '2026-11-15 00:00:00'),
  ('0042', 'success', '2026-11-30 09:00:00'), ('0043', 'failed', '2026-11-30 09:05:00');
INSERT INTO schema_migrations VALUES ('0039'), ('0040'), ('0041'), ('0042');

-- The same as SQLite's `..09`, where the reasons are measured: the last-name index served only
-- the SQL search that answers while a node's in-memory index loads, and an audit entry about a
-- person is indexed by the person's id (ascending for new people) rather than by username (in
-- random order), so that imports stop scattering writes over those two indexes. Entries about
-- anything else, and those of deleted people, stay indexed by their target's text.
DROP INDEX people_by_last_name;

ALTER TABLE audit_log ADD COLUMN target_id BIGINT;
UPDATE audit_log SET target_id = p.id FROM people p
WHERE p.username = audit_log.target AND audit_log.action LIKE 'user.%';
DROP INDEX audit_by_target;
CREATE INDEX audit_by_target_person ON audit_log (target_id, at) WHERE target_id IS NOT NULL;
CREATE INDEX audit_by_target ON audit_log (target, at) WHERE target_id IS NULL;

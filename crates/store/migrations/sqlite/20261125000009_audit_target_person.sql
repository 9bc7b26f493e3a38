-- Imports spend their time inserting into indexes whose keys arrive in random order: each such
-- index takes a new entry on most of its leaf pages in every step, and each of those pages is
-- written to the WAL at commit and copied back at the checkpoint. Measured on the same schema
-- without Usher (Python, 100,000 people stored, 2,000-row transactions): 73,000 rows/s with
-- the username and email indexes alone, 41,000 with the last-name index beside them, 38,500
-- with the audit log's index on its target (a username) instead; and through the server (W2 of
-- usher-bench), updates of 100,000 people went from 36,000 rows/s to 51,000-58,000 without
-- both.
--
-- The last-name index served only the SQL search that answers while a node's in-memory index
-- loads after a start (its unfiltered first page); that search scans the table for its total
-- anyway, and now sorts the page too.
DROP INDEX people_by_last_name;

-- An audit entry about a person names them by username, and the person's history is read by
-- that name. It is now found by the person's id, which new people take in ascending order, so
-- that an import's audit entries are appended to that index instead of scattered over it.
-- Entries about anything else (spaces, imports, tokens), and those of deleted people (whose
-- `target_id` is cleared when they are deleted), stay indexed by their target's text.
ALTER TABLE audit_log ADD COLUMN target_id INTEGER;
UPDATE audit_log SET target_id = (SELECT p.id FROM people p WHERE p.username = audit_log.target)
WHERE action LIKE 'user.%';
DROP INDEX audit_by_target;
CREATE INDEX audit_by_target_person ON audit_log (target_id, at) WHERE target_id IS NOT NULL;
CREATE INDEX audit_by_target ON audit_log (target, at) WHERE target_id IS NULL;

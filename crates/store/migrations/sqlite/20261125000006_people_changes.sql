-- The people change feed, read by each node's in-memory search index (crates/core/src/search).
-- Every write to `people`, whatever statement makes it, stamps the row with the next number of
-- one counter; a deletion leaves its id and number in `people_removed`. SQLite has one writer
-- at a time, so numbers are handed out in commit order: a reader that has seen every number up
-- to N has seen every change committed before N.
ALTER TABLE people ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;

CREATE TABLE people_change_counter (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO people_change_counter (id, seq) SELECT 1, coalesce(max(id), 0) FROM people;
UPDATE people SET change_seq = id;

CREATE TABLE people_removed (
    person_id  INTEGER NOT NULL,
    change_seq INTEGER NOT NULL
);
CREATE INDEX people_removed_by_change ON people_removed (change_seq);
CREATE INDEX people_by_change ON people (change_seq, id);

CREATE TRIGGER people_change_on_insert AFTER INSERT ON people
BEGIN
    UPDATE people_change_counter SET seq = seq + 1 WHERE id = 1;
    UPDATE people SET change_seq = (SELECT seq FROM people_change_counter WHERE id = 1)
        WHERE id = NEW.id;
END;

-- The guard keeps the trigger's own stamping from firing it again.
CREATE TRIGGER people_change_on_update AFTER UPDATE ON people
WHEN NEW.change_seq = OLD.change_seq
BEGIN
    UPDATE people_change_counter SET seq = seq + 1 WHERE id = 1;
    UPDATE people SET change_seq = (SELECT seq FROM people_change_counter WHERE id = 1)
        WHERE id = NEW.id;
END;

CREATE TRIGGER people_change_on_delete AFTER DELETE ON people
BEGIN
    UPDATE people_change_counter SET seq = seq + 1 WHERE id = 1;
    INSERT INTO people_removed (person_id, change_seq)
        SELECT OLD.id, seq FROM people_change_counter WHERE id = 1;
END;

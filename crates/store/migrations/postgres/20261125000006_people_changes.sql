-- The people change feed, read by each node's in-memory search index (crates/core/src/search).
-- Every write to `people` stamps the row with the id of the transaction that wrote it; a
-- deletion leaves the id and that number in `people_removed`. Transactions commit out of
-- order, so a reader remembers the snapshot it read at (xmax and the transactions then still
-- running, `pg_current_snapshot()`) and next reads every row stamped at or past that xmax or
-- by one of those transactions: nothing committed later is missed, without any lock between
-- writers.
ALTER TABLE people ADD COLUMN change_seq BIGINT NOT NULL
    DEFAULT (pg_current_xact_id()::text::bigint);

CREATE FUNCTION people_stamp_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_seq := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END
$$;
CREATE TRIGGER people_stamp_change BEFORE INSERT OR UPDATE ON people
    FOR EACH ROW EXECUTE FUNCTION people_stamp_change();

CREATE TABLE people_removed (
    person_id  BIGINT NOT NULL,
    change_seq BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint)
);
CREATE INDEX people_removed_by_change ON people_removed (change_seq);
CREATE INDEX people_by_change ON people (change_seq, id);

CREATE FUNCTION people_note_removal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO people_removed (person_id) VALUES (OLD.id);
    RETURN OLD;
END
$$;
CREATE TRIGGER people_note_removal AFTER DELETE ON people
    FOR EACH ROW EXECUTE FUNCTION people_note_removal();

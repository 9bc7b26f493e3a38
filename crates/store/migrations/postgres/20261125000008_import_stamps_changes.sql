-- A new row takes its transaction's id from the column's default: the trigger, a PL/pgSQL
-- call per row, is kept for updates only (an import inserts thousands of rows per step).
-- Nothing inserts a person with `change_seq` set.
DROP TRIGGER people_stamp_change ON people;

CREATE TRIGGER people_stamp_change BEFORE UPDATE ON people
    FOR EACH ROW EXECUTE FUNCTION people_stamp_change();

-- The update trigger stamps a row only when the update left its change number as it was: an
-- import step sets the number itself, for all its rows in its one statement, and a trigger with
-- a WHEN condition is not called for the rows that fail it (the PL/pgSQL call per row was a
-- tenth of an update step). Every other update still goes through the trigger, and every
-- stamp is still the writing transaction's id.
DROP TRIGGER people_stamp_change ON people;

CREATE TRIGGER people_stamp_change BEFORE UPDATE ON people
    FOR EACH ROW WHEN (NEW.change_seq IS NOT DISTINCT FROM OLD.change_seq)
    EXECUTE FUNCTION people_stamp_change();

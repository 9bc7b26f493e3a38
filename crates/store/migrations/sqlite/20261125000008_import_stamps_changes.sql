-- An import step stamps the people it writes itself: it takes as many numbers of the change
-- counter as it writes people, in one statement, and gives each row its own. The trigger that
-- stamps an insert row by row (a second write of the row and of its index entry) now only does
-- so for an insert that left `change_seq` at its default. Updates that set `change_seq` are
-- already left alone by the update trigger's guard.
DROP TRIGGER people_change_on_insert;

CREATE TRIGGER people_change_on_insert AFTER INSERT ON people
WHEN NEW.change_seq = 0
BEGIN
    UPDATE people_change_counter SET seq = seq + 1 WHERE id = 1;
    UPDATE people SET change_seq = (SELECT seq FROM people_change_counter WHERE id = 1)
        WHERE id = NEW.id;
END;

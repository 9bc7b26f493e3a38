-- The mail outbox and single-use link tokens (invitations, password resets).

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient       TEXT    NOT NULL,
    template        TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    body_text       TEXT,                 -- forgotten once delivered or given up: holds clear links
    body_html       TEXT,
    person_id       INTEGER REFERENCES people (id) ON DELETE SET NULL,
    state           TEXT    NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,     -- when queued: due time, or the end of a worker's lease
    sent_at         INTEGER
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

CREATE TABLE tokens (
    hash       TEXT    PRIMARY KEY,       -- SHA-256 of the clear token, which only the email holds
    kind       TEXT    NOT NULL CHECK (kind IN ('invitation', 'password_reset')),
    person_id  INTEGER NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX tokens_by_person ON tokens (person_id, kind);

-- The person's last invitation email, whose delivery state the list and detail pages show.
ALTER TABLE people ADD COLUMN invitation_message_id INTEGER;

CREATE VIEW people_with_delivery AS
SELECT p.*,
       o.state      AS invitation_state,
       o.attempts   AS invitation_attempts,
       o.last_error AS invitation_error,
       o.sent_at    AS invitation_sent_at
FROM people p
LEFT JOIN outbox o ON o.id = p.invitation_message_id;

-- Spaces: collaboration groups `/spaces/{name}`, and invitations of external people to them.

ALTER TABLE user_groups ADD COLUMN is_space BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE user_groups ADD COLUMN external_invitations BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE user_groups ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;

CREATE TABLE space_invitations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id    INTEGER NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    email       TEXT    NOT NULL,
    email_key   TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,   -- SHA-256 of the newest link; a resend replaces it
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'accepted', 'revoked')),
    invited_by  TEXT,
    invited_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    accepted_at INTEGER,
    person_id   INTEGER REFERENCES people (id) ON DELETE SET NULL
);
CREATE INDEX space_invitations_by_space ON space_invitations (group_id, invited_at);

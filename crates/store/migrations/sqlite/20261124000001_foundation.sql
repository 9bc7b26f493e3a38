-- People, groups, memberships, sessions, API tokens, login throttling and the audit log.
-- Times are INTEGER milliseconds since the Unix epoch (UTC), as in the PostgreSQL schema.

CREATE TABLE people (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,  -- ids of deleted people are never reused
    username           TEXT    NOT NULL UNIQUE,
    first_name         TEXT    NOT NULL,
    last_name          TEXT    NOT NULL,
    email              TEXT    NOT NULL,
    email_key          TEXT    NOT NULL UNIQUE,   -- lower-cased email: uniqueness ignores case
    first_name_key     TEXT    NOT NULL,          -- folded, for sorting
    last_name_key      TEXT    NOT NULL,
    search_text        TEXT    NOT NULL,          -- folded "username first last email"
    password_hash      TEXT,
    password_temporary BOOLEAN NOT NULL DEFAULT FALSE,
    enabled            BOOLEAN NOT NULL,
    kind               TEXT    NOT NULL CHECK (kind IN ('internal', 'external')),
    source             TEXT    NOT NULL CHECK (source IN ('internal', 'ldap')),
    super_user         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         INTEGER NOT NULL,
    last_login_at      INTEGER,
    invited_at         INTEGER,
    joined_at          INTEGER,
    position           TEXT,
    organization       TEXT,
    department         TEXT,
    location           TEXT,
    phone              TEXT,
    manager            TEXT,
    about_me           TEXT,
    time_zone          TEXT
);
CREATE INDEX people_by_last_name ON people (last_name_key, username);
CREATE INDEX people_by_first_name ON people (first_name_key, username);
CREATE INDEX people_by_created_at ON people (created_at, username);
CREATE INDEX people_by_last_login_at ON people (last_login_at, username);

-- A deleted person's username stays reserved forever.
CREATE TABLE deleted_usernames (
    username   TEXT PRIMARY KEY,
    deleted_at INTEGER NOT NULL
);

CREATE TABLE user_groups (
    id    INTEGER PRIMARY KEY,
    path  TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL
);
INSERT INTO user_groups (path, label) VALUES
    ('/platform/administrators', 'Administrators'),
    ('/platform/users', 'Users'),
    ('/platform/externals', 'External users');

CREATE TABLE memberships (
    person_id INTEGER NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    group_id  INTEGER NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    role      TEXT    NOT NULL,
    PRIMARY KEY (person_id, group_id)
);
CREATE INDEX memberships_by_group ON memberships (group_id, person_id);

CREATE TABLE sessions (
    token_hash TEXT    PRIMARY KEY,
    person_id  INTEGER NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    csrf_token TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_person ON sessions (person_id);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    person_id    INTEGER NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);

CREATE TABLE login_failures (
    key     TEXT    PRIMARY KEY,
    count   INTEGER NOT NULL,
    last_at INTEGER NOT NULL
);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT,
    action  TEXT    NOT NULL,
    target  TEXT,
    details TEXT    NOT NULL
);
CREATE INDEX audit_by_at ON audit_log (at);
CREATE INDEX audit_by_actor ON audit_log (actor, at);
CREATE INDEX audit_by_target ON audit_log (target, at);
CREATE INDEX audit_by_action ON audit_log (action, at);

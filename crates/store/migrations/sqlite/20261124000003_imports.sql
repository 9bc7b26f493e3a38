-- CSV import jobs (product §6): the job with its counts and lease, its file in chunks until it
-- ends, its report, and the invitations a committed step still has to send.

CREATE TABLE import_jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    state       TEXT    NOT NULL
                CHECK (state IN ('receiving', 'queued', 'running', 'done', 'failed')),
    dry_run     BOOLEAN NOT NULL,
    file_name   TEXT,
    file_bytes  INTEGER NOT NULL DEFAULT 0,
    actor       TEXT,                 -- who submitted it; NULL for the shell
    row_count   INTEGER NOT NULL DEFAULT 0,
    processed   INTEGER NOT NULL DEFAULT 0,
    created     INTEGER NOT NULL DEFAULT 0,
    updated     INTEGER NOT NULL DEFAULT 0,
    unchanged   INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    warnings    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    error       TEXT,
    owner       TEXT,                 -- the node running it
    lease_token TEXT,                 -- changes at every claim: fences out a worker that lost it
    lease_until INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX import_jobs_by_state ON import_jobs (state, id);

CREATE TABLE import_chunks (
    job_id INTEGER NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    data   BLOB    NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE import_issues (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,   -- file order: steps commit in order
    job_id   INTEGER NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
    line     INTEGER NOT NULL,
    username TEXT    NOT NULL,
    field    TEXT    NOT NULL,
    severity TEXT    NOT NULL CHECK (severity IN ('error', 'warning')),
    code     TEXT    NOT NULL,
    message  TEXT    NOT NULL
);
CREATE INDEX import_issues_by_job ON import_issues (job_id, id);

CREATE TABLE import_invites (
    job_id   INTEGER NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
    username TEXT    NOT NULL,
    PRIMARY KEY (job_id, username)
);

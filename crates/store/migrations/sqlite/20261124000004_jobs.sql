-- Background jobs: mass actions too large to answer within one request.

CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    total       INTEGER NOT NULL,
    processed   INTEGER NOT NULL DEFAULT 0,
    result      TEXT,                     -- JSON, once done
    created_by  TEXT,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER
);

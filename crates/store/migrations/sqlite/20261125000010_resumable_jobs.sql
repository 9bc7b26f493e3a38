-- Mass actions over more than 1,000 people run as background jobs. They now carry what they do
-- (`spec`: the action, who asked, the people chosen) and a lease that their run renews after
-- each chunk, so that when a node stops mid-job any node takes it over once the lease has run
-- out, and goes on from the first chunk not yet recorded. Each chunk's outcome is kept in
-- `job_parts`, written in the same transaction as the progress.
ALTER TABLE jobs ADD COLUMN spec TEXT;
ALTER TABLE jobs ADD COLUMN lease_token TEXT;
ALTER TABLE jobs ADD COLUMN lease_until INTEGER;
CREATE INDEX jobs_stalled ON jobs (state, lease_until);

CREATE TABLE job_parts (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    part   TEXT    NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- Jobs that an earlier version left running cannot be resumed (nothing says what they were
-- doing): say so rather than leave them running forever.
UPDATE jobs SET state = 'failed',
    result = '{"error":"Interrupted when the server stopped, before jobs could resume. The people already processed keep their change: run the action again to finish (they are skipped)."}'
WHERE state IN ('queued', 'running');

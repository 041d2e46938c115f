-- Theta service schema, version 3: research export jobs (issue 9). A job exports one tenant's
-- cohort, pseudonymised, into <data_dir>/exports/<id>/ for the researcher who asked.
-- Portable SQL (SQLite and PostgreSQL); timestamps in ms since the Unix epoch (UTC).
-- Ids, settings and counters only: the cohort is the researcher's own predicate, the error is
-- a message that names the step (never health data).

-- state: queued, running, done, failed, cancelled, interrupted (was queued or running when the
-- service stopped; restartable, and a restart resumes into the same folder).
-- format: bids, parquet. dates: shift, remove. annotations: mask, drop.
CREATE TABLE export_jobs (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    account_id       TEXT NOT NULL REFERENCES accounts (id),
    project          TEXT NOT NULL,
    format           TEXT NOT NULL,
    cohort           TEXT NOT NULL,
    dates            TEXT NOT NULL,
    annotations      TEXT NOT NULL,
    task             TEXT NOT NULL,
    power_line_hz    DOUBLE PRECISION NOT NULL,
    state            TEXT NOT NULL,
    recordings_total BIGINT NOT NULL DEFAULT 0,
    recordings_done  BIGINT NOT NULL DEFAULT 0,
    bytes_total      BIGINT NOT NULL DEFAULT 0,
    bytes_done       BIGINT NOT NULL DEFAULT 0,
    -- The engine's report of the last successful run, JSON (counts and sizes only).
    report           TEXT,
    error            TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT
);
CREATE INDEX export_jobs_owner ON export_jobs (tenant_id, account_id, created_at);
CREATE INDEX export_jobs_state ON export_jobs (state);

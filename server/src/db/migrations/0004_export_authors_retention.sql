-- Research export jobs: the dataset's authors (BIDS `Authors`, a JSON array of strings), and when
-- the job's output was deleted after the retention period (NULL while it is kept).
ALTER TABLE export_jobs ADD COLUMN authors TEXT NOT NULL DEFAULT '[]';
ALTER TABLE export_jobs ADD COLUMN purged_at INTEGER;

-- The dataset's authors (BIDS `Authors`) of a research export job, as a JSON array of strings.
ALTER TABLE export_jobs ADD COLUMN authors TEXT NOT NULL DEFAULT '[]';

-- Every change of a job gets the next number: the position clients of the live feed resume from.
CREATE SEQUENCE progress.change_seq;
ALTER TABLE progress.jobs ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
CREATE INDEX jobs_by_change ON progress.jobs (tenant_id, change_seq);

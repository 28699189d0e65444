-- indexed now outranks failed (10 > 9); deleted (10) and cancelled (11) are new final statuses.
UPDATE progress.jobs SET stage_rank = 10 WHERE status = 'indexed';

-- 0009_operate: what the operator views (notify-sql stats, serve) read cheaply.
--
-- Finished jobs by completion time: the overview's throughput chart (jobs finished per
-- minute over the last hour), the finished counts of get_queue_health (a window, not
-- the whole table) and prune_queue_jobs (jobs finished before a cutoff) all read a
-- range of completed_at. Partial (completed_at IS NOT NULL), so a claim, which leaves
-- completed_at NULL, adds no entry; heartbeats change no indexed column and stay HOT.
-- Each completion or final failure adds one entry (measured in BENCHMARKS.md).
--
-- Not CONCURRENTLY: migrations run in one transaction. On a live install this takes a
-- SHARE lock on queue_jobs while it builds (enqueues and claims wait); the table holds
-- only live jobs and finished ones within the prune retention, so the build is short,
-- but run the upgrade at a quiet moment, or create the index CONCURRENTLY by hand
-- first under this name (the migration then only needs the name to be free: drop and
-- let it rebuild, or accept the short lock).
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX queue_jobs_completed_at_idx ON queue_jobs (completed_at)
  WHERE completed_at IS NOT NULL;

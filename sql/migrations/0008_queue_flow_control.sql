-- 0008_queue_flow_control: the seed platform's queue columns, and flow control by limit key.
--
-- * processed_at: the seed platform's worker writes it directly; nothing here reads it.
-- * limit_key: the key a job's flow control is counted under (`twilio:+15550001`,
--   `email:example.com`, `tenant:42`); NULL for jobs outside flow control.
-- * The claim index is split in two partial indexes, one per kind of job. Unkeyed jobs
--   keep exactly the old index shape and claim path; keyed jobs get an index in
--   (priority, limit_key, scheduled_for) order, which lets the claim step from one key
--   to the next (a skip scan) instead of wading through a large key's backlog, and
--   lets the claim of unkeyed jobs ignore keyed backlogs entirely. The runner applies
--   a migration in one transaction, so CONCURRENTLY is impossible (squawk told so
--   per statement): the drop takes an ACCESS EXCLUSIVE lock for an instant, and the
--   builds a SHARE lock on queue_jobs while they run (enqueue waits; reads do not).
--   The keyed indexes start empty (no job has a key yet); the unkeyed claim index is
--   as large as the backlog: on a large live queue, run this migration in a quiet moment.
-- * A partial index over processing keyed jobs answers "how many of this key's jobs are
--   running" for the concurrency cap; it only ever holds the running jobs.
-- * queue_limits holds one row per limited key: its settings and its token bucket. The
--   claim locks a key's row (FOR UPDATE SKIP LOCKED) to serialize that key's starts
--   across workers. Updated on every limited claim, so it gets the same aggressive
--   autovacuum as the queue table and no index beyond its primary key (HOT updates).

ALTER TABLE queue_jobs ADD COLUMN processed_at timestamptz;
ALTER TABLE queue_jobs ADD COLUMN limit_key text CHECK (limit_key <> '' AND length(limit_key) <= 200);

-- squawk-ignore require-concurrent-index-deletion
DROP INDEX queue_jobs_claim_idx;
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX queue_jobs_claim_idx ON queue_jobs (priority, scheduled_for)
  WHERE status = 'pending' AND limit_key IS NULL;
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX queue_jobs_keyed_claim_idx ON queue_jobs (priority, limit_key, scheduled_for)
  WHERE status = 'pending' AND limit_key IS NOT NULL;
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX queue_jobs_keyed_processing_idx ON queue_jobs (limit_key)
  WHERE status = 'processing' AND limit_key IS NOT NULL;

ALTER TYPE queue_job_input ADD ATTRIBUTE limit_key text;

CREATE TABLE queue_limits (
  limit_key      text PRIMARY KEY CHECK (limit_key <> '' AND length(limit_key) <= 200),
  max_per_second numeric CHECK (max_per_second > 0),
  burst          integer CHECK (burst >= 0),
  max_concurrent integer CHECK (max_concurrent >= 1),
  tokens         double precision NOT NULL DEFAULT 0,
  refilled_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  paused_until   timestamptz,
  -- current rate, as a sliding one-minute window: starts in the current minute-long
  -- window and in the one before it (read by queue_limit_status).
  window_start   timestamptz NOT NULL DEFAULT clock_timestamp(),
  window_starts  integer NOT NULL DEFAULT 0,
  prev_window_starts integer NOT NULL DEFAULT 0,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
) WITH (
  fillfactor = 50,
  autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_cost_delay = 0
);

COMMENT ON TABLE queue_limits IS
  'Flow control per limit key: token bucket (max_per_second, burst), cap on processing jobs (max_concurrent), pause. Written by set_queue_limit / pause_queue_limit and by claim_pending_jobs.';

ALTER TABLE queue_limits ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON queue_limits FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON queue_limits TO service_role;
CREATE POLICY service_role_all ON queue_limits FOR ALL TO service_role USING (true) WITH CHECK (true);

-- attempts now counts the attempts that failed (fail_queue_job, or reset as stalled),
-- as the seed platform's workers read it: a claimed row shows the earlier attempts.
-- Jobs running during the upgrade were counted at their claim; give that count back
-- so their current attempt is counted once, if it fails.
UPDATE queue_jobs SET attempts = attempts - 1 WHERE status = 'processing' AND attempts > 0;

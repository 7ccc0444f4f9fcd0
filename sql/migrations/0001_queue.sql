-- 0001_queue: the job queue table.
--
-- Design notes (see LESSONS.md "Claiming" and "Bloat"):
-- * Every claim and completion changes `status`, which the claim index must filter on,
--   so those updates can never be HOT. The indexes are therefore kept few and mostly
--   partial: a row version only enters a partial index while it matches the predicate,
--   so a finished job adds entries to the primary key and queue_job_id indexes only.
-- * Heartbeats touch only heartbeat_at / updated_at, which no index covers: they stay
--   HOT (fillfactor 80 leaves room on the page for the new version).
-- * Ids are time-ordered UUIDs (version 7 layout), so primary-key inserts land on the
--   rightmost leaf instead of dirtying random pages of a large index.
-- * queue_job_id, the text id apps show and look up, defaults to
--   'job_<UTC time to the microsecond>_<12 random hex digits>': unique, and sorted by
--   creation like the ids.
-- * The claim index orders by (priority, scheduled_for) only; job_type is checked on
--   the rows it reaches. Workers that take only a rare type behind a large backlog of
--   other types walk past that backlog; give such a type its own priority.
-- * Autovacuum is tuned per table: a queue churns its rows continuously, and waiting for
--   20% of a large table to be dead lets claim scans wade through dead index entries.

CREATE TABLE queue_jobs (
  id               uuid PRIMARY KEY DEFAULT (
                     overlay(overlay(replace(gen_random_uuid()::text, '-', '')
                       PLACING lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
                       FROM 1 FOR 12) PLACING '7' FROM 13 FOR 1)::uuid),
  queue_job_id     text NOT NULL DEFAULT (
                     'job_' || to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS')
                     || '_' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 12)),
  user_id          uuid,
  job_type         text NOT NULL CHECK (job_type <> ''),
  metadata         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
  priority         integer NOT NULL DEFAULT 10,
  attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
  scheduled_for    timestamptz NOT NULL DEFAULT now(),
  dedup_key        text,
  processing_token uuid,
  started_at       timestamptz,
  heartbeat_at     timestamptz,
  completed_at     timestamptz,
  error_message    text,
  result           jsonb,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT queue_jobs_processing_has_token
    CHECK (status <> 'processing' OR processing_token IS NOT NULL)
) WITH (
  fillfactor = 80,
  autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_threshold = 5000,
  autovacuum_vacuum_insert_scale_factor = 0,
  autovacuum_vacuum_insert_threshold = 20000,
  autovacuum_analyze_scale_factor = 0.02,
  autovacuum_vacuum_cost_delay = 0
);

COMMENT ON TABLE queue_jobs IS
  'Job queue. Claim with claim_pending_jobs; finish with complete/fail using the processing_token the claim returned.';

CREATE UNIQUE INDEX queue_jobs_queue_job_id_key ON queue_jobs (queue_job_id);

-- The claim path: due pending jobs in claim order. Only pending rows are in it, so it
-- stays as small as the backlog however many finished rows the table keeps.
CREATE INDEX queue_jobs_claim_idx ON queue_jobs (priority, scheduled_for)
  WHERE status = 'pending';

-- At most one live job per dedup key; the arbiter of add_queue_job's ON CONFLICT.
CREATE UNIQUE INDEX queue_jobs_dedup_key_live_idx ON queue_jobs (dedup_key)
  WHERE status IN ('pending', 'processing') AND dedup_key IS NOT NULL;

-- Stalled-job rescue and user cancellations only look at live jobs; these stay small.
-- Each predicate carries an IS NOT NULL that only its own queries imply (a strict
-- comparison on that column): the by-id updates (`id = $1 AND status = 'processing'`)
-- must never match a partial index they could scan end to end. Otherwise, after an
-- ANALYZE taken while nothing was processing, a cached generic plan prefers that
-- "empty" index to the primary key and every completion walks its dead entries.
CREATE INDEX queue_jobs_processing_started_idx ON queue_jobs (started_at)
  WHERE status = 'processing' AND started_at IS NOT NULL;
CREATE INDEX queue_jobs_live_user_idx ON queue_jobs (user_id, job_type)
  WHERE status IN ('pending', 'processing') AND user_id IS NOT NULL;

-- One element of add_queue_jobs' input (jsonb_populate_recordset parses into it).
CREATE TYPE queue_job_input AS (
  user_id       uuid,
  job_type      text,
  metadata      jsonb,
  priority      integer,
  scheduled_for timestamptz,
  dedup_key     text,
  max_attempts  integer
);

ALTER TABLE queue_jobs ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON queue_jobs FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON queue_jobs TO service_role;
CREATE POLICY service_role_all ON queue_jobs FOR ALL TO service_role USING (true) WITH CHECK (true);
-- Callers reach the queue functions through the schema (idempotent; other parts may repeat it).
GRANT USAGE ON SCHEMA @schema@ TO service_role;

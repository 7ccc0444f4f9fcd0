-- Queue RPCs on small fixtures, called as service_role (so the grants and the
-- service_role row policy are exercised, not only the logic): enqueue -> claim ->
-- heartbeat -> complete with fencing tokens, retry, stalled reset, dedup, ordering,
-- cancellation, and 22023 for bad input with nothing written.
BEGIN;
SET LOCAL search_path = notify, tap, public;
SELECT plan(27);
SET LOCAL ROLE service_role;

-- Enqueue, then claim: the claim hands out exactly that job, processing, no earlier
-- attempt, with a correlationId added to its metadata.
SELECT add_queue_job('00000000-0000-0000-0000-00000000000a', 'pgtap_mail', '{"n": 1}') AS job \gset
SELECT results_eq(
  $$ SELECT id, job_type, status, attempts, metadata - 'correlationId', metadata ? 'correlationId'
     FROM claim_pending_jobs(ARRAY['pgtap_mail'], 5) $$,
  format($$ VALUES (%L::uuid, 'pgtap_mail'::text, 'processing'::text, 0, '{"n": 1}'::jsonb, true) $$, :'job'),
  'claim_pending_jobs returns the enqueued job, processing, no earlier attempt');
SELECT is_empty($$ SELECT * FROM claim_pending_jobs(ARRAY['pgtap_mail'], 5) $$,
  'a processing job is not handed out twice');
SELECT processing_token AS token FROM queue_jobs WHERE id = :'job' \gset

-- Fencing: only the current token may heartbeat or complete.
SELECT ok(heartbeat_queue_job(:'job', :'token'), 'heartbeat with the current token succeeds');
SELECT is(heartbeat_queue_job(:'job', gen_random_uuid()), false, 'heartbeat with a stale token changes nothing');
SELECT is(complete_queue_job(:'job', NULL, gen_random_uuid()), false, 'complete with a stale token changes nothing');
SELECT throws_ok(format('SELECT complete_queue_job(%L, NULL, NULL)', :'job'), '22023', NULL,
  'complete with a NULL token raises 22023');
SELECT ok(complete_queue_job(:'job', '{"sent": true}', :'token'), 'complete with the current token succeeds');
SELECT results_eq(
  format('SELECT status, result FROM queue_jobs WHERE id = %L', :'job'),
  $$ VALUES ('completed'::text, '{"sent": true}'::jsonb) $$,
  'the job is completed with its result');
SELECT is(complete_queue_job(:'job', NULL, :'token'), false, 'a completed job cannot be completed again');

-- Claim order and bounds: priority first, only due jobs, never more than the batch size.
SELECT add_queue_job('00000000-0000-0000-0000-00000000000a', 'pgtap_order', '{}', p_priority => 20) AS low \gset
SELECT add_queue_job('00000000-0000-0000-0000-00000000000a', 'pgtap_order', '{}', p_priority => 1) AS high \gset
SELECT add_queue_job('00000000-0000-0000-0000-00000000000a', 'pgtap_order', '{}',
                     p_scheduled_for => now() + interval '1 hour') AS later \gset
SELECT results_eq($$ SELECT id FROM claim_pending_jobs(ARRAY['pgtap_order'], 1) $$,
  format('VALUES (%L::uuid)', :'high'), 'the lowest priority number is claimed first');
SELECT results_eq($$ SELECT id FROM claim_pending_jobs(ARRAY['pgtap_order'], 5) $$,
  format('VALUES (%L::uuid)', :'low'), 'a job scheduled in the future is not claimed');
DO $$ BEGIN
  PERFORM add_queue_job('00000000-0000-0000-0000-00000000000a', 'pgtap_batch', '{}') FROM generate_series(1, 3);
END $$;
SELECT is((SELECT count(*) FROM claim_pending_jobs(ARRAY['pgtap_batch'], 2)), 2::bigint,
  'a claim never returns more jobs than its batch size');

-- Retry: a failed attempt is re-queued with a backoff (not due again right away).
SELECT add_queue_job('00000000-0000-0000-0000-00000000000a', 'pgtap_retry', '{}') AS retry \gset
SELECT processing_token AS retry_token FROM claim_pending_jobs(ARRAY['pgtap_retry'], 1) \gset
SELECT ok(fail_queue_job(:'retry', 'smtp timeout', true, :'retry_token'), 'fail with retry succeeds');
SELECT results_eq(
  format('SELECT status, error_message, scheduled_for > now() FROM queue_jobs WHERE id = %L', :'retry'),
  $$ VALUES ('pending'::text, 'smtp timeout'::text, true) $$,
  'a failed attempt is re-queued for later with its error');

-- Stalled: a processing job without heartbeat is re-queued and its old token fenced out.
SELECT add_queue_job('00000000-0000-0000-0000-00000000000a', 'pgtap_stall', '{}') AS stalled \gset
SELECT processing_token AS stalled_token FROM claim_pending_jobs(ARRAY['pgtap_stall'], 1) \gset
UPDATE queue_jobs SET started_at = now() - interval '1 hour', updated_at = now() - interval '1 hour'
WHERE id = :'stalled';
SELECT is(reset_stalled_jobs(interval '5 minutes'), 1, 'reset_stalled_jobs re-queues the stalled job');
SELECT is((SELECT count(*) FROM claim_pending_jobs(ARRAY['pgtap_stall'], 1)), 1::bigint,
  'the reset job is claimed again');
SELECT is(complete_queue_job(:'stalled', NULL, :'stalled_token'), false,
  'the first worker can no longer complete the re-claimed job');

-- Dedup: one pending/processing job per key.
SELECT is(add_queue_job('00000000-0000-0000-0000-00000000000a', 'pgtap_dedup', '{}', p_dedup_key => 'k1'),
          add_queue_job('00000000-0000-0000-0000-00000000000a', 'pgtap_dedup', '{}', p_dedup_key => 'k1'),
          'adding a job with a live dedup key returns the existing id');

-- Cancellation.
SELECT add_queue_job('00000000-0000-0000-0000-00000000000b', 'generate_daily_brief',
                     '{"briefDate": "2026-01-02"}') AS brief \gset
SELECT results_eq(
  $$ SELECT cancelled_count FROM cancel_brief_jobs_for_date('00000000-0000-0000-0000-00000000000b', '2026-01-02') $$,
  $$ VALUES (1) $$, 'cancel_brief_jobs_for_date cancels the brief of that date');
SELECT add_queue_job('00000000-0000-0000-0000-00000000000b', 'pgtap_cancel', '{"thread": 7}') AS to_cancel \gset
SELECT results_eq(
  $$ SELECT id, status FROM cancel_jobs_atomic('00000000-0000-0000-0000-00000000000b', 'pgtap_cancel', '{"thread": 7}') $$,
  format($$ VALUES (%L::uuid, 'cancelled'::text) $$, :'to_cancel'),
  'cancel_jobs_atomic cancels the matching job and returns it');
SELECT add_queue_job('00000000-0000-0000-0000-00000000000b', 'pgtap_cancel', '{}') AS with_reason \gset
SELECT ok(cancel_job_with_reason(:'with_reason', 'user unsubscribed'), 'cancel_job_with_reason cancels a pending job');

-- Bad input: 22023, message naming the parameter, nothing written.
SELECT throws_ok($$ SELECT * FROM claim_pending_jobs(ARRAY['pgtap_mail'], 0) $$, '22023', NULL,
  'batch size 0 raises 22023');
SELECT throws_ok($$ SELECT * FROM claim_pending_jobs(ARRAY['pgtap_mail'], 1001) $$, '22023', NULL,
  'batch size 1001 raises 22023');
SELECT throws_like($$ SELECT * FROM claim_pending_jobs(ARRAY['pgtap_mail'], 0) $$, 'p_batch_size:%',
  'the message names p_batch_size');
SELECT throws_ok($$ SELECT add_queue_job(NULL, 'pgtap_bad', '[1, 2]') $$, '22023', NULL,
  'non-object metadata raises 22023');
SELECT throws_ok($$ SELECT * FROM cancel_jobs_atomic('00000000-0000-0000-0000-00000000000b', 'pgtap_cancel',
                                                    p_allowed_statuses => ARRAY['completed']) $$,
  '22023', NULL, 'an unknown cancellable status raises 22023');
SELECT is_empty($$ SELECT id FROM queue_jobs WHERE job_type = 'pgtap_bad' $$, 'a call that raised wrote nothing');

RESET ROLE;
SELECT * FROM finish();
ROLLBACK;

-- run_queue_upkeep: the queue's whole periodic upkeep in one call, for pg_cron.
--
-- What a worker's elected leader does on its own (notify-sql worker), as one statement
-- for those who prefer a scheduler: re-queues stalled jobs (reset_stalled_jobs with
-- p_stall_timeout), deletes jobs finished more than p_retention ago (prune_queue_jobs),
-- and folds the per-session funnel sums (compact_delivery_funnel_rollup). Each step is
-- bounded by p_batch_size (the compaction folds what is there) and none waits on a
-- worker: the first two pick rows with SKIP LOCKED, the compaction skips rows a writer
-- holds. Schedule it every minute: a backlog larger than p_batch_size is worked off
-- over the next runs. Returns what each step did.
CREATE FUNCTION @schema@.run_queue_upkeep(
  p_stall_timeout interval DEFAULT '5 minutes',
  p_retention interval DEFAULT '7 days',
  p_batch_size integer DEFAULT 10000)
RETURNS TABLE (reset_jobs integer, pruned_jobs integer, folded_rollup_rows bigint)
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  PERFORM check_interval('p_stall_timeout', p_stall_timeout);
  PERFORM check_interval('p_retention', p_retention);
  PERFORM check_batch_size('p_batch_size', p_batch_size, 100000);
  reset_jobs := reset_stalled_jobs(p_stall_timeout, p_batch_size);
  pruned_jobs := prune_queue_jobs(p_retention, p_batch_size);
  folded_rollup_rows := compact_delivery_funnel_rollup();
  RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION @schema@.run_queue_upkeep(interval, interval, integer) IS
  'Re-queues stalled jobs, prunes jobs finished more than p_retention ago and folds the funnel sums, each bounded by p_batch_size; returns the counts. Schedule it every minute (pg_cron) when workers run with --no-maintenance. 22023 on an interval outside (0, 100 years] or a batch size outside 1..100000.';

GRANT EXECUTE ON FUNCTION @schema@.run_queue_upkeep(interval, interval, integer) TO service_role;

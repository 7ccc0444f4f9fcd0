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

-- notify_sql_monitor: the least the operator console and `notify-sql stats` need.
-- NOLOGIN (the runner creates it with the other roles); grant it to a login role:
--   CREATE ROLE notify_console LOGIN PASSWORD '...' IN ROLE notify_sql_monitor;
-- It reads the tables the console shows, through RLS policies that allow SELECT only,
-- and may execute only the read functions that name it in their GRANT lines
-- (get_queue_health, get_queue_throughput, list_queue_jobs, list_notification_deliveries,
-- get_notification_channel_performance, get_recent_failed_deliveries,
-- get_notification_trace, and the helpers they call). It can change nothing: the
-- console's retry / cancel actions need a role with service_role.
GRANT USAGE ON SCHEMA @schema@ TO notify_sql_monitor;
GRANT SELECT ON queue_jobs, notification_events, notification_deliveries, provider_callbacks,
  notification_logs, delivery_funnel_rollup TO notify_sql_monitor;
CREATE POLICY monitor_reads ON queue_jobs FOR SELECT TO notify_sql_monitor USING (true);
CREATE POLICY monitor_reads ON notification_events FOR SELECT TO notify_sql_monitor USING (true);
CREATE POLICY monitor_reads ON notification_deliveries FOR SELECT TO notify_sql_monitor USING (true);
CREATE POLICY monitor_reads ON provider_callbacks FOR SELECT TO notify_sql_monitor USING (true);
CREATE POLICY monitor_reads ON notification_logs FOR SELECT TO notify_sql_monitor USING (true);
CREATE POLICY monitor_reads ON delivery_funnel_rollup FOR SELECT TO notify_sql_monitor USING (true);
GRANT EXECUTE ON FUNCTION delivery_funnel_of(text, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz)
  TO notify_sql_monitor;
GRANT EXECUTE ON FUNCTION delivery_funnel_slice(timestamptz) TO notify_sql_monitor;

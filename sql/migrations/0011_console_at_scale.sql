-- 0011_console_at_scale: what keeps /metrics, the console overview and /trace flat in
-- the size of the tables they watch.
--
-- 1. delivery_status_rollup: deliveries per 15-minute slice of created_at, channel and
--    CURRENT status, kept by triggers exactly like the funnel sums of 0005 (same slice
--    function, same per-session rows, same compaction). "Deliveries per channel and
--    status over 24 h" (get_delivery_status_counts, /metrics) becomes a sum over at most
--    slices x channels x statuses rows instead of a read of the window's deliveries.
--    Exact by construction: an AFTER row trigger subtracts the old version's
--    (slice, channel, status) and adds the new one's in the writer's own transaction, so
--    a delivery moving sent -> delivered moves one count atomically, a rolled-back write
--    leaves no trace, and concurrent writers never touch the same row (the key holds
--    pg_backend_pid(); see 0005 for why that neither serialises nor deadlocks callbacks).
--    The UPDATE trigger fires only when status, channel or created_at change.
--    TRUNCATE empties it; session_replication_role = replica bypasses it (after such a
--    load run rebuild_delivery_status_rollup()).
-- 2. notification_deliveries_failed_idx: failed and bounced deliveries by failure time,
--    so the overview's recent failures stop after LIMIT index entries instead of reading
--    the whole 24 h of deliveries. Partial: only failed rows have entries. Its key reads
--    status (predicate), failed_at and updated_at, so an update changing one of those is
--    not HOT; notification_deliveries keeps fillfactor 100 and its rows are updated long
--    after their page filled, so such updates were rarely HOT before either.
-- 3. queue_jobs_correlation_id_idx: jobs by metadata->>'correlationId', for /trace.
--    That is the key every enqueued job carries (add_queue_jobs adds it when the caller
--    did not; emit_notification_event writes it with the same value as its
--    correlation_id key). Partial (IS NOT NULL): rows written around the API without it
--    add no entry. Claims, heartbeats and completions do not change metadata, so they
--    stay HOT; an enqueue adds one entry.
--
-- Locks and time on an existing install (one transaction, like every migration): the
-- triggers take SHARE ROW EXCLUSIVE on notification_deliveries and the index build a
-- SHARE lock, held to commit: delivery writes wait for the backfill (one GROUP BY over
-- every delivery: 4 to 5 s per million deliveries measured on the shared 2-core
-- machine, 51 s at 10M, about half the funnel rebuild of 0005; bench_console prints it)
-- and the index build (0.3 to 0.35 s per million). queue_jobs is SHARE-locked while its index builds (0.3 s per 210,000
-- jobs; enqueues and claims wait; the table holds only live jobs and the pruned window
-- of finished ones). On a big install run the upgrade at a quiet moment, or first create
-- the two indexes CONCURRENTLY by hand, with these names and definitions: IF NOT EXISTS
-- then keeps them and only the backfill holds writes up.
-- Fresh installs are instant.

CREATE TABLE delivery_status_rollup (
  slice_start timestamptz NOT NULL,  -- delivery_funnel_slice(created_at)
  channel     text NOT NULL,
  status      text NOT NULL,
  writer_pid  integer NOT NULL,      -- the session that wrote this count; 0: compacted
  deliveries  bigint NOT NULL,
  PRIMARY KEY (slice_start, channel, status, writer_pid)
) WITH (fillfactor = 70);  -- counts are updated in place: room for HOT versions

COMMENT ON TABLE delivery_status_rollup IS
  'Deliveries per 15-minute slice of created_at, channel, current status and writing session; maintained by triggers on notification_deliveries. Read it through get_delivery_status_counts.';

ALTER TABLE delivery_status_rollup ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON delivery_status_rollup FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON delivery_status_rollup TO service_role;
CREATE POLICY service_role_all ON delivery_status_rollup FOR ALL TO service_role
  USING (true) WITH CHECK (true);
GRANT SELECT ON delivery_status_rollup TO notify_sql_monitor;
CREATE POLICY monitor_reads ON delivery_status_rollup FOR SELECT TO notify_sql_monitor
  USING (true);

-- Moves one delivery's count: -1 for the old version (UPDATE, DELETE), +1 for the new
-- one (INSERT, UPDATE), netted per key in one upsert of this session's rows (a change
-- that keeps the key nets to zero and still upserts: harmless, and rare given WHEN).
CREATE FUNCTION delivery_status_rollup_track()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  INSERT INTO delivery_status_rollup AS r (slice_start, channel, status, writer_pid, deliveries)
  SELECT delivery_funnel_slice(c.created_at), c.channel, c.status, pg_backend_pid(),
         sum(c.weight)
  FROM (SELECT -1, OLD.channel, OLD.status, OLD.created_at WHERE TG_OP <> 'INSERT'
        UNION ALL
        SELECT 1, NEW.channel, NEW.status, NEW.created_at WHERE TG_OP <> 'DELETE')
    AS c (weight, channel, status, created_at)
  GROUP BY 1, 2, 3
  ORDER BY 1, 2, 3
  ON CONFLICT (slice_start, channel, status, writer_pid) DO UPDATE SET
    deliveries = r.deliveries + excluded.deliveries;
  RETURN NULL;
END;
$$;

COMMENT ON FUNCTION delivery_status_rollup_track() IS
  'Row trigger on notification_deliveries: moves the row''s count (old version out, new version in) in this session''s delivery_status_rollup rows.';

CREATE TRIGGER delivery_status_tracked AFTER INSERT OR DELETE ON notification_deliveries
  FOR EACH ROW EXECUTE FUNCTION delivery_status_rollup_track();
CREATE TRIGGER delivery_status_moved AFTER UPDATE ON notification_deliveries
  FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status
        OR OLD.channel IS DISTINCT FROM NEW.channel
        OR OLD.created_at IS DISTINCT FROM NEW.created_at)
  EXECUTE FUNCTION delivery_status_rollup_track();

CREATE FUNCTION delivery_status_rollup_clear()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  DELETE FROM delivery_status_rollup;
  RETURN NULL;
END;
$$;

COMMENT ON FUNCTION delivery_status_rollup_clear() IS
  'Trigger: empties delivery_status_rollup when notification_deliveries is truncated.';

CREATE TRIGGER delivery_status_truncated AFTER TRUNCATE ON notification_deliveries
  FOR EACH STATEMENT EXECUTE FUNCTION delivery_status_rollup_clear();

-- Recounts every row from the deliveries under a SHARE lock (reads go on, writes wait),
-- serialised with compact_delivery_funnel_rollup by the same advisory key as the funnel
-- rebuild. For after a load that bypassed triggers; returns the rows written.
CREATE FUNCTION rebuild_delivery_status_rollup()
RETURNS bigint
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_rows bigint;
BEGIN
  LOCK TABLE notification_deliveries IN SHARE MODE;
  PERFORM pg_advisory_xact_lock('@schema@.delivery_funnel_rollup'::regclass::oid::bigint);
  DELETE FROM delivery_status_rollup;
  INSERT INTO delivery_status_rollup (slice_start, channel, status, writer_pid, deliveries)
  SELECT delivery_funnel_slice(d.created_at), d.channel, d.status, 0, count(*)
  FROM notification_deliveries d
  GROUP BY 1, 2, 3;
  GET DIAGNOSTICS v_rows = ROW_COUNT;
  RETURN v_rows;
END;
$$;

COMMENT ON FUNCTION rebuild_delivery_status_rollup() IS
  'Recomputes delivery_status_rollup from every delivery (blocks delivery writes meanwhile); run after loading deliveries with triggers disabled. Returns the rows written.';
GRANT EXECUTE ON FUNCTION rebuild_delivery_status_rollup() TO service_role;

SELECT rebuild_delivery_status_rollup();

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS notification_deliveries_failed_idx
  ON notification_deliveries ((coalesce(failed_at, updated_at)) DESC, id)
  WHERE status IN ('failed', 'bounced');

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS queue_jobs_correlation_id_idx ON queue_jobs ((metadata ->> 'correlationId'))
  WHERE (metadata ->> 'correlationId') IS NOT NULL;

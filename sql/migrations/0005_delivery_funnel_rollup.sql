-- 0005_delivery_funnel_rollup: the delivery funnel, kept summed per 15 minutes, exactly.
--
-- Why: a dashboard window is a run of the deliveries table, and aggregating every row
-- of it costs about a microsecond per row however it is found (index, index-only or
-- sequential scan; measured in BENCHMARKS.md). At ten million deliveries a 7-day
-- window still reads close to a million rows. Here each delivery's contribution to the
-- funnel is added to its 15-minute slice (by created_at) when the delivery is written,
-- so a window reads one row per slice, channel and writer, plus the raw rows of the
-- partial slices at its edges (analytics_delivery_funnel).
--
-- Exact by construction:
--   * one definition of what a row contributes, delivery_funnel_of, used by the
--     triggers, the rebuild and analytics_delivery_funnel's edge rows. It lives in this
--     migration, not in sql/functions, because it gives the stored sums their meaning:
--     changing it must come with a migration that rebuilds the sums.
--   * AFTER triggers add the contribution of every inserted row and of the new version
--     of every updated row, and subtract that of every deleted row and of the old
--     version of every updated row, in the writer's own transaction: a rolled-back
--     write leaves no trace, a committed one is counted once. TRUNCATE empties the
--     sums. A status moving for days (opens, clicks, late bounces) simply moves sums
--     between funnel columns of its creation slice.
--   * rows are per writer: the key holds pg_backend_pid(), and a session runs one
--     transaction at a time, so two sessions never update the same sums row. Concurrent
--     callbacks never wait on each other and cannot deadlock here. (0003 turned a rollup
--     down because a shared counter row would serialise every callback of a channel;
--     per-session rows remove that objection.) compact_delivery_funnel_rollup folds the
--     per-session rows into writer 0; readers add them all up anyway.
--   * triggers do not fire for session_replication_role = replica (logical replication
--     apply, pg_restore --disable-triggers): after such a load, run
--     rebuild_delivery_funnel_rollup(). The one thing this key cannot serve is
--     two-phase commit: a PREPAREd transaction keeps its sums row locked, and the same
--     session's next write to that slice waits for COMMIT PREPARED.
--
-- On an existing install this migration takes SHARE ROW EXCLUSIVE on deliveries (the
-- triggers) and rebuilds the sums from every row before committing, so writes wait
-- for the rebuild (about 5 s per million deliveries); fresh installs are instant.

CREATE TABLE delivery_funnel_rollup (
  slice_start        timestamptz NOT NULL,  -- a multiple of 15 minutes since the Unix epoch
  channel            text NOT NULL,
  writer_pid         integer NOT NULL,      -- the session that wrote these sums; 0: compacted
  total_sent         bigint NOT NULL,
  sent               bigint NOT NULL,
  delivered          bigint NOT NULL,
  opened             bigint NOT NULL,
  clicked            bigint NOT NULL,
  failed             bigint NOT NULL,
  sent_us_sum        numeric NOT NULL,      -- sum over rows with sent_at of sent_at - created_at, in us
  sent_us_count      bigint NOT NULL,
  delivered_us_sum   numeric NOT NULL,
  delivered_us_count bigint NOT NULL,
  PRIMARY KEY (slice_start, channel, writer_pid)
) WITH (fillfactor = 70);  -- the sums are updated in place: room for HOT versions

COMMENT ON TABLE delivery_funnel_rollup IS
  'Delivery funnel sums per 15-minute slice of created_at, channel and writing session; maintained by triggers on notification_deliveries. Read it through analytics_delivery_funnel.';

ALTER TABLE delivery_funnel_rollup ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON delivery_funnel_rollup FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON delivery_funnel_rollup TO service_role;
CREATE POLICY service_role_all ON delivery_funnel_rollup FOR ALL TO service_role
  USING (true) WITH CHECK (true);

-- What one delivery adds to the funnel (the definitions of analytics_delivery_funnel):
--   total_sent  every status but cancelled
--   sent        reached sent or beyond: sent, delivered, opened, clicked
--   delivered   reached delivered or beyond: delivered, opened, clicked
--   opened      counted in sent and has opened_at or clicked_at (a click implies an
--               open; a provider may report the click alone)
--   clicked     counted in sent and has clicked_at
--   failed      failed or bounced
-- and its sent and delivered delays in microseconds, exact numerics (NULL without both
-- timestamps finite), so sums and averages are exact. Never raises for any input.
CREATE FUNCTION delivery_funnel_of(
  p_status text,
  p_created_at timestamptz,
  p_sent_at timestamptz,
  p_delivered_at timestamptz,
  p_opened_at timestamptz,
  p_clicked_at timestamptz,
  OUT total_sent integer,
  OUT sent integer,
  OUT delivered integer,
  OUT opened integer,
  OUT clicked integer,
  OUT failed integer,
  OUT sent_us numeric,
  OUT delivered_us numeric
)
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_reached_sent constant boolean := p_status IN ('sent', 'delivered', 'opened', 'clicked');
BEGIN
  total_sent := (p_status <> 'cancelled')::integer;
  sent := v_reached_sent::integer;
  delivered := (p_status IN ('delivered', 'opened', 'clicked'))::integer;
  opened := (v_reached_sent AND (p_opened_at IS NOT NULL OR p_clicked_at IS NOT NULL))::integer;
  clicked := (v_reached_sent AND p_clicked_at IS NOT NULL)::integer;
  failed := (p_status IN ('failed', 'bounced'))::integer;
  IF isfinite(p_created_at) THEN
    -- Epochs, not p_sent_at - p_created_at: an interval overflows for the farthest
    -- apart timestamps, a numeric never does.
    sent_us := CASE WHEN isfinite(p_sent_at)
                    THEN (extract(epoch FROM p_sent_at) - extract(epoch FROM p_created_at))
                         * 1000000 END;
    delivered_us := CASE WHEN isfinite(p_delivered_at)
                         THEN (extract(epoch FROM p_delivered_at) - extract(epoch FROM p_created_at))
                              * 1000000 END;
  END IF;
END;
$$;

COMMENT ON FUNCTION delivery_funnel_of(text, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz) IS
  'What one delivery contributes to the delivery funnel (0/1 per stage, delays in whole microseconds or NULL): the single definition behind the funnel sums and every delivery metric.';
GRANT EXECUTE ON FUNCTION delivery_funnel_of(text, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz)
  TO service_role;

-- The 15-minute slice holding a creation time: whole quarter hours since the epoch,
-- so every time zone in use today (offsets in quarter hours) starts its hours and days
-- on a slice boundary. Binned from 2000-01-01 (a quarter-hour boundary, and
-- PostgreSQL's own zero) so no timestamp overflows; infinities map to themselves.
CREATE FUNCTION delivery_funnel_slice(p_created_at timestamptz)
RETURNS timestamptz
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
  SELECT date_bin('15 minutes', p_created_at, timestamptz '2000-01-01 00:00:00+00')
$$;

COMMENT ON FUNCTION delivery_funnel_slice(timestamptz) IS
  'The start of the 15-minute slice (quarter hours since the Unix epoch) holding p_created_at.';
GRANT EXECUTE ON FUNCTION delivery_funnel_slice(timestamptz) TO service_role;

-- Moves one delivery's contribution: subtracts the old version's (UPDATE, DELETE) and
-- adds the new one's (INSERT, UPDATE), in one upsert of this session's sums row(s). A
-- row trigger: the hot writers (callbacks, emits) change one to a few rows per
-- statement, and the UPDATE trigger's WHEN clause skips, without a function call,
-- every update that leaves the funnel columns alone (repeat opens and clicks, errors,
-- updated_at). Bulk loads are cheaper with triggers off and one rebuild.
CREATE FUNCTION delivery_funnel_rollup_track()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  INSERT INTO delivery_funnel_rollup AS r
    (slice_start, channel, writer_pid, total_sent, sent, delivered, opened, clicked, failed,
     sent_us_sum, sent_us_count, delivered_us_sum, delivered_us_count)
  SELECT delivery_funnel_slice(c.created_at), c.channel, pg_backend_pid(),
         sum(c.weight * f.total_sent), sum(c.weight * f.sent), sum(c.weight * f.delivered),
         sum(c.weight * f.opened), sum(c.weight * f.clicked), sum(c.weight * f.failed),
         coalesce(sum(c.weight * f.sent_us) FILTER (WHERE f.sent_us IS NOT NULL), 0),
         coalesce(sum(c.weight) FILTER (WHERE f.sent_us IS NOT NULL), 0),
         coalesce(sum(c.weight * f.delivered_us) FILTER (WHERE f.delivered_us IS NOT NULL), 0),
         coalesce(sum(c.weight) FILTER (WHERE f.delivered_us IS NOT NULL), 0)
  FROM (SELECT -1, OLD.channel, OLD.status, OLD.created_at, OLD.sent_at, OLD.delivered_at,
               OLD.opened_at, OLD.clicked_at
        WHERE TG_OP <> 'INSERT'
        UNION ALL
        SELECT 1, NEW.channel, NEW.status, NEW.created_at, NEW.sent_at, NEW.delivered_at,
               NEW.opened_at, NEW.clicked_at
        WHERE TG_OP <> 'DELETE')
    AS c (weight, channel, status, created_at, sent_at, delivered_at, opened_at, clicked_at)
  CROSS JOIN LATERAL delivery_funnel_of(c.status, c.created_at, c.sent_at, c.delivered_at,
                                        c.opened_at, c.clicked_at) f
  GROUP BY 1, 2
  ORDER BY 1, 2
  ON CONFLICT (slice_start, channel, writer_pid) DO UPDATE SET
    total_sent = r.total_sent + excluded.total_sent,
    sent = r.sent + excluded.sent,
    delivered = r.delivered + excluded.delivered,
    opened = r.opened + excluded.opened,
    clicked = r.clicked + excluded.clicked,
    failed = r.failed + excluded.failed,
    sent_us_sum = r.sent_us_sum + excluded.sent_us_sum,
    sent_us_count = r.sent_us_count + excluded.sent_us_count,
    delivered_us_sum = r.delivered_us_sum + excluded.delivered_us_sum,
    delivered_us_count = r.delivered_us_count + excluded.delivered_us_count;
  RETURN NULL;
END;
$$;

COMMENT ON FUNCTION delivery_funnel_rollup_track() IS
  'Row trigger on notification_deliveries: moves the row''s funnel contribution (old version out, new version in) in this session''s delivery_funnel_rollup rows.';

CREATE TRIGGER delivery_funnel_tracked AFTER INSERT OR DELETE ON notification_deliveries
  FOR EACH ROW EXECUTE FUNCTION delivery_funnel_rollup_track();
-- Exactly the columns delivery_funnel_of and delivery_funnel_slice read, plus channel.
CREATE TRIGGER delivery_funnel_moved AFTER UPDATE ON notification_deliveries
  FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status
        OR OLD.channel IS DISTINCT FROM NEW.channel
        OR OLD.created_at IS DISTINCT FROM NEW.created_at
        OR OLD.sent_at IS DISTINCT FROM NEW.sent_at
        OR OLD.delivered_at IS DISTINCT FROM NEW.delivered_at
        OR OLD.opened_at IS DISTINCT FROM NEW.opened_at
        OR OLD.clicked_at IS DISTINCT FROM NEW.clicked_at)
  EXECUTE FUNCTION delivery_funnel_rollup_track();

CREATE FUNCTION delivery_funnel_rollup_clear()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  DELETE FROM delivery_funnel_rollup;
  RETURN NULL;
END;
$$;

COMMENT ON FUNCTION delivery_funnel_rollup_clear() IS
  'Trigger: empties delivery_funnel_rollup when notification_deliveries is truncated.';

CREATE TRIGGER delivery_funnel_truncated AFTER TRUNCATE ON notification_deliveries
  FOR EACH STATEMENT EXECUTE FUNCTION delivery_funnel_rollup_clear();

-- Recomputes every sum from the deliveries, under a SHARE lock (reads go on, writes
-- wait) so no write lands between the recount and the commit. For after a load that
-- bypassed triggers; returns the number of sums rows written.
CREATE FUNCTION rebuild_delivery_funnel_rollup()
RETURNS bigint
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_rows bigint;
BEGIN
  LOCK TABLE notification_deliveries IN SHARE MODE;
  -- The key compact_delivery_funnel_rollup serialises on: never both at once.
  PERFORM pg_advisory_xact_lock('@schema@.delivery_funnel_rollup'::regclass::oid::bigint);
  DELETE FROM delivery_funnel_rollup;
  INSERT INTO delivery_funnel_rollup
    (slice_start, channel, writer_pid, total_sent, sent, delivered, opened, clicked, failed,
     sent_us_sum, sent_us_count, delivered_us_sum, delivered_us_count)
  SELECT delivery_funnel_slice(d.created_at), d.channel, 0,
         sum(f.total_sent), sum(f.sent), sum(f.delivered), sum(f.opened), sum(f.clicked),
         sum(f.failed),
         coalesce(sum(f.sent_us) FILTER (WHERE f.sent_us IS NOT NULL), 0),
         count(*) FILTER (WHERE f.sent_us IS NOT NULL),
         coalesce(sum(f.delivered_us) FILTER (WHERE f.delivered_us IS NOT NULL), 0),
         count(*) FILTER (WHERE f.delivered_us IS NOT NULL)
  FROM notification_deliveries d
  CROSS JOIN LATERAL delivery_funnel_of(d.status, d.created_at, d.sent_at, d.delivered_at,
                                        d.opened_at, d.clicked_at) f
  GROUP BY 1, 2;
  GET DIAGNOSTICS v_rows = ROW_COUNT;
  RETURN v_rows;
END;
$$;

COMMENT ON FUNCTION rebuild_delivery_funnel_rollup() IS
  'Recomputes delivery_funnel_rollup from every delivery (blocks delivery writes meanwhile); run after loading deliveries with triggers disabled. Returns the rows written.';
GRANT EXECUTE ON FUNCTION rebuild_delivery_funnel_rollup() TO service_role;

SELECT rebuild_delivery_funnel_rollup();

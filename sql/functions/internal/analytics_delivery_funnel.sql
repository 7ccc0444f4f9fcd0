-- analytics_delivery_funnel: the delivery funnel of a time window, defined once.
--
-- Every dashboard figure about deliveries (channel performance, overview, timeline,
-- SMS delivery stats) comes from here, so they can never disagree. Per delivery created
-- in [p_since, p_until) (p_until NULL: no upper bound), the funnel counts what
-- delivery_funnel_of (0005) says each row contributes:
--   total_sent  every status but cancelled
--   sent        reached sent or beyond: sent, delivered, opened, clicked
--   delivered   reached delivered or beyond: delivered, opened, clicked
--   opened      counted in sent and has opened_at or clicked_at
--   clicked     counted in sent and has clicked_at
--   failed      failed or bounced
-- so clicked <= opened <= sent, delivered <= sent, and no rate can exceed 100, whatever
-- the timestamps say (a bounced delivery that had been delivered is failed, not sent;
-- its delivered_at or opened_at cannot lift a rate). Rates are rounded to 2 places and
-- NULL when their denominator is 0. Averages only use rows whose timestamp is present,
-- summed exactly in whole microseconds and divided once per group.
--
-- Rows: one per bucket (p_granularity 'hour' or 'day', buckets in the session time
-- zone; NULL: one bucket starting at p_since) and, with p_by_channel, per channel;
-- every bucket of the window and every channel appear, with zero counts when empty.
-- p_channel restricts the rows read to one channel. Window bounds must be finite (and
-- before the year 100000), and a bucketed window may hold at most 10,000 buckets (an
-- hourly grid over centuries would never end): both refused with 22023 before anything
-- is read.
--
-- Speed, exactly: the whole 15-minute slices inside the window are read from
-- delivery_funnel_rollup (0005), which triggers keep equal to the sum of
-- delivery_funnel_of over each slice's rows; only the rows of the partial slices at the
-- window's edges (and any created after now(), for an open window) are read from the
-- deliveries table, through its created_at index. A window therefore costs its number
-- of slices plus at most two slices of rows, whatever the table holds. Buckets are
-- built from slices only when every bucket boundary inside the slices falls on a slice
-- boundary (true of every time zone in use today, whose offsets are whole quarter
-- hours); otherwise the whole window is read row by row, with the same result. The
-- plan depends on the window, so it is made with the actual values
-- (plan_cache_mode = force_custom_plan) rather than a generic plan that guesses.
CREATE FUNCTION @schema@.analytics_delivery_funnel(
  p_since timestamptz,
  p_until timestamptz DEFAULT NULL,
  p_granularity text DEFAULT NULL,
  p_by_channel boolean DEFAULT true,
  p_channel text DEFAULT NULL
)
RETURNS TABLE (
  bucket timestamptz,
  channel text,
  total_sent bigint,
  sent bigint,
  delivered bigint,
  opened bigint,
  clicked bigint,
  failed bigint,
  success_rate numeric,
  delivery_rate numeric,
  open_rate numeric,
  click_rate numeric,
  avg_delivery_time_ms numeric,
  avg_time_to_delivered_seconds numeric
)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
DECLARE
  -- The channel vocabulary of notification_deliveries (its CHECK constraint reads it too).
  v_all_channels CONSTANT text[] := notification_channels();
  v_channels text[] := v_all_channels;
  v_step interval;
  -- A dashboard chart needs no more points than this; it bounds the grid's work.
  v_max_buckets CONSTANT integer := 10000;
  v_slice CONSTANT interval := interval '15 minutes';  -- delivery_funnel_slice's width
  -- Far below timestamptz's end (294276 AD), so slice and bucket arithmetic never overflows.
  v_last_time CONSTANT timestamptz := timestamptz '100000-01-01 00:00:00+00';
  v_from timestamptz;
  v_to timestamptz;
BEGIN
  PERFORM check_condition('p_since', isfinite(p_since) AND p_since < v_last_time,
    format('must be a finite time before %s, got %s', v_last_time, coalesce(p_since::text, 'NULL')));
  PERFORM check_condition('p_until', p_until IS NULL OR (isfinite(p_until) AND p_until < v_last_time),
    format('must be a finite time before %s or NULL, got %s', v_last_time, p_until));
  PERFORM check_required('p_by_channel', p_by_channel);
  PERFORM check_condition('p_granularity', p_granularity IS NULL OR p_granularity IN ('hour', 'day'),
    format('must be ''hour'' or ''day'', got %L', left(p_granularity, 100)));
  IF p_channel IS NOT NULL THEN
    PERFORM check_member('p_channel', p_channel, v_all_channels);
    v_channels := ARRAY[p_channel];
  END IF;
  v_step := ('1 ' || p_granularity)::interval;  -- NULL without granularity
  PERFORM check_condition('p_granularity',  -- no granularity: one bucket, nothing to bound
    coalesce(extract(epoch FROM coalesce(p_until, now()) - p_since) / extract(epoch FROM v_step)
             <= v_max_buckets, true),
    format('%L buckets over this window would be more than %s; '
           'use a coarser granularity or a shorter window', p_granularity, v_max_buckets));

  -- [v_from, v_to): the whole slices read from the rollup. An open window reads the
  -- rollup up to the end of now()'s slice; rows created later come from the table.
  v_from := delivery_funnel_slice(p_since);
  IF v_from < p_since THEN
    v_from := v_from + v_slice;
  END IF;
  v_to := CASE WHEN p_until IS NULL THEN delivery_funnel_slice(now()) + v_slice
               ELSE delivery_funnel_slice(p_until) END;
  IF v_to < v_from
     OR EXISTS (SELECT FROM generate_series(date_trunc(p_granularity, v_from), v_to, v_step) AS b(at)
                WHERE b.at > v_from AND b.at < v_to AND delivery_funnel_slice(b.at) <> b.at) THEN
    v_to := v_from;
  END IF;

  RETURN QUERY
  WITH edge_rows AS (
    SELECT d.channel, d.status, d.created_at, d.sent_at, d.delivered_at, d.opened_at, d.clicked_at
    FROM notification_deliveries d
    WHERE d.channel = ANY (v_channels)
      AND d.created_at >= p_since AND d.created_at < v_from
      AND (p_until IS NULL OR d.created_at < p_until)
    UNION ALL
    SELECT d.channel, d.status, d.created_at, d.sent_at, d.delivered_at, d.opened_at, d.clicked_at
    FROM notification_deliveries d
    WHERE d.channel = ANY (v_channels)
      AND d.created_at >= v_to
      AND (p_until IS NULL OR d.created_at < p_until)
  ),
  contributions AS (
    SELECT coalesce(date_trunc(p_granularity, r.slice_start), p_since) AS bucket,
           r.channel, r.total_sent, r.sent, r.delivered, r.opened, r.clicked, r.failed,
           r.sent_us_sum, r.sent_us_count, r.delivered_us_sum, r.delivered_us_count
    FROM delivery_funnel_rollup r
    WHERE r.slice_start >= v_from AND r.slice_start < v_to AND r.channel = ANY (v_channels)
    UNION ALL
    SELECT coalesce(date_trunc(p_granularity, e.created_at), p_since),
           e.channel, f.total_sent, f.sent, f.delivered, f.opened, f.clicked, f.failed,
           f.sent_us, (f.sent_us IS NOT NULL)::integer,
           f.delivered_us, (f.delivered_us IS NOT NULL)::integer
    FROM edge_rows e
    CROSS JOIN LATERAL delivery_funnel_of(e.status, e.created_at, e.sent_at, e.delivered_at,
                                          e.opened_at, e.clicked_at) f
  ),
  counted AS (
    SELECT c.bucket,
           CASE WHEN p_by_channel THEN c.channel END AS channel,
           sum(c.total_sent)::bigint AS total_sent,
           sum(c.sent)::bigint AS sent,
           sum(c.delivered)::bigint AS delivered,
           sum(c.opened)::bigint AS opened,
           sum(c.clicked)::bigint AS clicked,
           sum(c.failed)::bigint AS failed,
           sum(c.sent_us_sum) / nullif(sum(c.sent_us_count), 0) AS sent_us,
           sum(c.delivered_us_sum) / nullif(sum(c.delivered_us_count), 0) AS delivered_us
    FROM contributions c
    GROUP BY 1, 2
  ),
  grid AS (
    SELECT b.bucket, c.channel
    FROM (SELECT p_since AS bucket WHERE p_granularity IS NULL
          UNION ALL
          SELECT s.bucket
          FROM generate_series(date_trunc(p_granularity, p_since),
                               coalesce(p_until, now()), v_step) AS s(bucket)
          WHERE p_granularity IS NOT NULL AND (p_until IS NULL OR s.bucket < p_until)) AS b
    CROSS JOIN unnest(CASE WHEN p_by_channel THEN v_channels ELSE ARRAY[NULL::text] END)
      AS c(channel)
  ),
  -- Full join: rows created after now() (clock skew) still count, in buckets past the grid.
  filled AS (
    SELECT coalesce(g.bucket, n.bucket) AS bucket,
           coalesce(g.channel, n.channel) AS channel,
           coalesce(n.total_sent, 0) AS total_sent,
           coalesce(n.sent, 0) AS sent,
           coalesce(n.delivered, 0) AS delivered,
           coalesce(n.opened, 0) AS opened,
           coalesce(n.clicked, 0) AS clicked,
           coalesce(n.failed, 0) AS failed,
           n.sent_us,
           n.delivered_us
    FROM grid g
    FULL JOIN counted n
      ON n.bucket = g.bucket AND coalesce(n.channel, '') = coalesce(g.channel, '')
  )
  SELECT f.bucket, f.channel, f.total_sent, f.sent, f.delivered, f.opened, f.clicked, f.failed,
         round(100.0 * f.sent / nullif(f.sent + f.failed, 0), 2),
         round(100.0 * f.delivered / nullif(f.sent, 0), 2),
         round(100.0 * f.opened / nullif(f.sent, 0), 2),
         round(100.0 * f.clicked / nullif(f.opened, 0), 2),
         round(f.sent_us / 1000, 2),
         round(f.delivered_us / 1000000, 2)
  FROM filled f
  ORDER BY f.bucket, f.channel;
END;
$$;

COMMENT ON FUNCTION @schema@.analytics_delivery_funnel(timestamptz, timestamptz, text, boolean, text) IS
  'Delivery funnel (counts, rates <= 100, average times) of deliveries created in [p_since, p_until), per bucket and optionally per channel, empty buckets and channels included; the single definition behind every delivery metric. Raises 22023 on a NULL or infinite bound, an unknown granularity or channel, or more than 10000 buckets.';

GRANT EXECUTE ON FUNCTION @schema@.analytics_delivery_funnel(timestamptz, timestamptz, text, boolean, text) TO service_role;
GRANT EXECUTE ON FUNCTION @schema@.analytics_delivery_funnel(timestamptz, timestamptz, text, boolean, text) TO notify_sql_monitor;

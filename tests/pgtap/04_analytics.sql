-- Analytics RPCs on a small fixture, called as service_role: the funnel definitions of
-- CONTRACT.md (sent / delivered / opened / clicked / failed, rates rounded to 2 places,
-- averages over present timestamps only, the created_at window) and 22023 for an
-- unparsable or negative interval.
BEGIN;
SET LOCAL search_path = notify, tap, public;
SELECT plan(13);
SET LOCAL ROLE service_role;

-- Four email deliveries in the window (clicked, delivered, failed, cancelled) and one
-- older than it. Sent 2 s and 4 s after creation: an average of 3000 ms.
INSERT INTO notification_events (event_type, target_user_id)
VALUES ('pgtap_digest', '00000000-0000-0000-0000-0000000000d1')
RETURNING id AS event \gset
INSERT INTO notification_deliveries
  (event_id, recipient_user_id, channel, status, created_at, sent_at, delivered_at, opened_at, clicked_at, failed_at)
SELECT :'event', '00000000-0000-0000-0000-0000000000d1', 'email', status, created,
       created + sent, created + delivered, created + opened, created + clicked, created + failed
FROM (VALUES
  ('clicked',   now() - interval '1 hour', interval '2 s', interval '5 s', interval '1 min', interval '2 min', NULL::interval),
  ('delivered', now() - interval '1 hour', interval '4 s', interval '6 s', NULL, NULL, NULL),
  ('failed',    now() - interval '1 hour', NULL, NULL, NULL, NULL, interval '1 s'),
  ('cancelled', now() - interval '1 hour', NULL, NULL, NULL, NULL, NULL),
  ('clicked',   now() - interval '60 days', interval '2 s', interval '5 s', interval '1 min', interval '2 min', NULL)
) AS fixture (status, created, sent, delivered, opened, clicked, failed);

SELECT results_eq(
  $$ SELECT total_sent, sent, delivered, opened, clicked, failed
     FROM get_notification_channel_performance('7 days') WHERE channel = 'email' $$,
  $$ VALUES (3::bigint, 2::bigint, 2::bigint, 1::bigint, 1::bigint, 1::bigint) $$,
  'channel funnel counts: cancelled excluded, the older delivery outside the window');
SELECT results_eq(
  $$ SELECT success_rate, delivery_rate, open_rate, click_rate, avg_delivery_time_ms
     FROM get_notification_channel_performance('7 days') WHERE channel = 'email' $$,
  $$ VALUES (66.67::numeric, 100.00::numeric, 50.00::numeric, 100.00::numeric, 3000::numeric) $$,
  'channel rates rounded to 2 places, average over present sent_at only');
SELECT is_empty(
  $$ SELECT FROM get_notification_channel_performance('7 days')
     WHERE greatest(success_rate, delivery_rate, open_rate, click_rate) > 100 $$,
  'no rate exceeds 100');
SELECT results_eq(
  $$ SELECT total_events, total_deliveries, unique_subscribers
     FROM get_notification_event_performance('30 days') WHERE event_type = 'pgtap_digest' $$,
  $$ VALUES (1::bigint, 4::bigint, 1::bigint) $$,
  'event performance counts the event, its deliveries in the window and one subscriber');
SELECT is((SELECT count(*) FROM get_sms_notification_stats('24 hours')), 1::bigint,
  'get_sms_notification_stats returns exactly one row');

SELECT throws_ok($$ SELECT * FROM get_notification_channel_performance('not an interval') $$, '22023', NULL,
  'an unparsable interval raises 22023');
SELECT throws_ok($$ SELECT * FROM get_notification_channel_performance('-1 day') $$, '22023', NULL,
  'a negative interval raises 22023');
SELECT throws_like($$ SELECT * FROM get_notification_event_performance(NULL) $$, 'p_interval:%',
  'the message names p_interval');
SELECT throws_ok($$ SELECT * FROM get_sms_notification_stats('soon') $$, '22023', NULL,
  'get_sms_notification_stats refuses a bad interval with 22023');

-- The funnel sums (0005) moved with the writes above, in this same transaction.
SELECT results_eq(
  $$ SELECT sum(total_sent)::bigint, sum(sent)::bigint, sum(failed)::bigint,
            sum(sent_us_count)::bigint
     FROM delivery_funnel_rollup WHERE channel = 'email' $$,
  $$ VALUES (4::bigint, 3::bigint, 1::bigint, 3::bigint) $$,
  'the funnel sums hold every email delivery, the older one included');
UPDATE notification_deliveries SET status = 'failed' WHERE status = 'delivered';
SELECT results_eq(
  $$ SELECT sent, failed FROM get_notification_channel_performance('7 days') WHERE channel = 'email' $$,
  $$ VALUES (1::bigint, 2::bigint) $$,
  'a status update moves the delivery between funnel columns at once');

RESET ROLE;
SELECT triggers_are('notify', 'notification_deliveries',
  ARRAY['delivery_funnel_tracked', 'delivery_funnel_moved', 'delivery_funnel_truncated',
        'delivery_status_tracked', 'delivery_status_moved', 'delivery_status_truncated'],
  'deliveries carry exactly the funnel and status-count triggers');
SELECT function_privs_are('notify', 'rebuild_delivery_funnel_rollup', ARRAY[]::name[], 'anon',
  ARRAY[]::text[], 'anon cannot rebuild the funnel sums');
SELECT * FROM finish();
ROLLBACK;

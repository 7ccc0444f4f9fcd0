-- The seed platform's functions and subscriptions (issue 14), called as service_role:
-- the SMS daily limit never passes its limit, queue_sms_message writes the message and
-- its job and dedups, email suppressions widen their scope, and a signed-in user sees
-- only their own subscriptions.
BEGIN;
SET LOCAL search_path = notify, tap, public;
SELECT plan(11);
SET LOCAL ROLE service_role;

SELECT results_eq(
  $$ SELECT allowed, current_count FROM check_and_increment_sms_daily_limit(
       '00000000-0000-0000-0000-0000000000d1', p_default_limit => 2) $$,
  $$ VALUES (true, 1) $$, 'the first SMS of the day is allowed');
SELECT check_and_increment_sms_daily_limit('00000000-0000-0000-0000-0000000000d1', p_default_limit => 2);
SELECT results_eq(
  $$ SELECT allowed, current_count, "limit" FROM check_and_increment_sms_daily_limit(
       '00000000-0000-0000-0000-0000000000d1', p_default_limit => 2) $$,
  $$ VALUES (false, 2, 2) $$, 'the third is refused and not counted');
SELECT throws_ok($$ SELECT check_and_increment_sms_daily_limit(NULL) $$, '22023', NULL,
  'a NULL user raises 22023');

SELECT queue_sms_message('00000000-0000-0000-0000-0000000000d2', '+15550100', 'hi',
                         p_metadata => '{"dedup_key": "welcome-d2"}') AS message \gset
SELECT is(queue_sms_message('00000000-0000-0000-0000-0000000000d2', '+15550100', 'hi',
                            p_metadata => '{"dedup_key": "welcome-d2"}'),
          :'message'::uuid, 'the same dedup key returns the same message');
SELECT results_eq(
  format($$ SELECT j.job_type, j.metadata ->> 'message_id' FROM sms_messages s
            JOIN queue_jobs j ON j.id = s.queue_job_id WHERE s.id = %L $$, :'message'),
  format($$ VALUES ('send_sms'::text, %L::text) $$, :'message'),
  'the message names its send_sms job, which names the message');
SELECT throws_ok($$ SELECT queue_sms_message(gen_random_uuid(), '+1555', 'hi', p_priority => 'asap') $$,
  '22023', NULL, 'an unknown priority raises 22023');

SELECT upsert_email_suppression('Ann@Example.com', 'lifecycle', 'unsubscribe', 'email_link');
SELECT upsert_email_suppression('ann@example.com', 'marketing', 'complaint', 'provider_webhook');
SELECT results_eq($$ SELECT email, scope FROM email_suppressions $$,
  $$ VALUES ('ann@example.com'::text, 'all'::text) $$, 'two scopes widen to all');
SELECT ok(is_email_suppressed(' ANN@example.com', 'daily_brief'), 'all covers every scope');

INSERT INTO notification_subscriptions (user_id, event_type)
VALUES ('00000000-0000-0000-0000-0000000000d3', 'x'), ('00000000-0000-0000-0000-0000000000d4', 'x');
RESET ROLE;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-0000000000d3"}', true);
SELECT results_eq($$ SELECT user_id FROM notification_subscriptions $$,
  $$ VALUES ('00000000-0000-0000-0000-0000000000d3'::uuid) $$,
  'a signed-in user sees only their own subscriptions');
SELECT throws_ok(
  $$ INSERT INTO notification_subscriptions (user_id, event_type)
     VALUES ('00000000-0000-0000-0000-0000000000d4', 'y') $$,
  '42501', NULL, 'and cannot subscribe someone else');
SELECT is((SELECT count(*) FROM notification_subscriptions WHERE user_id = '00000000-0000-0000-0000-0000000000d4'),
  0::bigint, 'nor see their rows');
SELECT * FROM finish();
ROLLBACK;

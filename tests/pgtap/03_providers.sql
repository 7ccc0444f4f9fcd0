-- Provider-update RPCs on small fixtures, called as service_role: email events, Twilio
-- status callbacks out of order, SMS short links, and emit_notification_event fanning
-- out to deliveries and queue jobs in one call; 22023 for unknown statuses and events.
BEGIN;
SET LOCAL search_path = notify, tap, public;
SELECT plan(27);
SET LOCAL ROLE service_role;

-- Email events.
SELECT is(record_email_event('no-such-tracking-id', 'open'), false,
  'record_email_event on an unknown tracking id returns false');
INSERT INTO notification_deliveries (recipient_user_id, channel)
VALUES ('00000000-0000-0000-0000-0000000000c1', 'email')
RETURNING id AS mail, tracking_id AS mail_tracking \gset
SELECT ok(record_email_event(:'mail_tracking', 'delivered'), 'a delivered event is applied');
SELECT ok(record_email_event(:'mail_tracking', 'open'), 'an open event is applied');
SELECT ok(record_email_event(:'mail_tracking', 'bounce'),
  'a first bounce after an open records its failed_at and returns true');
SELECT is(record_email_event(:'mail_tracking', 'bounce'), false,
  'a repeated bounce changes nothing and returns false');
SELECT is(record_email_event(:'mail_tracking', 'delivered'), false,
  'a repeated delivered event changes nothing and returns false');
SELECT results_eq(
  format('SELECT status, opened_at IS NOT NULL, delivered_at IS NOT NULL FROM notification_deliveries WHERE id = %L', :'mail'),
  $$ VALUES ('opened'::text, true, true) $$,
  'a bounce after an open does not move the delivery down');
INSERT INTO notification_deliveries (recipient_user_id, channel)
VALUES ('00000000-0000-0000-0000-0000000000c1', 'email')
RETURNING id AS clicked, tracking_id AS clicked_tracking \gset
SELECT ok(record_email_event(:'clicked_tracking', 'click', p_url => 'https://example.com/a'),
  'a click event is applied');
SELECT results_eq(
  format('SELECT status, opened_at IS NOT NULL, clicked_at IS NOT NULL FROM notification_deliveries WHERE id = %L', :'clicked'),
  $$ VALUES ('clicked'::text, true, true) $$,
  'a click on an unopened delivery also sets opened_at');
SELECT throws_ok(format('SELECT record_email_event(%L, %L)', :'mail_tracking', 'opened-ish'), '22023', NULL,
  'an unknown email event raises 22023');

-- Twilio callbacks, delivered before sent: the highest status wins, whatever the order.
INSERT INTO notification_deliveries (recipient_user_id, channel)
VALUES ('00000000-0000-0000-0000-0000000000c2', 'sms')
RETURNING id AS sms_delivery \gset
INSERT INTO sms_messages (user_id, phone_number, message_content, twilio_sid, notification_delivery_id)
VALUES ('00000000-0000-0000-0000-0000000000c2', '+15550100', 'hello', 'SMpgtap1', :'sms_delivery')
RETURNING id AS sms \gset
SELECT results_eq(
  format($$ SELECT updated_sms, updated_delivery FROM update_sms_status_atomic(%L, 'SMpgtap1', 'delivered') $$, :'sms'),
  $$ VALUES (true, true) $$,
  'a delivered callback updates the message and its delivery');
SELECT results_eq(
  format($$ SELECT updated_sms FROM update_sms_status_atomic(%L, 'SMpgtap1', 'sent') $$, :'sms'),
  $$ VALUES (false) $$,
  'a late sent callback changes nothing');
SELECT results_eq(
  format('SELECT twilio_status, sent_at IS NOT NULL, delivered_at IS NOT NULL FROM sms_messages WHERE id = %L', :'sms'),
  $$ VALUES ('delivered'::text, true, true) $$,
  'the message stays delivered, with the sent_at that delivered implies');
SELECT results_eq(
  format('SELECT status, sent_at IS NOT NULL FROM notification_deliveries WHERE id = %L', :'sms_delivery'),
  $$ VALUES ('delivered'::text, true) $$,
  'the delivery follows the message');
SELECT results_eq(
  $$ SELECT updated_sms FROM update_sms_status_atomic('00000000-0000-0000-0000-0000000000ff', 'SMnone', 'sent') $$,
  $$ VALUES (false) $$,
  'an unknown message returns one row with updated_sms = false');
SELECT throws_ok(format($$ SELECT * FROM update_sms_status_atomic(%L, 'SMpgtap1', 'received') $$, :'sms'),
  '22023', NULL, 'an inbound status raises 22023');
SELECT throws_ok(format($$ SELECT * FROM update_sms_status_atomic(%L, 'SMpgtap1', 'teleported') $$, :'sms'),
  '22023', NULL, 'an unknown status raises 22023');

-- SMS short links.
SELECT create_sms_link(:'sms_delivery', 'https://example.com/offer') AS code \gset
SELECT is(record_sms_link_click(:'code'), 'https://example.com/offer', 'a click on a short code returns its url');
SELECT is(record_sms_link_click('nosuchcode'), NULL, 'an unknown short code returns NULL');
SELECT isnt((SELECT clicked_at FROM notification_deliveries WHERE id = :'sms_delivery'), NULL,
  'the click is recorded on the delivery');

-- emit_notification_event: event, one delivery per channel, one job per delivery, one correlation id.
-- Only subscribers of the event type receive it.
INSERT INTO notification_subscriptions (user_id, event_type)
VALUES ('00000000-0000-0000-0000-0000000000c3', 'pgtap_event');
SELECT emit_notification_event('pgtap_event', '{"title": "hi"}', '00000000-0000-0000-0000-0000000000c3',
                               p_channels => ARRAY['email', 'sms'], p_correlation_id => 'corr-pgtap') AS event \gset
SELECT results_eq(
  format('SELECT channel FROM notification_deliveries WHERE event_id = %L ORDER BY channel', :'event'),
  $$ VALUES ('email'::text), ('sms'::text) $$,
  'one delivery per requested channel');
SELECT results_eq(
  format($$ SELECT count(*) FROM queue_jobs j JOIN notification_deliveries d ON d.id = (j.metadata ->> 'delivery_id')::uuid
            WHERE d.event_id = %L AND j.job_type = 'send_notification' AND j.metadata ->> 'correlation_id' = 'corr-pgtap' $$,
         :'event'),
  $$ VALUES (2::bigint) $$,
  'one send_notification job per delivery, carrying the correlation id');
SELECT results_eq(
  format($$ SELECT DISTINCT d.correlation_id FROM notification_deliveries d WHERE d.event_id = %L
            UNION SELECT e.correlation_id FROM notification_events e WHERE e.id = %L $$, :'event', :'event'),
  $$ VALUES ('corr-pgtap'::text) $$,
  'the event and its deliveries share the correlation id');
SELECT emit_notification_event('pgtap_event', '{}', '00000000-0000-0000-0000-0000000000c4') AS unsubscribed \gset
SELECT is_empty(format('SELECT FROM notification_deliveries WHERE event_id = %L', :'unsubscribed'),
  'a user with no subscription gets no delivery');
SELECT emit_notification_event('pgtap_event', '{}', p_metadata => '{"correlationId": "corr-meta"}',
                               p_scheduled_for => now() + interval '1 hour') AS broadcast \gset
SELECT results_eq(
  format($$ SELECT d.recipient_user_id, j.scheduled_for > now(), j.metadata ->> 'correlationId'
            FROM notification_deliveries d JOIN queue_jobs j ON j.metadata ->> 'delivery_id' = d.id::text
            WHERE d.event_id = %L AND d.channel = 'email' $$, :'broadcast'),
  $$ VALUES ('00000000-0000-0000-0000-0000000000c3'::uuid, true, 'corr-meta'::text) $$,
  'no target: every subscriber, jobs not due before p_scheduled_for, correlationId from p_metadata');
SELECT throws_ok($$ SELECT emit_notification_event('pgtap_event', '{}', p_channels => ARRAY['pigeon']) $$,
  '22023', NULL, 'an unknown channel raises 22023');
SELECT is_empty($$ SELECT FROM notification_events WHERE event_type = 'pgtap_event' AND correlation_id NOT IN ('corr-pgtap', 'corr-meta')
                   AND target_user_id IS DISTINCT FROM '00000000-0000-0000-0000-0000000000c4' $$,
  'a call that raised wrote no event');

RESET ROLE;
SELECT * FROM finish();
ROLLBACK;

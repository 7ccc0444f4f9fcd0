-- The public contract (CONTRACT.md), as the catalog shows it: every RPC exists with its
-- argument types, argument names and defaults, return type and columns, and only
-- service_role may execute it. Argument names are API (PostgREST and named-argument
-- calls use them), so they are compared too.
--
-- Run against a database with notify-sql installed in schema notify and pgTAP in
-- schema tap (or public): pg_prove -d DB tests/pgtap/01_contract.sql
BEGIN;
SET LOCAL search_path = notify, tap, public;

CREATE TEMP TABLE contract (
  name name PRIMARY KEY,
  arg_types name[] NOT NULL,
  arguments text NOT NULL,   -- pg_get_function_arguments: names, types, defaults
  result text NOT NULL       -- pg_get_function_result: scalar type or TABLE(columns)
) ON COMMIT DROP;

INSERT INTO contract VALUES
  -- Queue
  ('claim_pending_jobs', '{text[],integer}',
   'p_job_types text[], p_batch_size integer DEFAULT 5',
   'TABLE(id uuid, queue_job_id text, user_id uuid, job_type text, metadata jsonb, status text, priority integer, attempts integer, max_attempts integer, scheduled_for timestamp with time zone, created_at timestamp with time zone, updated_at timestamp with time zone, started_at timestamp with time zone, completed_at timestamp with time zone, error_message text, processing_token uuid)'),
  ('complete_queue_job', '{uuid,jsonb,uuid}',
   'p_job_id uuid, p_result jsonb DEFAULT NULL::jsonb, p_processing_token uuid DEFAULT NULL::uuid',
   'boolean'),
  ('fail_queue_job', '{uuid,text,boolean,uuid,numeric}',
   'p_job_id uuid, p_error_message text, p_retry boolean DEFAULT true, p_processing_token uuid DEFAULT NULL::uuid, p_retry_after_seconds numeric DEFAULT NULL::numeric',
   'boolean'),
  ('heartbeat_queue_job', '{uuid,uuid}',
   'p_job_id uuid, p_processing_token uuid',
   'boolean'),
  ('reset_stalled_jobs', '{interval,integer,text[],text[]}',
   'p_stall_timeout interval DEFAULT ''00:05:00''::interval, p_batch_size integer DEFAULT 1000, p_include_job_types text[] DEFAULT NULL::text[], p_exclude_job_types text[] DEFAULT NULL::text[]',
   'integer'),
  ('add_queue_job', '{uuid,text,jsonb,integer,"timestamp with time zone",text,text}',
   'p_user_id uuid, p_job_type text, p_metadata jsonb, p_priority integer DEFAULT 10, p_scheduled_for timestamp with time zone DEFAULT now(), p_dedup_key text DEFAULT NULL::text, p_limit_key text DEFAULT NULL::text',
   'uuid'),
  ('set_queue_limit', '{text,numeric,integer,integer}',
   'p_limit_key text, p_max_per_second numeric DEFAULT NULL::numeric, p_max_concurrent integer DEFAULT NULL::integer, p_burst integer DEFAULT NULL::integer',
   'boolean'),
  ('cancel_jobs_atomic', '{uuid,text,jsonb,text[]}',
   'p_user_id uuid, p_job_type text, p_metadata_filter jsonb DEFAULT NULL::jsonb, p_allowed_statuses text[] DEFAULT ARRAY[''pending''::text, ''processing''::text]',
   'TABLE(id uuid, queue_job_id text, job_type text, status text)'),
  ('cancel_brief_jobs_for_date', '{uuid,text,uuid}',
   'p_user_id uuid, p_brief_date text, p_exclude_job_id uuid DEFAULT NULL::uuid',
   'TABLE(cancelled_count integer, cancelled_job_ids text[])'),
  ('cancel_job_with_reason', '{uuid,text,boolean}',
   'p_job_id uuid, p_reason text, p_allow_processing boolean DEFAULT false',
   'boolean'),
  -- Provider updates
  ('update_sms_status_atomic', '{uuid,text,text,text,integer,text}',
   'p_message_id uuid, p_twilio_sid text, p_twilio_status text, p_mapped_status text DEFAULT NULL::text, p_error_code integer DEFAULT NULL::integer, p_error_message text DEFAULT NULL::text',
   'TABLE(notification_delivery_id uuid, user_id uuid, sent_at timestamp with time zone, delivered_at timestamp with time zone, attempt_count integer, max_attempts integer, priority text, updated_sms boolean, updated_delivery boolean)'),
  ('record_email_event', '{text,text,"timestamp with time zone",text}',
   'p_tracking_id text, p_event text, p_occurred_at timestamp with time zone DEFAULT now(), p_url text DEFAULT NULL::text',
   'boolean'),
  ('create_sms_link', '{uuid,text}',
   'p_delivery_id uuid, p_url text',
   'text'),
  ('record_sms_link_click', '{text,"timestamp with time zone"}',
   'p_short_code text, p_occurred_at timestamp with time zone DEFAULT now()',
   'text'),
  ('emit_notification_event', '{text,jsonb,uuid,uuid,text[],text,text,jsonb,"timestamp with time zone"}',
   'p_event_type text, p_payload jsonb, p_target_user_id uuid DEFAULT NULL::uuid, p_actor_user_id uuid DEFAULT NULL::uuid, p_channels text[] DEFAULT NULL::text[], p_event_source text DEFAULT ''api''::text, p_correlation_id text DEFAULT NULL::text, p_metadata jsonb DEFAULT NULL::jsonb, p_scheduled_for timestamp with time zone DEFAULT NULL::timestamp with time zone',
   'uuid'),
  -- Analytics
  ('get_notification_channel_performance', '{text}',
   'p_interval text DEFAULT ''7 days''::text',
   'TABLE(channel text, total_sent bigint, sent bigint, delivered bigint, opened bigint, clicked bigint, failed bigint, success_rate numeric, delivery_rate numeric, open_rate numeric, click_rate numeric, avg_delivery_time_ms numeric)'),
  ('get_notification_event_performance', '{text}',
   'p_interval text DEFAULT ''30 days''::text',
   'TABLE(event_type text, total_events bigint, total_deliveries bigint, unique_subscribers bigint, avg_delivery_time_seconds numeric, open_rate numeric, click_rate numeric)'),
  ('get_sms_notification_stats', '{text}',
   'p_interval text DEFAULT ''24 hours''::text',
   'TABLE(total_users_with_phone bigint, users_phone_verified bigint, users_sms_enabled bigint, users_opted_out bigint, phone_verification_rate numeric, sms_adoption_rate numeric, opt_out_rate numeric, total_sms_sent_24h bigint, sms_delivery_rate_24h numeric, avg_sms_delivery_time_seconds numeric)');

CREATE TEMP VIEW contract_function AS
  SELECT c.*, to_regprocedure(format('notify.%I(%s)', c.name, array_to_string(c.arg_types, ','))) AS oid
  FROM contract c;

-- 8 assertions per RPC, then 3 about the schema as a whole.
SELECT plan((SELECT 8 * count(*)::integer + 3 FROM contract));

SELECT has_function('notify', name, arg_types, format('%s(%s) exists', name, array_to_string(arg_types, ', ')))
FROM contract ORDER BY name;

SELECT function_returns('notify', name, arg_types,
                        CASE WHEN result LIKE 'TABLE(%' THEN 'setof record' ELSE result END,
                        format('%s returns %s', name, CASE WHEN result LIKE 'TABLE(%' THEN 'a table' ELSE result END))
FROM contract ORDER BY name;

SELECT is(pg_get_function_arguments(oid), arguments, format('%s: argument names and defaults', name))
FROM contract_function ORDER BY name;

SELECT is(pg_get_function_result(oid), result, format('%s: result columns', name))
FROM contract_function ORDER BY name;

SELECT isnt_definer('notify', name, arg_types, format('%s is SECURITY INVOKER', name))
FROM contract ORDER BY name;

SELECT function_privs_are('notify', name, arg_types, role, privileges,
                          format('%s: %s may %s', name, role,
                                 CASE WHEN privileges = '{}' THEN 'not execute it' ELSE 'execute it' END))
FROM contract
CROSS JOIN (VALUES ('service_role'::name, '{EXECUTE}'::name[]),
                   ('authenticated', '{}'),
                   ('anon', '{}')) AS expected (role, privileges)
ORDER BY name, role;

SELECT is_empty(
  $$ SELECT p.oid::regprocedure::text FROM pg_proc p
     WHERE p.pronamespace = 'notify'::regnamespace
       AND (has_function_privilege('public', p.oid, 'EXECUTE')
            OR has_function_privilege('anon', p.oid, 'EXECUTE')) $$,
  'no function in schema notify is executable by PUBLIC or anon');

SELECT is_empty(
  $$ SELECT p.oid::regprocedure::text FROM pg_proc p
     WHERE p.pronamespace = 'notify'::regnamespace
       AND NOT EXISTS (SELECT FROM unnest(p.proconfig) setting WHERE setting LIKE 'search\_path=%') $$,
  'every function in schema notify pins its search_path');

SELECT is_empty(
  $$ SELECT p.oid::regprocedure::text FROM pg_proc p
     WHERE p.pronamespace = 'notify'::regnamespace
       AND coalesce(obj_description(p.oid, 'pg_proc'), '') = '' $$,
  'every function in schema notify has a COMMENT');

SELECT * FROM finish();
ROLLBACK;

-- 0004_end_user_access: what a signed-in end user may see, and nothing more.
--
-- Role `authenticated` (a Supabase end user) may read their own deliveries and read
-- and toggle their own channel preferences; every other table stays closed to them,
-- and they may execute no function. Role `anon` gets no grant and no policy at all.
--
-- Identity: the `sub` claim of the request's JWT, read from the settings PostgREST
-- sets per request (`request.jwt.claims`, or the older `request.jwt.claim.sub`), which
-- is exactly what Supabase's auth.uid() returns. Reading it directly keeps the install
-- independent of the platform's `auth` schema (owned by another role, and absent
-- outside Supabase). Wrapped in a scalar subquery so it is evaluated once per
-- statement, not once per row. Opting out (a legal STOP) and phone verification stay
-- with service_role: users can only switch a channel on or off.

GRANT SELECT ON notification_deliveries TO authenticated;
GRANT SELECT ON notification_preferences TO authenticated;
GRANT INSERT (user_id, channel, enabled), UPDATE (enabled, updated_at)
  ON notification_preferences TO authenticated;

DO $policies$
DECLARE
  current_user_id constant text := $claim$(SELECT nullif(coalesce(
      nullif(current_setting('request.jwt.claim.sub', true), ''),
      nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
    ), '')::uuid)$claim$;
BEGIN
  EXECUTE format(
    'CREATE POLICY recipient_reads_own ON notification_deliveries
       FOR SELECT TO authenticated USING (recipient_user_id = %s)', current_user_id);
  EXECUTE format(
    'CREATE POLICY user_reads_own ON notification_preferences
       FOR SELECT TO authenticated USING (user_id = %s)', current_user_id);
  EXECUTE format(
    'CREATE POLICY user_adds_own ON notification_preferences
       FOR INSERT TO authenticated WITH CHECK (user_id = %s)', current_user_id);
  EXECUTE format(
    'CREATE POLICY user_toggles_own ON notification_preferences
       FOR UPDATE TO authenticated USING (user_id = %1$s) WITH CHECK (user_id = %1$s)',
    current_user_id);
END
$policies$;

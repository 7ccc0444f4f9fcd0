-- 0010_notification_channels: one definition of the delivery channels.
--
-- The list was written in two CHECK constraints (0002) and in three functions. It now
-- lives in notification_channels(), which the constraints and the functions all read.
-- It is made here, not in sql/functions, because the constraints depend on it: a
-- function file may be dropped and recreated by the runner, a constraint's function
-- may not. Adding a channel is therefore a migration that replaces this function (the
-- constraints follow without being touched).
--
-- Locking: each constraint is swapped in one ALTER TABLE (a brief ACCESS EXCLUSIVE lock,
-- held to the end of the install transaction) and added NOT VALID, so the table is not
-- scanned: the dropped constraint enforced exactly the same list, so every existing row
-- already satisfies the new one, and validating it would only scan the table under
-- that lock. New and updated rows are checked as before.
CREATE FUNCTION notification_channels()
RETURNS text[]
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$ SELECT ARRAY['email', 'sms', 'push', 'in_app'] $$;

COMMENT ON FUNCTION notification_channels() IS
  'The delivery channels, in display order: the one list behind the channel CHECK constraints and every function that names channels.';
-- authenticated inserts its own preference rows, whose CHECK constraint calls this, and
-- a constraint's function needs EXECUTE by the writing role; the console's read role
-- (notify_sql_monitor) reaches it through the channel analytics. It reads no data.
GRANT EXECUTE ON FUNCTION notification_channels() TO service_role, authenticated, notify_sql_monitor;

-- Same constraint names, so nothing that names them changes; ban-drop-constraint is
-- silenced because the guarantee is re-added in the same statement.
ALTER TABLE notification_deliveries
  -- squawk-ignore ban-drop-constraint
  DROP CONSTRAINT notification_deliveries_channel_check,
  ADD CONSTRAINT notification_deliveries_channel_check
    CHECK (channel = ANY (notification_channels())) NOT VALID;

ALTER TABLE notification_preferences
  -- squawk-ignore ban-drop-constraint
  DROP CONSTRAINT notification_preferences_channel_check,
  ADD CONSTRAINT notification_preferences_channel_check
    CHECK (channel = ANY (notification_channels())) NOT VALID;

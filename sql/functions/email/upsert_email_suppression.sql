-- upsert_email_suppression: records that an address must not be emailed in a scope (the
-- seed platform's name, arguments and vocabularies); returns the suppression's id.
--
-- One row per normalised address (lower-cased, trimmed). A second suppression of the
-- same address widens its scope: equal scopes stay, different ones become `all`, and
-- `all` stays `all`; reason and source become the latest; metadata is merged (later
-- keys win). One INSERT ... ON CONFLICT DO UPDATE, so concurrent calls for one address
-- never fail or lose a scope.
-- Bad input (empty or over-long email, a scope, reason or source outside its
-- vocabulary, non-object or over-large metadata) raises 22023 naming the parameter
-- before anything is written.
CREATE FUNCTION @schema@.upsert_email_suppression(
  p_email text,
  p_scope text,
  p_reason text,
  p_source text,
  p_metadata jsonb DEFAULT '{}'
)
RETURNS uuid
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_id uuid;
BEGIN
  PERFORM check_text('p_email', nullif(btrim(p_email), ''), 320);
  PERFORM check_choice('p_scope', p_scope, ARRAY['lifecycle', 'marketing', 'daily_brief', 'all']);
  PERFORM check_choice('p_reason', p_reason,
                       ARRAY['unsubscribe', 'hard_bounce', 'manual', 'complaint']);
  PERFORM check_choice('p_source', p_source,
                       ARRAY['email_link', 'admin', 'provider_webhook', 'list_header']);
  PERFORM check_jsonb('p_metadata', p_metadata, 16384);

  INSERT INTO email_suppressions AS s (email, scope, reason, source, metadata)
  VALUES (lower(btrim(p_email)), p_scope, p_reason, p_source, coalesce(p_metadata, '{}'))
  ON CONFLICT (email) DO UPDATE
  SET scope = CASE WHEN s.scope = excluded.scope THEN s.scope ELSE 'all' END,
      reason = excluded.reason,
      source = excluded.source,
      metadata = s.metadata || excluded.metadata,
      updated_at = now()
  RETURNING s.id INTO v_id;
  RETURN v_id;
END;
$$;

COMMENT ON FUNCTION @schema@.upsert_email_suppression(text, text, text, text, jsonb) IS 'Suppresses an address (normalised) for a scope, widening an existing suppression to all when scopes differ and merging metadata, in one upsert; returns its id. Raises 22023 naming the parameter on bad input.';

GRANT EXECUTE ON FUNCTION @schema@.upsert_email_suppression(text, text, text, text, jsonb) TO service_role;

"""Calls a function the way PostgREST does for `supabase.rpc(name, {args})`.

PostgREST chooses the function by its name AND the set of argument keys the request
sends (an overload whose parameters cover the keys and whose parameters without a
default are all among them), converts each JSON value to the declared parameter type
(`json_to_record`, so a JSON array becomes `text[]`, a JSON object `jsonb`, a string a
`timestamptz` or `interval` text), and calls the function with NAMED arguments, as the
request's role (`service_role` for the platform's server-side clients). Keys whose
value is `undefined` in JavaScript never reach it: callers here simply leave them out.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

_OVERLOADS = """
SELECT p.oid::regprocedure::text AS signature,
       coalesce(p.proargnames[1:p.pronargs], '{}') AS names,
       (SELECT coalesce(array_agg(format_type(t, NULL) ORDER BY i), '{}')
          FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a (t, i)) AS types,
       p.pronargs - p.pronargdefaults AS required,
       p.proretset AS returns_set,
       p.prorettype = 'void'::regtype AS returns_void,
       EXISTS (SELECT FROM unnest(coalesce(p.proargmodes, '{}')) m WHERE m IN ('o', 't'))
         AS returns_table
FROM pg_proc p
WHERE p.pronamespace = %(schema)s::regnamespace AND p.proname = %(name)s AND p.prokind = 'f'
"""


class NoSuchFunction(LookupError):
    """What PostgREST answers with PGRST202: no overload takes exactly these keys."""


def resolve(
    conn: psycopg.Connection[Any], schema: str, name: str, keys: set[str]
) -> dict[str, Any]:
    """The one overload of `schema.name` PostgREST would pick for these argument keys."""
    matches = []
    for overload in conn.cursor(row_factory=dict_row).execute(
        _OVERLOADS, {"schema": schema, "name": name}
    ):
        names = list(overload["names"])
        if keys <= set(names) and set(names[: overload["required"]]) <= keys:
            matches.append(overload)
    if len(matches) != 1:
        raise NoSuchFunction(f"{schema}.{name}({', '.join(sorted(keys))}): {len(matches)} match")
    return matches[0]


def rpc(
    conn: psycopg.Connection[Any],
    name: str,
    args: dict[str, Any],
    *,
    schema: str = "public",
    role: str = "service_role",
) -> list[dict[str, Any]]:
    """`supabase.rpc(name, args)`: every result row as a dict (a scalar result is one row
    keyed by the function name; a void result is no row). Raises what PostgreSQL raises
    (psycopg errors carry the SQLSTATE), or NoSuchFunction."""
    overload = resolve(conn, schema, name, set(args))
    declared = dict(zip(overload["names"], overload["types"], strict=True))
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(key), sql.SQL(declared[key])) for key in args
    )
    call_args = sql.SQL(", ").join(
        sql.SQL("{0} => body.{0}").format(sql.Identifier(key)) for key in args
    )
    call = sql.SQL("{}({})").format(sql.Identifier(schema, name), call_args)
    if overload["returns_table"] or (overload["returns_set"] and not overload["returns_void"]):
        select = sql.SQL("SELECT result.* FROM body, LATERAL {} AS result").format(call)
    else:
        select = sql.SQL("SELECT {} AS {} FROM body").format(call, sql.Identifier(name))
    body = (
        sql.SQL("SELECT * FROM json_to_record(%(body)s::json) AS body ({})").format(columns)
        if args
        else sql.SQL("SELECT")
    )
    query = sql.SQL("WITH body AS ({}) {}").format(body, select)
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        rows = (
            conn.cursor(row_factory=dict_row)
            .execute(query, {"body": json.dumps(args, default=str)} if args else None)
            .fetchall()
        )
    if overload["returns_void"]:
        return []
    return rows

"""``docs/rpc.md``: the reference of every function, generated from the catalog.

The catalog is what callers get, so the reference is read from an installed database
rather than from the files: signatures with argument names and defaults as PostgreSQL
prints them, return types, who may execute (the ACL), security mode and the
``COMMENT ON FUNCTION`` text. The output is sorted and holds no timestamps, so a test
can regenerate it and compare.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

from notify_sql.errors import NotifySqlError
from notify_sql.migrator import OWNER_ROLE, migrate
from notify_sql.sources import load_functions
from notify_sql.throwaway import throwaway_postgres

REGENERATE = "notify-sql docs --output docs/rpc.md"

_FUNCTIONS_QUERY = """
SELECT p.proname,
       pg_get_function_arguments(p.oid),
       pg_get_function_result(p.oid),
       p.prosecdef,
       l.lanname,
       CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END,
       ARRAY(SELECT DISTINCT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
             FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
             WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
             ORDER BY 1),
       obj_description(p.oid, 'pg_proc')
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname = %s AND p.prokind IN ('f', 'p')
ORDER BY p.proname, pg_get_function_identity_arguments(p.oid)
"""


@dataclass(frozen=True)
class FunctionDoc:
    name: str
    arguments: str
    result: str
    security_definer: bool
    language: str
    volatility: str
    executable_by: list[str]
    comment: str | None


def read_functions(conn: psycopg.Connection[Any], schema: str) -> list[FunctionDoc]:
    return [FunctionDoc(*row) for row in conn.execute(_FUNCTIONS_QUERY, (schema,))]


def split_top_level(text: str) -> list[str]:
    """Splits a catalog argument or column list at its top-level commas (not those
    inside parentheses, brackets or quoted literals, as in ``ARRAY['a'::text, 'b']``)."""
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    current: list[str] = []
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    last = "".join(current).strip()
    return [*parts, last] if last else parts


def _listed(items: list[str]) -> str:
    """One item per line, indented, for items that would make an unreadable line."""
    return "(\n" + ",\n".join(f"  {item}" for item in items) + "\n)" if items else "()"


def _signature(function: FunctionDoc) -> str:
    result = function.result
    if result.startswith("TABLE(") and result.endswith(")"):
        result = "TABLE" + _listed(split_top_level(result[len("TABLE(") : -1]))
    return f"{function.name}{_listed(split_top_level(function.arguments))}\nRETURNS {result}"


def _executors(function: FunctionDoc) -> str:
    return ", ".join(f"`{role}`" for role in function.executable_by) or "nobody but the owner"


def _security(function: FunctionDoc) -> str:
    return "definer" if function.security_definer else "invoker"


def _kinds() -> dict[str, str]:
    """Function name -> its API kind: the group folder of its file (``queue``,
    ``deliveries``, ``analytics``, ...), ``internal`` for helpers that are not public API
    (sql/functions/internal), and ``migration`` for the few defined in a migration."""
    return {f.name: "internal" if f.internal else f.group for f in load_functions()}


def _kind(function: FunctionDoc, kinds: dict[str, str]) -> str:
    return kinds.get(function.name, "migration")


def _short_result(function: FunctionDoc) -> str:
    return "TABLE(...)" if function.result.startswith("TABLE(") else function.result


def _sections(functions: list[FunctionDoc], kinds: dict[str, str]) -> Iterator[str]:
    for function in functions:
        kind = _kind(function, kinds)
        note = " (internal helper: not public API, may change without notice)"
        yield (
            f"## {function.name}\n\n"
            f"```sql\n{_signature(function)}\n```\n\n"
            f"- Kind: {kind}{note if kind == 'internal' else ''}\n"
            f"- Executable by: {_executors(function)}\n"
            f"- Security: {_security(function)}; {function.language}, {function.volatility}\n\n"
            f"{function.comment or '**No comment.**'}\n"
        )


def render_markdown(functions: list[FunctionDoc], schema: str) -> str:
    kinds = _kinds()
    summary = "".join(
        f"| [`{f.name}`](#{f.name}) | {_kind(f, kinds)} | `{_short_result(f)}` "
        f"| {_executors(f)} | {_security(f)} |\n"
        for f in functions
    )
    return (
        f"# Function reference (schema `{schema}`)\n\n"
        f"Generated from the catalog of a fresh install by `{REGENERATE}`;\n"
        "do not edit by hand (a test fails when this file is out of date). Signatures are\n"
        "PostgreSQL's own rendering: call with named arguments (`p_name => value`) or, over\n"
        "PostgREST, `rpc('name', {p_name: value})`. Only the roles listed may execute a\n"
        f"function, besides its owner `{OWNER_ROLE}`.\n\n"
        "Kind is the group a function belongs to. `internal` functions are helpers the\n"
        "others call (`sql/functions/internal`): `service_role` may execute them only\n"
        "because the public functions run with their caller's rights; they are not public\n"
        "API. `migration` functions are defined in a migration. Which to call, and which\n"
        "tables an app may write: [app-boundaries.md](app-boundaries.md).\n\n"
        f"{len(functions)} functions.\n\n"
        "| function | kind | returns | executable by | security |\n"
        "| --- | --- | --- | --- | --- |\n"
        f"{summary}\n" + "\n".join(_sections(functions, kinds))
    )


def generate(dsn: str | None, schema: str) -> str:
    """The reference of the install in ``dsn``, or (no DSN) of a fresh install of these
    files into a throwaway server."""
    if dsn is not None:
        return _document(dsn, schema)
    with throwaway_postgres() as server:
        migrate(server.dsn(), schema)
        return _document(server.dsn(), schema)


def _document(dsn: str, schema: str) -> str:
    with psycopg.connect(dsn) as conn:
        functions = read_functions(conn, schema)
    if not functions:
        raise NotifySqlError(f"schema {schema} holds no functions: is notify-sql installed there?")
    return render_markdown(functions, schema)

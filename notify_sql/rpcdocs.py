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
from notify_sql.sources import INTERNAL_GROUP, MIGRATION_FUNCTION_GROUPS, load_functions
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


def _short_result(function: FunctionDoc) -> str:
    return "TABLE(...)" if function.result.startswith("TABLE(") else function.result


def _sections(functions: list[FunctionDoc], group: str) -> Iterator[str]:
    for function in functions:
        status = _status(function, group)
        yield (
            f"### {function.name}\n\n"
            f"```sql\n{_signature(function)}\n```\n\n"
            + ("- **Internal helper, not public API.**\n" if status == "internal" else "")
            + f"- Executable by: {_executors(function)}\n"
            f"- Security: {_security(function)}; {function.language}, {function.volatility}\n\n"
            f"{function.comment or '**No comment.**'}\n"
        )


# The public groups first, in the order a reader meets them; other groups follow by name.
_GROUP_ORDER = ["queue", "deliveries", "analytics"]
_MIGRATIONS = "defined in migrations"
_INTRODUCTIONS = {
    INTERNAL_GROUP: "Helpers the other functions call (validation, rankings, the funnel "
    "definition). **Not public API**: they may change in any release; call the public "
    "functions instead. `service_role` may execute some of them only because the public "
    "functions run as the caller (SECURITY INVOKER).",
    _MIGRATIONS: "Functions a versioned migration creates (trigger functions and the "
    "helpers of the funnel sums), not a file under `sql/functions/`. Only those marked "
    "public are API; the others are internal.",
}


def _group_of(name: str, files: dict[str, str]) -> str:
    return files.get(name, _MIGRATIONS)


def _ordered_groups(groups: set[str]) -> list[str]:
    public = [g for g in _GROUP_ORDER if g in groups]
    others = sorted(groups - {*_GROUP_ORDER, INTERNAL_GROUP, _MIGRATIONS})
    return public + others + [g for g in (INTERNAL_GROUP, _MIGRATIONS) if g in groups]


def _status(function: FunctionDoc, group: str) -> str:
    if group == _MIGRATIONS:
        public = MIGRATION_FUNCTION_GROUPS.get(function.name)
        return f"public ({public})" if public else "internal"
    return "internal" if group == INTERNAL_GROUP else "public"


def _group_section(group: str, functions: list[FunctionDoc]) -> str:
    title = "Internal helpers" if group == INTERNAL_GROUP else group[:1].upper() + group[1:]
    introduction = _INTRODUCTIONS.get(
        group, f"Public API: `sql/functions/{group}/`, wrapped by the `{_camel(group)}` class."
    )
    summary = "".join(
        f"| [`{f.name}`](#{f.name}) | `{_short_result(f)}` | {_executors(f)} | "
        f"{_security(f)} | {_status(f, group)} |\n"
        for f in functions
    )
    return (
        f"## {title}\n\n{introduction}\n\n"
        "| function | returns | executable by | security | API |\n"
        "| --- | --- | --- | --- | --- |\n"
        f"{summary}\n" + "\n".join(_sections(functions, group))
    )


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def render_markdown(
    functions: list[FunctionDoc], schema: str, files: dict[str, str] | None = None
) -> str:
    """``files``: function name -> group folder of its file (default: these files)."""
    if files is None:
        files = {f.name: f.group for f in load_functions()}
    by_group: dict[str, list[FunctionDoc]] = {}
    for function in functions:
        by_group.setdefault(_group_of(function.name, files), []).append(function)
    sections = [_group_section(g, by_group[g]) for g in _ordered_groups(set(by_group))]
    return (
        f"# Function reference (schema `{schema}`)\n\n"
        f"Generated from the catalog of a fresh install by `{REGENERATE}`;\n"
        "do not edit by hand (a test fails when this file is out of date). Signatures are\n"
        "PostgreSQL's own rendering: call with named arguments (`p_name => value`) or, over\n"
        "PostgREST, `rpc('name', {p_name: value})`. Only the roles listed may execute a\n"
        f"function, besides its owner `{OWNER_ROLE}`. One section per group (the folder\n"
        "under `sql/functions/`); internal helpers are not public API.\n\n"
        f"{len(functions)} functions.\n\n" + "\n".join(sections)
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

"""Generates the Python wrappers (``notify_sql/wrappers/``) from the catalog.

One source of truth: the functions' signatures as PostgreSQL records them after a fresh
install of these files (``pg_proc``, as ``docs/rpc.md`` is read). Each function group
(the folder under ``sql/functions/``) becomes a sync class and its async twin, e.g.
``queue`` -> ``Queue`` / ``AsyncQueue``; ``internal`` helpers and trigger functions get
no wrapper. One naming rule: the method is the SQL function's name, its keyword
arguments are the SQL parameter names without ``p_``. Arguments with an SQL default
are keyword-only and default to :data:`~notify_sql.rpc.OMIT`: not sent, so the SQL
default applies (Python never repeats it). Results: a set-returning function returns a
list (of generated frozen dataclass rows for TABLE / OUT columns), a scalar function
its value. PostgreSQL records no nullability for results, so every value is Optional.

    python -m notify_sql.codegen            # rewrite notify_sql/wrappers/
    python -m notify_sql.codegen --check    # exit 1 if the checked-in files are stale
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from notify_sql.errors import NotifySqlError
from notify_sql.migrator import migrate
from notify_sql.sources import function_groups
from notify_sql.throwaway import throwaway_postgres

PACKAGE = Path(__file__).parent / "wrappers"
REGENERATE = "python -m notify_sql.codegen"
SCHEMA = "notify"

# PostgreSQL type (as format_type prints it) -> Python type of a result; arguments accept
# the same except where _ARGUMENT_TYPES says otherwise. Anything else is Any.
_RESULT_TYPES = {
    "uuid": "UUID",
    "text": "str",
    "character varying": "str",
    "character": "str",
    "name": "str",
    "smallint": "int",
    "integer": "int",
    "bigint": "int",
    "numeric": "Decimal",
    "real": "float",
    "double precision": "float",
    "boolean": "bool",
    "jsonb": "Any",
    "json": "Any",
    "timestamp with time zone": "datetime",
    "timestamp without time zone": "datetime",
    "date": "date",
    "time without time zone": "time",
    "interval": "timedelta",
    "bytea": "bytes",
}
_ARGUMENT_TYPES = {"numeric": "Decimal | float"}

_CATALOG_QUERY = """
SELECT p.proname AS name,
       coalesce(p.proargnames, ARRAY[]::text[]) AS argument_names,
       coalesce(p.proargmodes::text[],
                array_fill('i'::text, ARRAY[p.pronargs::int])) AS argument_modes,
       ARRAY(SELECT CASE WHEN t.typnamespace = 'pg_catalog'::regnamespace AND t.typtype <> 'p'
                         THEN format_type(a.oid, NULL) END
             FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]))
                  WITH ORDINALITY AS a(oid, n)
             JOIN pg_type t ON t.oid = a.oid
             ORDER BY a.n) AS argument_types,
       p.pronargdefaults AS defaults,
       p.proretset AS returns_set,
       CASE WHEN r.typnamespace = 'pg_catalog'::regnamespace
            THEN format_type(p.prorettype, NULL) END AS result_type,
       coalesce(obj_description(p.oid, 'pg_proc'), '') AS comment
FROM pg_proc p
JOIN pg_type r ON r.oid = p.prorettype
WHERE p.pronamespace = %s::regnamespace AND p.prokind = 'f'
ORDER BY p.proname
"""


@dataclass(frozen=True)
class Argument:
    python_name: str
    sql_name: str
    sql_type: str | None
    has_default: bool


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str | None


@dataclass(frozen=True)
class Signature:
    name: str
    arguments: list[Argument]
    columns: list[Column]  # OUT / TABLE columns; empty for a scalar result
    returns_set: bool
    result_type: str | None  # None: a type outside pg_catalog or a pseudo-type
    comment: str

    @property
    def row_class(self) -> str:
        return _camel(self.name) + "Row"

    @property
    def constant(self) -> str:
        return "_" + self.name.upper()


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _python_name(sql_name: str) -> str:
    name = sql_name.removeprefix("p_")
    return name + "_" if keyword.iskeyword(name) or name == "self" else name


def read_signatures(conn: psycopg.Connection[Any], schema: str) -> list[Signature]:
    signatures = []
    for name, names, modes, types, defaults, returns_set, result, comment in conn.execute(
        _CATALOG_QUERY, (schema,)
    ):
        inputs = [(n, t) for n, m, t in zip(names, modes, types, strict=True) if m in "ibv"]
        columns = [Column(n, t) for n, m, t in zip(names, modes, types, strict=True) if m in "obt"]
        arguments = [
            Argument(_python_name(n), n, t, has_default=i >= len(inputs) - defaults)
            for i, (n, t) in enumerate(inputs)
        ]
        signatures.append(Signature(name, arguments, columns, returns_set, result, comment))
    return signatures


def _python_type(sql_type: str | None, *, argument: bool) -> str:
    if sql_type is None:
        return "Any"
    if sql_type.endswith("[]"):
        element = _python_type(sql_type[:-2], argument=argument)
        return f"Sequence[{_optional(element)}]" if argument else f"list[{element}]"
    if argument and sql_type in _ARGUMENT_TYPES:
        return _ARGUMENT_TYPES[sql_type]
    return _RESULT_TYPES.get(sql_type, "Any")


def _optional(python_type: str) -> str:
    return python_type if python_type == "Any" else f"{python_type} | None"


def _result(signature: Signature) -> tuple[str, str, list[str]]:
    """The return annotation, how the value is wrapped (a cast, or nothing) and the
    runtime call (method and its arguments)."""
    constant = signature.constant
    if signature.columns:
        row = signature.row_class
        if signature.returns_set:
            return f"list[{row}]", "", ["_rows", constant, row, "args"]
        return f"{row} | None", "_first", ["_rows", constant, row, "args"]
    if signature.result_type == "void":
        return "None", "", ["_value", constant, "args"]
    value = _python_type(signature.result_type, argument=False)
    if signature.returns_set:
        return f"list[{_optional(value)}]", "", ["_values", constant, "args"]
    annotation = _optional(value)
    return annotation, "" if annotation == "Any" else "cast", ["_value", constant, "args"]


def _docstring(text: str, indent: str) -> str:
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').strip()
    if not text:
        return ""
    paragraphs = [
        textwrap.fill(" ".join(p.split()), width=92 - len(indent)) for p in text.split("\n\n")
    ]
    body = "\n\n".join(paragraphs).replace("\n", "\n" + indent).replace(indent + "\n", "\n")
    closing = "\n" + indent if "\n" in body or len(body) + len(indent) > 86 else ""
    return f'{indent}"""{body}{closing}"""\n'


def _row_class(signature: Signature) -> str:
    fields = "".join(
        f"    {column.name}: {_optional(_python_type(column.sql_type, argument=False))}\n"
        for column in signature.columns
    )
    return (
        f"@dataclass(frozen=True)\nclass {signature.row_class}:\n"
        f'    """A row of ``{signature.name}``."""\n\n{fields}'
    )


def _function_constant(signature: Signature) -> str:
    if not signature.arguments:
        return f'{signature.constant} = Function("{signature.name}")\n'
    parameters = "".join(
        f'        "{a.python_name}": Parameter("{a.sql_name}", '
        + (f'"{a.sql_type}"' if a.sql_type else "None")
        + "),\n"
        for a in signature.arguments
    )
    name = f'"{signature.name}"'
    return f"{signature.constant} = Function(\n    {name},\n    {{\n{parameters}    }},\n)\n"


def _method(signature: Signature, asynchronous: bool) -> str:
    """One method, laid out as ``ruff format`` leaves it (exploded by trailing commas)."""
    annotation, wrapper, (method, *call_args) = _result(signature)
    required = [a for a in signature.arguments if not a.has_default]
    optional = [a for a in signature.arguments if a.has_default]
    lines = ["self"]
    lines += [f"{a.python_name}: {_optional(_argtype(a))}" for a in required]
    if optional:
        lines.append("*")
        lines += [f"{a.python_name}: {_with_omit(_argtype(a))} = OMIT" for a in optional]
    parameters = "".join(f"        {line},\n" for line in lines)
    entries = "".join(
        f'            "{a.python_name}": {a.python_name},\n' for a in required + optional
    )
    mapping = f"{{\n{entries}        }}" if entries else "{}"
    waiting = "await " if asynchronous else ""
    call = f"{waiting}self.{method}(\n" + "".join(f"    {a},\n" for a in call_args) + ")"
    if wrapper == "cast":
        call = f'cast(\n    "{annotation}",\n' + _indented(call) + ",\n)"
    elif wrapper:
        call = f"{wrapper}(\n" + _indented(call) + ",\n)"
    statement = f"{'' if annotation == 'None' else 'return '}{call}"
    return (
        f"    {'async def' if asynchronous else 'def'} {signature.name}(\n{parameters}"
        f"    ) -> {annotation}:\n"
        f"{_docstring(signature.comment, '        ')}"
        f"        args: dict[str, object] = {mapping}\n"
        f"        {statement.replace(chr(10), chr(10) + '        ')}\n"
    )


def _with_omit(python_type: str) -> str:
    return python_type if python_type == "Any" else f"{python_type} | Omit | None"


def _indented(text: str) -> str:
    return "    " + text.replace("\n", "\n    ")


def _argtype(argument: Argument) -> str:
    return _python_type(argument.sql_type, argument=True)


def _class_pair(group: str, signatures: list[Signature]) -> Iterator[str]:
    for asynchronous in (False, True):
        name = ("Async" if asynchronous else "") + _camel(group)
        base = "AsyncRpc" if asynchronous else "SyncRpc"
        kind = "an async" if asynchronous else "a sync"
        yield (
            f"class {name}({base}):\n"
            f'    """The ``{group}`` functions (``sql/functions/{group}/``) on {kind} '
            'connection."""\n\n' + "\n".join(_method(s, asynchronous) for s in signatures)
        )


_HEADER = f'''"""Wrappers of the ``{{group}}`` functions. GENERATED by ``{REGENERATE}``
from the catalog of a fresh install: do not edit (a test fails when this file is stale)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from notify_sql.rpc import OMIT, AsyncRpc, Function, Omit, Parameter, SyncRpc, _first
'''


def render_group(group: str, signatures: list[Signature]) -> str:
    parts = [_HEADER.replace("{group}", group)]
    parts += [_row_class(s) for s in signatures if s.columns]
    parts += [_function_constant(s) for s in signatures]
    parts += list(_class_pair(group, signatures))
    text = _unused_imports_removed("\n\n".join(part.rstrip("\n") + "\n" for part in parts))
    # isort (ruff I001) wants one blank line after the imports before an assignment, two
    # before a class: a group without row classes starts with a Function constant.
    return re.sub(
        r"^(from notify_sql\.rpc import [^\n]*\n)\n\n(?=_)", r"\1\n", text, count=1, flags=re.M
    )


def _unused_imports_removed(text: str) -> str:
    """Drops the typing names a group's module does not use, so lint stays clean."""
    body = text.split("from notify_sql.rpc import", 1)[1]
    body = re.sub(r'"""(.|\n)*?"""|(?<=Parameter\()[^)]*', "", body)  # not prose or SQL types
    for module_line, names in (
        ("from datetime import date, datetime, time, timedelta\n",
         ["date", "datetime", "time", "timedelta"]),
        ("from typing import Any, cast\n", ["Any", "cast"]),
    ):  # fmt: skip
        used = [name for name in names if _uses(body, name)]
        prefix = module_line.split(" import ")[0]
        text = text.replace(module_line, f"{prefix} import {', '.join(used)}\n" if used else "")
    for line, name in (
        ("from collections.abc import Sequence\n", "Sequence["),
        ("from dataclasses import dataclass\n", "@dataclass"),
        ("from decimal import Decimal\n", "Decimal"),
        ("from uuid import UUID\n", "UUID"),
    ):
        if name not in body:
            text = text.replace(line, "")
    rpc_names = ["OMIT", "AsyncRpc", "Function", "Omit", "Parameter", "SyncRpc", "_first"]
    used = [name for name in rpc_names if _uses(body.split("\n", 1)[1], name)]
    return text.replace(
        "from notify_sql.rpc import OMIT, AsyncRpc, Function, Omit, Parameter, SyncRpc, _first",
        f"from notify_sql.rpc import {', '.join(used)}",
    ).replace("\n\n\n\n", "\n\n\n")


def _uses(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}\b", text) is not None


def render_package(signatures: list[Signature], groups: dict[str, str | None]) -> dict[str, str]:
    """File name -> text of every module of ``notify_sql/wrappers/``."""
    by_group: dict[str, list[Signature]] = {}
    for signature in signatures:
        group = groups.get(signature.name)
        if group is None or signature.result_type == "trigger":
            continue
        by_group.setdefault(group, []).append(signature)
    files = {f"{group}.py": render_group(group, by_group[group]) for group in sorted(by_group)}
    classes = {g: sorted([_camel(g), "Async" + _camel(g)]) for g in sorted(by_group)}
    imports = "".join(
        f"from notify_sql.wrappers.{g} import {', '.join(names)}\n" for g, names in classes.items()
    )
    exports = "".join(
        f'    "{c}",\n' for c in sorted(c for names in classes.values() for c in names)
    )
    files["__init__.py"] = (
        f'"""Typed wrappers of every public notify-sql function, one sync and one async class\n'
        f"per function group. GENERATED by ``{REGENERATE}``: do not edit.\n"
        '"""\n\n'
        f"{imports}\n__all__ = [\n{exports}]\n"
    )
    return files


def generate(dsn: str | None = None) -> dict[str, str]:
    """The wrapper modules for the install in ``dsn`` (schema ``notify``), or (no DSN)
    for a fresh install of these files into a throwaway server."""
    if dsn is None:
        with throwaway_postgres() as server:
            migrate(server.dsn(), SCHEMA)
            return generate(server.dsn())
    with psycopg.connect(dsn) as conn:
        signatures = read_signatures(conn, SCHEMA)
    if not signatures:
        raise NotifySqlError(f"schema {SCHEMA} holds no functions: is notify-sql installed?")
    return render_package(signatures, function_groups())


def stale_files(files: dict[str, str], package: Path = PACKAGE) -> list[str]:
    """The modules whose checked-in text differs from ``files``, and extra modules."""
    present = {path.name for path in package.glob("*.py")}
    changed = [n for n, text in files.items() if n not in present or _read(package / n) != text]
    return sorted(changed + [name for name in present if name not in files])


def _read(path: Path) -> str:
    return path.read_text()


def write(files: dict[str, str], package: Path = PACKAGE) -> None:
    package.mkdir(exist_ok=True)
    for path in package.glob("*.py"):
        if path.name not in files:
            path.unlink()
    for name, text in files.items():
        (package / name).write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", help="read an existing install instead of a fresh one")
    parser.add_argument("--check", action="store_true", help="only report stale files")
    options = parser.parse_args(argv)
    files = generate(options.dsn)
    if options.check:
        stale = stale_files(files)
        for name in stale:
            print(f"notify_sql/wrappers/{name} is stale: run {REGENERATE}", file=sys.stderr)
        return 1 if stale else 0
    write(files)
    return 0


if __name__ == "__main__":
    sys.exit(main())

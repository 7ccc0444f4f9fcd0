"""The checked-in wrappers (notify_sql/wrappers/) are what the generator makes from the
catalog, and the generator copes with functions and types it has not seen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from notify_sql.codegen import REGENERATE, generate, read_signatures, render_package, stale_files

SCHEMA = "notify"


def test_checked_in_wrappers_are_up_to_date(dsn: str) -> None:
    stale = stale_files(generate(dsn))
    assert not stale, f"notify_sql/wrappers/ {stale} out of date: run `{REGENERATE}`"


def test_staleness_is_detected(dsn: str, tmp_path: Path) -> None:
    files = generate(dsn)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert stale_files(files, tmp_path) == []
    (tmp_path / "queue.py").write_text(files["queue.py"].replace("def claim_pending_jobs", "def x"))
    (tmp_path / "gone.py").write_text("")
    assert stale_files(files, tmp_path) == ["gone.py", "queue.py"]


def test_new_groups_and_unknown_types(db: psycopg.Connection[Any]) -> None:
    """A function in a new group gets its own class pair; types outside the map (a
    domain, a range, a composite) become Any and are sent without a cast."""
    db.execute("CREATE DOMAIN notify.short_text AS text CHECK (length(VALUE) < 10)")
    db.execute(
        "CREATE FUNCTION notify.make_things(p_label notify.short_text, p_span tstzrange,"
        " p_class integer DEFAULT 1, OUT label text, OUT span tstzrange)"
        " RETURNS SETOF record LANGUAGE sql AS $$ SELECT p_label::text, p_span $$"
    )
    signatures = read_signatures(db, SCHEMA)
    files = render_package(signatures, {"make_things": "operate"})
    assert set(files) == {"__init__.py", "operate.py"}
    module = files["operate.py"]
    assert "class Operate(SyncRpc):" in module and "class AsyncOperate(AsyncRpc):" in module
    arguments = "        label: Any,\n        span: Any,\n        *,\n        class_: int | Omit"
    assert arguments in module
    assert '"label": Parameter("p_label", None)' in module
    assert "    label: str | None\n    span: Any\n" in module
    assert "-> list[MakeThingsRow]:" in module
    namespace: dict[str, Any] = {}
    exec(compile(module, "operate.py", "exec"), namespace)  # the generated code runs
    [row] = namespace["Operate"](db).make_things("abc", "[2026-01-01,2026-01-02)")
    assert row.label == "abc"

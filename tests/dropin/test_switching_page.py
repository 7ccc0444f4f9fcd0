"""docs/switching-from-buildos.md lists exactly the platform's call shapes
(tests/dropin/shapes.py), each against a function a `--schema public` install has."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg

from tests.dropin.shapes import QUEUE_SHAPES, SHAPES
from tests.helpers.postgrest import resolve

PAGE = Path(__file__).resolve().parents[2] / "docs" / "switching-from-buildos.md"
VERDICTS = {"identical", "differs on purpose"}


def page_rows() -> list[tuple[str, frozenset[str], str]]:
    rows = []
    for line in PAGE.read_text().splitlines():
        match = re.fullmatch(r"\| `(\w+)` \| (.*?) \| (.*?) \| .* \|", line)
        if match:
            name, arguments, verdict = match.groups()
            keys = frozenset(re.findall(r"\w+", arguments.strip("`"))) - {"none"}
            rows.append((name, keys, verdict))
    return rows


def test_the_page_lists_every_call_shape_once() -> None:
    listed = [(name, keys) for name, keys, _ in page_rows()]
    expected = [(s.function, frozenset(s.keys)) for s in SHAPES + QUEUE_SHAPES]
    assert len(listed) == len(set(listed)), "a shape is listed twice"
    assert set(listed) == set(expected)
    assert {verdict for _, _, verdict in page_rows()} <= VERDICTS


def test_every_listed_function_is_installed(public_db: psycopg.Connection[Any]) -> None:
    names = {name for name, _, _ in page_rows()}
    installed = {
        row[0]
        for row in public_db.execute(
            "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
        )
    }
    assert names <= installed


def test_every_shape_resolves_as_postgrest_would(public_db: psycopg.Connection[Any]) -> None:
    for shape in SHAPES:
        resolve(public_db, "public", shape.function, set(shape.keys))

"""The design notes and the app-facing docs stay true to the install they describe."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).parents[2]
# `LESSONS.md "Claiming" and "Bloat"`, `LESSONS.md "Bloat"`: every quoted name after it.
REFERENCE = re.compile(r'LESSONS\.md((?:\s*(?:"[^"]+")\s*(?:,|and)?)+)')


def _cited_sections() -> dict[str, set[str]]:
    cited: dict[str, set[str]] = {}
    files = [*ROOT.glob("sql/**/*.sql"), *ROOT.glob("docs/*.md"), ROOT / "README.md"]
    for path in files:
        text = " ".join(line.lstrip("- ") for line in path.read_text().splitlines())
        for match in REFERENCE.finditer(text):
            for name in re.findall(r'"([^"]+)"', match.group(1)):
                cited.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return cited


def test_every_lessons_reference_names_a_section() -> None:
    headings = set(re.findall(r"^## (.+)$", (ROOT / "LESSONS.md").read_text(), re.MULTILINE))
    cited = _cited_sections()
    assert {"Claiming", "Bloat"} <= cited.keys(), "the migration headers' references were found"
    missing = {name: files for name, files in cited.items() if name not in headings}
    assert not missing, f"LESSONS.md has no section for {missing}"


def test_app_boundaries_covers_every_table(db: psycopg.Connection[Any]) -> None:
    """docs/app-boundaries.md says for every table what an app may write."""
    doc = (ROOT / "docs" / "app-boundaries.md").read_text()
    tables = [
        row[0]
        for row in db.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'notify'::regnamespace "
            "AND relkind IN ('r', 'p') ORDER BY 1"
        )
    ]
    undocumented = [table for table in tables if f"`{table}`" not in doc]
    assert not undocumented, f"add these tables to docs/app-boundaries.md: {undocumented}"

"""Gates that need tools outside the Python environment (pg_prove, plpgsql_check, squawk).

They skip where the tool is missing, so the suite runs on a bare machine, except in CI,
which sets NOTIFY_SQL_REQUIRE_GATES=1: there a missing tool fails the build instead of
hiding a gate.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_GATES = os.environ.get("NOTIFY_SQL_REQUIRE_GATES") == "1"


def skip_or_fail(reason: str) -> NoReturn:
    if REQUIRE_GATES:
        pytest.fail(f"{reason} (required: NOTIFY_SQL_REQUIRE_GATES=1)")
    pytest.skip(reason)

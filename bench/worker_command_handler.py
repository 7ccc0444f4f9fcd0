"""The no-op handler ``bench_worker`` runs under ``notify-sql worker`` (a separate process).

Every ``BENCH_WORKER_JOBS`` jobs it appends one line to ``BENCH_WORKER_RESULT``: the
``time.monotonic()`` of that last job (a system-wide clock on Linux, so the benchmark
compares it with the commit of the enqueue) and the process's CPU time at the first and
at the last job of the drain.
"""

from __future__ import annotations

import os
import time
from typing import Any

TARGET = int(os.environ.get("BENCH_WORKER_JOBS", "0"))
RESULT = os.environ.get("BENCH_WORKER_RESULT", "")
handled = 0
cpu_first = 0.0


def noop(job: Any) -> None:
    global handled, cpu_first  # noqa: PLW0603 - per-process counters, read only here
    handled += 1
    if not TARGET or not RESULT:
        return
    if handled % TARGET == 1:
        cpu_first = time.process_time()
    elif handled % TARGET == 0:
        with open(RESULT, "a") as result:
            result.write(f"{time.monotonic()} {cpu_first} {time.process_time()}\n")

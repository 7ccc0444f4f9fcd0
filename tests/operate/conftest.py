"""Fixtures for the console tests: the console served by uvicorn in a thread, and a
headless Chromium driven by Selenium (Debian's chromium and chromium-driver)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from notify_sql.console import Settings, create_app
from tests.helpers.gates import skip_or_fail

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = os.environ.get("NOTIFY_SQL_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("NOTIFY_SQL_CHROMEDRIVER", "/usr/bin/chromedriver")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Console:
    """A console on a free local port, in a thread of the test process."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn  # noqa: PLC0415 - only the console tests need it

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning",
            timeout_graceful_shutdown=1,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Console:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the console did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


ConsoleFactory = Callable[..., Console]


@pytest.fixture
def console_factory(dsn: str) -> Iterator[ConsoleFactory]:
    started: list[Console] = []

    def start(**options: Any) -> Console:
        console = Console(Settings(options.pop("dsn", dsn), **options)).__enter__()
        started.append(console)
        return console

    yield start
    for console in started:
        console.__exit__()


@pytest.fixture
def console(console_factory: ConsoleFactory) -> Console:
    return console_factory()


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        skip_or_fail(
            f"headless Chromium needs {CHROMIUM} and {CHROMEDRIVER} "
            "(apt: chromium, chromium-driver)"
        )
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1400,1300"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()

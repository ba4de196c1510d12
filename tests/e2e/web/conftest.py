"""Fixtures for the public verify page: the real front end (tests/e2e/conftest.py) with
the page served on a port of its own, and a headless Chromium to visit it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver
from tests.support.browser import headless_chromium
from tests.support.processes import free_port

from stylebot.bootstrap import FrontEnd
from stylebot.bot.web.server import VerifyWebServer, start_verify_web
from stylebot.config import Settings, load_settings

MAX_UPLOAD_BYTES = 2 * 1024 * 1024


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The front end's settings with the page on (no model: nothing is generated)."""
    return load_settings(
        environ={},
        data_dir=tmp_path / "data",
        verify_web_port=free_port(),
        max_upload_bytes=MAX_UPLOAD_BYTES,
    )


@pytest.fixture
async def page(frontend: FrontEnd) -> AsyncIterator[VerifyWebServer]:
    """The page as `stylebot run` serves it, on the front end's own core."""
    server = await start_verify_web(frontend.bot, frontend.settings)
    assert server is not None
    yield server
    await server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with headless_chromium() as driver:
        yield driver

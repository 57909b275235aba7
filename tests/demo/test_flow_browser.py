"""The flow-control demo in a real browser (headless Chromium driven by Selenium): the page's
throttled ``fetch()`` reader makes the server pause, and the page shows it.

Skipped without Chromium, chromedriver or selenium, except under CI (see ``tests/browser.py``).
``TWISTED_STREAM_SCREENSHOTS=DIR`` keeps the screenshot of the paused page in ``DIR``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from twisted_stream._demo import demo_resource

from ..browser import in_browser, open_browser

STATE = """
const text = id => document.getElementById(id).textContent;
return {pill: text('paused'), pillClass: document.getElementById('paused').className,
        pauses: Number(text('pauses')), produced: text('produced'), sent: text('sent'),
        received: text('received'), ahead: text('ahead'), outcome: text('outcome'),
        points: Number(document.getElementById('timeline').dataset.points || 0),
        bands: document.querySelectorAll('#timeline rect.paused').length};
"""
SIZE = r"\d+(\.\d+)? (B|KB|MB|GB)"


@pytest.fixture(scope="module")
def browser() -> Generator[Any, None, None]:
    """A headless Chromium session for this module."""
    yield from open_browser("normal")


async def state_until(
    driver: Any, condition: Callable[[dict[str, Any]], bool], what: str, timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, Any] = await in_browser(driver.execute_script, STATE)
        if condition(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the page shows {found}")
        await deferLater(reactor, 0.05, lambda: None)


@pytest_twisted.ensureDeferred
async def test_a_slow_reader_pauses_the_server_and_the_page_shows_it(
    server: Any, browser: Any, tmp_path: Path
) -> None:
    """Reading at 100 KB/s, the page shows the server's stream paused (and counts the
    pauses), what the source produced, what was sent and what it received, all formatted
    for people, the source at most a buffer ahead of what was sent, and a timeline with
    paused bands; switched to full speed, the download completes and the page says so."""
    server.serve(demo_resource())
    await in_browser(browser.get, server.url("/flow/?size=16M&speed=100000"))
    paused = await state_until(
        browser, lambda s: s["pill"] == "paused" and s["pauses"] >= 1, "the server to pause"
    )
    assert paused["pillClass"] == "pill paused"
    for key in ("produced", "sent", "received", "ahead"):
        assert re.fullmatch(SIZE, paused[key]), (key, paused)
    ahead, unit = paused["ahead"].split()
    assert unit in ("B", "KB") and float(ahead) <= 82, "at most 64 KiB + one 16 KiB item"
    shown = await state_until(browser, lambda s: s["bands"] >= 1, "a paused band")
    assert shown["points"] >= 2
    shot = tmp_path / "flow-paused.png"
    assert await in_browser(browser.save_screenshot, str(shot))
    keep = os.environ.get("TWISTED_STREAM_SCREENSHOTS")
    if keep:
        shutil.copy(shot, Path(keep) / shot.name)

    await in_browser(
        browser.execute_script, "document.querySelector('input[value=\"Infinity\"]').click()"
    )
    done = await state_until(
        browser, lambda s: s["pill"] == "ended: completed", "the download to complete"
    )
    assert done["received"] == done["sent"] == done["produced"] == "16.8 MB"
    assert "The stream ended: completed." in done["outcome"]
    await in_browser(browser.get, "about:blank")

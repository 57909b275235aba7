"""The upload demo (``twisted_stream._demo._upload``) in a real browser (headless Chromium
driven by Selenium): a file sent with ``XMLHttpRequest``, the browser's progress and the
server's count shown live, and the server's slow reader holding the browser back.

Skipped without Chromium, chromedriver or selenium, except under CI (see ``tests/browser.py``).
"""

from __future__ import annotations

import hashlib
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
const progress = document.getElementById('progress');
return {sent: text('sent'), received: text('received'), reading: text('reading'),
        readingClass: document.getElementById('reading').className,
        outcome: text('outcome'), sha256: document.getElementById('outcome').dataset.sha256,
        progress: progress.value, max: progress.max};
"""


@pytest.fixture(scope="module")
def browser() -> Generator[Any, None, None]:
    yield from open_browser("normal")


def megabytes(shown: str) -> float:
    """A size as the page shows it (``1.23 MB``) in MB; 0 for ``-``."""
    if shown == "-":
        return 0.0
    number, unit = shown.split()
    return float(number) * {"B": 1e-6, "KB": 1e-3, "MB": 1, "GB": 1e3}[unit]


async def page_until(
    driver: Any, condition: Callable[[dict[str, Any]], bool], what: str, timeout: float = 60
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll the page until ``condition``; the state then and every state seen."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while True:
        found: dict[str, Any] = await in_browser(driver.execute_script, STATE)
        seen.append(found)
        if condition(found):
            return found, seen
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the page shows {found}")
        await deferLater(reactor, 0.05, lambda: None)


@pytest_twisted.ensureDeferred
async def test_upload_progress_from_both_ends(server: Any, browser: Any, tmp_path: Path) -> None:
    """A 24 MB file sent to a server reading 8 MB/s: the page shows the browser's upload
    progress and the server's count growing live, the server's reader behind (holding the
    client back), the browser's progress ahead of the server's count by what the socket
    buffers hold; at the end both show the whole file and the page the server's SHA-256 of
    it."""
    data = bytes(range(256)) * (24 * 4096)  # 24 MiB
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    server.serve(demo_resource())
    await in_browser(browser.get, server.url("/upload/?speed=8000000"))
    chooser = await in_browser(browser.find_element, "id", "file")
    await in_browser(chooser.send_keys, str(path))
    button = await in_browser(browser.find_element, "id", "send")
    await in_browser(button.click)
    done, seen = await page_until(browser, lambda s: bool(s["sha256"]), "the upload to end")
    assert done["sha256"] == hashlib.sha256(data).hexdigest()
    assert megabytes(done["received"]) == pytest.approx(len(data) / 1e6, rel=0.01)
    assert megabytes(done["sent"]) == pytest.approx(len(data) / 1e6, rel=0.01)
    assert done["progress"] == done["max"] == len(data)
    assert done["readingClass"] == "pill done"
    during = [s for s in seen if s["received"] != "-" and not s["sha256"]]
    assert len({s["received"] for s in during}) >= 3, "the server's count grew live"
    assert any(0 < megabytes(s["received"]) < len(data) / 1e6 for s in during)
    assert any(s["readingClass"] == "pill paused" for s in during), "the reader fell behind"
    # The browser's progress leads the server's count by what the socket buffers hold.
    assert any(megabytes(s["sent"]) > megabytes(s["received"]) + 1 for s in during)

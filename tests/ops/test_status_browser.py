"""The live status page in a real browser (headless Chromium driven by Selenium).

Skipped when Chromium, chromedriver or selenium is missing, except under CI (``CI`` set),
where that is a failure: CI must install them (``apt-get install chromium chromium-driver``
and the ``selenium`` package). Selenium calls block, so they run in a thread
(``deferToThread``) while the reactor keeps serving the page and its event stream.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.web.resource import Resource

from twisted_stream import Outcome, stream, stream_for

from ..browser import in_browser, open_browser
from ..conftest import leaf
from ..rawclient import connect, get
from ..waiting import within

ROWS_SCRIPT = """
return Array.from(document.querySelectorAll('#streams tbody tr')).map(
  row => Array.from(row.cells).map(cell => cell.textContent));
"""


@pytest.fixture(scope="module")
def browser() -> Generator[Any, None, None]:
    """A headless Chromium session shared by this module's tests."""
    yield from open_browser("normal")


async def rows_until(
    driver: Any, condition: Callable[[list[list[str]]], bool], what: str, timeout: float = 15
) -> list[list[str]]:
    """The page's stream rows once ``condition`` holds for them (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await in_browser(driver.execute_script, ROWS_SCRIPT)
        if condition(rows):
            return list(rows)
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the page shows {rows}")
        await deferLater(reactor, 0.05, lambda: None)


@pytest_twisted.ensureDeferred
async def test_the_page_shows_a_stream_live_and_drops_it_when_its_client_leaves(
    server: Any, browser: Any
) -> None:
    """The status page, open in Chromium, shows a stream the test starts (path, client,
    bytes growing, not paused) without a reload, then removes it once the test's client
    disconnects; the totals count it as ended by the client."""
    from twisted_stream._ops._status import StatusResource

    handles: list[Any] = []

    def ticking(request: Any) -> Any:
        def ticks() -> Iterator[object]:
            n = 0
            while True:
                n += 1
                yield f"tick {n}\n"
                yield deferLater(reactor, 0.05, lambda: None)

        result = stream(request, ticks(), content_type="text/plain")
        handles.append(stream_for(request))
        return result

    root = Resource()
    root.putChild(b"watched", leaf(ticking))
    root.putChild(b"status", StatusResource(interval=0.1))
    server.serve(root)

    await in_browser(browser.get, server.url("/status"))
    await rows_until(browser, lambda rows: bool(rows), "the page's own feed to show")
    state = await in_browser(
        browser.execute_script, "return document.getElementById('feed-state').textContent"
    )
    assert state == "live"

    token = secrets.token_hex(4)
    path = f"/watched?id={token}"
    raw = await connect(server.port, get(path))
    await within(raw.received_at_least(1))

    def mine(rows: list[list[str]]) -> list[list[str]]:
        return [row for row in rows if row[0] == path]

    rows = await rows_until(browser, lambda rows: bool(mine(rows)), f"{path} to show")
    (row,) = mine(rows)
    assert row[1] == "127.0.0.1"
    assert row[2] == "HTTP/1.1"
    assert row[3].endswith("B")
    assert row[5] == "no"
    first_bytes = row[3]
    await rows_until(
        browser,
        lambda rows: bool(mine(rows)) and mine(rows)[0][3] != first_bytes,
        "its byte count to grow",
    )

    raw.transport.abortConnection()  # type: ignore[union-attr]
    assert (await within(handles[0].when_done())).outcome is Outcome.CLIENT_GONE
    await rows_until(browser, lambda rows: not mine(rows), f"{path} to disappear")
    gone = await in_browser(
        browser.execute_script,
        "return document.getElementById('total-streams_client_gone').textContent",
    )
    assert gone == "1"
    await in_browser(browser.get, "about:blank")  # closes the page's feed

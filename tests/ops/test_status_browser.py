"""The live status page in a real browser (headless Chromium driven by Selenium).

Skipped when Chromium, chromedriver or selenium is missing, except under CI (``CI`` set),
where that is a failure: CI must install them (``apt-get install chromium chromium-driver``
and the ``selenium`` package). Selenium calls block, so they run in a thread
(``deferToThread``) while the reactor keeps serving the page and its event stream.

``TWISTED_STREAM_SCREENSHOTS=DIR`` keeps the screenshot taken under load in ``DIR``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.web.resource import Resource

from twisted_stream import Outcome, StatusResource, stream, stream_for

from ..browser import in_browser, open_browser
from ..conftest import leaf
from ..rawclient import RawClient, connect, get
from ..test_format import BYTES, DURATIONS
from ..waiting import within

ROWS_SCRIPT = """
return Array.from(document.querySelectorAll('#streams tbody tr')).map(row => {
  const cells = {class: row.className};
  for (const cell of row.cells) cells[cell.dataset.col] = cell.textContent;
  const spark = row.querySelector('svg.spark');
  cells.spark = spark ? spark.dataset.points : null;
  return cells;
});
"""
CHARTS_SCRIPT = """
const out = {};
for (const id of ['throughput', 'streams', 'outcomes']) {
  const svg = document.getElementById('chart-' + id);
  out[id] = {points: Number(svg.dataset.points || 0), last: svg.dataset.last || '',
             bars: Number(svg.dataset.bars || 0), paths: svg.querySelectorAll('path').length,
             ticks: Array.from(svg.querySelectorAll('text')).map(t => t.textContent)};
}
for (const id of ['rate', 'active', 'paused', 'stalled', 'sent', 'ttfb'])
  out['tile-' + id] = document.getElementById('tile-' + id).textContent;
out.text = document.body.innerText;
return out;
"""


@pytest.fixture(scope="module")
def browser() -> Generator[Any, None, None]:
    """A headless Chromium session shared by this module's tests."""
    yield from open_browser("normal")


async def page_until(
    driver: Any, script: str, condition: Callable[[Any], bool], what: str, timeout: float = 20
) -> Any:
    """What ``script`` returns in the page once ``condition`` holds for it (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await in_browser(driver.execute_script, script)
        if condition(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the page shows {found}")
        await deferLater(reactor, 0.05, lambda: None)


def ticking(handles: list[Any]) -> Callable[[Any], Any]:
    """A resource streaming ``tick N`` lines every 50 ms until its client leaves."""

    def render(request: Any) -> Any:
        def ticks() -> Iterator[object]:
            n = 0
            while True:
                n += 1
                yield f"tick {n}\n"
                yield deferLater(reactor, 0.05, lambda: None)

        result = stream(request, ticks(), content_type="text/plain")
        handles.append(stream_for(request))
        return result

    return render


@pytest_twisted.ensureDeferred
async def test_the_page_shows_a_stream_live_and_drops_it_when_its_client_leaves(
    server: Any, browser: Any
) -> None:
    """The status page, open in Chromium, shows a stream the test starts (path, client,
    protocol, kind, bytes growing) without a reload, then removes it once the test's client
    disconnects; the totals count it as ended by the client. The page's own feed is never
    listed."""
    handles: list[Any] = []
    root = Resource()
    root.putChild(b"watched", leaf(ticking(handles)))
    root.putChild(b"status", StatusResource(interval=0.1))
    server.serve(root)

    await in_browser(browser.get, server.url("/status"))
    await page_until(
        browser,
        "return document.getElementById('feed-state').textContent",
        lambda state: state == "live",
        "the feed to be live",
    )
    rows = await in_browser(browser.execute_script, ROWS_SCRIPT)
    assert rows == [], "the page's own feed is not listed"

    path = f"/watched?id={secrets.token_hex(4)}"
    raw = await connect(server.port, get(path))
    await within(raw.received_at_least(1))

    def mine(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        return [row for row in rows if row["path"] == path]

    rows = await page_until(browser, ROWS_SCRIPT, lambda r: bool(mine(r)), f"{path} to show")
    (row,) = mine(rows)
    assert row["client"] == "127.0.0.1"
    assert row["protocol"] == "HTTP/1.1" and row["kind"] == "download"
    assert re.fullmatch(r"\d+ B", row["sent"]), row
    first_bytes = row["sent"]
    await page_until(
        browser,
        ROWS_SCRIPT,
        lambda rows: bool(mine(rows)) and mine(rows)[0]["sent"] != first_bytes,
        "its byte count to grow",
    )

    raw.transport.abortConnection()  # type: ignore[union-attr]
    assert (await within(handles[0].when_done())).outcome is Outcome.CLIENT_GONE
    await page_until(browser, ROWS_SCRIPT, lambda rows: not mine(rows), f"{path} to go")
    gone = await in_browser(
        browser.execute_script,
        "return document.getElementById('total-streams_client_gone').textContent",
    )
    assert gone == "1"
    await in_browser(browser.get, "about:blank")  # closes the page's feed


@pytest_twisted.ensureDeferred
async def test_the_script_formats_numbers_as_the_server_does(server: Any, browser: Any) -> None:
    """The page's script formats bytes and durations exactly as ``_format`` does on the
    server (one table for both)."""
    server.serve(StatusResource(interval=0.1))
    await in_browser(browser.get, server.url("/"))
    found = await in_browser(
        browser.execute_script,
        "const f = window.twistedStreamFormat, cases = arguments[0];"
        "return [cases.bytes.map(c => f.bytes(c)), cases.durations.map(c => f.duration(c)),"
        "        f.rate(60102921), f.count(60102921)];",
        {"bytes": [v for v, _ in BYTES], "durations": [v for v, _ in DURATIONS]},
    )
    assert found[0] == [text for _, text in BYTES]
    assert found[1] == [text for _, text in DURATIONS]
    assert found[2:] == ["60.1 MB/s", "60,102,921"]
    await in_browser(browser.get, "about:blank")


class Load:
    """Streams of several kinds on one site: paced downloads read steadily, one whose
    client stopped reading, one still waiting for its first byte, and short ones that
    complete or whose client leaves, one every few tenths of a second."""

    BLOCK = b"z" * 16384

    def __init__(self, server: Any) -> None:
        self.server = server
        self.clients: list[RawClient] = []
        self.gates: list[Deferred[bytes]] = []
        self.running = True
        root = Resource()
        root.putChild(b"paced", leaf(self.paced))
        root.putChild(b"fast", leaf(self.fast))
        root.putChild(b"late", leaf(self.late))
        root.putChild(b"short", leaf(self.short))
        root.putChild(b"status", StatusResource(interval=0.25, window=15))
        server.serve(root)

    def paced(self, request: Any) -> Any:
        def blocks() -> Iterator[object]:
            while True:
                yield self.BLOCK
                yield deferLater(reactor, 0.01, lambda: None)

        return stream(request, blocks(), content_type="application/octet-stream")

    def fast(self, request: Any) -> Any:
        return stream(request, iter(lambda: self.BLOCK * 4, None))

    def late(self, request: Any) -> Any:
        self.gates.append(Deferred())
        return stream(request, iter([self.gates[-1]]))

    def short(self, request: Any) -> Any:
        return stream(request, iter([b"a" * 1000, deferLater(reactor, 0.1, lambda: b"b")]))

    async def start(self) -> None:
        port = self.server.port
        for n in range(3):
            self.clients.append(await connect(port, get(f"/paced?reader={n}")))
        stopped = await connect(port, get("/fast?reader=stopped"))
        stopped.stop_reading()
        self.clients.append(stopped)
        self.clients.append(await connect(port, get("/late?first-byte=pending")))
        self._churn(0)

    def _churn(self, n: int) -> None:
        """Every 0.3 s a short stream: every third one loses its client early."""
        if not self.running:
            return

        async def one() -> None:
            raw = await connect(self.server.port, get(f"/short?n={n}"))
            if n % 3 == 2:
                await within(raw.received_at_least(1))
                raw.transport.abortConnection()  # type: ignore[union-attr]
            else:
                await within(raw.closed)

        Deferred.fromCoroutine(one()).addErrback(lambda _: None)
        reactor.callLater(0.3, self._churn, n + 1)

    def stop(self) -> None:
        self.running = False
        for gate in self.gates:
            if not gate.called:
                gate.callback(b"")
        for raw in self.clients:
            raw.transport.abortConnection()  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_charts_under_load_with_a_screenshot(
    server: Any, browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load, the page draws its three charts from its feed and keeps them moving: the
    throughput chart gains points and its latest value changes, the streams chart counts the
    active and paused streams, the outcomes chart gets bars; a stopped reader's row is
    marked paused then stalled, a stream before its first byte says it is waiting, each row
    has a sparkline, and no number on the page is raw (``6.01e+07``, ``60102921``). A
    screenshot is taken and kept (``TWISTED_STREAM_SCREENSHOTS``)."""
    import twisted_stream._ops._status as status_module
    import twisted_stream._ops._status_snapshot as snapshot_module

    monkeypatch.setattr(snapshot_module, "STALLED_AFTER", 1.0)
    monkeypatch.setattr(status_module, "STALLED_AFTER", 1.0)
    load = Load(server)
    try:
        await load.start()
        await in_browser(browser.set_window_size, 1280, 1500)
        await in_browser(browser.get, server.url("/status"))
        charts = await page_until(
            browser,
            CHARTS_SCRIPT,
            lambda c: c["throughput"]["points"] >= 8 and c["outcomes"]["bars"] > 0,
            "the charts to fill",
        )
        assert charts["throughput"]["paths"] >= 2, "a line and the area under it"
        assert "now" in charts["throughput"]["ticks"] and "-15 s" in charts["throughput"]["ticks"]
        assert any(re.fullmatch(r"\d+(\.\d+)? [KMG]B/s", t) for t in charts["throughput"]["ticks"])
        first_last = charts["throughput"]["last"]
        assert json.loads(first_last)[0] > 0
        moved = await page_until(
            browser,
            CHARTS_SCRIPT,
            lambda c: (
                c["throughput"]["points"] > charts["throughput"]["points"]
                and c["throughput"]["last"] != first_last
            ),
            "the throughput chart to move",
        )
        active, paused, _ = json.loads(moved["streams"]["last"])
        assert active >= 5 and paused >= 1
        assert re.fullmatch(r"\d+(\.\d+)? [KMG]B/s", moved["tile-rate"]), moved["tile-rate"]
        assert re.fullmatch(r"\d+(\.\d+)? (B|KB|MB|GB)", moved["tile-sent"]), moved["tile-sent"]

        rows = await page_until(
            browser,
            ROWS_SCRIPT,
            lambda rows: any(r["class"] == "stalled" for r in rows),
            "the stopped reader to be marked stalled",
        )
        stalled = next(r for r in rows if r["path"] == "/fast?reader=stopped")
        assert stalled["class"] == "stalled" and stalled["state"].startswith("stalled ")
        waiting = next(r for r in rows if r["path"] == "/late?first-byte=pending")
        assert waiting["ttfb"].startswith("waiting ")
        reader = next(r for r in rows if r["path"] == "/paced?reader=0")
        assert re.fullmatch(r"\d+(\.\d+)? [KMG]B", reader["sent"]), reader
        assert re.fullmatch(r"\d+(\.\d+)? [KMG]?B/s", reader["rate"]), reader
        assert int(reader["spark"]) >= 2
        text = moved["text"]
        assert not re.search(r"\de[+-]\d", text), "no exponent notation"
        assert not re.search(r"\b\d{5,}\b", text), "no long raw numbers"

        shot = tmp_path / "status-under-load.png"
        assert await in_browser(browser.save_screenshot, str(shot))
        data = shot.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 20_000
        keep = os.environ.get("TWISTED_STREAM_SCREENSHOTS")
        if keep:
            shutil.copy(shot, Path(keep) / shot.name)
    finally:
        load.stop()
        await in_browser(browser.get, "about:blank")
        await in_browser(browser.set_window_size, 1200, 900)

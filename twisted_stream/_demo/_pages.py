"""The demo's own pages, each a few lines on top of the public API:

- ``/countdown/``: a holder page with two iframes streaming "Prepare for launch ... Lift off"
  line by line, one non-blocking (``deferLater``), one a blocking ``time.sleep`` generator
  run with ``threaded=True``;
- ``/csv``: a CSV of a million rows generated on the fly in constant memory;
- ``/download``: a multi-GB generated download with ``Content-Length`` and a filename;
- ``/clock``: a stream that never ends on its own (``Stream.endless``): at shutdown it is
  ended cleanly instead of aborted.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from html import escape

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.web import pages
from twisted.web.resource import IResource
from twisted.web.server import Request

from twisted_stream import StreamingResource, stream, stream_for

from ._query import HTML, PADDING, page, page_head, query_number, query_size

COUNTDOWN_DELAY = 1.0
"""Seconds between countdown lines unless ``?delay=`` says otherwise."""
COUNTDOWN_FROM = 10
CSV_ROWS = 1_000_000
DOWNLOAD_SIZE = 4 * 1024**3
DOWNLOAD_BLOCK = bytes(range(256)) * 256
"""64 KiB of the repeating pattern 0, 1, ..., 255: byte ``i`` of a download is ``i % 256``."""
CLOCK_INTERVAL = 1.0


def countdown_lines(start: int) -> Iterator[str]:
    """The countdown text, one line per step."""
    yield "Prepare for launch...<br>\n"
    for n in range(start, 0, -1):
        yield f"Liftoff in {n}...<br>\n"
    yield "Lift off!<br>\n"


def countdown_head(title: str, *, frame: bool = True) -> str:
    """The start of a progressive page: the demo's head and back link, then
    :data:`PADDING`. A ``frame`` (the countdown's iframes) uses the compact style."""
    return page_head(title, body_class="frame" if frame else "") + PADDING


COUNTDOWN_TAIL = "</body></html>\n"


class Countdown(StreamingResource):
    """``/countdown/``: the holder page; children ``stream`` and ``threaded``."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.putChild(b"stream", CountdownStream())  # type: ignore[no-untyped-call]
        self.putChild(b"threaded", ThreadedCountdown())  # type: ignore[no-untyped-call]

    def getChild(self, path: bytes, request: Request) -> IResource:
        return self if path == b"" else pages.notFound()

    def render_GET(self, request: Request) -> bytes:
        query = request.uri.partition(b"?")[2].decode("latin-1")
        suffix = "?" + query if query else ""
        links = [
            request.childLink(name).decode("latin-1") + suffix for name in (b"stream", b"threaded")
        ]
        body = (
            "<h1>Countdown</h1>\n"
            "<p>Each frame is one streamed response; lines appear as the server sends them."
            "</p>\n"
            "<h2>Non-blocking: a generator yielding deferLater()</h2>\n"
            f'<iframe src="{escape(links[0])}"></iframe>\n'
            "<h2>Blocking: a time.sleep() generator with threaded=True</h2>\n"
            f'<iframe src="{escape(links[1])}"></iframe>'
        )
        request.setHeader(b"content-type", HTML.encode("ascii"))
        return page("Countdown", body).encode("utf-8")


def _countdown_params(request: Request) -> tuple[float, int]:
    delay = query_number(request, "delay", COUNTDOWN_DELAY, 0.0, 10.0)
    start = int(query_number(request, "count", COUNTDOWN_FROM, 0, 100))
    return delay, start


class CountdownStream(StreamingResource):
    """The countdown without blocking: waits are Deferreds yielded to the engine."""

    isLeaf = True
    content_type = HTML

    def render_GET(self, request: Request) -> Iterator[object]:
        delay, start = _countdown_params(request)
        from twisted.internet import reactor

        def lines() -> Iterator[object]:
            yield countdown_head("Countdown (deferLater)")
            for line in countdown_lines(start):
                yield line
                if not line.startswith("Lift off"):
                    wait: Deferred[None] = deferLater(reactor, delay, lambda: None)
                    yield wait
            yield COUNTDOWN_TAIL

        return lines()


class ThreadedCountdown(StreamingResource):
    """The countdown as a plain blocking generator, run in the thread pool."""

    isLeaf = True
    content_type = HTML
    threaded = True

    def render_GET(self, request: Request) -> Iterator[str]:
        delay, start = _countdown_params(request)

        def lines() -> Iterator[str]:
            yield countdown_head("Countdown (threaded)")
            for line in countdown_lines(start):
                yield line
                if not line.startswith("Lift off"):
                    time.sleep(delay)
            yield COUNTDOWN_TAIL

        return lines()


# CSV.


class _Echo:
    """A write-only "file" that returns what is written: ``csv.writer(_Echo()).writerow``
    then returns the formatted row."""

    def write(self, text: str) -> str:
        return text


def csv_rows(count: int) -> Iterator[str]:
    """A header and ``count`` rows of CSV, one line per item, nothing held in memory."""
    writer = csv.writer(_Echo())
    yield writer.writerow(["id", "square", "hex", "label"])
    for i in range(1, count + 1):
        yield writer.writerow([i, i * i, f"{i:x}", f'row {i}, "quoted"'])


class Csv(StreamingResource):
    """``/csv?rows=N``: ``N`` rows (a million by default) as a download, or as text in the
    browser with ``inline=1``."""

    isLeaf = True

    def render_GET(self, request: Request) -> Iterator[str]:
        rows = int(query_number(request, "rows", CSV_ROWS, 0, 10 * CSV_ROWS))
        if request.args.get(b"inline"):
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        else:
            request.setHeader(b"content-type", b"text/csv; charset=utf-8")
            request.setHeader(b"content-disposition", b'attachment; filename="rows.csv"')
        request.setHeader(b"accept-ranges", b"none")  # generated: Range is ignored
        return csv_rows(rows)


# Download.


def pattern_bytes(size: int) -> Iterator[bytes]:
    """``size`` bytes of :data:`DOWNLOAD_BLOCK` repeated."""
    block = DOWNLOAD_BLOCK
    full, rest = divmod(size, len(block))
    for _ in range(full):
        yield block
    if rest:
        yield block[:rest]


class Download(StreamingResource):
    """``/download?size=4G``: generated bytes with ``Content-Length`` and a filename."""

    isLeaf = True

    def render_GET(self, request: Request) -> int:
        size = query_size(request, "size", DOWNLOAD_SIZE, 64 * 1024**3)
        request.setHeader(b"content-disposition", b'attachment; filename="demo-download.bin"')
        # Generated, not seekable: a Range header is ignored, and this says so (RFC 9110
        # section 14.3), so a download manager does not try to resume it.
        request.setHeader(b"accept-ranges", b"none")
        return stream(
            request,
            pattern_bytes(size),
            content_type="application/octet-stream",
            content_length=size,
        )


# Clock.


class Clock(StreamingResource):
    """``/clock?interval=1``: the time, once per interval, until the client or the server
    stops it."""

    isLeaf = True

    def render_GET(self, request: Request) -> int:
        interval = query_number(request, "interval", CLOCK_INTERVAL, 0.01, 60.0)
        from twisted.internet import reactor

        def ticks() -> Iterator[object]:
            yield countdown_head("Clock", frame=False)
            yield "<h1>Clock</h1>\n"
            yield "<p>One line per tick; this response never ends on its own.</p>\n"
            while True:
                now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
                yield f"{now}<br>\n"
                wait: Deferred[None] = deferLater(reactor, interval, lambda: None)
                yield wait

        result = stream(request, ticks(), content_type=HTML)
        handle = stream_for(request)
        if handle is not None:
            handle.endless = True
        return result

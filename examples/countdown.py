"""The classic streaming countdown, written two ways.

    twistd -n streamweb --app examples.countdown:resource

then open http://localhost:8080/. The page holds two iframes; each streams "Prepare for
launch... Liftoff in 10... Lift off!" line by line:

- ``/stream``: non-blocking. The generator yields ``deferLater`` Deferreds to pause; the
  reactor serves everyone else meanwhile.
- ``/threaded``: a plain blocking generator calling ``time.sleep``, run in twisted_stream's
  bounded thread pool with ``threaded=True``.

``?delay=0.1`` (seconds between lines) and ``?count=3`` change the pace for one request;
:data:`DELAY` and :data:`COUNT` are the defaults.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.web.resource import Resource

from twisted_stream import StreamingResource

DELAY = 1.0
"""Seconds between lines."""
COUNT = 10
"""Where the countdown starts."""

HTML = "text/html; charset=utf-8"

# Browsers hold back the first kilobyte or so of a page before rendering it: send that much
# first (an HTML comment) so the lines show up as they arrive.
HEAD = '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n<!--{}-->\n'.format(
    " " * 2048
)
TAIL = "</body></html>\n"


def launch_lines(count: int) -> Iterator[str]:
    yield "Prepare for launch...<br>\n"
    for n in range(count, 0, -1):
        yield f"Liftoff in {n}...<br>\n"
    yield "Lift off!<br>\n"


def pace(request: Any) -> tuple[float, int]:
    """``(delay, count)`` from the query string, within sane bounds."""

    def number(name: bytes, default: float, high: float) -> float:
        try:
            return min(max(float(request.args[name][0]), 0.0), high)
        except (KeyError, ValueError):
            return default

    return number(b"delay", DELAY, 10.0), int(number(b"count", COUNT, 100))


class NonBlockingCountdown(StreamingResource):
    """Waits by yielding Deferreds: no thread, no blocking."""

    isLeaf = True
    content_type = HTML

    def render_GET(self, request: Any) -> Iterator[object]:
        # A generator method, as in web.py: each yielded str is sent as it comes.
        delay, count = pace(request)
        yield HEAD
        for i, line in enumerate(launch_lines(count)):
            if i:
                yield deferLater(reactor, delay)
            yield line
        yield TAIL


class BlockingCountdown(StreamingResource):
    """Blocks in ``time.sleep``: fine, because ``threaded = True`` runs it in a thread."""

    isLeaf = True
    content_type = HTML
    threaded = True

    def render_GET(self, request: Any) -> Iterator[str]:
        delay, count = pace(request)  # read the request here, not on the worker thread

        def lines() -> Iterator[str]:
            yield HEAD
            for i, line in enumerate(launch_lines(count)):
                if i:
                    time.sleep(delay)
                yield line
            yield TAIL

        return lines()


class Holder(Resource):
    """The page holding the two iframes."""

    def getChild(self, path: bytes, request: Any) -> Resource:
        if path == b"":
            return self
        return super().getChild(path, request)

    def render_GET(self, request: Any) -> bytes:
        query = request.uri.partition(b"?")[2]
        suffix = b"?" + query if query else b""
        stream_link = request.childLink(b"stream") + suffix
        threaded_link = request.childLink(b"threaded") + suffix
        request.setHeader(b"content-type", HTML.encode("ascii"))
        return (
            b'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Countdown</title>'
            b"</head><body>\n<h1>Countdown</h1>\n"
            b"<h2>Non-blocking (deferLater)</h2>\n"
            b'<iframe src="' + stream_link.replace(b"&", b"&amp;") + b'" width="100%" '
            b'height="300"></iframe>\n'
            b"<h2>Blocking generator in a thread (threaded=True)</h2>\n"
            b'<iframe src="' + threaded_link.replace(b"&", b"&amp;") + b'" width="100%" '
            b'height="300"></iframe>\n</body></html>\n'
        )


resource = Holder()
resource.putChild(b"stream", NonBlockingCountdown())
resource.putChild(b"threaded", BlockingCountdown())

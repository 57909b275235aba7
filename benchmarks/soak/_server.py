"""The soak's server (``python -m benchmarks.soak --serve``): a ``StreamSite`` with every
kind of stream, the metrics and status pages, and its own error counts at ``/_soak``."""

from __future__ import annotations

import argparse
import json
import resource
import signal
from typing import Any


def raise_nofile() -> int:
    """Raise the soft descriptor limit to the hard one; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def serve(args: argparse.Namespace) -> None:
    import threading
    import time as _time
    from collections.abc import AsyncIterator, Iterator

    from twisted.internet import reactor
    from twisted.internet.task import deferLater
    from twisted.logger import LogLevel, globalLogBeginner
    from twisted.web.resource import Resource

    from twisted_stream import (
        Event,
        FileResource,
        MetricsResource,
        Mounts,
        StatusResource,
        StreamSettings,
        StreamSite,
        stream,
        stream_events,
    )

    raise_nofile()
    errors: list[str] = []
    error_count = [0]

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_level") in (LogLevel.error, LogLevel.critical):
            error_count[0] += 1
            if len(errors) < 20:
                failure = event.get("log_failure")
                text = str(event.get("log_format", ""))
                if failure is not None:
                    text += f" [{failure.getErrorMessage()}]"
                errors.append(text[:500])

    globalLogBeginner.beginLoggingTo([observe], redirectStandardIO=False)

    chunk = b"g" * 4096

    def paced(request: Any) -> tuple[int, float]:
        size = int(request.args.get(b"bytes", [b"65536"])[0])
        every = float(request.args.get(b"every", [b"0.5"])[0])
        return size, every

    def gen(size: int, every: float) -> Iterator[object]:
        for _ in range(0, size, len(chunk)):
            yield chunk
            yield deferLater(reactor, every, lambda: None)

    async def agen(size: int, every: float) -> AsyncIterator[bytes]:
        for _ in range(0, size, len(chunk)):
            yield chunk
            await deferLater(reactor, every, lambda: None)

    def tgen(size: int, every: float) -> Iterator[bytes]:
        for _ in range(0, size, len(chunk)):
            _time.sleep(every)  # a blocking source, run in the thread pool
            yield chunk

    def events_source() -> Iterator[object]:
        n = 0
        while True:
            n += 1
            yield Event(f"tick {n} " + "e" * 200, id=str(n))
            yield deferLater(reactor, 1.0, lambda: None)

    class Leaf(Resource):
        isLeaf = True

        def __init__(self, render: Any) -> None:
            super().__init__()
            self._render = render

        def render_GET(self, request: Any) -> Any:
            return self._render(request)

    root = Resource()
    root.putChild(b"gen", Leaf(lambda r: stream(r, gen(*paced(r)))))
    root.putChild(b"agen", Leaf(lambda r: stream(r, agen(*paced(r)))))
    root.putChild(b"tgen", Leaf(lambda r: stream(r, tgen(*paced(r)), threaded=True)))
    root.putChild(b"events", Leaf(lambda r: stream_events(r, events_source(), heartbeat=15)))
    root.putChild(b"files", FileResource(args.files))

    site: Any = None

    def soak_state(request: Any) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        body = {
            "errors": error_count[0],
            "first_errors": errors,
            "active_streams": len(site.active_streams),
            "threads": threading.active_count(),
            "metrics": site.metrics.snapshot(site.active_streams),
        }
        return json.dumps(body).encode()

    root.putChild(b"_soak", Leaf(soak_state))
    top = Mounts(root, {"/_metrics": MetricsResource(), "/_status": StatusResource()})
    settings = StreamSettings(stall_timeout=args.stall_timeout)
    site = StreamSite(top, settings=settings)
    site.noisy = False
    port = reactor.listenTCP(0, site, backlog=4096, interface="127.0.0.1")
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    # Announce the port once the reactor runs (its wakers and signal pipes exist by then, so
    # the idle figures the client takes first are the real idle state).
    reactor.callWhenRunning(lambda: print(f"PORT {port.getHost().port}", flush=True))
    reactor.run()

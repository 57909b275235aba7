"""What every benchmark server shares: its command line, the bodies it generates, its launch.

Every server is run as ``python -m benchmarks.servers.<name> --port N [--root DIR]
[--sse-every S] [--profile FILE]``, listens on ``127.0.0.1:N`` and answers the routes of
its features (the suite waits until ``GET /ping`` answers 200):

- ``GET /ping``: a tiny body (readiness and warm-up);
- ``files``: ``GET /files/<name>`` serves ``<name>`` from ``--root``;
- ``gen``: ``GET /gen?n=N&size=S`` streams ``N`` chunks of ``S`` bytes (one constant bytes
  object, chunked transfer encoding, no Content-Length);
- ``sse``: ``GET /sse/agen`` is an event stream from an async generator that sends one event
  every ``--sse-every`` seconds (as users write it); ``GET /sse/channel`` subscribes to a
  fan-out that publishes one event every ``--sse-every`` seconds to every subscriber;
- ``threaded``: ``GET /threaded?s=S`` streams a generator that blocks ``S`` seconds
  (``time.sleep``) on the server's thread pool, then sends one line;
- ``proxy``: ``GET /proxy/<path>`` is ``GET <path>`` of ``--upstream`` (the suite's
  ``upstream_server``), streamed through: status, headers and body as they come.
- ``upload``: ``PUT /upload`` reads the request body as it arrives, chunk by chunk, drops it
  and answers its size in bytes (a line of text); no body size limit.

SIGTERM stops a server; with ``--profile FILE`` it runs under cProfile and writes its
statistics to ``FILE`` as it stops.
"""

from __future__ import annotations

import argparse
import resource
from collections.abc import Callable, Iterator

CONTENT_TYPE = "application/octet-stream"
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--root", help="directory served at /files/")
    parser.add_argument(
        "--sse-every", type=float, default=1.0, help="seconds between events of a stream (1)"
    )
    parser.add_argument("--profile", metavar="FILE", help="run under cProfile, dump to FILE")
    parser.add_argument("--upstream", metavar="URL", help="the upstream of /proxy/ (proxy)")
    return parser.parse_args()


def gen_params(get: Callable[[str], str | None]) -> tuple[int, int]:
    """``(n, size)`` of ``/gen`` from a query-parameter getter."""
    return int(get("n") or 1), int(get("size") or 100)


def chunks(n: int, size: int) -> Iterator[bytes]:
    """The generated body: one constant ``size``-byte object, ``n`` times."""
    chunk = b"x" * size
    for _ in range(n):
        yield chunk


def blocking(seconds: float) -> Iterator[bytes]:
    """A generator that blocks its thread for ``seconds`` before its one line."""
    import time

    time.sleep(seconds)
    yield b"slept\n"


def sse_event(number: int) -> bytes:
    """The wire form of event ``number`` as the peers send it (twisted_stream encodes the
    same event itself from an ``Event``)."""
    return b"id: %d\ndata: tick %d\n\n" % (number, number)


def run(serve: Callable[[], None], profile: str | None) -> None:
    """Run ``serve()`` (which returns once the server stopped), under cProfile if asked."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if not profile:
        serve()
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        serve()
    finally:
        profiler.disable()
        profiler.dump_stats(profile)

"""Benchmark servers, one implementation per process.

Run as ``python benchmarks/_servers.py IMPL [--profile FILE]``. The server listens on
127.0.0.1 on a free port and prints ``PORT <n>`` on stdout once it accepts connections.

Implementations:

- ``twisted_stream``: ``twisted_stream.stream(request, generator)`` on a ``StreamSite``.
- ``naive``: a ``render_GET`` that calls ``request.write(chunk)`` for every chunk and then
  ``finish()``; no flow control, Twisted buffers whatever the client has not read.
- ``aiohttp``: ``StreamResponse`` with an ``await resp.write(chunk)`` loop.
- ``static_file`` / ``file_resource``: ``twisted.web.static.File`` and
  ``twisted_stream.FileResource`` serving files from ``--root`` (used by ``bench_files.py``).

Generated streams: ``GET /gen?n=N&size=S`` answers N chunks of S bytes, the same constant
bytes object yielded N times by a generator (chunked transfer encoding, no Content-Length).

Each server answers ``GET /ping`` with a tiny body (warm-up), and stops on SIGTERM/SIGINT;
with ``--profile FILE`` it runs under cProfile and dumps the stats to FILE when it stops.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator

CONTENT_TYPE = "application/octet-stream"


def chunks(size: int, n: int) -> Iterator[bytes]:
    """The generated body: one constant ``size``-byte object, ``n`` times."""
    chunk = b"x" * size
    for _ in range(n):
        yield chunk


def _twisted_params(request: object) -> tuple[int, int]:
    args = request.args  # type: ignore[attr-defined]
    n = int(args.get(b"n", [b"1"])[0])
    size = int(args.get(b"size", [b"100"])[0])
    return n, size


def _twisted_site(impl: str, root: str | None) -> object:
    from twisted.web.resource import Resource
    from twisted.web.server import NOT_DONE_YET, Site

    class Ping(Resource):
        isLeaf = True

        def render_GET(self, request):  # type: ignore[no-untyped-def]
            request.setHeader(b"content-type", b"text/plain")
            return b"pong\n"

    top = Resource()
    top.putChild(b"ping", Ping())

    if impl == "twisted_stream":
        from twisted_stream import StreamSite, stream

        class Gen(Resource):
            isLeaf = True

            def render_GET(self, request):  # type: ignore[no-untyped-def]
                n, size = _twisted_params(request)
                return stream(request, chunks(size, n), content_type=CONTENT_TYPE)

        top.putChild(b"gen", Gen())
        site_class: type = StreamSite
    elif impl == "naive":

        class NaiveGen(Resource):
            isLeaf = True

            def render_GET(self, request):  # type: ignore[no-untyped-def]
                n, size = _twisted_params(request)
                request.setHeader(b"content-type", CONTENT_TYPE.encode())
                for chunk in chunks(size, n):
                    request.write(chunk)
                request.finish()
                return NOT_DONE_YET

        top.putChild(b"gen", NaiveGen())
        site_class = Site
    elif impl == "static_file":
        from twisted.web.static import File

        assert root is not None, "--root is required"
        top.putChild(b"files", File(root))
        site_class = Site
    elif impl == "file_resource":
        try:
            from twisted_stream import FileResource  # type: ignore[attr-defined]
        except ImportError:  # not exported yet
            from twisted_stream._file_resource import FileResource

        assert root is not None, "--root is required"
        top.putChild(b"files", FileResource(root))
        from twisted_stream import StreamSite

        site_class = StreamSite
    else:
        raise SystemExit(f"unknown implementation {impl!r}")

    class QuietSite(site_class):  # type: ignore[misc, valid-type]
        """No access log: none of the implementations logs requests."""

        def log(self, request):  # type: ignore[no-untyped-def]
            pass

    return QuietSite(top)


def run_twisted(impl: str, root: str | None) -> None:
    from twisted.internet import reactor

    site = _twisted_site(impl, root)
    port = reactor.listenTCP(0, site, backlog=1024, interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.callWhenRunning(_announce, port.getHost().port)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]  # SIGTERM/SIGINT stop it


def run_aiohttp() -> None:
    import asyncio

    from aiohttp import web

    async def gen(request: web.Request) -> web.StreamResponse:
        n = int(request.query.get("n", "1"))
        size = int(request.query.get("size", "100"))
        resp = web.StreamResponse()
        resp.content_type = CONTENT_TYPE
        await resp.prepare(request)
        for chunk in chunks(size, n):
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="pong\n")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/gen", gen)
        app.router.add_get("/ping", ping)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = runner.addresses[0][1]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        _announce(port)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


def _announce(port: int) -> None:
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "impl", choices=["twisted_stream", "naive", "aiohttp", "static_file", "file_resource"]
    )
    parser.add_argument("--root", help="directory served by the file implementations")
    parser.add_argument("--profile", metavar="FILE", help="run under cProfile, dump to FILE")
    args = parser.parse_args()
    # Make the work tree's package importable when run as a script from anywhere.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def serve() -> None:
        if args.impl == "aiohttp":
            run_aiohttp()
        else:
            run_twisted(args.impl, args.root)

    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            serve()
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
    else:
        serve()


if __name__ == "__main__":
    main()

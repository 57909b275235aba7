"""twisted_stream through its public API: ``FileResource``, ``stream()``, ``stream_events()``,
``EventStreamResource``, a ``StreamingResource`` streaming request bodies (``request_body``)
and ``ProxyResource`` on a ``StreamSite`` with default settings (features: files, gen, sse,
threaded, upload, proxy). Run by the suite; see ``_common`` for the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from benchmarks.servers._common import (
    CONTENT_TYPE,
    blocking,
    chunks,
    gen_params,
    parse_args,
    run,
)
from benchmarks.servers._twisted import Leaf, listen_and_run, ping, query


def make_site(root: str | None, sse_every: float, upstream: str | None = None) -> Any:
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall, deferLater
    from twisted.web.resource import Resource

    from twisted_stream import (
        Channel,
        Event,
        EventStreamResource,
        FileResource,
        ProxyResource,
        StreamingResource,
        StreamSite,
        request_body,
        stream,
        stream_events,
    )

    class Upload(StreamingResource):
        """The body as it arrives, dropped: its size."""

        isLeaf = True
        stream_body = True
        max_body_size = 0  # consumed as it arrives: no limit needed

        async def render_PUT(self, request: Any) -> bytes:
            size = 0
            async for chunk in request_body(request):
                size += len(chunk)
            return b"%d\n" % size

    def gen(request: Any) -> Any:
        n, size = gen_params(query(request))
        return stream(request, chunks(n, size), content_type=CONTENT_TYPE)

    def threaded(request: Any) -> Any:
        return stream(request, blocking(float(query(request)("s") or 0)), threaded=True)

    async def ticks() -> AsyncIterator[Event]:
        """An endless event source as users write it: an event, then ``deferLater``."""
        number = 0
        while True:
            number += 1
            yield Event(f"tick {number}", id=str(number))
            await deferLater(reactor, sse_every, lambda: None)

    channel = Channel()
    LoopingCall(channel.publish, "tick").start(sse_every, now=False)

    top = Resource()
    top.putChild(b"ping", Leaf(ping))
    top.putChild(b"gen", Leaf(gen))
    top.putChild(b"threaded", Leaf(threaded))
    top.putChild(b"upload", Upload())
    sse = Resource()
    sse.putChild(b"agen", Leaf(lambda request: stream_events(request, ticks())))
    sse.putChild(b"channel", EventStreamResource(channel))
    top.putChild(b"sse", sse)
    if root:
        top.putChild(b"files", FileResource(root))
    if upstream:
        top.putChild(b"proxy", ProxyResource(upstream))
    return StreamSite(top)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    site = make_site(args.root, args.sse_every, args.upstream)
    run(lambda: listen_and_run(site, args.port), args.profile)


if __name__ == "__main__":
    main()

"""A client leaving is an info line, never an error, for every source kind (127.0.0.1).

Kind 4 of issue 11 (cancelled renderers logged as critical errors): ``curl --max-time`` on
the demo's ``/template`` logged ``Unhandled error in Deferred: ... CancelledError`` at
critical level every time, and so did any ``ElementResource`` whose renderer returns a
Deferred. Each case here streams one source kind, waits until the source is waiting (a
Deferred that has not fired, a blocking thread, a full transport), drops the connection,
waits for the stream to end as ``CLIENT_GONE`` and its source to be released, collects the
garbage (an unhandled failure is logged when its Deferred is collected) and checks that no
error or critical event was logged. Every warning is an error here (``-W error``), so an
unraisable exception (an ``aclose()`` failing in a finaliser, an unclosed file) fails too.
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import jinja2
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.web.template import Element, TagLoader, renderer, tags

from twisted_stream import (
    Channel,
    Event,
    Outcome,
    stream,
    stream_element,
    stream_events,
    stream_ndjson,
    stream_template,
)
from twisted_stream._demo import demo_resource

from .conftest import Served, logged_text, serve_streams
from .rawclient import connect, get
from .waiting import until, within

pytestmark = pytest.mark.filterwarnings("error")

SOON = b"x" * 10
"""What a source sends before it waits: the test drops the connection once a body began."""


def pending() -> Deferred[Any]:
    """A Deferred nothing will fire: only the stream's teardown (cancelling it) ends it."""
    return Deferred()


def sync_endless(request: Any) -> int:
    def chunks() -> Iterator[bytes]:
        yield SOON
        while True:
            yield b"y" * 65536

    return stream(request, chunks())


def deferreds(request: Any) -> int:
    def chunks() -> Iterator[object]:
        yield SOON
        yield pending()

    return stream(request, chunks())


def list_of_deferreds(request: Any) -> int:
    return stream(request, [SOON, pending(), pending()])


def async_awaiting(request: Any) -> int:
    async def chunks() -> AsyncIterator[bytes]:
        yield SOON
        await pending()
        yield b"never"

    return stream(request, chunks())


def async_awaiting_in_finally(request: Any) -> int:
    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield SOON
            await pending()
        finally:
            await deferLater(reactor, 0.01, lambda: None)  # cleanup that waits

    return stream(request, chunks())


def threaded(request: Any) -> int:
    def chunks() -> Iterator[bytes]:
        yield SOON
        while True:
            time.sleep(0.005)
            yield b"y"

    return stream(request, chunks(), threaded=True)


def file_object(request: Any) -> int:
    return stream(request, open("/dev/zero", "rb"))


class Page(Element):
    """A page whose renderer returns what ``make`` gives: a Deferred, a generator of
    Deferreds, a list of Deferreds or a coroutine, none of which fires by itself."""

    loader = TagLoader(tags.html(tags.p(SOON.decode()), tags.p(render="slow")))

    def __init__(self, make: Callable[[], object]) -> None:
        super().__init__()
        self.make = make

    @renderer
    def slow(self, request: object, tag: object) -> object:
        return self.make()


async def awaits_pending() -> str:
    await pending()
    return "never"


def element(make: Callable[[], object]) -> Callable[[Any], int]:
    return lambda request: stream_element(request, Page(make))


def jinja_sync(request: Any) -> int:
    def rows() -> Iterator[str]:
        while True:
            yield "r" * 1000

    template = jinja2.Template("x{% for r in rows %}{{ r }}{% endfor %}")
    return stream_template(request, template, {"rows": rows()}, buffer=0)


def jinja_async(request: Any) -> int:
    async def rows() -> AsyncIterator[str]:
        yield SOON.decode()
        await pending()
        yield "never"

    template = jinja2.Environment(enable_async=True).from_string(
        "{% for r in rows %}{{ r }}{% endfor %}"
    )
    return stream_template(request, template, {"rows": rows()}, buffer=0)


def jinja_threaded(request: Any) -> int:
    def rows() -> Iterator[str]:
        while True:
            time.sleep(0.005)
            yield "r" * 10

    template = jinja2.Template("{% for r in rows %}{{ r }}{% endfor %}")
    return stream_template(request, template, {"rows": rows()}, threaded=True, buffer=0)


CHANNEL = Channel()


def channel(request: Any) -> int:
    CHANNEL.publish(SOON.decode())
    return stream_events(request, CHANNEL.subscribe(replay=1), heartbeat=0.01)


def events(request: Any) -> int:
    def feed() -> Iterator[object]:
        yield Event(SOON.decode())
        yield pending()

    return stream_events(request, feed(), heartbeat=0.01)


def ndjson(request: Any) -> int:
    def objects() -> Iterator[object]:
        yield {"x": SOON.decode()}
        yield pending()

    return stream_ndjson(request, objects())


KINDS: dict[str, Callable[[Any], int]] = {
    "sync": sync_endless,
    "deferred-yielding": deferreds,
    "list-of-deferreds": list_of_deferreds,
    "async": async_awaiting,
    "async-await-in-finally": async_awaiting_in_finally,
    "threaded": threaded,
    "file": file_object,
    "element-deferred": element(pending),
    "element-generator-of-deferreds": element(lambda: (pending() for _ in range(3))),
    "element-list-of-deferreds": element(lambda: [pending(), pending()]),
    "element-coroutine": element(awaits_pending),
    "jinja2": jinja_sync,
    "jinja2-async": jinja_async,
    "jinja2-threaded": jinja_threaded,
    "channel": channel,
    "event-stream": events,
    "ndjson": ndjson,
}


async def leave(port: int, served: Served | None, *, path: str = "/") -> None:
    """Connect, read the first bytes of the body, drop the connection (as ``curl
    --max-time`` does) and wait for the stream to end and its source to be released."""
    raw = await connect(port, get(path))
    await until(lambda: bool(raw.received.partition(b"\r\n\r\n")[2]), what="the body to start")
    raw.transport.abortConnection()
    if served is not None:
        handle = await served.first()
        result = await within(handle.when_done())
        assert result.outcome is Outcome.CLIENT_GONE
        await within(handle.source_closed)
    await within(raw.closed)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_client_leaving_logs_no_error(server: Any, logged: Any, kind: str) -> None:
    """Kind 4 (a client leaving is logged as an error): no error or critical log line, no
    unraisable exception, when the client of any source kind leaves: sync, Deferred-yielding,
    a list of Deferreds, async (awaiting, and awaiting again in its ``finally``), threaded,
    a file, a template Element whose renderer returns a Deferred, a generator of Deferreds,
    a list of Deferreds or a coroutine, Jinja2 (sync, async, threaded), a Channel, an event
    stream and NDJSON."""
    served = serve_streams(server, KINDS[kind])
    await leave(server.port, served)
    gc.collect()
    assert logged_text(logged) == []


@pytest_twisted.ensureDeferred
async def test_leaving_the_demo_template_logs_no_error(server: Any, logged: Any) -> None:
    """Kind 4 (a client leaving is logged as an error), the reported input: ``curl
    --max-time 1.5`` on the demo's ``/template`` logged ``Unhandled error in Deferred: ...
    CancelledError`` at critical level; now nothing is logged above info."""
    site = server.serve(demo_resource())
    raw = await connect(server.port, get("/template?rows=5&delay=5"))
    await until(lambda: b"<table>" in raw.received, what="the table to start")
    await until(lambda: bool(site.active_streams), what="the stream")
    (handle,) = site.active_streams
    raw.transport.abortConnection()
    assert (await within(handle.when_done())).outcome is Outcome.CLIENT_GONE
    await within(handle.source_closed)
    gc.collect()
    assert logged_text(logged) == []

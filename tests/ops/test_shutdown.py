"""``GracefulShutdown``: draining a site's streams when the application stops.

The HTTP traffic is real (a listening ``StreamSite`` and treq); the grace timer runs on a
``task.Clock`` so each test decides exactly when the grace period is over.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.web.client import ResponseFailed

from twisted_stream import (
    Outcome,
    RequestBodyIncomplete,
    Stream,
    StreamingResource,
    request_body,
    stream,
    stream_for,
)
from twisted_stream._ops._shutdown import DEFAULT_GRACE_PERIOD, GracefulShutdown

from ..conftest import leaf
from ..rawclient import connect, get
from ..waiting import turns, until, within

GRACE = 5.0


@pytest.fixture
def warnings_logged() -> Iterator[list[str]]:
    """Warning lines of the shutdown's log."""
    lines: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_level") is LogLevel.warn:
            lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


class Body:
    """Collects a streamed body; ``first`` fires at the first bytes, ``done`` at the end
    (with the body) or with the client's failure."""

    def __init__(self, response: Any) -> None:
        self.data = bytearray()
        self.first: Deferred[None] = Deferred()
        self.done: Deferred[bytes] = treq.collect(response, self._feed)
        self.done.addCallback(lambda _: bytes(self.data))

    def _feed(self, chunk: bytes) -> None:
        self.data += chunk
        if not self.first.called:
            self.first.callback(None)


class Streams:
    """A resource whose streams the test steers: each request streams ``b"start\\n"``,
    then whatever ``source`` gives; it records the Stream handles and finally blocks."""

    def __init__(self, source: Any, *, endless: bool = False, threaded: bool = False) -> None:
        self.handles: list[Stream] = []
        self.finished: list[str] = []
        self._source = source
        self._endless = endless
        self._threaded = threaded

    def render(self, request: Any) -> Any:
        def body() -> Iterator[object]:
            try:
                yield b"start\n"
                yield from self._source()
            finally:
                self.finished.append(threading.current_thread().name)

        result = stream(request, body(), threaded=self._threaded)
        handle = stream_for(request)
        assert handle is not None
        handle.endless = self._endless
        self.handles.append(handle)
        return result


async def open_stream(server: Any, client: Any, streams: Streams) -> Body:
    """GET a stream and wait until its first bytes have arrived."""
    response = await within(client.get(server.url()))
    body = Body(response)
    await within(body.first)
    return body


def forever() -> Iterator[object]:
    """A source part that waits on a Deferred nobody fires."""
    yield Deferred()


@pytest_twisted.ensureDeferred
async def test_no_active_streams_stops_at_once(server: Any) -> None:
    """With no stream open, stopService fires at once and no grace timer is left behind."""
    site = server.serve(leaf(lambda request: b"plain"))
    clock = Clock()
    shutdown = GracefulShutdown(site, GRACE, clock=clock)
    shutdown.startService()
    d = shutdown.stopService()
    assert d.called
    assert clock.getDelayedCalls() == []
    assert shutdown.draining


@pytest_twisted.ensureDeferred
async def test_stream_that_ends_within_grace_completes(server: Any, client: Any) -> None:
    """A stream ending during the grace period is left alone: the client gets the whole body
    and stopService fires when it has ended, before the grace period is over."""
    gate: Deferred[bytes] = Deferred()

    def rest() -> Iterator[object]:
        yield gate
        yield b"end\n"

    streams = Streams(rest)
    site = server.serve(leaf(streams.render))
    clock = Clock()
    shutdown = GracefulShutdown(site, GRACE, clock=clock)
    body = await open_stream(server, client, streams)
    stopped = shutdown.stopService()
    await turns(5)
    assert not stopped.called
    gate.callback(b"middle\n")
    assert await within(body.done) == b"start\nmiddle\nend\n"
    await within(stopped)
    assert streams.handles[0].outcome is Outcome.COMPLETED
    assert clock.getDelayedCalls() == []


@pytest_twisted.ensureDeferred
async def test_unfinished_stream_is_aborted_after_grace(server: Any, client: Any) -> None:
    """A stream still open when the grace period is over is aborted: its generator's
    finally runs, its client sees an incomplete body, and stopService fires."""
    streams = Streams(forever)
    site = server.serve(leaf(streams.render))
    clock = Clock()
    shutdown = GracefulShutdown(site, GRACE, clock=clock)
    body = await open_stream(server, client, streams)
    stopped = shutdown.stopService()
    clock.advance(GRACE - 0.01)
    await turns(5)
    assert not stopped.called and streams.finished == []
    clock.advance(0.01)
    await within(stopped)
    assert len(streams.finished) == 1
    assert streams.handles[0].outcome is Outcome.ABORTED
    with pytest.raises(ResponseFailed):
        await within(body.done)
    assert site.active_streams == set()


@pytest_twisted.ensureDeferred
async def test_endless_stream_is_ended_cleanly(server: Any, client: Any) -> None:
    """An endless stream (an event stream) is ended cleanly after the grace period: the
    client sees a complete response, so it reconnects rather than reports an error."""
    streams = Streams(forever, endless=True)
    site = server.serve(leaf(streams.render))
    clock = Clock()
    shutdown = GracefulShutdown(site, GRACE, clock=clock)
    body = await open_stream(server, client, streams)
    stopped = shutdown.stopService()
    clock.advance(GRACE)
    await within(stopped)
    assert await within(body.done) == b"start\n"
    assert streams.handles[0].outcome is Outcome.COMPLETED
    assert len(streams.finished) == 1


@pytest_twisted.ensureDeferred
async def test_mixed_streams_each_get_their_ending(server: Any, client: Any) -> None:
    """With an endless and an ordinary stream open, the first ends cleanly and the second
    is aborted, in one pass."""
    endless, ordinary = Streams(forever, endless=True), Streams(forever)
    root = leaf(lambda request: (endless if request.args.get(b"e") else ordinary).render(request))
    site = server.serve(root)
    clock = Clock()
    shutdown = GracefulShutdown(site, GRACE, clock=clock)
    response_e = await within(client.get(server.url("/?e=1")))
    body_e = Body(response_e)
    response_o = await within(client.get(server.url("/")))
    body_o = Body(response_o)
    await within(body_e.first)
    await within(body_o.first)
    stopped = shutdown.stopService()
    clock.advance(GRACE)
    await within(stopped)
    assert await within(body_e.done) == b"start\n"
    with pytest.raises(ResponseFailed):
        await within(body_o.done)


@pytest_twisted.ensureDeferred
async def test_threaded_source_is_released_before_stop_fires(server: Any, client: Any) -> None:
    """A threaded generator blocked in next() is closed on its worker once next() returns,
    and stopService waits for that: its finally has run when the stop fires."""
    release = threading.Event()
    entered = threading.Event()

    def blocked() -> Iterator[object]:
        entered.set()
        release.wait(10)
        yield b"late\n"

    streams = Streams(blocked, threaded=True)
    site = server.serve(leaf(streams.render))
    clock = Clock()
    shutdown = GracefulShutdown(site, GRACE, clock=clock)
    body = await open_stream(server, client, streams)
    # The worker is inside the blocking call (not still between two items, when an abort
    # would close the generator at its yield).
    await until(entered.is_set, what="the worker to block")
    stopped = shutdown.stopService()
    clock.advance(GRACE)
    await turns(10)
    assert streams.handles[0].outcome is Outcome.ABORTED
    assert not stopped.called and streams.finished == []
    release.set()
    await within(stopped)
    assert len(streams.finished) == 1 and streams.finished[0] != "MainThread"
    with pytest.raises(ResponseFailed):
        await within(body.done)


@pytest_twisted.ensureDeferred
async def test_gives_up_on_a_source_that_never_releases(
    server: Any, client: Any, warnings_logged: list[str]
) -> None:
    """If a closed source stays busy longer than close_timeout, stopService fires anyway
    (the shutdown is never held forever) and one warning line names the busy source."""
    release = threading.Event()
    entered = threading.Event()

    def blocked() -> Iterator[object]:
        entered.set()
        release.wait(10)
        yield b"late\n"

    streams = Streams(blocked, threaded=True)
    site = server.serve(leaf(streams.render))
    clock = Clock()
    shutdown = GracefulShutdown(site, GRACE, close_timeout=2.0, clock=clock)
    body = await open_stream(server, client, streams)
    # The worker is inside the blocking call (not still between two items, when an abort
    # would close the generator at its yield).
    await until(entered.is_set, what="the worker to block")
    stopped = shutdown.stopService()
    clock.advance(GRACE)
    await turns(5)
    assert not stopped.called
    assert warnings_logged == []
    clock.advance(2.0)
    await within(stopped)
    assert streams.finished == []
    [line] = warnings_logged
    assert "1 stream source(s) still busy after 2.0 s" in line
    assert "GET / HTTP/1.1 from 127.0.0.1" in line
    release.set()
    await within(streams.handles[0].source_closed)
    assert len(streams.finished) == 1
    with pytest.raises(ResponseFailed):
        await within(body.done)


@pytest_twisted.ensureDeferred
async def test_stream_started_during_grace_is_closed_too(server: Any, client: Any) -> None:
    """A stream that starts while shutdown waits (a request on a connection that was already
    open) is followed as well, and aborted at the deadline with the others."""
    streams = Streams(forever)
    site = server.serve(leaf(streams.render))
    clock = Clock()
    shutdown = GracefulShutdown(site, GRACE, clock=clock)
    first = await open_stream(server, client, streams)
    stopped = shutdown.stopService()
    second = await open_stream(server, client, streams)
    clock.advance(GRACE)
    await within(stopped)
    assert [h.outcome for h in streams.handles] == [Outcome.ABORTED, Outcome.ABORTED]
    assert len(streams.finished) == 2
    for body in (first, second):
        with pytest.raises(ResponseFailed):
            await within(body.done)


@pytest_twisted.ensureDeferred
async def test_draining_twice_is_one_drain(server: Any, client: Any) -> None:
    """drain() (and stopService) called again during a drain returns a Deferred firing with
    the first; a single grace timer runs."""
    streams = Streams(forever)
    site = server.serve(leaf(streams.render))
    clock = Clock()
    shutdown = GracefulShutdown(site, GRACE, clock=clock)
    body = await open_stream(server, client, streams)
    first, second = shutdown.drain(), shutdown.drain()
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(GRACE)
    await within(first)
    await within(second)
    with pytest.raises(ResponseFailed):
        await within(body.done)


@pytest_twisted.ensureDeferred
async def test_stops_after_its_siblings_when_added_first(server: Any, client: Any) -> None:
    """Added first to a MultiService, it is stopped after the siblings added later (so the
    ports have stopped listening), and the parent's stop waits for the drain."""
    streams = Streams(forever)
    site = server.serve(leaf(streams.render))
    clock = Clock()
    order: list[str] = []
    parent = MultiService()
    shutdown = GracefulShutdown(site, GRACE, clock=clock)
    shutdown.setServiceParent(parent)

    class Port(MultiService):
        def stopService(self) -> Any:
            order.append("port")
            return super().stopService()

    Port().setServiceParent(parent)
    parent.startService()
    body = await open_stream(server, client, streams)
    stopped = parent.stopService()
    order.append("draining" if shutdown.draining else "not draining")
    assert order == ["port", "draining"]
    assert not stopped.called
    clock.advance(GRACE)
    await within(stopped)
    with pytest.raises(ResponseFailed):
        await within(body.done)


def test_default_grace_period_and_validation() -> None:
    """The grace period defaults to five seconds; negative periods are refused."""
    from twisted_stream import StreamSite

    site = StreamSite(leaf(lambda request: b""))
    assert GracefulShutdown(site).grace_period == DEFAULT_GRACE_PERIOD == 5.0
    with pytest.raises(ValueError, match="grace_period"):
        GracefulShutdown(site, -1)
    with pytest.raises(ValueError, match="close_timeout"):
        GracefulShutdown(site, 1, close_timeout=-1)


@pytest_twisted.ensureDeferred
async def test_stream_ending_by_itself_after_stop_started_is_not_closed(
    server: Any, client: Any
) -> None:
    """Streams that end by themselves are not ended or aborted again; once the last one
    is gone the drain completes without waiting for the timer."""
    gates: list[Deferred[bytes]] = []

    def rest() -> Iterator[object]:
        gate: Deferred[bytes] = Deferred()
        gates.append(gate)
        yield gate

    streams = Streams(rest)
    site = server.serve(leaf(streams.render))
    clock = Clock()
    shutdown = GracefulShutdown(site, GRACE, clock=clock)
    bodies = [await open_stream(server, client, streams) for _ in range(2)]
    stopped = shutdown.stopService()
    await until(lambda: len(gates) == 2)
    gates[0].callback(b"a\n")
    assert await within(bodies[0].done) == b"start\na\n"
    assert not stopped.called
    gates[1].callback(b"b\n")
    assert await within(bodies[1].done) == b"start\nb\n"
    await within(stopped)
    assert [h.outcome for h in streams.handles] == [Outcome.COMPLETED, Outcome.COMPLETED]
    assert clock.getDelayedCalls() == []


@pytest_twisted.ensureDeferred
async def test_connections_are_flushed_and_closed_before_stop_fires(server: Any) -> None:
    """The reactor's shutdown drops connections with whatever Twisted still buffers for
    them, so the drain closes each stream's connection gracefully (flushing first) and fires
    only once it is closed: the end of a stream that finished just before still arrives."""
    gate: Deferred[bytes] = Deferred()
    transports: list[Any] = []

    def render(request: Any) -> Any:
        transports.append(request.channel.transport)
        return stream(request, iter([b"start\n", gate]))

    site = server.serve(leaf(render))
    shutdown = GracefulShutdown(site, GRACE, clock=Clock())
    raw = await connect(server.port, get("/"))  # HTTP/1.1, keep-alive
    await until(lambda: b"start\n" in raw.received, what="the first chunk")
    stopped = shutdown.stopService()
    closed_when_stopped: list[bool] = []
    stopped.addCallback(lambda _: closed_when_stopped.append(bool(transports[0].disconnected)))
    gate.callback(b"end\n")
    await within(stopped)
    assert closed_when_stopped == [True]
    await within(raw.closed)
    assert raw.received.endswith(b"4\r\nend\n\r\n0\r\n\r\n")


class Uploads(StreamingResource):
    """Stores nothing: reads each PUT body to its end, then answers 201 with its length;
    ``started`` fires at the first body bytes, ``outcomes`` records how each read ended."""

    isLeaf = True
    stream_body = True

    def __init__(self) -> None:
        super().__init__()
        self.started: Deferred[None] = Deferred()
        self.outcomes: list[str] = []

    async def render_PUT(self, request: Any) -> bytes:
        size = 0
        try:
            async for chunk in request_body(request):
                size += len(chunk)
                if not self.started.called:
                    self.started.callback(None)
        except RequestBodyIncomplete:
            self.outcomes.append("incomplete")
            raise
        self.outcomes.append("complete")
        request.setResponseCode(201)
        return b"%d\n" % size


def put_head(length: int) -> bytes:
    return get("/x.bin", method="PUT", extra=f"Content-Length: {length}\r\n")


@pytest_twisted.ensureDeferred
async def test_upload_in_flight_gets_the_grace_period(server: Any) -> None:
    """An upload still being received when shutdown starts counts as an open stream:
    stopService waits for it, the client finishes sending and gets its 201, and only then
    does the shutdown complete, before the grace period is over."""
    uploads = Uploads()
    site = server.serve(uploads)
    clock = Clock()
    shutdown = GracefulShutdown(site, GRACE, clock=clock)
    raw = await connect(server.port, put_head(10) + b"12345")
    await within(uploads.started)
    stopped = shutdown.stopService()
    await turns(5)
    assert not stopped.called
    assert raw.transport is not None
    raw.transport.write(b"67890")
    await within(stopped)
    assert bytes(raw.received).startswith(b"HTTP/1.1 201 ")
    assert bytes(raw.received).endswith(b"\r\n\r\n10\n")
    assert uploads.outcomes == ["complete"]
    assert clock.getDelayedCalls() == []
    assert site.open_uploads == set()


@pytest_twisted.ensureDeferred
async def test_unfinished_upload_is_aborted_after_grace(
    server: Any, logged_lines: list[str]
) -> None:
    """An upload still unfinished when the grace period is over is aborted: its handler
    sees RequestBodyIncomplete, the client's connection is closed, the shutdown log names
    it, and stopService fires."""
    uploads = Uploads()
    site = server.serve(uploads)
    clock = Clock()
    shutdown = GracefulShutdown(site, GRACE, clock=clock)
    raw = await connect(server.port, put_head(10) + b"12345")
    await within(uploads.started)
    stopped = shutdown.stopService()
    clock.advance(GRACE - 0.01)
    await turns(5)
    assert not stopped.called and uploads.outcomes == []
    clock.advance(0.01)
    await within(stopped)
    await within(raw.closed)
    assert uploads.outcomes == ["incomplete"]
    assert raw.received == b""
    text = " ".join(logged_lines)
    assert "0 endless stream(s), aborted 0 unfinished one(s) and 1 unfinished upload(s)" in text
    assert "aborting the unfinished upload PUT /x.bin HTTP/1.1" in text

"""Producers as sources (``twisted_stream._sources._producers``): ``IBodyProducer``s and
callables given an ``IConsumer``.

Deterministic cases run on the engine harness (a ``StringTransport`` and a fake clock: the
tests pause and resume the transport themselves); the rest run against a real site on
127.0.0.1 with Twisted's own producers (``FileBodyProducer``, ``FileSender``, an ``Agent``
response body) and hand-written ones.
"""

from __future__ import annotations

import gc
import io
import os
import pathlib
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IPullProducer, IPushProducer
from twisted.protocols.basic import FileSender
from twisted.web.client import Agent, FileBodyProducer, ResponseFailed
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from twisted_stream import (
    Outcome,
    ProducerOverflow,
    State,
    StreamSettings,
    stream,
    stream_for,
)
from twisted_stream._sources._producers import OVERRUN_BUFFERS

from ..conftest import leaf, logged_text, serve_streams
from ..engine.test_producer import Harness, result_of
from ..rawclient import connect, get
from ..waiting import settled_pause, until, within

DATA = os.urandom(300_000)  # several buffers of the default 64 KiB


# --- hand-written producers -------------------------------------------------------------


class Writer:
    """What both hand-written producers share: ``chunk`` bytes of ``data`` (``None``:
    endless) per write to the consumer they were started on, which they register on as
    ``streaming``; at the end they unregister and fire ``done``, as ``FileSender`` does."""

    streaming = False

    def __init__(self, data: bytes | None, chunk: int) -> None:
        self.data, self.chunk = data, chunk
        self.produced = self.stops = 0
        self.done: Deferred[None] = Deferred()
        self.consumer: Any = None

    def start(self, consumer: Any) -> Deferred[None]:
        self.consumer = consumer
        consumer.registerProducer(self, self.streaming)
        return self.done

    def write_next(self) -> bool:
        """Write the next piece; False at the end (then unregistered and done)."""
        if self.data is None:
            piece = b"w" * self.chunk
        else:
            piece = self.data[self.produced : self.produced + self.chunk]
        if not piece:
            self.consumer.unregisterProducer()
            self.done.callback(None)
            return False
        self.produced += len(piece)
        self.consumer.write(piece)
        return True


@implementer(IPullProducer)
class Pull(Writer):
    """A pull producer: one write per ``resumeProducing()``."""

    def __init__(self, data: bytes | None, chunk: int = 1000) -> None:
        super().__init__(data, chunk)
        self.resumes = 0

    def resumeProducing(self) -> None:
        self.resumes += 1
        self.write_next()

    def stopProducing(self) -> None:
        self.stops += 1


@implementer(IPushProducer)
class Push(Writer):
    """A push producer writing every ``interval`` seconds of ``clock`` while it is not
    paused.

    ``counted``: pauses nest, as in a ``CooperativeTask`` (``FileBodyProducer``,
    ``_PullToPush``): each needs its own resume, and it writes twice per turn, the second
    time even if the first write paused it. ``deaf``: it ignores ``pauseProducing()``."""

    streaming = True

    def __init__(
        self,
        clock: Any,
        data: bytes | None,
        chunk: int = 1000,
        *,
        interval: float = 0.0,
        counted: bool = False,
        deaf: bool = False,
    ) -> None:
        super().__init__(data, chunk)
        self.clock, self.interval = clock, interval
        self.counted, self.deaf = counted, deaf
        self.depth = self.pauses = self.resumes = 0
        self._call: IDelayedCall | None = None

    def start(self, consumer: Any) -> Deferred[None]:
        done = super().start(consumer)
        self._schedule()
        return done

    def _schedule(self) -> None:
        if self._call is None and not self.stops and not self.done.called:
            self._call = self.clock.callLater(self.interval, self._step)

    def _step(self) -> None:
        self._call = None
        if self.depth and not self.deaf:
            return  # resumeProducing schedules the next step
        for _ in range(2 if self.counted else 1):  # a pause between them comes too late
            if not self.write_next():
                return
        self._schedule()

    def pauseProducing(self) -> None:
        self.pauses += 1
        self.depth = self.depth + 1 if self.counted else 1

    def resumeProducing(self) -> None:
        self.resumes += 1
        if self.counted and not self.depth:
            raise RuntimeError("resumed while not paused")  # CooperativeTask's NotPaused
        self.depth = self.depth - 1 if self.counted else 0
        if not self.depth:
            self._schedule()

    def stopProducing(self) -> None:
        self.stops += 1
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None


@implementer(IBodyProducer)
class Delegating:
    """An IBodyProducer whose startProducing registers a Push of its own."""

    length = UNKNOWN_LENGTH

    def __init__(self, clock: Any) -> None:
        self.inner = Push(clock, None, interval=1)
        self.stops = 0

    def startProducing(self, consumer: Any) -> Deferred[None]:
        return self.inner.start(consumer)

    def stopProducing(self) -> None:
        self.stops += 1

    def pauseProducing(self) -> None:
        raise AssertionError("only the registered producer is paused")

    resumeProducing = pauseProducing


def drain(h: Harness, period: int = 0, turns: int = 100_000) -> None:
    """Run the fake clock until the stream ends; with ``period``, the transport pauses the
    stream (repeatedly, as Twisted does) for the first half of every ``period`` turns."""
    handle = stream_for(h.requests[-1])
    assert handle is not None
    for turn in range(turns):
        if handle.outcome is not None:
            return
        if period and turn % period < period // 2:
            h.producer.pauseProducing()
        elif handle.paused:
            h.producer.resumeProducing()
        h.clock.advance(1)
    raise AssertionError("the stream did not end")


# --- on the harness: the mapping, deterministic -----------------------------------------


def test_a_pull_producer_is_resumed_once_per_read_and_never_while_paused() -> None:
    """Each engine read gives a pull producer exactly one resumeProducing(); while the
    transport holds the stream paused it gets none, and resuming the transport resumes it."""
    pull = Pull(None, chunk=300)
    h = Harness(lambda: pull.start, buffer_size=1000)
    handle = h.get()
    sizes = [int(line, 16) for line in h.body().split(b"\r\n")[::2] if line]
    assert sizes == [300] * pull.resumes, "each read is one resumeProducing()'s write"
    assert handle.bytes_sent == pull.produced > 0, "nothing is produced ahead of a read"
    h.producer.pauseProducing()
    before = pull.resumes
    for _ in range(10):
        h.clock.advance(1)
    assert pull.resumes == before
    h.producer.resumeProducing()
    assert pull.resumes > before
    assert handle.bytes_sent == pull.produced
    h.lose_connection()
    assert pull.stops == 1


def test_a_push_producer_is_paused_with_the_transport_and_resumed_once() -> None:
    """A push producer writes freely while the transport takes data; once the transport
    pauses the stream it is paused after one buffer (once, however many writes), and the
    transport resuming resumes it (once)."""
    push = Push(None, None, chunk=400, interval=1)
    h = Harness(lambda: push.start, buffer_size=1000)
    push.clock = h.clock
    handle = h.get()
    h.clock.advance(1)
    h.clock.advance(1)
    assert handle.bytes_sent == push.produced == 800, "written as it comes while not paused"
    h.producer.pauseProducing()
    for _ in range(10):
        h.clock.advance(1)
    assert push.pauses == 1
    # One write went to the waiting engine (held there, paused), then one buffer filled.
    held = push.produced - handle.bytes_sent
    assert 400 + 1000 <= held < 400 + 1000 + 400, "paused once a buffer waits, not later"
    h.producer.resumeProducing()
    assert push.resumes == 1
    assert handle.bytes_sent == push.produced, "the buffer goes out on the first read"
    h.clock.advance(1)
    assert handle.bytes_sent > push.produced - 400
    h.lose_connection()
    assert push.stops == 1


def test_a_producer_that_counts_pauses_does_not_stall() -> None:
    """A push producer whose pauses nest (as a CooperativeTask's do) and that writes twice
    per turn gets one pause per resume, so it finishes with the body intact however often
    the transport pauses the stream."""
    push = Push(None, DATA, chunk=700, interval=1, counted=True)
    h = Harness(lambda: push.start, buffer_size=1000)
    push.clock = h.clock
    handle = h.get()
    drain(h, period=6)
    assert result_of(handle).outcome is Outcome.COMPLETED
    assert h.body().endswith(b"0\r\n\r\n")
    assert handle.bytes_sent == len(DATA)
    assert push.pauses == push.resumes > 10
    assert push.depth == 0 and push.stops == 0


def test_a_push_producer_ignoring_pauses_is_aborted_past_the_cap() -> None:
    """A push producer that keeps writing after pauseProducing() is stopped and its stream
    aborted once it has written OVERRUN_BUFFERS buffers past the pause: ProducerOverflow
    names it, and no more than that was ever held."""
    push = Push(None, None, chunk=500, interval=1, deaf=True)
    h = Harness(lambda: push.start, buffer_size=1000)
    push.clock = h.clock
    handle = h.get()
    h.producer.pauseProducing()
    worst = 0
    for _ in range(100):
        h.clock.advance(1)
        worst = max(worst, push.produced - handle.bytes_sent)
        if handle.outcome is not None:
            break
    result = result_of(handle)
    assert result.outcome is Outcome.ABORTED
    assert result.failure.check(ProducerOverflow)
    assert "Push object" in str(result.failure.value)
    assert "pauseProducing" in str(result.failure.value)
    assert push.pauses == 1 and push.stops == 1
    # A write held by the paused engine, a buffer, the cap, and the write crossing it.
    assert worst <= 500 + 1000 + OVERRUN_BUFFERS * 1000 + 500
    assert h.transport.disconnecting or h.transport.disconnected


def test_connection_loss_stops_the_registered_producer_and_the_body_producer_once() -> None:
    """The client leaving (stopProducing, then connectionLost) stops the registered producer
    once and an IBodyProducer that delegated to it once: at once, while paused."""

    bodies: list[Delegating] = []

    def make() -> Delegating:
        bodies.append(Delegating(h.clock))
        return bodies[-1]

    h = Harness(make, buffer_size=1000)
    handle = h.get()
    h.clock.advance(1)
    h.producer.pauseProducing()
    h.lose_connection()
    assert bodies[0].inner.stops == 1 and bodies[0].stops == 1
    assert result_of(handle).outcome is Outcome.CLIENT_GONE


@pytest.mark.parametrize(
    ("setting", "outcome"), [("stall_timeout", Outcome.STALLED), ("deadline", Outcome.ABORTED)]
)
def test_the_stall_timeout_and_deadline_see_producer_streams(
    setting: str, outcome: Outcome
) -> None:
    """A producer's stream kept paused by its transport for stall_timeout is aborted as
    STALLED, one running past its deadline is aborted; either way its producer is
    stopped once."""
    push = Push(None, None, interval=1)
    h = Harness(lambda: push.start, buffer_size=1000, **{setting: 5})
    push.clock = h.clock
    handle = h.get()
    h.producer.pauseProducing()
    h.clock.advance(4.9)
    assert handle.outcome is None
    h.clock.advance(0.2)
    assert result_of(handle).outcome is outcome
    assert push.stops == 1


def test_a_callable_without_a_deferred_ends_when_its_producer_unregisters() -> None:
    """A callable returning None: the body ends when its producer unregisters itself; one
    that registers nothing ends with what it wrote; any other return value is a 500."""
    pull = Pull(b"x" * 2500)

    def no_deferred(consumer: Any) -> None:
        pull.start(consumer)

    h = Harness(lambda: no_deferred)
    handle = h.get()
    h.pump()
    assert result_of(handle).outcome is Outcome.COMPLETED
    assert handle.bytes_sent == 2500
    written = Harness(lambda: lambda consumer: consumer.write(b"just this"))
    written.get()
    assert written.body() == b"9\r\njust this\r\n0\r\n\r\n"
    wrong = Harness(lambda: lambda consumer: 42)
    wrong.get()
    assert wrong.transport.value().startswith(b"HTTP/1.1 500")


def test_a_pull_producer_registered_later_is_resumed() -> None:
    """A callable that registers its pull producer after a while (its Deferred still
    pending) has it resumed as soon as it is registered, and streams all of it."""
    pull = Pull(b"y" * 3000)
    later: Deferred[None] = Deferred()

    def start(consumer: Any) -> Deferred[None]:
        return later.addCallback(lambda _: pull.start(consumer))

    h = Harness(lambda: start)
    handle = h.get()
    assert pull.resumes == 0
    later.callback(None)
    h.pump()
    assert result_of(handle).outcome is Outcome.COMPLETED
    assert handle.bytes_sent == 3000


# --- on a real site ---------------------------------------------------------------------


class Unseekable(io.RawIOBase):
    """A file without seek or tell: FileBodyProducer cannot know its length."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._data.readinto(buffer)

    def seekable(self) -> bool:
        return False

    def __getattribute__(self, name: str) -> Any:
        if name in ("seek", "tell"):
            raise AttributeError(name)
        return super().__getattribute__(name)


SOURCES: dict[str, Callable[[], object]] = {
    "FileBodyProducer": lambda: FileBodyProducer(io.BytesIO(DATA)),
    "FileBodyProducer-unknown-length": lambda: FileBodyProducer(Unseekable(DATA)),
    "FileSender": lambda: (
        lambda consumer: FileSender().beginFileTransfer(io.BytesIO(DATA), consumer)
    ),
    "pull": lambda: Pull(DATA).start,
    "push": lambda: Push(reactor, DATA, chunk=5000).start,
}


@pytest.mark.parametrize("kind", sorted(SOURCES))
@pytest_twisted.ensureDeferred
async def test_bodies_are_byte_exact(server: Any, kind: str) -> None:
    """Each producer's body arrives byte for byte; an IBodyProducer's known length is the
    Content-Length, an unknown one (and every callable) is chunked."""
    served = serve_streams(server, lambda request: stream(request, SOURCES[kind]()))
    raw = await connect(server.port, get(extra="Connection: close\r\n"))
    await within(raw.closed)
    head, _, body = bytes(raw.received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    if kind == "FileBodyProducer":
        assert b"\r\nContent-Length: %d\r\n" % len(DATA) in head
        assert body == DATA
    else:
        assert b"Transfer-Encoding: chunked" in head
        chunks, at = [], 0
        while True:
            size_line, _, rest = body[at:].partition(b"\r\n")
            size = int(size_line, 16)
            if not size:
                break
            chunks.append(rest[:size])
            at += len(size_line) + 2 + size + 2
        assert b"".join(chunks) == DATA
    result = await within((await served.first()).when_done())
    assert result.outcome is Outcome.COMPLETED


def counted_file(path: pathlib.Path) -> tuple[Callable[[], int], Any]:
    """``path`` opened for reading, with a function giving how much of it was read."""
    file = open(path, "rb")  # closed by the producer, or by the test
    last = [0]

    def read_so_far() -> int:
        if not file.closed:
            last[0] = file.tell()
        return last[0]

    return read_so_far, file


@pytest.mark.parametrize("kind", ["FileSender", "FileBodyProducer", "pull", "push"])
@pytest_twisted.ensureDeferred
async def test_a_client_that_stops_reading_bounds_what_each_producer_writes(
    server: Any, tmp_path: pathlib.Path, kind: str
) -> None:
    """A client that stops reading a 200 MB body stops the producer: what it has produced
    stays within one buffer (and a write) of what went to the socket, and everything stays
    within the socket buffers; leaving then stops it once."""
    path = tmp_path / "big"
    with open(path, "wb") as f:
        f.truncate(200 << 20)
    counters: list[Callable[[], int]] = []
    producers: list[Any] = []
    files: list[Any] = []  # FileSender leaves closing its file to its caller

    def make(request: Any) -> object:
        if kind in ("pull", "push"):
            producer = Pull(None, 16384) if kind == "pull" else Push(reactor, None, 16384)
            producers.append(producer)
            counters.append(lambda: producer.produced)
            return producer.start
        read_so_far, file = counted_file(path)
        counters.append(read_so_far)
        files.append(file)
        if kind == "FileBodyProducer":
            return FileBodyProducer(file)
        return lambda consumer: FileSender().beginFileTransfer(file, consumer)

    sockets: list[socket.socket] = []

    def render(request: Any) -> object:
        sockets.append(request.transport.getHandle())
        return stream(request, make(request))

    served = serve_streams(server, render)
    raw = await connect(server.port, get())
    await within(raw.received_at_least(100_000))
    raw.stop_reading()
    handle = await served.first()
    produced = await settled_pause(handle, counters[0])
    buffer = StreamSettings().buffer_size
    assert produced - handle.bytes_sent <= 2 * buffer, "one buffer held, plus one write"
    client_sock = raw.transport.getHandle()  # type: ignore[union-attr]
    in_sockets = sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) + (
        client_sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    )
    twisted_buffer = 2 * 65536  # its 64 KiB mark, plus the write that crossed it
    assert produced <= in_sockets + twisted_buffer + 2 * buffer
    assert produced < 200 << 20
    raw.transport.abortConnection()  # type: ignore[union-attr]
    result = await within(handle.when_done())
    assert result.outcome is Outcome.CLIENT_GONE
    if producers:
        assert producers[0].stops == 1
    for file in files:
        file.close()


@pytest.mark.parametrize("kind", ["FileSender", "FileBodyProducer", "push", "nothing-registered"])
@pytest_twisted.ensureDeferred
async def test_a_disconnect_stops_the_producer_once_and_logs_no_error(
    server: Any, logged: list[dict[str, Any]], kind: str
) -> None:
    """A client leaving mid-body calls stopProducing exactly once (FileSender then fails its
    Deferred, FileBodyProducer closes its file); with no producer registered, the pending
    Deferred is cancelled instead. Nothing is logged as an error, no "Unhandled error in
    Deferred" either."""
    stops: list[str] = []
    files: list[io.BytesIO] = []
    pending: Deferred[None] = Deferred()

    def write_then_wait(consumer: Any) -> Deferred[None]:
        consumer.write(DATA)
        return pending

    class Sender(FileSender):
        def stopProducing(self) -> None:
            stops.append("FileSender")
            super().stopProducing()

    class Body(FileBodyProducer):
        def stopProducing(self) -> None:
            stops.append("FileBodyProducer")
            super().stopProducing()

    def make(request: Any) -> object:
        files.append(io.BytesIO(DATA * 40))
        if kind == "FileSender":
            return lambda consumer: Sender().beginFileTransfer(files[-1], consumer)
        if kind == "FileBodyProducer":
            return Body(files[-1])
        if kind == "nothing-registered":
            return write_then_wait
        push = Push(reactor, None, 16384)
        push.stopProducing = lambda: stops.append("push")  # type: ignore[method-assign]
        return push.start

    served = serve_streams(server, lambda request: stream(request, make(request)))
    raw = await connect(server.port, get())
    await within(raw.received_at_least(200_000))
    raw.transport.abortConnection()  # type: ignore[union-attr]
    result = await within((await served.first()).when_done())
    assert result.outcome is Outcome.CLIENT_GONE
    assert stops == ([] if kind == "nothing-registered" else [kind])
    assert pending.called == (kind == "nothing-registered"), "cancelled if nothing was stopped"
    if kind == "FileBodyProducer":
        assert files[0].closed
    await until(lambda: not served.streams[0].request.channel, what="the channel to go")
    served.streams.clear()  # an unhandled failure is logged when its Deferred is collected
    gc.collect()
    assert logged_text(logged) == []


@pytest_twisted.ensureDeferred
async def test_a_push_producer_ignoring_pauses_is_aborted_on_a_real_connection(
    server: Any,
) -> None:
    """Against a client that stops reading, a push producer ignoring pauseProducing() is
    aborted with ProducerOverflow: the client sees an incomplete body, and the server
    serves the next request."""
    pushes: list[Push] = []

    def make(request: Any) -> object:
        if request.args.get(b"ok"):
            return b"fine"
        pushes.append(Push(reactor, None, 16384, deaf=True))
        return pushes[-1].start

    served = serve_streams(server, lambda request: stream(request, make(request)))
    raw = await connect(server.port, get())
    await within(raw.received_at_least(100_000))
    raw.stop_reading()
    result = await within((await served.first()).when_done())
    assert result.outcome is Outcome.ABORTED
    assert result.failure.check(ProducerOverflow)
    assert pushes[0].stops == 1
    raw.resume_reading()
    await within(raw.closed)
    assert not bytes(raw.received).endswith(b"0\r\n\r\n")
    response = await treq.get(server.url("/?ok=1"))
    assert await response.content() == b"fine"


@pytest_twisted.ensureDeferred
async def test_a_failed_deferred_is_a_source_failure(server: Any, client: Any) -> None:
    """A producer whose Deferred fails after some bytes gives the client an incomplete
    body (the connection is closed short); failing before any byte answers 500."""
    late: list[Deferred[None]] = []

    def make(request: Any) -> object:
        if request.args.get(b"early"):
            return lambda consumer: fail(OSError("upstream refused"))

        def start(consumer: Any) -> Deferred[None]:
            consumer.write(b"some bytes;" * 1000)
            late.append(Deferred())
            return late[-1]

        return start

    served = serve_streams(server, lambda request: stream(request, make(request)))
    response = await client.get(server.url())
    assert response.code == 200
    body = response.content()
    await until(lambda: late and served.streams[0].bytes_sent > 0, what="the first bytes")
    late[0].errback(OSError("upstream went away"))
    with pytest.raises(ResponseFailed):
        await within(body)
    result = await within(served.streams[0].when_done())
    assert result.outcome is Outcome.SOURCE_FAILED
    assert result.failure.check(OSError)
    early = await client.get(server.url("/?early=1"))
    assert early.code == 500
    await early.content()


@pytest.mark.parametrize("code", [None, 204, 304])
@pytest_twisted.ensureDeferred
async def test_head_204_and_304_never_start_the_producer(server: Any, code: int | None) -> None:
    """HEAD, 204 and 304 answer headers only: neither the IBodyProducer nor the callable
    is ever started (the IBodyProducer's length still gives HEAD its Content-Length)."""
    started: list[str] = []

    class Body(FileBodyProducer):
        def startProducing(self, consumer: Any) -> Deferred[None]:
            started.append("body")
            return super().startProducing(consumer)

    def render(request: Any) -> object:
        if code is not None:
            request.setResponseCode(code)
        if request.args.get(b"callable"):
            return stream(request, lambda consumer: started.append("callable"))
        return stream(request, Body(io.BytesIO(b"0123456789")))

    served = serve_streams(server, render)
    method = "HEAD" if code is None else "GET"
    for path in ("/", "/?callable=1"):
        raw = await connect(server.port, get(path, method=method, extra="Connection: close\r\n"))
        await within(raw.closed)
        head, _, body = bytes(raw.received).partition(b"\r\n\r\n")
        assert body == b""
        if path == "/" and code is None:
            assert b"\r\nContent-Length: 10\r\n" in head
    assert started == []
    for handle in served.streams:
        assert (await within(handle.when_done())).outcome is Outcome.COMPLETED


BIG = DATA * 20


def broken() -> Iterator[bytes]:
    """A body that fails after its first bytes."""
    yield DATA
    raise OSError("the upstream's disk failed")


def proxy(server: Any) -> tuple[Any, list[Any]]:
    """An upstream site serving :data:`BIG` (``?cut=1``: a body failing after its first
    bytes), and in front of it a site relaying its responses through ``deliverBody``:
    ``?direct=1`` streams ``response.deliverBody`` once the response is there, otherwise a
    callable calls it when its Deferred gets the response. The upstream's recorded
    streams, and the front's."""
    upstream = serve_streams(
        server,
        lambda request: stream(
            request, broken() if request.args.get(b"cut") else FileBodyProducer(io.BytesIO(BIG))
        ),
    )
    upstream_url = b"http://127.0.0.1:%d/" % server.port
    agent = Agent(reactor)
    fronts: list[Any] = []

    def relay(request: Any) -> object:
        d = agent.request(b"GET", upstream_url + (b"?cut=1" if request.args.get(b"cut") else b""))
        if request.args.get(b"direct"):

            def respond(response: Any) -> None:
                stream(request, response.deliverBody, content_length=response.length)
                fronts.append(stream_for(request))

            d.addCallback(respond)
            return NOT_DONE_YET
        result = stream(request, lambda consumer: d.addCallback(lambda r: r.deliverBody(consumer)))
        fronts.append(stream_for(request))
        return result

    server.serve(leaf(relay))
    return upstream, fronts


@pytest_twisted.ensureDeferred
async def test_an_agent_response_body_streams_through_deliver_body(server: Any) -> None:
    """``stream(request, response.deliverBody)``, or a callable calling it once the response
    is there, relays an upstream response byte for byte (with its length) with the
    upstream's transport as the registered push producer; when the client leaves, the
    upstream connection is closed (its stream sees the client gone)."""
    upstream, fronts = proxy(server)
    for path in ("/", "/?direct=1"):
        response = await treq.get(server.url(path))
        assert await within(response.content()) == BIG
        assert (await within(fronts[-1].when_done())).outcome is Outcome.COMPLETED
    assert response.length == len(BIG)

    raw = await connect(server.port, get())
    await within(raw.received_at_least(100_000))
    raw.transport.abortConnection()  # type: ignore[union-attr]
    assert (await within(fronts[-1].when_done())).outcome is Outcome.CLIENT_GONE
    result = await within(upstream.streams[-1].when_done())
    assert result.outcome is Outcome.CLIENT_GONE


@pytest_twisted.ensureDeferred
async def test_an_upstream_body_cut_short_is_a_source_failure(server: Any, client: Any) -> None:
    """An upstream response body that ends short (its server failed mid-body) fails the
    relaying stream: its client gets an incomplete body too, never a complete-looking one."""
    upstream, fronts = proxy(server)
    response = await client.get(server.url("/?cut=1"))
    with pytest.raises(ResponseFailed):
        await within(response.content())
    result = await within(fronts[0].when_done())
    assert result.outcome is Outcome.SOURCE_FAILED
    assert (await within(upstream.streams[0].when_done())).outcome is Outcome.SOURCE_FAILED


@pytest_twisted.ensureDeferred
async def test_limits_and_metrics_see_producer_streams(server: Any, client: Any) -> None:
    """With max_streams=1 a second producer stream is refused with 503 and never started;
    the first one is counted in the site's metrics and active streams like any other."""
    gate: Deferred[None] = Deferred()
    started: list[int] = []

    def start(consumer: Any) -> Deferred[None]:
        started.append(1)
        consumer.write(b"first;")
        return gate

    served = serve_streams(server, lambda request: stream(request, start))
    server.site.stream_settings = StreamSettings(max_streams=1)
    first = await client.get(server.url())
    handle = await served.first()
    assert handle in server.site.active_streams
    second = await client.get(server.url())
    assert second.code == 503
    await second.content()
    assert started == [1]
    gate.callback(None)
    assert await first.content() == b"first;"
    await within(handle.when_done())
    metrics = server.site.metrics
    assert metrics.ended[Outcome.COMPLETED] == 1 and metrics.ended[Outcome.REJECTED] == 1
    assert metrics.bytes_sent == 6
    assert handle.state is State.FINISHED

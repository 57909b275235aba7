"""Fault injection on real sockets (127.0.0.1): misbehaving clients, failing sources and
files, a thousand streams with random disconnects, hostile request headers.

Every case checks the same four things: the affected stream ends (with the expected
outcome), its source is released (a generator's ``finally`` runs, exactly once; a file is
closed), the server's socket of that connection is closed (no descriptor in
``/proc/self/fd`` still refers to it), and the server then answers another client
correctly. Timeouts are in tenths of a second; every wait is bounded.
"""

from __future__ import annotations

import gc
import io
import os
import random
import socket
import struct
import threading
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import LoopingCall, deferLater
from twisted.internet.threads import blockingCallFromThread, deferToThread
from twisted.python.failure import Failure
from twisted.web.resource import Resource

from twisted_stream import ChunkTypeError, Outcome, SourceIdleTimeout, State, stream, stream_for
from twisted_stream._errors import FileTruncated
from twisted_stream._events._event_stream import EventStreamResource
from twisted_stream._events._sse import Event
from twisted_stream._files._resource import FileResource
from twisted_stream._ops._site import StreamSite
from twisted_stream._settings import StreamSettings

from .conftest import logged_text
from .rawclient import connect, get
from .waiting import turns, until, within

KIB = 1024
MIB = 1024 * KIB
OK_BODY = bytes(range(256)) * 800  # 200 KiB, more than one buffer: goes through flow control


# --- helpers ----------------------------------------------------------------------------


class Tracker:
    """Counts, per source, how many times its ``finally`` ran (or its file was closed)."""

    def __init__(self) -> None:
        self.closed: Counter[str] = Counter()

    def close(self, name: str) -> None:
        self.closed[name] += 1

    async def released(self, name: str) -> None:
        await until(lambda: self.closed[name] >= 1, what=f"{name}'s source to be released")
        await turns(5)
        assert self.closed[name] == 1, f"{name} was released {self.closed[name]} times"


def fd_targets() -> list[str]:
    """What every descriptor of this process refers to."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
    return found


def socket_of(request: Any) -> str:
    """The ``socket:[inode]`` of the server side of ``request``'s connection: unlike the
    descriptor number, it is never reused by a later connection."""
    return os.readlink(f"/proc/self/fd/{request.transport.getHandle().fileno()}")


async def closed(target: str) -> None:
    """Wait until no descriptor refers to ``target`` (a socket or a file path)."""
    await until(
        lambda: not any(t == target or t == f"{target} (deleted)" for t in fd_targets()),
        what=f"{target} to be closed",
    )


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {raw[:300]!r}"
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status.split(" ")[1]), headers, body


async def exchange(port: int, request: bytes) -> bytes:
    """Send ``request``, read the response until the server closes the connection."""
    raw = await connect(port, request)
    await within(raw.closed)
    return bytes(raw.received)


async def serves_others(port: int) -> None:
    """Another client gets a complete, correct response from the same server."""
    code, _, body = parse(await exchange(port, get("/ok", version="1.0")))
    assert code == 200
    assert body == OK_BODY


def hard_close(raw: Protocol) -> None:
    """Close with a TCP reset (RST) instead of a FIN: SO_LINGER with a zero timeout."""
    transport: Any = raw.transport
    transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abortConnection()


class App:
    """A site whose routes tests add: ``/ok`` always answers :data:`OK_BODY`."""

    def __init__(self, server: Any, **settings: Any) -> None:
        self.tracker = Tracker()
        self.routes: dict[bytes, Callable[[Any], Any]] = {b"ok": self._ok}
        self.handles: dict[str, Any] = {}
        self.sockets: dict[str, str] = {}
        app = self

        class Root(Resource):
            isLeaf = True

            def render(self, request: Any) -> Any:
                route = app.routes.get(request.postpath[0] if request.postpath else b"")
                if route is None:
                    request.setResponseCode(404)
                    return b"no such route\n"
                return route(request)

        self.site = server.serve(Root(), settings=StreamSettings(**settings))
        self.port: int = server.port

    @staticmethod
    def _ok(request: Any) -> Any:
        return stream(request, (OK_BODY[i : i + 4096] for i in range(0, len(OK_BODY), 4096)))

    def route(self, name: str, make: Callable[[Any, str], Any], **keywords: Any) -> None:
        """``/name?id=X`` streams ``make(request, X)``; its handle is ``handles[X]``."""

        def render(request: Any) -> Any:
            ident = request.args.get(b"id", [name.encode()])[0].decode()
            self.sockets[ident] = socket_of(request)
            result = stream(request, make(request, ident), **keywords)
            handle = stream_for(request)
            if handle is not None:
                self.handles[ident] = handle
            return result

        self.routes[name.encode()] = render

    def endless(self, ident: str) -> Iterator[bytes]:
        chunk = b"e" * 4096
        try:
            while True:
                yield chunk
        finally:
            self.tracker.close(ident)

    async def ended(self, ident: str, outcome: Outcome) -> Any:
        """Wait for stream ``ident`` to end with ``outcome``, its source to be released and
        its socket closed; then check the server still serves others."""
        await until(lambda: ident in self.handles, what=f"stream {ident} to start")
        result = await within(self.handles[ident].when_done())
        assert result.outcome is outcome, (result.outcome, result.failure)
        await self.tracker.released(ident)
        await closed(self.sockets[ident])
        await serves_others(self.port)
        return result


# --- clients misbehaving ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_client_resets_mid_stream(server: Any, logged: list[Any]) -> None:
    """A client that resets the connection (RST) mid-stream ends its stream as client-gone;
    nothing is logged as an error."""
    app = App(server)
    app.route("endless", lambda request, ident: app.endless(ident))
    raw = await connect(app.port, get("/endless?id=rst"))
    await within(raw.received_at_least(100 * KIB))
    hard_close(raw)
    await app.ended("rst", Outcome.CLIENT_GONE)
    assert logged_text(logged) == []


@pytest_twisted.ensureDeferred
async def test_client_half_closes(server: Any, logged: list[Any]) -> None:
    """A client that sends its request and then shuts down its sending side (half-close):
    Twisted's HTTPChannel does not implement half-close and treats it as gone (see
    twisted-pitfalls.md), so the stream ends as client-gone at once instead of streaming to
    a client that may or may not still read."""
    app = App(server)
    app.route("endless", lambda request, ident: app.endless(ident))
    raw = await connect(app.port, get("/endless?id=half"))
    raw.transport.loseWriteConnection()  # type: ignore[union-attr]
    await app.ended("half", Outcome.CLIENT_GONE)
    await within(raw.closed)
    assert logged_text(logged) == []


@pytest_twisted.ensureDeferred
async def test_client_stops_reading_stall_timeout(server: Any, logged: list[Any]) -> None:
    """A client that stops reading keeps the stream paused; after the stall timeout (0.3 s)
    the stream is aborted as stalled and counted so."""
    app = App(server, stall_timeout=0.3)
    app.route("endless", lambda request, ident: app.endless(ident))
    raw = await connect(app.port, get("/endless?id=stall"))
    raw.stop_reading()
    result = await app.ended("stall", Outcome.STALLED)
    assert "stalled" in str(result.failure.value)
    assert app.site.metrics.ended[Outcome.STALLED] == 1
    raw.resume_reading()  # a client that does not read does not see the close either
    await within(raw.closed)
    assert logged_text(logged) == []


class TrickleReader:
    """A plain non-blocking socket with a small receive buffer that reads ``size`` bytes
    every ``period`` seconds from the reactor (a slow client, paced in tenths of a second)."""

    def __init__(self, port: int, path: str, size: int, period: float = 0.1) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * KIB)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(get(path))
        self.sock.setblocking(False)
        self.size = size
        self.received = 0
        self.eof = False
        self.loop = LoopingCall(self._read)
        self.loop.clock = reactor
        self.loop.start(period, now=False)

    def _read(self) -> None:
        # Up to ``size`` bytes per tick, in as many reads as the small buffer needs.
        got = 0
        while got < self.size:
            try:
                data = self.sock.recv(self.size - got)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.eof = True
                self.loop.stop()
                return
            got += len(data)
            self.received += len(data)

    def close(self) -> None:
        if self.loop.running:
            self.loop.stop()
        self.sock.close()


def small_send_buffer(request: Any) -> None:
    """Fix the server socket's send buffer (no autotuning) so the bytes in flight, and so
    the time a reader needs to drain them, are known."""
    request.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * KIB)


IN_FLIGHT_BOUND = 256 * KIB
"""Most body bytes that may be sent but not yet read by a slow client: Twisted's 64 KiB
transport buffer and the two fixed 16 KiB socket buffers (which Linux doubles) make 128 KiB;
the bound leaves room for our one 64 KiB buffer and more."""


@pytest_twisted.ensureDeferred
async def test_client_reading_one_byte_a_tick_is_stalled(server: Any, logged: list[Any]) -> None:
    """A client reading one byte every tenth of a second (10 B/s) never empties the
    transport's buffer, so the stream stays paused for the whole stall timeout (0.5 s) and
    is aborted as stalled. Decision: a reader slower than about (64 KiB + socket buffers) /
    stall_timeout counts as not reading; while it is connected memory stays bounded."""
    app = App(server, stall_timeout=0.5)

    def make(request: Any, ident: str) -> Iterator[bytes]:
        small_send_buffer(request)
        return app.endless(ident)

    app.route("endless", make)
    reader = TrickleReader(app.port, "/endless?id=trickle", size=1)
    try:
        await until(lambda: "trickle" in app.handles, what="the stream to start")
        handle = app.handles["trickle"]
        await until(lambda: handle.paused, what="the stream to pause")
        await app.ended("trickle", Outcome.STALLED)
        assert handle.bytes_sent - reader.received < IN_FLIGHT_BOUND
        assert reader.received >= 1
    finally:
        reader.close()
    assert logged_text(logged) == []


@pytest_twisted.ensureDeferred
async def test_slow_client_that_drains_keeps_streaming(server: Any, logged: list[Any]) -> None:
    """A slow client (16 KiB every tenth of a second) pauses the stream again and again,
    but empties the buffer within the stall timeout (1 s) each time, so the stream keeps
    going for several stall timeouts, and what is in flight stays bounded all along."""
    app = App(server, stall_timeout=1.0)

    def make(request: Any, ident: str) -> Iterator[bytes]:
        small_send_buffer(request)
        return app.endless(ident)

    app.route("endless", make)
    reader = TrickleReader(app.port, "/endless?id=slow", size=64 * KIB)
    try:
        await until(lambda: "slow" in app.handles, what="the stream to start")
        handle = app.handles["slow"]
        in_flight = []
        for _ in range(35):  # 3.5 s: three and a half stall timeouts
            await deferLater(reactor, 0.1, lambda: None)
            in_flight.append(handle.bytes_sent - reader.received)
            assert handle.outcome is None, "the slow reader was cut off"
        assert max(in_flight) < IN_FLIGHT_BOUND
        assert handle.pause_count >= 3, "paused and resumed repeatedly"
        assert reader.received > 3 * max(in_flight), "it moved well past what is buffered"
    finally:
        reader.close()
    await app.ended("slow", Outcome.CLIENT_GONE)
    assert logged_text(logged) == []


# --- sources misbehaving ----------------------------------------------------------------


def raising(tracker: Tracker, ident: str, before: bytes) -> Iterator[bytes]:
    try:
        if before:
            yield before
        raise RuntimeError("the source broke on purpose")
    finally:
        tracker.close(ident)


@pytest_twisted.ensureDeferred
async def test_source_raises_mid_stream(server: Any, logged: list[Any]) -> None:
    """A source raising after the headers went out: the client gets what was sent and then
    an incomplete body (no chunked terminator); the failure is logged once."""
    app = App(server)
    app.route("raise", lambda request, ident: raising(app.tracker, ident, b"r" * 50_000))
    response = await exchange(app.port, get("/raise?id=mid"))
    await app.ended("mid", Outcome.SOURCE_FAILED)
    code, headers, body = parse(response)
    assert code == 200
    assert headers["transfer-encoding"] == "chunked"
    assert not body.endswith(b"0\r\n\r\n")
    assert b"r" * 1000 in body
    assert [t for t in logged_text(logged) if "broke on purpose" in t] == logged_text(logged)
    assert len(logged) == 1


@pytest_twisted.ensureDeferred
async def test_source_raises_before_the_first_byte(server: Any, logged: list[Any]) -> None:
    """A source raising before anything was sent gives a 500 page without a traceback (the
    site does not display tracebacks); the traceback goes to the log only."""
    app = App(server)
    app.route("raise", lambda request, ident: raising(app.tracker, ident, b""))
    code, _, body = parse(await exchange(app.port, get("/raise?id=early", version="1.0")))
    await app.ended("early", Outcome.SOURCE_FAILED)
    assert code == 500
    assert b"Traceback" not in body
    assert b"broke on purpose" not in body
    assert len(logged) == 1


async def hanging_async(tracker: Tracker, ident: str) -> AsyncIterator[bytes]:
    try:
        yield b"first;"
        await Deferred()  # never fires
        yield b"never"
    finally:
        tracker.close(ident)


def hanging_sync(tracker: Tracker, ident: str) -> Iterator[object]:
    try:
        yield b"first;"
        yield Deferred()  # never fires
    finally:
        tracker.close(ident)


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest_twisted.ensureDeferred
async def test_source_hangs_idle_timeout(server: Any, logged: list[Any], kind: str) -> None:
    """A source that waits forever fails the stream after the idle timeout (0.3 s): the
    wait is cancelled, the generator's ``finally`` runs and the connection is aborted."""
    app = App(server, idle_timeout=0.3)
    make = hanging_sync if kind == "sync" else hanging_async
    app.route("hang", lambda request, ident: make(app.tracker, ident))
    raw = await connect(app.port, get("/hang?id=hang"))
    result = await app.ended("hang", Outcome.SOURCE_FAILED)
    assert result.failure.check(SourceIdleTimeout)
    await within(raw.closed)
    assert b"first;" in bytes(raw.received)
    assert not bytes(raw.received).endswith(b"0\r\n\r\n")
    assert [t for t in logged_text(logged) if "SourceIdleTimeout" in t] == logged_text(logged)


def wrong_type(tracker: Tracker, ident: str, first: bytes) -> Iterator[object]:
    try:
        if first:
            yield first
        yield {"not": "bytes"}
    finally:
        tracker.close(ident)


@pytest.mark.parametrize("first", [b"", b"ok;"], ids=["before-headers", "after-bytes"])
@pytest_twisted.ensureDeferred
async def test_source_yields_a_wrong_type(server: Any, logged: list[Any], first: bytes) -> None:
    """A source yielding something that is not body data fails its stream (500 before the
    headers, an aborted body after) with a ChunkTypeError naming the type."""
    app = App(server)
    app.route("wrong", lambda request, ident: wrong_type(app.tracker, ident, first))
    response = await exchange(app.port, get("/wrong?id=wrong", extra="Connection: close\r\n"))
    result = await app.ended("wrong", Outcome.SOURCE_FAILED)
    assert result.failure.check(ChunkTypeError)
    assert "builtins.dict" in str(result.failure.value)
    code, _, body = parse(response)
    if first:
        assert code == 200
        assert body == b"3\r\nok;\r\n", "what was sent, then no chunked terminator"
    else:
        assert code == 500
        assert b"Traceback" not in body
    assert len(logged) == 1


@pytest_twisted.ensureDeferred
async def test_threaded_sources_blocking_every_thread(server: Any, logged: list[Any]) -> None:
    """With a pool of 2 threads and 2 threaded sources blocked inside ``next()``: a third
    threaded stream waits for a thread (nothing sent), other streams are unaffected, the
    blocked streams' clients leaving ends those streams at once, and each blocked source is
    closed (its ``finally`` runs once) only when its call returns; then the waiting stream
    gets a thread and completes."""
    app = App(server)
    gates = {name: threading.Event() for name in ("a", "b")}

    def blocking(ident: str) -> Iterator[bytes]:
        try:
            yield b"started;"
            gates[ident].wait(timeout=20)  # bounded even if the test fails
            yield b"released;"
        finally:
            app.tracker.close(ident)

    def quick(ident: str) -> Iterator[bytes]:
        try:
            yield b"quick;"
        finally:
            app.tracker.close(ident)

    app.route("block", lambda request, ident: blocking(ident), threaded=True, thread_pool_size=2)
    app.route("quick", lambda request, ident: quick(ident), threaded=True, thread_pool_size=2)
    try:
        blocked = {}
        for name in gates:
            blocked[name] = await connect(app.port, get(f"/block?id={name}"))
            await within(blocked[name].received_at_least(1))
        waiting = await connect(app.port, get("/quick?id=c", version="1.0"))
        await until(lambda: "c" in app.handles, what="the third stream to start")
        await turns(50)
        assert app.handles["c"].bytes_sent == 0
        assert app.handles["c"].state is State.WAITING
        assert bytes(waiting.received) == b""

        await serves_others(app.port)  # a stream on the reactor is not held up

        for name, raw in blocked.items():
            raw.transport.abortConnection()  # type: ignore[union-attr]
            result = await within(app.handles[name].when_done())
            assert result.outcome is Outcome.CLIENT_GONE
        await turns(20)
        assert app.tracker.closed["a"] == app.tracker.closed["b"] == 0, "still inside next()"
        assert app.handles["c"].bytes_sent == 0

        gates["a"].set()
        await app.tracker.released("a")
        await within(app.handles["a"].source_closed)
        await within(waiting.closed)
        assert parse(bytes(waiting.received))[2] == b"quick;"
        await app.tracker.released("c")
        assert app.tracker.closed["b"] == 0
        gates["b"].set()
        await app.tracker.released("b")
        for name in ("a", "b"):
            await closed(app.sockets[name])
        await serves_others(app.port)
    finally:
        for gate in gates.values():
            gate.set()
    assert logged_text(logged) == []


# --- files changing under the stream ----------------------------------------------------


class FileApp(App):
    """An :class:`App` with ``FileResource`` serving ``root`` at ``/files/``."""

    def __init__(self, server: Any, root: Any) -> None:
        super().__init__(server)
        files = FileResource(root)

        def render(request: Any) -> Any:
            request.postpath = request.postpath[1:]
            self.sockets["file"] = socket_of(request)
            result = files.render(request)
            handle = stream_for(request)
            if handle is not None:
                self.handles["file"] = handle
            return result

        self.routes[b"files"] = render


def sparse_file(path: Any, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


@pytest_twisted.ensureDeferred
async def test_file_truncated_while_streaming(
    tmp_path: Any, server: Any, logged: list[Any]
) -> None:
    """A file that shrinks while it is served: the stream fails (FileTruncated) and the
    connection is cut short of the Content-Length, never padded or hung; the file is
    closed."""
    path = tmp_path / "big.bin"
    sparse_file(path, 64 * MIB)
    app = FileApp(server, tmp_path)
    raw = await connect(app.port, get("/files/big.bin"))
    await within(raw.received_at_least(100 * KIB))
    raw.stop_reading()
    await until(lambda: "file" in app.handles and app.handles["file"].paused, what="a pause")
    os.truncate(path, 100 * KIB)
    raw.resume_reading()
    result = await within(app.handles["file"].when_done())
    assert result.outcome is Outcome.SOURCE_FAILED
    assert result.failure.check(FileTruncated)
    await within(raw.closed)
    code, headers, body = parse(bytes(raw.received))
    assert code == 200
    assert int(headers["content-length"]) == 64 * MIB
    assert len(body) < 64 * MIB
    await closed(str(path))
    await closed(app.sockets["file"])
    await serves_others(app.port)
    assert [t for t in logged_text(logged) if "FileTruncated" in t] == logged_text(logged)


@pytest_twisted.ensureDeferred
async def test_file_deleted_while_streaming(tmp_path: Any, server: Any, logged: list[Any]) -> None:
    """A file deleted while it is served: the open descriptor keeps its content, so the
    response completes in full; then the descriptor is closed (the disk space is freed) and
    the path answers 404."""
    path = tmp_path / "gone.bin"
    sparse_file(path, 16 * MIB)
    app = FileApp(server, tmp_path)
    raw = await connect(app.port, get("/files/gone.bin", version="1.0"))
    await within(raw.received_at_least(100 * KIB))
    raw.stop_reading()
    await until(lambda: "file" in app.handles and app.handles["file"].paused, what="a pause")
    os.unlink(path)
    raw.resume_reading()
    result = await within(app.handles["file"].when_done())
    assert result.outcome is Outcome.COMPLETED
    await within(raw.closed)
    code, headers, body = parse(bytes(raw.received))
    assert len(body) == int(headers["content-length"]) == 16 * MIB
    await closed(str(path))
    await closed(app.sockets["file"])
    code, _, _ = parse(await exchange(app.port, get("/files/gone.bin", version="1.0")))
    assert code == 404
    await serves_others(app.port)
    assert logged_text(logged) == []


# --- a thousand streams -----------------------------------------------------------------


class TrackedFile(io.FileIO):
    """A file whose first close is counted (later closes, such as ``__del__``'s, are no-ops
    for the file and are not counted)."""

    def __init__(self, path: Any, tracker: Tracker, ident: str) -> None:
        super().__init__(path, "rb")
        self._tracker = tracker
        self._ident = ident

    def close(self) -> None:
        if not self.closed:
            self._tracker.close(self._ident)
        super().close()


BEHAVIOURS = (
    ("complete", 0.40),  # reads the whole (finite) response
    ("abort", 0.25),  # disconnects (FIN) after a random number of bytes
    ("reset", 0.10),  # resets (RST) after a random number of bytes
    ("early", 0.15),  # disconnects before the source produced more than its first chunk
    ("stall", 0.10),  # stops reading for good: the server's stall timeout ends it
)
KINDS = (("sync", 0.35), ("async", 0.3), ("file", 0.25), ("threaded", 0.1))


class SwarmClient(Protocol):
    """One client of the swarm: holds off reading until told, then plays its behaviour."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.head = b""
        self.body = 0
        self.done: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.write(get(self.spec["path"], version="1.0"))
        transport.pauseProducing()  # nothing is read until go()

    def go(self) -> None:
        if self.spec["behaviour"] != "stall" and self.transport is not None:
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        if not self.head.endswith(b"\r\n\r\n") and b"\r\n\r\n" not in self.head:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            self.head, _, rest = self.head.partition(b"\r\n\r\n")
            self.head += b"\r\n\r\n"
            self.body += len(rest)
        else:
            self.body += len(data)
        behaviour = self.spec["behaviour"]
        if behaviour in ("abort", "reset") and self.body >= self.spec["threshold"]:
            if behaviour == "reset":
                hard_close(self)
            else:
                self.transport.abortConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure | None = None) -> None:  # type: ignore[override]
        self.done.callback(None)


class Swarm:
    """``n`` concurrent streams of mixed kinds with random client behaviours."""

    def __init__(self, server: Any, tmp_path: Any, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.tracker = Tracker()
        self.gates: list[Deferred[None]] = []
        self.go_event = threading.Event()
        self.clients: list[SwarmClient] = []
        self.outcomes: dict[str, Outcome] = {}
        self.handles: weakref.WeakSet[Any] = weakref.WeakSet()
        self.small = tmp_path / "small.bin"
        self.big = tmp_path / "big.bin"
        sparse_file(self.small, MIB)
        sparse_file(self.big, 64 * MIB)
        swarm = self

        class Root(Resource):
            isLeaf = True

            def render(self, request: Any) -> Any:
                return swarm.render(request)

        # A hundred threaded streams are held open at once on 4 threads: all may wait, as
        # long as it takes.
        settings = StreamSettings(
            stall_timeout=0, thread_pool_size=4, thread_queue_size=1000, thread_queue_timeout=0
        )
        site = StreamSite(Root(), settings=settings)
        # A backlog for a thousand simultaneous connects (the default is 50).
        self.port = reactor.listenTCP(0, site, backlog=1024, interface="127.0.0.1")
        server.ports.append(self.port)
        self.site = site

    # Server side.

    def release(self) -> None:
        """Let every source and client go (also what a failing test's cleanup does)."""
        gates, self.gates = self.gates, []
        for gate in gates:
            if not gate.called:
                gate.callback(None)
        self.go_event.set()
        for client in self.clients:
            client.go()

    def abort_all(self) -> None:
        self.release()
        for client in self.clients:
            if client.transport is not None and not client.done.called:
                client.transport.abortConnection()  # type: ignore[attr-defined]

    def gate(self) -> Deferred[None]:
        """What a source waits on until :meth:`release`; fired at once after it (a source
        that had not reached its gate by then must not wait forever)."""
        d: Deferred[None] = Deferred()
        if self.go_event.is_set():
            d.callback(None)
        else:
            self.gates.append(d)
        return d

    def render(self, request: Any) -> Any:
        args = {k.decode(): v[0].decode() for k, v in request.args.items()}
        ident, kind, size = args["id"], args["kind"], int(args["size"])
        keywords: dict[str, Any] = {}
        if args.get("stall"):
            keywords["stall_timeout"] = 0.5
        source: object
        if kind == "file":
            small_send_buffer(request)  # so the file cannot all fit in buffers before go
            source = TrackedFile(self.small if size else self.big, self.tracker, ident)
        elif kind == "async":
            source = self.async_source(ident, size)
        elif kind == "threaded":
            source = self.threaded_source(ident, size)
            keywords["threaded"] = True
        else:
            source = self.sync_source(ident, size)
        result = stream(request, source, **keywords)
        handle = stream_for(request)
        assert handle is not None
        self.handles.add(handle)
        handle.when_done().addCallback(lambda r: self.outcomes.__setitem__(ident, r.outcome))
        return result

    @staticmethod
    def chunks(size: int) -> Iterator[bytes]:
        chunk = b"s" * 8192
        if not size:
            while True:
                yield chunk
        for offset in range(0, size, len(chunk)):
            yield chunk[: size - offset]

    def sync_source(self, ident: str, size: int) -> Iterator[object]:
        try:
            yield b"hello\n"
            yield self.gate()
            yield from self.chunks(size)
        finally:
            self.tracker.close(ident)

    async def async_source(self, ident: str, size: int) -> AsyncIterator[bytes]:
        try:
            yield b"hello\n"
            await self.gate()
            for n, chunk in enumerate(self.chunks(size)):
                if n % 16 == 0:
                    await deferLater(reactor, 0, lambda: None)
                yield chunk
        finally:
            self.tracker.close(ident)

    def threaded_source(self, ident: str, size: int) -> Iterator[bytes]:
        try:
            yield b"hello\n"
            self.go_event.wait(timeout=30)  # holds a pool thread until go
            yield from self.chunks(size)
        finally:
            self.tracker.close(ident)

    # Client side.

    def specs(self, n: int) -> list[dict[str, Any]]:
        def pick(table: tuple[tuple[str, float], ...]) -> str:
            return self.rng.choices([k for k, _ in table], [w for _, w in table])[0]

        specs = []
        for i in range(n):
            kind, behaviour = pick(KINDS), pick(BEHAVIOURS)
            if kind == "file" and behaviour == "stall":
                behaviour = "abort"  # a file streams before go: its stall timer would run early
            size = self.rng.randrange(1, 128 * KIB) if behaviour == "complete" else 0
            if kind == "file" and size:
                size = MIB  # the small file
            path = f"/s?id={i}&kind={kind}&size={size}" + (
                "&stall=1" if behaviour == "stall" else ""
            )
            expected = size if kind == "file" else len(b"hello\n") + size
            specs.append(
                {
                    "id": str(i),
                    "kind": kind,
                    "behaviour": behaviour,
                    "path": path,
                    "expected": expected,
                    "threshold": self.rng.randrange(1, 256 * KIB),
                }
            )
        return specs

    async def run(self, n: int) -> dict[str, Any]:
        """Start ``n`` streams at once, let every client behave, wait for the end."""
        specs = self.specs(n)
        clients = [SwarmClient(spec) for spec in specs]
        factories = []
        for client in clients:
            factory = ClientFactory()
            factory.protocol = lambda client=client: client  # type: ignore[assignment]
            factories.append(factory)
            reactor.connectTCP("127.0.0.1", self.port.getHost().port, factory)
        self.clients = clients
        try:
            await until(lambda: len(self.site.active_streams) == n, timeout=30)
        except AssertionError:
            raise AssertionError(
                f"seed {self.seed}: {len(self.site.active_streams)} of {n} streams active, "
                f"{self.site.metrics.started} started, "
                f"{Counter(o.value for o in self.outcomes.values())} ended"
            ) from None
        peak = len(self.site.active_streams)
        peak_fds = len(os.listdir("/proc/self/fd"))
        for client in clients:
            if client.spec["behaviour"] == "early":
                client.transport.abortConnection()  # type: ignore[union-attr]
        self.release()
        try:
            await until(lambda: not self.site.active_streams, timeout=30)
        except AssertionError:
            left = Counter(
                (spec["kind"], spec["behaviour"], h.state.value, h.bytes_sent > 0)
                for h in self.site.active_streams
                for spec in specs
                if h.request.args[b"id"][0].decode() == spec["id"]
            )
            raise AssertionError(f"seed {self.seed}: streams that never ended: {left}") from None
        await until(
            lambda: sum(self.tracker.closed.values()) >= n,
            timeout=30,
            what="every source to be released",
        )
        for client in clients:  # stalled clients see the server's close once they read
            if client.transport is not None:
                client.transport.resumeProducing()  # type: ignore[attr-defined]
        await until(lambda: all(c.done.called for c in clients), timeout=30, what="clients")
        self.go_event.clear()
        return {"specs": specs, "clients": clients, "peak": peak, "peak_fds": peak_fds}


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def settle() -> tuple[int, int, int]:
    """Open descriptors, threads and objects tracked by the garbage collector, once garbage
    is collected."""
    gc.collect()
    return len(os.listdir("/proc/self/fd")), threading.active_count(), len(gc.get_objects())


@pytest_twisted.ensureDeferred
async def test_a_thousand_concurrent_streams_with_random_disconnects(
    server: Any, tmp_path: Any, logged: list[Any]
) -> None:
    """1,000 concurrent streams (sync, async, threaded and file sources) whose clients
    complete, disconnect, reset, leave early or stall at random: every stream ends with the
    outcome its client caused, every source is released exactly once, no Stream object
    survives, and descriptors, threads and the objects alive return to their baseline (fewer
    than one object per stream survives; not RSS, which the allocator moves by tens of MiB
    while a leak of a few objects per stream barely shows in it)."""
    n = 1000
    seed = random.randrange(1 << 30)
    swarm = Swarm(server, tmp_path, seed)
    try:
        await swarm.run(n)  # warm-up: pool threads, caches and allocator arenas
        swarm.tracker.closed.clear()
        swarm.outcomes.clear()
        swarm.clients = []  # as at the end, so the two counts of objects compare
        fds, threads, objects = settle()
        run = await swarm.run(n)
    finally:
        swarm.abort_all()
    swarm.clients = []
    assert run["peak"] == n
    assert run["peak_fds"] >= fds + 2 * n, "both ends of every connection were open at once"
    expected = {
        "complete": Outcome.COMPLETED,
        "abort": Outcome.CLIENT_GONE,
        "reset": Outcome.CLIENT_GONE,
        "early": Outcome.CLIENT_GONE,
        "stall": Outcome.STALLED,
    }
    wrong = [
        (spec["id"], spec["kind"], spec["behaviour"], swarm.outcomes.get(spec["id"]))
        for spec in run["specs"]
        if swarm.outcomes.get(spec["id"]) is not expected[spec["behaviour"]]
    ]
    assert wrong == [], f"seed {seed}"
    short = [
        (c.spec["id"], c.spec["kind"], c.body, c.spec["expected"])
        for c in run["clients"]
        if c.spec["behaviour"] == "complete"
        and (c.body != c.spec["expected"] or not c.head.startswith(b"HTTP/1.0 200"))
    ]
    assert short == [], f"seed {seed}"
    closes = Counter(swarm.tracker.closed.values())
    assert len(swarm.tracker.closed) == n and closes == {1: n}, f"seed {seed}: {closes}"
    behaviours = Counter(spec["behaviour"] for spec in run["specs"])
    assert all(behaviours[b] > 0 for b in expected), behaviours
    del run

    await until(lambda: settle()[0] <= fds, what=f"descriptors back to {fds}")
    await until(lambda: settle()[1] <= threads, what=f"threads back to {threads}")
    assert not list(swarm.handles), "Stream objects survived their streams"
    grown = settle()[2] - objects
    assert grown < n, f"{grown} more objects alive after {n} streams"
    assert logged_text(logged) == []


# --- hostile requests -------------------------------------------------------------------

MARKER = b"TOP-SECRET-7f3a"
"""The content of a file outside the served root: no response may ever contain it."""


class HostileApp(App):
    """``/files/`` (a ``FileResource``), ``/stream`` (a generator) and ``/events`` (an event
    stream resuming from ``Last-Event-ID``) on one site."""

    def __init__(self, server: Any, base: Any) -> None:
        super().__init__(server)
        root = base / "root"
        (root / "sub").mkdir(parents=True)
        (root / "data.bin").write_bytes(bytes(range(256)) * 4)
        (root / "empty.txt").write_bytes(b"")
        (root / "sub" / "page.html").write_text("<p>page</p>")
        (root / ".hidden").write_bytes(MARKER)
        (base / "secret.txt").write_bytes(MARKER)
        os.symlink(base / "secret.txt", root / "escape")
        os.symlink(base, root / "up")
        files = FileResource(root)
        events = EventStreamResource(
            lambda request, last_id: iter([Event(f"resumed after {last_id!r}")]), heartbeat=None
        )

        def serve_files(request: Any) -> Any:
            request.postpath = request.postpath[1:]
            return files.render(request)

        def serve_events(request: Any) -> Any:
            return events.render(request)

        self.routes[b"files"] = serve_files
        self.routes[b"events"] = serve_events
        self.routes[b"stream"] = lambda request: stream(request, iter([b"a", "b", b"c" * 5000]))


def check_answer(response: bytes, what: str) -> int:
    """A complete status line with a code below 500, and no secret or traceback (a head
    over ``max_header_size`` gets 431, a request line over it 414: never a bare close)."""
    what = what if len(what) < 300 else what[:300] + "..."
    assert response.startswith(b"HTTP/1."), f"{what}: no HTTP response: {response[:100]!r}"
    code = int(response.split(b" ", 2)[1])
    assert code < 500, f"{what}: {response[:300]!r}"
    assert b"Traceback" not in response, what
    assert MARKER not in response, f"{what} leaked the secret"
    return code


ANY_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0, max_codepoint=255, blacklist_characters="\r\n"),
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    ),
    max_size=120,
)
NUMBER = st.from_regex(r"\A[+-]?[0-9]{0,30}\Z")
RANGES = st.lists(
    st.one_of(
        st.tuples(NUMBER, NUMBER).map("-".join),
        NUMBER.map(lambda n: "-" + n),
        ANY_TEXT,
    ),
    max_size=12,
).map(lambda specs: "bytes=" + ",".join(specs)) | st.builds(
    lambda unit, rest: unit + "=" + rest,
    st.sampled_from(["bytes", "BYTES", "items", ""]),
    ANY_TEXT,
)
ETAGS = st.lists(
    st.one_of(st.just("*"), st.from_regex(r'\A(W/)?"?[!#-~]{0,24}"?\Z'), ANY_TEXT), max_size=6
).map(", ".join)
DATES = st.one_of(
    st.sampled_from(
        [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Mon, 32 Foo 2024 99:99:99 GMT",
            "Tue, 29 Feb 2100 00:00:00 GMT",
            "-1",
        ]
    ),
    st.builds(
        "{}, {:02d} {} {} {:02d}:{:02d}:{:02d} GMT".format,
        st.sampled_from(["Mon", "Xyz", ""]),
        st.integers(-5, 99),
        st.sampled_from(["Jan", "Feb", "Foo"]),
        st.integers(-1, 10**12),
        st.integers(0, 99),
        st.integers(0, 99),
        st.integers(0, 99),
    ),
    ANY_TEXT,
)
LONG = st.one_of(
    st.integers(2_000, 20_000).map(lambda n: "bytes=" + "0-," * (n // 3) + "0-"),
    st.integers(2_000, 20_000).map(lambda n: '"' + "x" * n + '"'),
    st.integers(2_000, 20_000).map(lambda n: "9" * n),
)
HEADERS = {
    "Range": RANGES,
    "If-Range": st.one_of(ETAGS, DATES),
    "If-Match": ETAGS,
    "If-None-Match": ETAGS,
    "If-Modified-Since": DATES,
    "If-Unmodified-Since": DATES,
    "Last-Event-ID": ANY_TEXT,
    "Accept-Encoding": st.one_of(st.just("gzip"), ANY_TEXT),
}
HEADER_SETS = st.lists(
    st.sampled_from(sorted(HEADERS)).flatmap(
        lambda name: st.tuples(st.just(name), st.one_of(HEADERS[name], LONG))
    ),
    max_size=4,
)
TARGETS = st.sampled_from(
    [
        "/files/data.bin",
        "/files/empty.txt",
        "/files/sub/",
        "/files/sub",
        "/files/missing",
        "/stream",
        "/events",
    ]
)


@pytest.fixture
def hostile(server: Any, tmp_path_factory: Any) -> HostileApp:
    return HostileApp(server, tmp_path_factory.mktemp("hostile"))


@pytest_twisted.ensureDeferred
async def test_hostile_request_headers_never_give_a_500(
    hostile: HostileApp, logged: list[Any]
) -> None:
    """Malformed and hostile Range, If-*, Last-Event-ID and Accept-Encoding values (and very
    long ones) on the file, stream and event-stream resources, sent raw on a socket: every
    answer is a 4xx or a normal answer, never a 500, a traceback or an error in the log.

    Hypothesis runs in a worker thread (its examples block on each exchange) while the
    reactor serves them in the test's thread."""

    def in_reactor(make: Callable[[], Any]) -> Any:
        return blockingCallFromThread(reactor, make)

    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        method=st.sampled_from(["GET", "HEAD"]),
        target=TARGETS,
        headers=HEADER_SETS,
        encoding=st.sampled_from(["utf-8", "latin-1"]),
    )
    def check(method: str, target: str, headers: list[tuple[str, str]], encoding: str) -> None:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
        head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        request = (head + lines + "\r\n").encode(encoding, "replace")
        response = in_reactor(lambda: within(ensureDeferred(exchange(hostile.port, request))))
        check_answer(response, f"{method} {target} with {headers!r}")
        in_reactor(lambda: deferLater(reactor, 0, lambda: None))  # let log events land
        assert logged_text(logged) == []

    await within(deferToThread(check), timeout=120)
    await serves_others(hostile.port)


TRAVERSALS = [
    "/files/../secret.txt",
    "/files/..%2fsecret.txt",
    "/files/..%2Fsecret.txt",
    "/files/%2e%2e/secret.txt",
    "/files/%2e%2e%2fsecret.txt",
    "/files/%252e%252e/secret.txt",
    "/files/%252e%252e%252fsecret.txt",
    "/files/....//secret.txt",
    "/files/..;/secret.txt",
    "/files/.%2e/secret.txt",
    "/files/%2e./secret.txt",
    "/files/sub/../../secret.txt",
    "/files/sub/%2e%2e/%2e%2e/secret.txt",
    "/files/sub/..%2f..%2fsecret.txt",
    "/files/..\\secret.txt",
    "/files/%5c..%5csecret.txt",
    "/files/sub/..%5c..%5csecret.txt",
    "/files/%c0%ae%c0%ae/secret.txt",
    "/files/%c0%ae%c0%ae%c0%afsecret.txt",
    "/files/%e0%80%ae%e0%80%ae/secret.txt",
    "/files/%u002e%u002e/secret.txt",
    "/files/..%00/secret.txt",
    "/files/..%0d%0a/secret.txt",
    "/files//secret.txt",
    "/files///..//..//secret.txt",
    "/files/%2fsecret.txt",
    "/files/%2f..%2fsecret.txt",
    "/files/escape",
    "/files/escape/",
    "/files/up/secret.txt",
    "/files/up/root/data.bin",
    "/files/.hidden",
    "/files/%2ehidden",
    "/files/sub/../.hidden",
    "/files/data.bin%00",
    "/files/data.bin%00.txt",
    "/files/%00",
    "/files/%ff%fe%fd",
    "/files/data.bin/",
    "/files/data.bin/..",
    "/files/data.bin/../../secret.txt",
    "/files/./data.bin",
    "/files/sub/./page.html",
    "/files/" + "a" * 300,
    "/files/" + "a/" * 2500,
    "/files/" + "../" * 1000 + "secret.txt",
    "/files/" + "%2e%2e%2f" * 500 + "secret.txt",
    "http://127.0.0.1/files/../secret.txt",
    "http://evil.example/files/../secret.txt",
    "/files/?../../secret.txt",
    "/files/#/../secret.txt",
    "*",
    "files/../secret.txt",
    "/files/\x7f",
    "/files/%7f",
    "/files/sub/page.html?;/../../secret.txt",
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest_twisted.ensureDeferred
async def test_path_traversal_corpus_against_file_resource(
    hostile: HostileApp, logged: list[Any], method: str
) -> None:
    """Path traversal and malformed paths sent verbatim to ``FileResource``: each answers
    4xx (or a redirect, or the file when the path names one inside the root), never the
    secret outside the root or a dotfile, never a 500 or a traceback."""
    codes: Counter[int] = Counter()
    for target in TRAVERSALS:
        request = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        raw = request.encode("latin-1")
        code = check_answer(await exchange(hostile.port, raw), target)
        codes[code] += 1
    assert all(code in (200, 301) or 400 <= code < 500 for code in codes), codes
    assert codes[200] <= 2, "only ./data.bin and sub/./page.html name files inside the root"
    assert logged_text(logged) == []
    await serves_others(hostile.port)

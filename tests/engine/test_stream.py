"""End-to-end behaviour of ``stream()`` against a real Site on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.web._newclient import ResponseFailed
from twisted.web.client import PotentialDataLoss

from twisted_stream import Outcome, State, stream

from ..conftest import Served, serve_streams
from ..rawclient import connect, get
from ..waiting import settled_pause, turns, until, within


def serve(server: Any, make: Any, **kwargs: Any) -> Served:
    return serve_streams(server, lambda request: stream(request, make(), **kwargs))


@pytest_twisted.ensureDeferred
async def test_chunks_arrive_while_the_source_is_still_blocked(server: Any, client: Any) -> None:
    """The client receives chunk 1 while the source is still waiting to produce chunk 2."""
    gate: Deferred[bytes] = Deferred()
    serve(server, lambda: iter([b"chunk-1;", gate, b"chunk-3"]))
    response = await client.get(server.url())
    got: list[bytes] = []
    first: Deferred[None] = Deferred()

    def collect(data: bytes) -> None:
        got.append(data)
        if not first.called:
            first.callback(None)

    body = treq.collect(response, collect)
    await within(first)
    assert b"".join(got) == b"chunk-1;"
    assert not gate.called
    gate.callback(b"chunk-2;")
    await within(body)
    assert b"".join(got) == b"chunk-1;chunk-2;chunk-3"


@pytest_twisted.ensureDeferred
async def test_a_client_that_stops_reading_stops_the_source(server: Any) -> None:
    """Pulls from an endless source stop while the client does not read, and resume after."""
    pulled = [0]

    def endless() -> Iterator[bytes]:
        chunk = b"x" * 1000
        while True:
            pulled[0] += 1
            yield chunk

    served = serve(server, endless)
    raw = await connect(server.port, get())
    raw.stop_reading()
    handle = await served.first()
    at_pause = await settled_pause(handle, lambda: pulled[0])
    await turns(50)
    assert handle.state is State.PAUSED
    assert pulled[0] == at_pause, "nothing is pulled while paused"
    # Bound: kernel socket buffers on loopback plus Twisted's 64 KiB plus our one buffer.
    assert at_pause * 1000 < 16 * 1024 * 1024
    producer = handle._producer
    held = 0 if producer._carry is None else len(producer._carry) - producer._carry_at
    assert held <= 65536, "at most one buffer is held beyond the transport's"
    raw.resume_reading()
    await until(lambda: pulled[0] > at_pause + 100, what="pulling to resume")
    raw.transport.abortConnection()  # type: ignore[union-attr]
    result = await within(handle.when_done())
    assert result.outcome is Outcome.CLIENT_GONE


def _sync(events: list[str]) -> Iterator[bytes]:
    try:
        while True:
            yield b"s" * 1000
    finally:
        events.append("finally")


def _deferreds(events: list[str]) -> Iterator[object]:
    try:
        yield b"first"
        while True:
            yield deferLater(reactor, 0.001, lambda: b"d")
    finally:
        events.append("finally")


async def _async(events: list[str]) -> AsyncIterator[bytes]:
    try:
        yield b"first"
        while True:
            await deferLater(reactor, 0.001, lambda: None)
            yield b"a"
    finally:
        events.append("finally")


def _threaded(events: list[str]) -> Iterator[bytes]:
    try:
        while True:
            time.sleep(0.001)
            yield b"t"
    finally:
        events.append("finally")


@pytest.mark.parametrize(
    ("make", "threaded"),
    [(_sync, False), (_deferreds, False), (_async, False), (_threaded, True)],
    ids=["sync", "deferreds", "async", "threaded"],
)
@pytest.mark.parametrize("how", ["close", "reset"])
@pytest_twisted.ensureDeferred
async def test_disconnect_mid_stream_runs_finally(
    server: Any, make: Any, threaded: bool, how: str
) -> None:
    """A client leaving mid-stream (FIN or RST) closes each source kind; its finally runs."""
    events: list[str] = []
    served = serve(server, lambda: make(events), threaded=threaded)
    raw = await connect(server.port, get())
    await within(raw.received_at_least(200))
    handle = await served.first()
    assert raw.transport is not None
    if how == "close":
        raw.transport.loseConnection()
    else:
        raw.transport.abortConnection()  # type: ignore[attr-defined]
    result = await within(handle.when_done())
    assert result.outcome is Outcome.CLIENT_GONE
    await within(handle.source_closed)
    assert events == ["finally"]


@pytest_twisted.ensureDeferred
async def test_error_mid_stream_gives_an_incomplete_body(server: Any, client: Any) -> None:
    """A source failing after the headers went out: the client sees a truncated body."""

    def failing() -> Iterator[object]:
        yield b"x" * 100
        yield deferLater(reactor, 0, lambda: None)
        raise RuntimeError("mid-stream")

    serve(server, failing)
    response = await client.get(server.url())
    assert response.code == 200
    with pytest.raises((ResponseFailed, PotentialDataLoss)):
        await within(response.content())


@pytest_twisted.ensureDeferred
async def test_error_mid_stream_with_length_closes_short(server: Any, client: Any) -> None:
    """With a Content-Length the failing body is closed short of it."""

    def failing() -> Iterator[object]:
        yield b"x" * 100
        yield deferLater(reactor, 0, lambda: None)
        raise RuntimeError("mid-stream")

    serve(server, failing, content_length=1000)
    response = await client.get(server.url())
    with pytest.raises((ResponseFailed, PotentialDataLoss)):
        await within(response.content())


@pytest_twisted.ensureDeferred
async def test_error_before_the_body_gives_500(server: Any, client: Any) -> None:
    """A source failing before anything was sent answers 500."""

    def failing() -> Iterator[bytes]:
        raise RuntimeError("early")
        yield b""  # pragma: no cover

    serve(server, failing)
    response = await client.get(server.url())
    assert response.code == 500
    body = await response.text()
    assert "Internal Server Error" in body
    assert "early" not in body


@pytest_twisted.ensureDeferred
async def test_head_does_not_iterate(server: Any, client: Any) -> None:
    """HEAD answers with the headers and never runs the generator's body."""
    ran: list[bool] = []

    def gen() -> Iterator[bytes]:
        ran.append(True)
        yield b"body"

    served = serve(server, gen, content_type="text/plain")
    response = await client.head(server.url())
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["text/plain"]
    result = await within((await served.first()).when_done())
    assert result.outcome is Outcome.COMPLETED
    assert ran == []


@pytest_twisted.ensureDeferred
async def test_http10_body_is_delimited_by_close(server: Any) -> None:
    """An HTTP/1.0 client gets an unchunked body ended by the connection closing."""
    serve(server, lambda: iter([b"hello ", b"world"]))
    raw = await connect(server.port, get(version="1.0"))
    await within(raw.closed)
    head, _, body = bytes(raw.received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"hello world"


@pytest_twisted.ensureDeferred
async def test_pipelined_requests_after_a_streamed_response(server: Any) -> None:
    """Two pipelined requests on one keep-alive connection both get complete answers."""
    count = [0]

    def numbered() -> Iterator[bytes]:
        count[0] += 1
        n = count[0]
        for i in range(3):
            yield f"r{n}.{i};".encode()

    serve(server, numbered)
    raw = await connect(server.port, get() + get(extra="Connection: close\r\n"))
    await within(raw.closed)
    data = bytes(raw.received)
    assert data.count(b"HTTP/1.1 200") == 2
    assert b"7\r\nr1.0;\r\n" in data or b"r1.0;r1.1;r1.2;" in data
    first, second = data.split(b"HTTP/1.1 200")[1:]
    assert first.endswith(b"0\r\n\r\n")
    assert b"r2.0;" in second and second.endswith(b"0\r\n\r\n")


@pytest_twisted.ensureDeferred
async def test_keep_alive_reuses_the_connection(server: Any, keepalive_client: Any) -> None:
    """After a streamed response the same connection serves the next request."""
    serve(server, lambda: iter([b"a" * 70000, b"b"]))
    connections = [0]
    site = server.site
    original = site.buildProtocol

    def counting(addr: Any) -> Any:
        connections[0] += 1
        return original(addr)

    site.buildProtocol = counting
    for _ in range(3):
        response = await keepalive_client.get(server.url())
        assert len(await response.content()) == 70001
    assert connections[0] == 1


@pytest_twisted.ensureDeferred
async def test_half_close_is_treated_as_a_disconnect(server: Any) -> None:
    """A client that sends its request then shuts down writing is treated as gone, as
    Twisted's HTTPChannel does: no body is sent and the source is closed."""
    events: list[str] = []
    served = serve(server, lambda: _deferreds(events))
    raw = await connect(server.port, get())
    assert raw.transport is not None
    raw.transport.loseWriteConnection()  # type: ignore[attr-defined]
    handle = await served.first()
    result = await within(handle.when_done())
    await within(raw.closed)
    assert result.outcome is Outcome.CLIENT_GONE
    assert events == ["finally"]

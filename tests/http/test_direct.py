"""Direct sends (``twisted_stream._http._direct``): the engine's bodies written to the socket
with one ``sendmsg`` per piece instead of through ``Request.write`` and the transport's buffer.

End-to-end cases on real sockets (127.0.0.1) check the bytes a client receives, the
connection's fate and what the stream reports, with a spy counting the writer's sends; unit
cases check how a partial send is split between the socket and the transport.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.web.resource import Resource

from twisted_stream import Outcome, State, stream
from twisted_stream._engine._source import EOF, Ready, SliceDeadline
from twisted_stream._http import _direct
from twisted_stream._http._direct import DirectWriter, chunk_framing
from twisted_stream._sources._stream import stream_source

from ..conftest import Server, leaf, serve_streams
from ..rawclient import connect, get
from ..waiting import turns, until, within
from .test_sendfile import responses

KIB = 1024
SIZES = [65536, 1, 65535, 65537, 200_000, 7, 65536, 65536, 3 * 65536 + 5]
CHUNKS = [os.urandom(size) for size in SIZES]
BODY = b"".join(CHUNKS)


class WriteSpy:
    """Counts the direct writer's ``write`` calls and the bytes passed to them."""

    def __init__(self) -> None:
        self.calls = 0
        self.size = 0

    def wrap(self, real: Any) -> Any:
        def write(writer: DirectWriter, buffers: list[bytes]) -> None:
            self.calls += 1
            self.size += sum(map(len, buffers))
            real(writer, buffers)

        return write


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> WriteSpy:
    found = WriteSpy()
    monkeypatch.setattr(_direct.DirectWriter, "write", found.wrap(_direct.DirectWriter.write))
    return found


def endless() -> Iterator[bytes]:
    """64 KiB chunks for ever."""
    chunk = b"z" * (64 * KIB)
    while True:
        yield chunk


@pytest_twisted.ensureDeferred
async def test_chunked_body_after_the_first_chunk_is_sent_directly(
    server: Server, spy: WriteSpy
) -> None:
    """A generated chunked body arrives byte-exact and correctly framed, its chunks after the
    first sent by the direct writer; the next pipelined request on the same connection is
    answered after it, and the access log counts every body byte."""
    top = Resource()
    top.putChild(b"gen", leaf(lambda request: stream(request, iter(CHUNKS))))
    top.putChild(b"small", leaf(lambda request: stream(request, iter([b"small"]))))
    site = server.serve(top)
    logged: list[int] = []
    site.log = lambda request: logged.append(request.sentLength)
    port = site_port(server)
    raw = await connect(port, get("/gen") + get("/small", extra="Connection: close\r\n"))
    await within(raw.closed)
    answers = responses(bytes(raw.received))
    assert [(status, body) for status, _, body in answers] == [(200, BODY), (200, b"small")]
    assert spy.calls >= len(SIZES) - 1
    framing = sum(len(b"%x\r\n\r\n" % min(size, 65536)) for size in SIZES)
    assert spy.size >= len(BODY) - 65536 and spy.size < len(BODY) + framing
    assert logged == [len(BODY), len(b"small")]


@pytest_twisted.ensureDeferred
async def test_body_with_content_length_is_sent_directly_unframed(
    server: Server, spy: WriteSpy
) -> None:
    """A generated body with a declared Content-Length is sent by the direct writer without
    chunk framing: the client gets exactly the declared bytes."""
    served = serve_streams(
        server, lambda request: stream(request, iter(CHUNKS), content_length=len(BODY))
    )
    raw = await connect(site_port(server), get("/", extra="Connection: close\r\n"))
    await within(raw.closed)
    ((status, headers, body),) = responses(bytes(raw.received))
    assert status == 200 and int(headers["content-length"]) == len(BODY) and body == BODY
    assert spy.calls and spy.size <= len(BODY)
    result = await within((await served.first()).when_done())
    assert result.outcome is Outcome.COMPLETED and result.bytes_sent == len(BODY)


@pytest_twisted.ensureDeferred
async def test_chunks_from_deferreds_with_content_length_arrive_whole(server: Server) -> None:
    """Chunks that arrive later (Deferreds) with a declared Content-Length, the last bytes
    held until the source ends: the whole body arrives, the held bytes included."""

    def later() -> Iterator[object]:
        for chunk in CHUNKS:
            yield deferLater(reactor, 0, lambda chunk=chunk: chunk)

    served = serve_streams(
        server, lambda request: stream(request, later(), content_length=len(BODY))
    )
    raw = await connect(site_port(server), get("/", extra="Connection: close\r\n"))
    await within(raw.closed)
    ((status, _, body),) = responses(bytes(raw.received))
    assert status == 200 and body == BODY
    result = await within((await served.first()).when_done())
    assert result.outcome is Outcome.COMPLETED


class LaterSource:
    """Each read waits a reactor turn for the next of ``results``; once they are all read,
    every read gives EOF at once (as a relay whose upstream has ended does)."""

    def __init__(self, *results: Ready) -> None:
        self.results = list(results)

    def read(self, limit: int, deadline: SliceDeadline) -> Deferred[Ready] | Ready:
        if not self.results:
            return EOF
        return deferLater(reactor, 0, self.results.pop, 0)

    def close(self) -> None:
        pass


@pytest_twisted.ensureDeferred
async def test_held_last_bytes_sent_when_the_end_arrives_later(server: Server) -> None:
    """Headers sent first, a declared Content-Length met by one chunk (held until the end is
    known) and an end that arrives later: the held bytes still reach the client, once."""
    top = Resource()
    top.putChild(
        b"later",
        leaf(
            lambda request: stream_source(
                request, LaterSource(b"hello world", EOF), content_length=11, flush_headers=True
            )
        ),
    )
    server.serve(top)
    raw = await connect(site_port(server), get("/later", extra="Connection: close\r\n"))
    await within(raw.closed)
    ((status, headers, body),) = responses(bytes(raw.received))
    assert (status, headers["content-length"], body) == (200, "11", b"hello world")


@pytest_twisted.ensureDeferred
async def test_reader_that_stops_pauses_direct_sends_then_gets_the_whole_body(
    server: Server, spy: WriteSpy
) -> None:
    """A client that stops reading pauses the stream (no direct send while the socket is
    full, the pause is counted); when it reads again the body arrives complete and exact."""
    served = serve_streams(server, lambda request: stream(request, iter(CHUNKS * 40)))
    raw = await connect(site_port(server), get("/", version="1.0"))
    await within(raw.received_at_least(100 * KIB))
    raw.stop_reading()
    handle = await served.first()
    await until(lambda: handle.state is State.PAUSED, what="the stream to pause")
    calls = spy.calls
    await turns(20)
    assert handle.state is State.PAUSED and spy.calls == calls
    assert handle.pause_count >= 1
    raw.resume_reading()
    await within(raw.closed)
    assert bytes(raw.received).partition(b"\r\n\r\n")[2] == BODY * 40


@pytest_twisted.ensureDeferred
async def test_client_that_resets_mid_body_ends_the_stream(server: Server, spy: WriteSpy) -> None:
    """A client that resets the connection during direct sends ends the stream as
    client-gone, the generator is closed, and no send follows."""
    closed: list[bool] = []

    def source() -> Iterator[bytes]:
        try:
            yield from endless()
        finally:
            closed.append(True)

    served = serve_streams(server, lambda request: stream(request, source()))
    raw = await connect(site_port(server), get("/"))
    await within(raw.received_at_least(4 * 64 * KIB))
    raw.transport.abortConnection()  # type: ignore[union-attr]
    result = await within((await served.first()).when_done())
    assert result.outcome is Outcome.CLIENT_GONE
    assert closed == [True]
    calls = spy.calls
    await turns(20)
    assert spy.calls == calls


def site_port(server: Server) -> int:
    """The port the server's last site listens on."""
    port: int = server.ports[-1].getHost().port
    return port


# --- splitting a partial send -----------------------------------------------------------


class FakeSocket:
    """``sendmsg`` taking the next of ``takes`` bytes (an exception is raised instead)."""

    def __init__(self, *takes: int | OSError) -> None:
        self.takes = list(takes)
        self.sent: list[bytes] = []

    def sendmsg(self, buffers: list[bytes]) -> int:
        take = self.takes.pop(0)
        if isinstance(take, OSError):
            raise take
        self.sent.append(b"".join(buffers)[:take])
        return take


class FakeTransport:
    """What a writer uses of a TCP transport, recording what is handed to it."""

    def __init__(self, sock: FakeSocket) -> None:
        self.sock = sock
        self.buffered: list[bytes] = []
        self.writing = 0
        self.producer: Any = None

    def getHandle(self) -> FakeSocket:
        return self.sock

    def writeSequence(self, data: list[bytes]) -> None:
        self.buffered.extend(data)

    def startWriting(self) -> None:
        self.writing += 1


class Owner:
    """Counts pauses and resumes."""

    def __init__(self) -> None:
        self.pauses = 0
        self.resumes = 0

    def pauseProducing(self) -> None:
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.resumes += 1

    def stopProducing(self) -> None:
        raise AssertionError("not expected")


def writer_on(sock: FakeSocket) -> tuple[DirectWriter, FakeTransport, Owner]:
    transport, owner = FakeTransport(sock), Owner()
    writer = DirectWriter(transport, owner)  # type: ignore[arg-type]
    writer.attached = True
    return writer, transport, owner


@pytest.mark.parametrize("take", [0, 3, 5, 9, 10, 11])
def test_partial_send_hands_exactly_the_rest_to_the_transport(take: int) -> None:
    """Whatever part of the pieces the socket does not take, split anywhere (inside the
    size line, inside the data, inside the closing CRLF), goes to the transport in order,
    the owner pauses once and the transport watches for writability."""
    buffers = chunk_framing(b"abcdef")  # b"6\r\n", b"abcdef", b"\r\n": 11 bytes
    writer, transport, owner = writer_on(FakeSocket(take))
    writer.write(buffers)
    whole = b"".join(buffers)
    assert transport.sock.sent == [whole[:take]]
    assert b"".join(transport.buffered) == whole[take:]
    assert (owner.pauses, transport.writing) == ((1, 1) if take < len(whole) else (0, 0))
    assert writer.direct is (take == len(whole))


def test_full_socket_or_failed_send_leaves_everything_to_the_transport() -> None:
    """A socket that is full (EAGAIN) or failed leaves all the pieces to the transport (which
    sends them, or meets the error and loses the connection); later writes join them there
    until the transport is empty and resumes the writer, which then sends directly again."""
    writer, transport, owner = writer_on(FakeSocket(BlockingIOError(), ConnectionResetError(), 4))
    writer.write([b"one"])
    assert transport.buffered == [b"one"] and owner.pauses == 1
    writer.write([b"two"])  # waiting: straight to the transport, no send
    assert transport.buffered == [b"one", b"two"] and transport.sock.takes[0] is not None
    writer.resumeProducing()
    assert owner.resumes == 1 and writer.direct
    writer.write([b"three"])
    assert transport.buffered == [b"one", b"two", b"three"] and owner.pauses == 2
    writer.resumeProducing()
    writer.write([b"four"])
    assert transport.sock.sent == [b"four"] and owner.pauses == 2


@pytest_twisted.ensureDeferred
async def test_a_request_class_overriding_write_sees_every_body_byte(
    server: Server, spy: WriteSpy, tmp_path: Any
) -> None:
    """A site whose ``Request`` subclass overrides ``write`` (to transform or count the
    body) gets every body byte through it, for a generated body and for a file: neither is
    sent directly nor with ``sendfile``."""
    from pathlib import Path

    from twisted.web.server import Request

    seen: list[int] = []

    class Counting(Request):
        def write(self, data: bytes) -> None:
            seen.append(len(data))
            super().write(data)

    path = Path(tmp_path) / "body.bin"
    path.write_bytes(BODY)
    top = Resource()
    top.putChild(b"gen", leaf(lambda request: stream(request, iter(CHUNKS))))
    top.putChild(b"file", leaf(lambda request: stream(request, path)))
    site = server.serve(top)
    site.requestFactory = Counting
    raw = await connect(
        site_port(server), get("/gen") + get("/file", extra="Connection: close\r\n")
    )
    await within(raw.closed)
    answers = responses(bytes(raw.received))
    assert [(status, body) for status, _, body in answers] == [(200, BODY), (200, BODY)]
    assert spy.calls == 0
    assert sum(seen) == 2 * len(BODY)

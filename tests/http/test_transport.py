"""The socket transport the engine drives itself (``twisted_stream._http._transport``): which
transports qualify, and that what a stream writes is sent at once, without waiting for the
reactor's next turn per buffer. A plain socket client in the test peeks at what has reached
it while the server is still inside ``render``, before the reactor has turned."""

from __future__ import annotations

import pathlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest_twisted
from twisted.internet import reactor, ssl
from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol
from twisted.web.server import Site
from twisted.web.test.requesthelper import DummyRequest

from twisted_stream import stream
from twisted_stream._http._transport import direct_transport, input_waiting

from ..conftest import Server, leaf
from ..rawclient import RawClient, get
from ..waiting import until, within

KIB = 1024


class Peeking:
    """A plain socket client; ``seen`` is what had reached it when ``render`` returned."""

    def __init__(self, server: Server, source: Any) -> None:
        self.seen: bytes | None = None
        self.transports: list[object] = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * KIB)

        def render(request: Any) -> Any:
            self.transports.append(direct_transport(request))
            result = stream(request, source())
            self.seen = self.sock.recv(8 * 1024 * KIB, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return result

        server.serve(leaf(render))
        self.sock.connect(("127.0.0.1", server.port))

    async def request(self, path: str = "/", extra: str = "") -> bytes:
        self.sock.sendall(get(path, extra=extra))
        await until(lambda: self.seen is not None, what="the request to be rendered")
        assert self.seen is not None
        return self.seen

    def close(self) -> None:
        self.sock.close()


@pytest_twisted.ensureDeferred
async def test_a_short_response_is_sent_before_the_reactor_turns(server: Server) -> None:
    """A complete short response (headers, body, chunked terminator) has reached the client
    by the time ``render`` returns: the first byte does not wait for a reactor turn."""
    client = Peeking(server, lambda: iter([b"x" * 1000] * 16))
    try:
        seen = await client.request()
        assert seen.startswith(b"HTTP/1.1 200 OK")
        assert seen.endswith(b"\r\n0\r\n\r\n")
        assert seen.partition(b"\r\n\r\n")[2].count(b"x") == 16000
    finally:
        client.close()


@pytest_twisted.ensureDeferred
async def test_a_response_on_a_closing_connection_is_sent_at_once(server: Server) -> None:
    """With ``Connection: close`` the finished response is sent from ``render`` too, and
    the connection then closes (the flush does what the reactor would: the close follows
    once everything is sent)."""
    client = Peeking(server, lambda: iter([b"x" * 1000] * 16))
    try:
        seen = await client.request(extra="Connection: close\r\n")
        assert seen.endswith(b"\r\n0\r\n\r\n")
        received = bytearray()

        def closed() -> bool:
            try:
                data = client.sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return False
            received.extend(data)
            return not data

        await until(closed, what="the server to close the connection")
        assert bytes(received) == seen
    finally:
        client.close()


@pytest_twisted.ensureDeferred
async def test_buffers_go_out_without_a_reactor_turn_each(server: Server) -> None:
    """Three 64 KiB chunks, each over the transport's 64 KiB pause mark with its framing,
    all reach a client that reads fast within one reactor turn: each is sent as soon as it
    is written, and the stream goes on from there."""

    def chunks() -> Iterator[bytes]:
        for letter in b"abc":
            yield bytes([letter]) * (64 * KIB)

    client = Peeking(server, chunks)
    try:
        seen = await client.request()
        body = seen.partition(b"\r\n\r\n")[2]
        assert body.endswith(b"\r\n0\r\n\r\n")
        for letter in b"abc":
            assert body.count(bytes([letter])) == 64 * KIB
    finally:
        client.close()


@pytest_twisted.ensureDeferred
async def test_direct_transport_is_the_plain_socket_under_http1(server: Server) -> None:
    """A plain TCP connection under HTTP/1.1 qualifies; a request without a socket
    transport (a test double) does not."""
    client = Peeking(server, lambda: iter([b"x"]))
    try:
        await client.request()
        assert client.transports[0] is not None
        assert hasattr(client.transports[0], "doWrite")
    finally:
        client.close()
    assert direct_transport(DummyRequest([b""])) is None


@pytest_twisted.ensureDeferred
async def test_no_direct_transport_under_tls() -> None:
    """Under TLS the engine never writes to the socket itself: bytes must be encrypted."""
    found: list[object] = []

    def render(request: Any) -> Any:
        found.append(direct_transport(request))
        return stream(request, iter([b"secret"]))

    pem = (pathlib.Path(ssl.__file__).parent.parent / "test" / "server.pem").read_bytes()
    port = reactor.listenSSL(
        0,
        Site(leaf(render)),
        ssl.PrivateCertificate.loadPEM(pem).options(),
        interface="127.0.0.1",
    )
    try:
        endpoint = SSL4ClientEndpoint(
            reactor, "127.0.0.1", port.getHost().port, ssl.CertificateOptions()
        )
        raw: Any = await connectProtocol(endpoint, RawClient())
        raw.transport.write(get("/", version="1.0"))
        await within(raw.closed)
        assert bytes(raw.received).endswith(b"secret")
        assert found == [None]
    finally:
        await port.stopListening()


class Handle:
    """A transport whose ``getHandle()`` is ``sock`` (what Twisted's TCP transport gives)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def getHandle(self) -> socket.socket:
        return self.sock


def test_input_waiting_sees_unread_bytes_without_taking_them() -> None:
    """Bytes the peer sent and nobody read yet are seen, and are still there to be read;
    nothing waiting, or the peer's close, is not input."""
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    try:
        assert not input_waiting(Handle(ours))
        peer.sendall(b"GET")
        assert input_waiting(Handle(ours))
        assert ours.recv(10) == b"GET"
        assert not input_waiting(Handle(ours))
        peer.close()
        assert not input_waiting(Handle(ours))
    finally:
        ours.close()


def test_input_waiting_looks_through_a_wrapper_and_not_into_test_transports() -> None:
    """A wrapper (TLS) is looked through to the socket transport in its ``.transport``; a
    ``StringTransport`` has nothing waiting."""
    from twisted.internet.testing import StringTransport

    ours, peer = socket.socketpair()
    try:
        peer.sendall(b"\x16")

        class Wrapper:
            transport = Handle(ours)

        assert input_waiting(Wrapper())
        assert not input_waiting(StringTransport())
    finally:
        ours.close()
        peer.close()

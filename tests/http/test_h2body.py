"""Request bodies over HTTP/2 (``twisted_stream._http._h2body``) against a real HTTP/2
client (the ``h2`` library on TLS, ALPN ``h2``): flow control as the backpressure of a
streamed body, ``100 Continue`` on first read, answers before the body (``RST_STREAM``
``NO_ERROR``), limits of streamed and buffered bodies, a client that resets, the idle
timeout."""

from __future__ import annotations

import hashlib
from typing import Any

import h2.events
import pytest_twisted
from h2.errors import ErrorCodes
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.web.resource import Resource

from twisted_stream import (
    RequestBody,
    RequestBodyIncomplete,
    StreamingResource,
    StreamSettings,
    request_body,
)

from ..waiting import until
from .conftest import TLSServer
from .h2client import DEFAULT_WINDOW, H2Client
from .h2harness import Harness

KIB = 1024
MIB = 1024 * KIB


class Store(StreamingResource):
    """Streams ``PUT`` bodies, hashing them; ``/held`` waits on ``hold`` after the first
    chunk; ``/refuse`` answers 401 without reading. Records bodies, failures, ``finally``."""

    isLeaf = True
    stream_body = True

    def __init__(self) -> None:
        super().__init__()
        self.bodies: dict[bytes, RequestBody] = {}
        self.hold: Deferred[None] = Deferred()
        self.failures: list[BaseException] = []
        self.finally_ran = 0

    async def render_PUT(self, request: Any) -> bytes:
        if request.path == b"/refuse":
            request.setResponseCode(401)
            return b"no\n"
        body = request_body(request)
        self.bodies[request.path] = body
        digest = hashlib.sha256()
        try:
            async for chunk in body:
                digest.update(chunk)
                if request.path == b"/held" and not self.hold.called:
                    await self.hold
        except Exception as e:
            self.failures.append(e)
            raise
        finally:
            self.finally_ran += 1
        return digest.hexdigest().encode() + b"\n"


async def connected(tls_server: TLSServer, **kwargs: Any) -> H2Client:
    client = tls_server.h2_client(**kwargs)
    assert await deferToThread(client.connect) == "h2"
    return client


async def finish(client: H2Client, stream_id: int) -> Any:
    response = client.responses[stream_id]
    await deferToThread(client.read_until, lambda: response.done)
    return response


@pytest_twisted.ensureDeferred
async def test_the_window_stays_closed_while_the_consumer_waits(tls_server: TLSServer) -> None:
    """A streamed upload to a consumer that waits: the client can send one stream window
    (64 KiB) and no more, no WINDOW_UPDATE for the stream comes while the consumer waits;
    released, the rest flows and the digest is right."""
    store = Store()
    tls_server.serve(store, settings=StreamSettings(max_body_size=0))
    client = await connected(tls_server)
    stream_id = await deferToThread(client.request, "PUT", "/held")
    data = bytes(range(256)) * 4096  # 1 MiB
    sent = await deferToThread(client.send_data, stream_id, data, stall=0.5)
    assert sent == DEFAULT_WINDOW
    assert client.send_window(stream_id) == 0
    assert client.window_updates.get(stream_id, 0) == 0
    body = store.bodies[b"/held"]
    assert body.bytes_received == DEFAULT_WINDOW
    store.hold.callback(None)
    await deferToThread(client.send_data, stream_id, data[sent:])
    response = await finish(client, stream_id)
    assert response.status == 200
    assert bytes(response.body).strip() == hashlib.sha256(data).hexdigest().encode()


@pytest_twisted.ensureDeferred
async def test_a_waiting_upload_does_not_hold_the_connection(tls_server: TLSServer) -> None:
    """Two uploads on one connection, one to a consumer that waits: the other one goes
    through whole (the held stream keeps its window, not the connection's)."""
    store = Store()
    tls_server.serve(store, settings=StreamSettings(max_body_size=0))
    client = await connected(tls_server)
    held = await deferToThread(client.request, "PUT", "/held")
    await deferToThread(client.send_data, held, b"h" * 200_000, stall=0.3)
    free = await deferToThread(client.request, "PUT", "/free")
    data = b"f" * (2 * MIB)
    assert await deferToThread(client.send_data, free, data) == len(data)
    response = await finish(client, free)
    assert bytes(response.body).strip() == hashlib.sha256(data).hexdigest().encode()
    assert not client.responses[held].done
    store.hold.callback(None)


@pytest_twisted.ensureDeferred
async def test_continue_is_sent_when_the_consumer_first_reads(tls_server: TLSServer) -> None:
    """``expect: 100-continue``: the ``100`` comes only once the application reads (never
    for an application that answers without reading, which resets the stream with
    ``NO_ERROR`` after its answer, RFC 9113 §8.1)."""
    store = Store()
    tls_server.serve(store)
    client = await connected(tls_server)
    expect = [(b"expect", b"100-continue")]
    stream_id = await deferToThread(client.request, "PUT", "/x", expect)
    await deferToThread(client.read_until, lambda: bool(client.responses[stream_id].informational))
    assert client.responses[stream_id].informational == [100]
    await deferToThread(client.send_data, stream_id, b"payload")
    assert (await finish(client, stream_id)).status == 200

    refused = await deferToThread(client.request, "PUT", "/refuse", expect)
    response = await finish(client, refused)
    assert response.status == 401 and response.informational == []
    await deferToThread(client.read_until, lambda: response.reset is not None)
    assert response.reset == ErrorCodes.NO_ERROR


@pytest_twisted.ensureDeferred
async def test_an_answer_before_the_body_resets_the_stream_with_no_error(
    tls_server: TLSServer,
) -> None:
    """A response that ends before its body ends our side, then resets the stream with
    ``NO_ERROR``; the client stops, and the connection serves the next request."""
    tls_server.serve(Store())
    client = await connected(tls_server)
    stream_id = await deferToThread(client.request, "PUT", "/refuse")
    sent = await deferToThread(client.send_data, stream_id, b"r" * MIB, stall=1.0)
    response = client.responses[stream_id]
    assert response.status == 401 and response.reset == ErrorCodes.NO_ERROR
    assert sent < MIB
    again = await deferToThread(client.request, "PUT", "/ok")
    await deferToThread(client.send_data, again, b"ok")
    assert (await finish(client, again)).status == 200


@pytest_twisted.ensureDeferred
async def test_streamed_body_limits(tls_server: TLSServer) -> None:
    """A declared ``content-length`` over the limit is answered 413 before a byte is read
    (no ``100``); a body without one that passes the limit is answered 413 and reset."""
    store = Store()
    tls_server.serve(store, settings=StreamSettings(max_body_size=100_000))
    client = await connected(tls_server)
    headers = [(b"content-length", b"100001"), (b"expect", b"100-continue")]
    declared = await deferToThread(client.request, "PUT", "/declared", headers)
    response = await finish(client, declared)
    assert response.status == 413 and response.informational == []
    assert store.bodies[b"/declared"].bytes_received == 0

    undeclared = await deferToThread(client.request, "PUT", "/undeclared")
    await deferToThread(client.send_data, undeclared, b"u" * 300_000, stall=1.0)
    response = await finish(client, undeclared)
    assert response.status == 413
    assert [type(e).__name__ for e in store.failures] == ["RequestBodyTooLarge"] * 2


@pytest_twisted.ensureDeferred
async def test_buffered_body_limits(tls_server: TLSServer) -> None:
    """A resource that does not stream bodies is held to the site's ``max_body_size`` over
    HTTP/2 too: 413 on a declared length over it (before any DATA is taken) or once DATA
    passes it, and it never renders; within it, the whole body is in ``request.content``."""
    rendered: list[int] = []

    class Buffered(Resource):
        isLeaf = True

        def render_PUT(self, request: Any) -> bytes:
            rendered.append(len(request.content.read()))
            return b"ok\n"

    tls_server.serve(Buffered(), settings=StreamSettings(max_body_size=50_000))
    client = await connected(tls_server)
    declared = await deferToThread(client.request, "PUT", "/", [(b"content-length", b"50001")])
    assert (await finish(client, declared)).status == 413
    undeclared = await deferToThread(client.request, "PUT", "/")
    await deferToThread(client.send_data, undeclared, b"b" * 200_000, stall=1.0)
    assert (await finish(client, undeclared)).status == 413
    fits = await deferToThread(client.request, "PUT", "/")
    await deferToThread(client.send_data, fits, b"b" * 50_000)
    assert (await finish(client, fits)).status == 200
    assert rendered == [50_000]


@pytest_twisted.ensureDeferred
async def test_a_client_reset_fails_the_body_and_runs_finally(tls_server: TLSServer) -> None:
    """A client that resets the stream mid-upload: the iterator fails with
    ``RequestBodyIncomplete`` carrying the bytes received, ``finally`` runs."""
    store = Store()
    tls_server.serve(store)
    client = await connected(tls_server)
    stream_id = await deferToThread(client.request, "PUT", "/x")
    await deferToThread(client.send_data, stream_id, b"c" * 30_000, end=False)
    await until(lambda: store.bodies[b"/x"].bytes_received == 30_000, what="the bytes")
    await deferToThread(client.reset, stream_id)
    await until(lambda: store.finally_ran == 1, what="the handler's finally")
    error = store.failures[0]
    assert isinstance(error, RequestBodyIncomplete) and error.bytes_received == 30_000


@pytest_twisted.ensureDeferred
async def test_an_idle_upload_gets_408(tls_server: TLSServer) -> None:
    """A client that stops sending while the application waits gets 408 after
    ``idle_timeout``, and the stream is reset."""
    store = Store()
    tls_server.serve(store, settings=StreamSettings(idle_timeout=0.3))
    client = await connected(tls_server)
    stream_id = await deferToThread(client.request, "PUT", "/x")
    await deferToThread(client.send_data, stream_id, b"i" * 1000, end=False)
    response = await finish(client, stream_id)
    assert response.status == 408
    assert isinstance(store.failures[0], RequestBodyIncomplete)


# The head: :path and CONNECT (on the frame-level harness) --------------------------------


def h2_answer(method: bytes, path: bytes | None) -> tuple[int, bytes, bool]:
    """Send one request with these pseudo-headers on the harness: the status, the body and
    whether the resource ran."""
    ran: list[bytes] = []

    class Admin(Resource):
        isLeaf = True

        def render(self, request: Any) -> bytes:
            ran.append(request.path)
            return b"admin"

    root = Resource()
    root.putChild(b"admin", Admin())
    h = Harness(root)
    stream_id = int(h.client.get_next_available_stream_id())
    headers = [(b":method", method), (b":authority", b"localhost")]
    if path is not None:
        headers += [(b":scheme", b"https"), (b":path", path)]
    h.client.send_headers(stream_id, headers, end_stream=True)
    h.send()
    h.turn()
    events = h.receive()
    [response] = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    status = int(dict(response.headers)[b":status"])
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    return status, body, bool(ran)


def test_a_path_that_is_not_a_path_is_400_on_http2_and_never_routed() -> None:
    """``:path: xadmin`` (the h2 library checks only that it is not empty) is answered 400
    and never reaches ``/admin``, where Twisted alone would route it; so is an absolute URI
    (RFC 9113 §8.3.1: origin-form or ``*``), and ``*`` on GET; ``/admin`` is served."""
    for path in (b"xadmin", b"https://localhost/admin", b"*"):
        status, body, ran = h2_answer(b"GET", path)
        assert (status, ran) == (400, False), path
        assert body.startswith(b"400 Bad Request: ")
    assert h2_answer(b"GET", b"/admin") == (200, b"admin", True)


def test_connect_is_501_on_http2() -> None:
    """CONNECT (RFC 9113 §8.5: a tunnel, no ``:path``) is answered 501: no resource can make
    a tunnel."""
    status, body, ran = h2_answer(b"CONNECT", None)
    assert (status, ran) == (501, False)
    assert body.startswith(b"501 Not Implemented: CONNECT")

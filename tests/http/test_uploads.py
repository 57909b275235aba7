"""Streamed request bodies against a real listening site on 127.0.0.1 (HTTP/1.1): treq for
the happy paths, raw sockets where the bytes or the timing matter. Blocking clients run in
worker threads (``deferToThread``) while the reactor serves them in the test's thread; every
loop is bounded in bytes and time.

(HTTP/2: ``test_h2body.py``; multipart: ``test_forms.py``; byte by byte on a fake
transport: ``test_h1body.py``.)"""

from __future__ import annotations

import hashlib
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest_twisted
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.internet.threads import blockingCallFromThread, deferToThread

from twisted_stream import (
    RequestBody,
    RequestBodyIncomplete,
    StreamingResource,
    StreamSettings,
    request_body,
)

from ..conftest import Server
from ..waiting import until, within
from .kernel import kernel_queued
from .test_hostile_clients import read_response

ROOT = Path(__file__).resolve().parents[2]
KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Store(StreamingResource):
    """``PUT``: reads the whole body, hashing it, and answers ``201`` with its SHA-256; if
    ``hold`` is set, waits on it after the first chunk (a consumer as slow as the test
    wants). Records the bodies it saw, failures and ``finally`` runs."""

    isLeaf = True
    stream_body = True

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[RequestBody] = []
        self.hold: Deferred[None] | None = None
        self.failures: list[BaseException] = []
        self.finally_ran = 0

    async def render_PUT(self, request: Any) -> bytes:
        body = request_body(request)
        self.bodies.append(body)
        digest = hashlib.sha256()
        try:
            async for chunk in body:
                digest.update(chunk)
                if self.hold is not None:
                    hold, self.hold = self.hold, None
                    await hold
        except Exception as e:
            self.failures.append(e)
            raise
        finally:
            self.finally_ran += 1
        request.setResponseCode(201)
        return digest.hexdigest().encode() + b"\n"

    async def render_GET(self, request: Any) -> bytes:
        return b"hello\n"


def serve(server: Server, **settings: Any) -> Store:
    store = Store()
    server.serve(store, settings=StreamSettings(**settings))
    return store


def raw(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port))


_STATUS = re.compile(rb"(?:^|\n)HTTP/1\.1 (\d{3}) ")


def statuses(response: bytes) -> list[int]:
    """The status codes of the responses in ``response``, in order."""
    return [int(code) for code in _STATUS.findall(response)]


class Sink(StreamingResource):
    """``PUT``: counts the body; after its first chunk waits on ``hold`` (a consumer as
    slow as the test wants)."""

    isLeaf = True
    stream_body = True

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[RequestBody] = []
        self.hold: Deferred[None] = Deferred()

    async def render_PUT(self, request: Any) -> bytes:
        body = request_body(request)
        self.bodies.append(body)
        count = 0
        async for chunk in body:
            count += len(chunk)
            if not self.hold.called:
                await self.hold
        return b"%d\n" % count


@pytest_twisted.ensureDeferred
async def test_a_gib_upload_to_a_slow_consumer_keeps_memory_flat_and_blocks_the_client(
    server: Server,
) -> None:
    """A 1 GiB chunked upload (a client in its own process) to a consumer that stops after
    its first chunk: the client's send blocks once the kernel's buffers and about one
    buffer of the server are full, and stays blocked while the consumer waits; released,
    the whole GiB goes through with the server's RSS flat (under 16 MiB of growth; Twisted
    alone writes the whole body to a temporary file first)."""
    sink = Sink()
    server.serve(sink, settings=StreamSettings(max_body_size=0))
    client = subprocess.Popen(
        [sys.executable, "-m", "tests.http.upload_client", str(server.port), str(GIB)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    before = rss_mib()
    peak = [before]
    watch = LoopingCall(lambda: peak.append(rss_mib()))
    watch.start(0.05)
    try:
        assert client.stdout is not None and client.stdin is not None
        line = await within(deferToThread(client.stdout.readline), 30)
        _, sent, local_port = line.split()
        body = sink.bodies[0]
        held_at = body.bytes_received
        # Blocked: the client could send nothing for half a second, and what it sent is in
        # the kernel's buffers but for about one buffer of ours.
        assert held_at <= 2 * 65536 + 65536 + 16
        in_kernel = kernel_queued(server.port, int(local_port))
        assert int(sent) - held_at <= in_kernel + 16 * KIB
        assert body.paused
        sink.hold.callback(None)
        client.stdin.write(b"go\n")
        client.stdin.flush()
        line = await within(deferToThread(client.stdout.readline), 120)
    finally:
        watch.stop()
        if client.poll() is None:
            client.kill()
        client.wait()
    response = bytes.fromhex(line.split()[1].decode())
    assert statuses(response) == [200]
    assert response.endswith(b"%d\n" % GIB)
    assert body.bytes_received == GIB
    assert max(peak) - before < 16, f"RSS grew by {max(peak) - before:.1f} MiB"


@pytest_twisted.ensureDeferred
async def test_continue_is_answered_413_without_reading_the_body(server: Server) -> None:
    """``Expect: 100-continue`` with a declared length over the limit: the client's socket
    receives a 413 and never a ``100``, no body byte is read, and the connection closes."""
    store = serve(server, max_body_size=MIB)

    def ask() -> bytes:
        sock = raw(server.port)
        sock.sendall(
            b"PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % (MIB + 1)
        )
        return read_response(sock)

    response = await within(deferToThread(ask))
    assert statuses(response) == [413]
    assert b"100 Continue" not in response
    assert store.bodies[0].bytes_received == 0
    assert store.finally_ran == 1


@pytest_twisted.ensureDeferred
async def test_continue_then_the_body_when_it_fits(server: Server) -> None:
    """``Expect: 100-continue`` on a body that fits: ``100 Continue`` first (when the
    resource reads), then the final answer once the client sent the body."""
    serve(server)

    def upload() -> bytes:
        sock = raw(server.port)
        sock.sendall(
            b"PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        sock.settimeout(5)
        interim = sock.recv(100)
        sock.sendall(b"hello")
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        return interim + read_response(sock)

    response = await within(deferToThread(upload))
    assert response.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert statuses(response) == [100, 201, 200]
    assert hashlib.sha256(b"hello").hexdigest().encode() in response


@pytest_twisted.ensureDeferred
async def test_declared_length_over_the_limit_gets_413_early(server: Server) -> None:
    """A Content-Length over the limit is answered 413 as soon as the resource asks for the
    body, while the client is still sending; the server reads none of it."""
    store = serve(server, max_body_size=MIB)

    def upload() -> bytes:
        sock = raw(server.port)
        sock.sendall(b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % (64 * MIB))
        sent = 0
        sock.settimeout(5)
        # Sends until the kernel's buffers are full, then reads; at most 2 MiB, inside what
        # the lingering close drops before it resets a client that never stops sending.
        try:
            while sent < 2 * MIB:
                sock.setblocking(False)
                try:
                    sent += sock.send(b"z" * 65536)
                except BlockingIOError:
                    break
        finally:
            sock.setblocking(True)
        return read_response(sock)

    response = await within(deferToThread(upload))
    assert statuses(response) == [413]
    assert store.bodies[0].bytes_received == 0


@pytest_twisted.ensureDeferred
async def test_a_chunked_body_passing_the_limit_gets_413(server: Server) -> None:
    """A chunked body that passes the limit: 413 while the client sends, the iterator
    failed with ``RequestBodyTooLarge``, the connection closed, the body held to the
    limit."""
    store = serve(server, max_body_size=MIB)

    def upload() -> bytes:
        sock = raw(server.port)
        sock.sendall(b"PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        frame = b"10000\r\n" + b"c" * 65536 + b"\r\n"
        try:
            for _ in range(256):  # 16 MiB at most
                sock.sendall(frame)
        except OSError:
            pass  # reset once the server has dropped enough
        return read_response(sock)

    response = await within(deferToThread(upload), 20)
    assert statuses(response) == [413]
    assert [type(e).__name__ for e in store.failures] == ["RequestBodyTooLarge"]
    assert store.bodies[0].bytes_received <= MIB + 65536


@pytest_twisted.ensureDeferred
async def test_a_client_gone_mid_upload_runs_finally_with_bytes_received(
    server: Server,
) -> None:
    """A client that sends part of a body and resets the connection: the iterator fails
    with ``RequestBodyIncomplete`` carrying the bytes received, and ``finally`` runs."""
    store = serve(server)

    def upload() -> None:
        sock = raw(server.port)
        sock.sendall(b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
        sock.sendall(b"p" * 40000)
        blockingCallFromThread(
            reactor, until, lambda: bool(store.bodies) and store.bodies[0].bytes_received == 40000
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST

    await within(deferToThread(upload))
    await until(lambda: store.finally_ran == 1, what="the handler's finally")
    error = store.failures[0]
    assert isinstance(error, RequestBodyIncomplete)
    assert error.bytes_received == 40000


@pytest_twisted.ensureDeferred
async def test_malformed_chunked_framing_gets_400_and_closes(server: Server) -> None:
    """Malformed chunked framing in a streamed body: 400, the connection closes, and the
    request smuggled after it is never answered."""
    store = serve(server)

    def upload() -> bytes:
        sock = raw(server.port)
        sock.sendall(
            b"PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\nabcd\r\nXYZ\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        return read_response(sock)

    response = await within(deferToThread(upload))
    assert statuses(response) == [400]
    assert b"hello" not in response
    assert isinstance(store.failures[0], RequestBodyIncomplete)


@pytest_twisted.ensureDeferred
async def test_a_pipelined_request_after_an_upload_is_answered(server: Server) -> None:
    """A request pipelined right behind an upload (in the same write) is answered after the
    upload's response, correctly: the body's bytes are never taken for a request."""
    serve(server)
    body = b"GET /evil HTTP/1.1\r\nHost: a\r\n\r\n" * 100

    def upload() -> bytes:
        sock = raw(server.port)
        sock.sendall(
            b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body
            + b"GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        return read_response(sock)

    response = await within(deferToThread(upload))
    assert statuses(response) == [201, 200]
    assert hashlib.sha256(body).hexdigest().encode() in response
    assert response.endswith(b"hello\n")


@pytest_twisted.ensureDeferred
async def test_uploads_with_treq_keep_the_connection(
    server: Server, keepalive_client: HTTPClient
) -> None:
    """treq uploads get their digests back, one after the other on a kept-alive
    connection, and a GET after them is answered on it too."""
    serve(server, max_body_size=0)
    data = bytes(range(256)) * 20000
    for _ in range(2):
        response = await keepalive_client.put(server.url("/x"), data=data)
        assert response.code == 201
        assert (await response.text()).strip() == hashlib.sha256(data).hexdigest()
    response = await keepalive_client.get(server.url("/"))
    assert await response.text() == "hello\n"


@pytest_twisted.ensureDeferred
async def test_an_https_upload(tls_server: Any, https_client: HTTPClient) -> None:
    """Over HTTPS/1.1 (TLS, where the socket is read through the TLS layer) an upload that
    the application keeps up with is read whole, and its digest is right."""
    store = Store()
    tls_server.serve(store, settings=StreamSettings(max_body_size=0))
    data = bytes(range(256)) * 40_000  # 10 MB
    response = await within(https_client.put(tls_server.url("/x"), data=data), 30)
    assert response.code == 201
    assert (await response.text()).strip() == hashlib.sha256(data).hexdigest()
    assert store.bodies[0].bytes_received == len(data)

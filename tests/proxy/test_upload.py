"""The request body sent upstream (``_proxy/_upload.py``), on a fake clock with a fake
reader and consumer: read one piece at a time, only while the connection takes it, only
once asked for with ``Expect: 100-continue``."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterable

import pytest_twisted
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import Clock, LoopingCall
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.web.iweb import UNKNOWN_LENGTH

from twisted_stream import ProxyResource
from twisted_stream._proxy._upload import CONTINUE_TIMEOUT, UpstreamBody

from ..http.conftest import TLSServer
from ..http.kernel import kernel_queued
from ..http.test_hostile_clients import read_response
from ..http.test_uploads import KIB, MIB, ROOT, raw, rss_mib, statuses
from ..waiting import until, within
from .conftest import BLOCK, Proxied, pattern


class Reader:
    """A body reader whose reads the test answers (``pending``), or answers at once from
    ``ready``."""

    def __init__(self, length: int | None = None, ready: list[bytes] | None = None) -> None:
        self.length = length
        self.ready = ready
        self.asked: list[int] = []
        self.pending: list[Deferred[bytes]] = []

    def read(self, size: int) -> Deferred[bytes]:
        self.asked.append(size)
        if self.ready is not None:
            return succeed(self.ready.pop(0) if self.ready else b"")
        d: Deferred[bytes] = Deferred()
        self.pending.append(d)
        return d


class Consumer:
    def __init__(self, body: UpstreamBody | None = None, pause_at: int = 0) -> None:
        self.written: list[bytes] = []
        self.body = body
        self.pause_at = pause_at

    def write(self, data: bytes) -> None:
        self.written.append(data)
        if self.body is not None and self.pause_at and len(self.written) % self.pause_at == 0:
            self.body.pauseProducing()  # as a transport does, from inside write()


def started(
    reader: Reader, **kwargs: object
) -> tuple[UpstreamBody, Consumer, Deferred[None], Clock]:
    clock = Clock()
    progress: list[int] = []
    body = UpstreamBody(
        reader, clock=clock, piece_size=100, on_progress=lambda: progress.append(1), **kwargs
    )  # type: ignore[arg-type]
    consumer = Consumer(body)
    done = body.startProducing(consumer)  # type: ignore[arg-type]
    return body, consumer, done, clock


def test_one_piece_is_read_at_a_time_and_none_while_paused() -> None:
    """The next read is asked only once the previous piece was written, and not while the
    connection has paused the body; resuming reads on; ``b""`` ends it."""
    reader = Reader(length=6)
    body, consumer, done, _ = started(reader)
    assert body.length == 6
    assert reader.asked == [100]
    reader.pending[0].callback(b"abc")
    assert consumer.written == [b"abc"] and len(reader.asked) == 2
    body.pauseProducing()
    reader.pending[1].callback(b"def")
    assert len(reader.asked) == 2, "nothing read while paused"
    body.resumeProducing()
    assert len(reader.asked) == 3
    reader.pending[2].callback(b"")
    assert done.called and body.finished and body.bytes_sent == 6


def test_reads_answered_at_once_are_looped_and_a_pause_from_write_is_obeyed() -> None:
    """Thousands of reads answered at once run in a loop (no recursion); a pause from inside
    ``write()`` stops the loop until resumed; unknown lengths are UNKNOWN_LENGTH."""
    pieces = [b"x" * 100] * 5000
    reader = Reader(ready=list(pieces))
    clock = Clock()
    body = UpstreamBody(reader, clock=clock, piece_size=100)
    consumer = Consumer(body, pause_at=1000)
    assert body.length is UNKNOWN_LENGTH
    done = body.startProducing(consumer)  # type: ignore[arg-type]
    assert len(consumer.written) == 1000
    while not done.called:
        body.resumeProducing()
    assert len(consumer.written) == 5000


def test_with_expect_continue_nothing_is_read_until_the_upstream_asks() -> None:
    """With ``Expect: 100-continue`` no byte is read until a ``100`` (other 1xx do not
    count); then the body flows."""
    reader = Reader(length=3)
    body, _consumer, done, clock = started(reader, expect_continue=True)
    assert body.expects_continue
    body.interim_response(103)
    clock.advance(CONTINUE_TIMEOUT / 2)
    assert reader.asked == []
    body.interim_response(100)
    assert reader.asked == [100]
    reader.pending[0].callback(b"abc")
    reader.pending[1].callback(b"")
    assert done.called
    clock.advance(CONTINUE_TIMEOUT)
    assert len(reader.asked) == 2, "the timer was cancelled"


def test_without_an_answer_the_body_goes_after_the_continue_timeout() -> None:
    """An upstream that never sends ``100`` gets the body after ``continue_timeout``."""
    reader = Reader(length=3)
    _, _, _, clock = started(reader, expect_continue=True, continue_timeout=0.5)
    clock.advance(0.49)
    assert reader.asked == []
    clock.advance(0.02)
    assert reader.asked == [100]


def test_stopping_reads_no_more_and_ignores_a_late_piece() -> None:
    """``stopProducing`` (the upstream connection went, or its answer came first) stops
    reading: a piece arriving after is not written and nothing more is asked; the waiting
    timer is cancelled."""
    reader = Reader()
    body, consumer, done, _ = started(reader)
    body.stopProducing()
    reader.pending[0].callback(b"late")
    assert consumer.written == [] and len(reader.asked) == 1
    assert body.finished and not done.called
    waiting, _, _, clock = started(Reader(), expect_continue=True)
    waiting.stopProducing()
    assert clock.getDelayedCalls() == []


def test_a_failed_read_fails_the_body_and_cancelling_stops_it() -> None:
    """A read failing (the client left mid-body) fails the body's Deferred with that
    reason; cancelling the Deferred (Agent cancelling the request) stops the body."""
    reader = Reader()
    _, _, done, _ = started(reader)
    failures: list[Failure] = []
    done.addErrback(failures.append)
    reader.pending[0].errback(Failure(ConnectionError("client gone")))
    assert failures[0].check(ConnectionError)

    other = Reader()
    body, _, done, _ = started(other)
    done.addErrback(failures.append)
    done.cancel()
    assert failures[1].check(CancelledError) and body.finished
    other.pending[0].callback(b"late")
    assert len(other.asked) == 1


# End to end: a client, a proxy site and an upstream site on 127.0.0.1 (tests/proxy/conftest.py).
# Blocking clients run in threads (or their own process) while the reactor serves both sites.


def _upload(port: int, head: bytes, frames: Iterable[bytes] = ()) -> bytes:
    """Send ``head`` and ``frames`` on a new connection (stopping quietly if the server
    resets it), then read to the close."""
    sock = raw(port)
    try:
        sock.sendall(head)
        for frame in frames:
            sock.sendall(frame)
    except OSError:
        pass  # the server stopped taking the body and closed
    return read_response(sock)


def _answer(response: bytes) -> bytes:
    """The body of the last response in ``response``."""
    return response.rsplit(b"\r\n\r\n", 1)[-1]


@pytest_twisted.ensureDeferred
async def test_a_large_upload_to_a_slow_upstream_is_relayed_as_it_arrives(
    proxied: Proxied,
) -> None:
    """A 1 GiB chunked upload (a client in its own process) through the proxy to an
    upstream that stops reading after its first chunk: the upstream has the start of the
    body while the client is still sending, the client's send blocks with most of it
    unsent, and the proxy holds under 1 MiB beyond the kernel's socket buffers; released,
    the body arrives byte for byte (its SHA-256) with the proxy's process RSS growing by
    less than 32 MiB."""
    total = 1024 * MIB
    proxied.proxy.max_body_size = 0
    store = proxied.store
    hold: Deferred[None] = Deferred()
    store.hold = hold
    client = subprocess.Popen(
        [sys.executable, "-m", "tests.http.upload_client", str(proxied.port), str(total)],
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
        _, sent_text, local_port = line.split()
        sent = int(sent_text)
        assert sent < total // 4, "the client's send blocked long before the end"
        upstream_body = store.bodies[0]
        assert 0 < upstream_body.bytes_received
        proxy_port = upstream_body.request.getClientAddress().port
        in_kernel = kernel_queued(proxied.port, int(local_port)) + kernel_queued(
            proxied.upstream_port, proxy_port
        )
        held = sent - in_kernel - upstream_body.bytes_received
        assert held < MIB, f"the proxy holds {held} bytes of the body"
        hold.callback(None)
        client.stdin.write(b"go\n")
        client.stdin.flush()
        line = await within(deferToThread(client.stdout.readline), 120)
    finally:
        watch.stop()
        if client.poll() is None:
            client.kill()
        client.wait()
    response = bytes.fromhex(line.split()[1].decode())
    assert statuses(response) == [201]
    digest = hashlib.sha256()
    for _ in range(total // MIB):
        digest.update(b"u" * MIB)
    assert _answer(response) == digest.hexdigest().encode() + b"\n"
    assert max(peak) - before < 32, f"RSS grew by {max(peak) - before:.1f} MiB"


@pytest_twisted.ensureDeferred
async def test_the_length_is_kept_and_a_chunked_body_goes_up_chunked(proxied: Proxied) -> None:
    """A body with ``Content-Length`` reaches the upstream with the same length; a chunked
    one (1 MiB in 64 KiB chunks) chunked; both byte for byte."""
    proxied.proxy.max_body_size = 0
    data = pattern(300 * KIB)
    head = b"PUT /store HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
    response = await within(
        deferToThread(
            _upload, proxied.port, head + b"Content-Length: %d\r\n\r\n" % len(data), [data]
        )
    )
    assert statuses(response) == [201]
    assert _answer(response) == hashlib.sha256(data).hexdigest().encode() + b"\n"
    seen = proxied.upstream.requests[-1]["headers"]
    assert seen[b"content-length"] == [b"%d" % len(data)]
    assert b"transfer-encoding" not in seen

    data = pattern(MIB)
    frames = [b"%x\r\n" % len(BLOCK) + BLOCK + b"\r\n"] * (MIB // len(BLOCK)) + [b"0\r\n\r\n"]
    response = await within(
        deferToThread(_upload, proxied.port, head + b"Transfer-Encoding: chunked\r\n\r\n", frames)
    )
    assert statuses(response) == [201]
    assert _answer(response) == hashlib.sha256(data).hexdigest().encode() + b"\n"
    seen = proxied.upstream.requests[-1]["headers"]
    assert seen[b"transfer-encoding"] == [b"chunked"]
    assert b"content-length" not in seen


@pytest_twisted.ensureDeferred
async def test_expect_continue_is_passed_on_to_the_upstream(proxied: Proxied) -> None:
    """``Expect: 100-continue`` goes up with the request; the client gets ``100 Continue``
    once the upstream asked for the body, then the upstream's answer."""

    def upload() -> bytes:
        sock = raw(proxied.port)
        sock.sendall(
            b"PUT /store HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
            b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        sock.settimeout(5)
        interim = sock.recv(100)
        sock.sendall(b"hello")
        return interim + read_response(sock)

    response = await within(deferToThread(upload))
    assert response.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert statuses(response) == [100, 201]
    assert _answer(response) == hashlib.sha256(b"hello").hexdigest().encode() + b"\n"
    assert proxied.upstream.requests[-1]["headers"][b"expect"] == [b"100-continue"]


@pytest_twisted.ensureDeferred
async def test_an_upstream_refusing_an_expected_body_is_relayed_without_a_continue(
    proxied: Proxied,
) -> None:
    """An upstream answering ``413`` to ``Expect: 100-continue`` without asking for the
    body: the client gets the 413 and never a ``100``, and no body byte is read."""

    def ask() -> bytes:
        sock = raw(proxied.port)
        sock.sendall(
            b"PUT /small HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
            b"Expect: 100-continue\r\nContent-Length: 1000\r\n\r\n"
        )
        return read_response(sock)

    response = await within(deferToThread(ask))
    assert statuses(response) == [413]
    assert b"100 Continue" not in response
    assert proxied.small.bodies[0].bytes_received == 0


@pytest_twisted.ensureDeferred
async def test_a_declared_length_over_the_limit_is_413_and_never_goes_up(
    proxied: Proxied,
) -> None:
    """A ``Content-Length`` over the proxy's ``max_body_size`` is answered ``413`` before
    any of the body is read, and the upstream is never asked."""
    proxied.proxy.max_body_size = 1000
    head = (
        b"PUT /store HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
        b"Expect: 100-continue\r\nContent-Length: 2000\r\n\r\n"
    )
    response = await within(deferToThread(_upload, proxied.port, head))
    assert statuses(response) == [413]
    assert b"100 Continue" not in response
    assert proxied.upstream.requests == []


@pytest_twisted.ensureDeferred
async def test_a_chunked_body_passing_the_limit_is_413_and_cancels_the_upstream(
    proxied: Proxied,
) -> None:
    """A chunked body passing the proxy's ``max_body_size`` mid-way: the client gets
    ``413``, and the upstream request carrying the start of it is cut off (its reader
    fails, its ``finally`` runs)."""
    proxied.proxy.max_body_size = 256 * KIB
    head = b"PUT /store HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    frames = [b"%x\r\n" % len(BLOCK) + BLOCK + b"\r\n"] * 256  # 16 MiB at most
    response = await within(deferToThread(_upload, proxied.port, head, frames), 20)
    assert statuses(response) == [413]
    store = proxied.store
    await until(lambda: store.finally_ran == 1, what="the upstream's finally")
    assert [type(e).__name__ for e in store.failures] == ["RequestBodyIncomplete"]
    assert store.bodies[0].bytes_received <= 256 * KIB


@pytest_twisted.ensureDeferred
async def test_a_client_leaving_mid_upload_tears_the_upstream_request_down(
    proxied: Proxied,
) -> None:
    """The client closing its connection after 1 MiB of a declared 64 MiB: the upstream's
    reader fails with ``RequestBodyIncomplete`` and its ``finally`` runs."""
    proxied.proxy.max_body_size = 0
    store = proxied.store
    sock = raw(proxied.port)
    await deferToThread(
        sock.sendall,
        b"PUT /store HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % (64 * MIB) + b"u" * MIB,
    )
    await until(lambda: bool(store.bodies) and store.bodies[0].bytes_received > 0)
    sock.close()
    await until(lambda: store.finally_ran == 1, what="the upstream's finally")
    assert [type(e).__name__ for e in store.failures] == ["RequestBodyIncomplete"]
    assert store.bodies[0].bytes_received < 64 * MIB


@pytest_twisted.ensureDeferred
async def test_an_upstream_failing_mid_upload_is_a_502(proxied: Proxied) -> None:
    """The upstream closing its connection after the first piece of a body, before any
    answer: the client gets ``502`` naming the upstream."""
    head = b"PUT /drop HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
    data = b"d" * (512 * KIB)
    response = await within(deferToThread(_upload, proxied.port, head % len(data), [data]))
    assert statuses(response) == [502]
    assert proxied.upstream_url().encode() in response
    assert proxied.dropper.received > 0


@pytest_twisted.ensureDeferred
async def test_an_http2_upload_is_relayed_with_the_window_held_while_the_upstream_waits(
    proxied: Proxied, tls_server: TLSServer
) -> None:
    """A client speaking HTTP/2 uploads 8 MiB with a length: while the upstream does not
    read, the proxy keeps the stream's window closed (the client is stopped with most of
    the body unsent and the proxy holds under 1 MiB beyond the kernel's socket buffers);
    released, the body arrives whole, with its ``Content-Length``."""
    proxy = ProxyResource(proxied.upstream_url())
    proxy.max_body_size = 0
    tls_server.serve(proxy)
    store = proxied.store
    hold: Deferred[None] = Deferred()
    store.hold = hold
    data = pattern(8 * MIB)
    client = tls_server.h2_client()
    assert await deferToThread(client.connect) == "h2"
    stream_id = await deferToThread(
        client.request, "PUT", "/store", [(b"content-length", b"%d" % len(data))]
    )
    sent = await deferToThread(client.send_data, stream_id, data, stall=0.5)
    assert sent < len(data) // 2, "the window closed long before the end"
    upstream_body = store.bodies[0]
    proxy_port = upstream_body.request.getClientAddress().port
    assert client._sock is not None
    client_port = client._sock.getsockname()[1]
    in_kernel = kernel_queued(tls_server.port, client_port) + kernel_queued(
        proxied.upstream_port, proxy_port
    )
    held = sent - in_kernel - upstream_body.bytes_received
    assert held < MIB, f"the proxy holds {held} bytes of the body"
    hold.callback(None)
    await deferToThread(client.send_data, stream_id, data[sent:])
    response = client.responses[stream_id]
    await deferToThread(client.read_until, lambda: response.done)
    assert response.status == 201
    assert bytes(response.body) == hashlib.sha256(data).hexdigest().encode() + b"\n"
    assert proxied.upstream.requests[-1]["headers"][b"content-length"] == [b"%d" % len(data)]
    await deferToThread(client.close)

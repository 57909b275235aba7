"""One proxied exchange end to end (``_proxy/_exchange.py``): an upstream site and a proxy
site on 127.0.0.1, raw sockets where the bytes or the timing matter.

Bodies arrive byte for byte, streamed with flow control (a stalled client holds the upstream
within the socket buffers), the client leaving closes the upstream's source, failures before
the head are 502/504 and after it an incomplete body, event streams are relayed event by
event, and HEAD, ranges and conditional requests pass through unchanged.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Factory
from twisted.internet.threads import deferToThread

from twisted_stream import Event, Outcome, ProxyResource, SourceIdleTimeout, StreamSettings
from twisted_stream._proxy import _exchange

from ..conftest import logged_text
from ..http.conftest import TLSServer
from ..http.test_hostile_clients import rss_mib
from ..http.test_upstream import Scripted
from ..rawclient import connect, get, parse_response
from ..waiting import settled_pause, until, within
from .conftest import BLOCK, Proxied, pattern


def dechunk(body: bytes) -> tuple[bytes, bool]:
    """The data of a chunked body, and whether its last chunk (``0``) arrived."""
    data, at = [], 0
    while True:
        size_line, found, _ = body[at:].partition(b"\r\n")
        if not found:
            return b"".join(data), False
        size = int(size_line, 16)
        if size == 0:
            return b"".join(data), True
        start = at + len(size_line) + 2
        if len(body) < start + size + 2:
            data.append(body[start : start + size])
            return b"".join(data), False
        data.append(body[start : start + size])
        at = start + size + 2


async def fetch(port: int, path: str, extra: str = "", method: str = "GET") -> bytes:
    """One HTTP/1.1 request with ``Connection: close``; everything received to the close."""
    raw = await connect(port, get(path, method=method, extra="Connection: close\r\n" + extra))
    await within(raw.closed)
    return bytes(raw.received)


@pytest.mark.parametrize(
    ("query", "size", "chunked"),
    [
        ("size=0", 0, False),
        ("size=11", 11, False),
        ("size=4194304", 4 << 20, False),
        ("size=4194304&chunked=1", 4 << 20, True),
        ("size=100003&chunked=1&piece=7", 100_003, True),
    ],
    ids=["empty", "small", "4MiB-length", "4MiB-chunked", "small-pieces-chunked"],
)
@pytest_twisted.ensureDeferred
async def test_bodies_are_byte_exact(
    proxied: Proxied, query: str, size: int, chunked: bool
) -> None:
    """Every body arrives byte for byte: with the upstream's Content-Length when it sent
    one, chunked when it did not (small pieces included); the proxied stream completes."""
    status, headers, body = parse_response(await fetch(proxied.port, f"/bytes?{query}"))
    assert status == 200
    assert headers["content-type"] == ["application/octet-stream"]
    if chunked:
        assert headers["transfer-encoding"] == ["chunked"]
        assert "content-length" not in headers
        data, complete = dechunk(body)
        assert complete
    else:
        assert headers["content-length"] == [str(size)]
        assert "transfer-encoding" not in headers
        data = body
    assert data == pattern(size)
    await until(lambda: not proxied.proxy_site.active_streams, what="the proxied stream to end")


@pytest_twisted.ensureDeferred
async def test_a_stalled_client_bounds_the_upstream_and_the_proxy_memory(proxied: Proxied) -> None:
    """A client that stops reading a 1 GB stream stops the upstream: what the upstream
    produced settles within the socket buffers of the two connections (and a few engine
    buffers), the proxy's memory grows by a few MiB, and the proxied stream shows as
    paused; when the client leaves, the upstream's source is closed."""
    before = rss_mib()
    raw = await connect(proxied.port, get("/endless?size=1000013824"))
    await within(raw.received_at_least(1 << 20))
    raw.stop_reading()
    await until(lambda: bool(proxied.upstream.streams), what="the upstream stream")
    upstream_stream = proxied.upstream.streams[0]
    produced = await settled_pause(upstream_stream, lambda: proxied.upstream.produced, 30.0)
    front = next(iter(proxied.proxy_site.active_streams))
    assert front.paused
    assert produced < 48 << 20, f"the upstream produced {produced:,} bytes"
    assert rss_mib() - before < 24
    raw.transport.abortConnection()  # type: ignore[union-attr]
    await until(lambda: proxied.upstream.closed == ["endless"], what="the upstream's finally")
    assert (await within(front.when_done())).outcome is Outcome.CLIENT_GONE


@pytest_twisted.ensureDeferred
async def test_a_client_leaving_closes_the_upstream_source(proxied: Proxied) -> None:
    """A client leaving mid-body ends the proxied stream as CLIENT_GONE and closes the
    upstream connection at once: the upstream's generator ``finally`` runs and its stream
    ends as CLIENT_GONE too."""
    raw = await connect(proxied.port, get("/endless"))
    await within(raw.received_at_least(300_000))
    front = next(iter(proxied.proxy_site.active_streams))
    raw.transport.abortConnection()  # type: ignore[union-attr]
    assert (await within(front.when_done())).outcome is Outcome.CLIENT_GONE
    await until(lambda: proxied.upstream.closed == ["endless"], what="the upstream's finally")
    result = await within(proxied.upstream.streams[0].when_done())
    assert result.outcome is Outcome.CLIENT_GONE


@pytest_twisted.ensureDeferred
async def test_an_upstream_failing_mid_body_cuts_the_client_short(proxied: Proxied) -> None:
    """An upstream whose body fails after its head gives the client the bytes it had and
    then a closed connection without the last chunk: an incomplete body, never a
    complete-looking one."""
    raw = await fetch(proxied.port, "/broken")
    status, headers, body = parse_response(raw)
    assert status == 200
    assert headers["transfer-encoding"] == ["chunked"]
    data, complete = dechunk(body)
    assert not complete
    assert data == (BLOCK * 4)[: len(data)]
    await until(lambda: not proxied.proxy_site.active_streams, what="the stream to end")


@pytest_twisted.ensureDeferred
async def test_events_are_relayed_one_by_one_and_last_event_id_goes_up(proxied: Proxied) -> None:
    """An event stream's head is relayed at once and each event reaches the client before
    the next is published; ``Last-Event-ID`` reaches the upstream, which resumes after it."""
    raw = await connect(proxied.port, get("/events"))
    await within(raw.received_at_least(1))
    assert bytes(raw.received).startswith(b"HTTP/1.1 200")
    assert b"text/event-stream" in bytes(raw.received)
    channel = proxied.upstream.channel
    for number in (1, 2, 3):
        channel.publish(Event(f"tick {number}", id=str(number)))
        await until(
            lambda n=number: b"data: tick %d\n" % n in raw.received, what=f"event {number}"
        )
        assert b"tick %d" % (number + 1) not in raw.received
    raw.transport.abortConnection()  # type: ignore[union-attr]

    again = await connect(proxied.port, get("/events", extra="Last-Event-ID: 2\r\n"))
    await until(lambda: b"data: tick 3\n" in again.received, what="the replayed event")
    assert b"tick 2" not in again.received
    assert proxied.upstream.requests[-1]["headers"][b"last-event-id"] == [b"2"]
    again.transport.abortConnection()  # type: ignore[union-attr]


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proxy_to(server: Any, url: str, **kwargs: Any) -> ProxyResource:
    proxy = ProxyResource(url, **kwargs)
    server.serve(proxy)
    return proxy


@pytest_twisted.ensureDeferred
async def test_a_refused_connection_is_a_502_naming_the_upstream_logged_once(
    server: Any, warnings_logged: list[str]
) -> None:
    """An upstream that refuses the connection gives ``502`` with a one-line plain-text
    body naming it; the failure is logged once, as a warning."""
    url = f"http://127.0.0.1:{closed_port()}"
    proxy_to(server, url)
    status, headers, body = parse_response(await fetch(server.port, "/x"))
    assert status == 502
    assert headers["content-type"] == ["text/plain; charset=utf-8"]
    assert body.startswith(b"502 Bad Gateway: upstream " + url.encode() + b": cannot connect")
    assert body.count(b"\n") == 1
    assert len([w for w in warnings_logged if url in w]) == 1


@pytest_twisted.ensureDeferred
async def test_no_head_within_the_timeout_is_a_504_and_aborts_the_upstream(
    proxied: Proxied, server: Any, warnings_logged: list[str]
) -> None:
    """An upstream that sends no response head within ``timeout`` gives ``504`` naming it
    (logged once), and the upstream connection is aborted: the upstream sees its client
    gone."""
    proxy_to(server, proxied.upstream_url(), timeout=0.3)
    raw = await connect(server.port, get("/silent", extra="Connection: close\r\n"))
    await until(lambda: bool(proxied.upstream.silent), what="the upstream request")
    gone = proxied.upstream.silent[0].notifyFinish()
    await within(raw.closed)
    status, _, body = parse_response(bytes(raw.received))
    assert status == 504
    assert body == b"504 Gateway Timeout: upstream %s: no response within 0.3 s\n" % (
        proxied.upstream_url().encode()
    )
    with pytest.raises(ConnectionLost):
        await within(gone)
    assert len([w for w in warnings_logged if "504" in w]) == 1


@pytest_twisted.ensureDeferred
async def test_a_connect_timeout_is_a_504(server: Any) -> None:
    """A connection the upstream never accepts (its accept queue is full) gives ``504``
    once ``connect_timeout`` passes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):  # fill the accept queue: further SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        proxy_to(server, f"http://127.0.0.1:{port}", connect_timeout=0.3)
        status, _, body = parse_response(await fetch(server.port, "/x"))
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert status == 504
    assert b"connecting timed out after 0.3 s" in body


@pytest_twisted.ensureDeferred
async def test_a_client_leaving_before_the_head_cancels_the_upstream_request(
    proxied: Proxied,
) -> None:
    """A client leaving while the upstream has not answered yet aborts the upstream
    request at once (the upstream sees its client gone); nothing is answered or logged."""
    raw = await connect(proxied.port, get("/silent"))
    await until(lambda: bool(proxied.upstream.silent), what="the upstream request")
    gone = proxied.upstream.silent[0].notifyFinish()
    raw.transport.abortConnection()  # type: ignore[union-attr]
    with pytest.raises(ConnectionLost):
        await within(gone)


@pytest_twisted.ensureDeferred
async def test_head_is_forwarded_as_head(proxied: Proxied) -> None:
    """HEAD reaches the upstream as HEAD; the answer has the upstream's Content-Length and
    no body."""
    raw = await fetch(proxied.port, "/bytes?size=5000", method="HEAD")
    status, headers, body = parse_response(raw)
    assert (status, headers["content-length"], body) == (200, ["5000"], b"")
    assert proxied.upstream.requests[-1]["method"] == b"HEAD"


@pytest_twisted.ensureDeferred
async def test_ranges_and_conditional_requests_pass_through(
    proxied: Proxied, tmp_path: Any
) -> None:
    """``Range`` gives the upstream's ``206`` with its ``Content-Range`` and exactly those
    bytes; ``If-None-Match`` with the current ETag its ``304``; ``If-Match`` with another
    ETag its ``412``."""
    data = pattern(100_000)
    (tmp_path / "file.bin").write_bytes(data)
    status, headers, body = parse_response(
        await fetch(proxied.port, "/files/file.bin", "Range: bytes=1000-1999\r\n")
    )
    assert (status, headers["content-range"], body) == (
        206,
        ["bytes 1000-1999/100000"],
        data[1000:2000],
    )
    etag = parse_response(await fetch(proxied.port, "/files/file.bin", method="HEAD"))[1]["etag"][
        0
    ]
    status, headers, body = parse_response(
        await fetch(proxied.port, "/files/file.bin", f"If-None-Match: {etag}\r\n")
    )
    assert (status, headers["etag"], body) == (304, [etag], b"")
    status, _, _ = parse_response(
        await fetch(proxied.port, "/files/file.bin", 'If-Match: "other"\r\n')
    )
    assert status == 412


@pytest_twisted.ensureDeferred
async def test_the_stall_timeout_applies_to_proxied_streams(proxied: Proxied) -> None:
    """A proxied stream is an engine stream: the proxy site's ``stall_timeout`` aborts a
    client that stopped reading (STALLED), and that closes the upstream's source."""
    proxied.proxy_site.stream_settings = StreamSettings(stall_timeout=0.3)
    raw = await connect(proxied.port, get("/endless"))
    await within(raw.received_at_least(100_000))
    raw.stop_reading()
    front = next(iter(proxied.proxy_site.active_streams))
    assert (await within(front.when_done())).outcome is Outcome.STALLED
    await until(lambda: proxied.upstream.closed == ["endless"], what="the upstream's finally")


async def a_stalled_upstream_is_cut_off(proxied: Proxied, logged: list[dict[str, Any]]) -> None:
    """Fetch ``/stalled`` through the proxy: the client gets the head and the first bytes,
    then its connection closes short (the chunked body never ends); the upstream sees its
    connection closed, the proxied stream ends as SOURCE_FAILED for the idle timeout, and
    that is logged once."""
    raw = await connect(proxied.port, get("/stalled"))
    await until(lambda: b"first bytes" in raw.received, what="the first bytes")
    await until(lambda: bool(proxied.upstream.silent), what="the upstream request")
    gone = proxied.upstream.silent[0].notifyFinish()
    front = next(iter(proxied.proxy_site.active_streams))
    result = await within(front.when_done())
    assert result.outcome is Outcome.SOURCE_FAILED
    assert result.failure is not None and result.failure.check(SourceIdleTimeout)
    await within(raw.closed)
    status, headers, body = parse_response(bytes(raw.received))
    assert (status, headers["transfer-encoding"]) == (200, ["chunked"])
    assert dechunk(body) == (b"first bytes", False)
    with pytest.raises((ConnectionLost, ConnectionDone)):
        await within(gone)
    assert len([t for t in logged_text(logged) if "SourceIdleTimeout" in t]) == 1


@pytest_twisted.ensureDeferred
async def test_an_upstream_stalling_mid_body_is_cut_off_after_the_idle_timeout(
    proxied: Proxied, logged: list[dict[str, Any]]
) -> None:
    """An upstream that sends its head and a few bytes, then nothing, while the client
    waits for more is given up on after the proxy site's ``idle_timeout``: the client's
    connection is aborted (an incomplete body) and the upstream's closed, logged once."""
    proxied.proxy_site.stream_settings = StreamSettings(idle_timeout=0.3)
    await a_stalled_upstream_is_cut_off(proxied, logged)


@pytest_twisted.ensureDeferred
async def test_without_a_site_idle_timeout_the_proxy_reads_with_its_own(
    proxied: Proxied, logged: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the site's ``idle_timeout`` off (the default), a proxied body still has one:
    :data:`~twisted_stream._proxy._exchange.READ_TIMEOUT`, 60 s like nginx's
    ``proxy_read_timeout`` (shortened here), so a stalled upstream never holds the client
    and the upstream connection for ever."""
    assert _exchange.READ_TIMEOUT == 60.0
    assert proxied.proxy_site.stream_settings.idle_timeout == 0
    monkeypatch.setattr(_exchange, "READ_TIMEOUT", 0.3)
    await a_stalled_upstream_is_cut_off(proxied, logged)


@pytest_twisted.ensureDeferred
async def test_over_http2_bodies_arrive_whole_and_a_reset_closes_the_upstream(
    proxied: Proxied, tls_server: TLSServer
) -> None:
    """A client speaking HTTP/2 to the proxy gets a 4 MiB upstream body whole (with its
    length); resetting a stream mid-body closes the upstream's source."""
    tls_server.serve(ProxyResource(proxied.upstream_url()))
    client = tls_server.h2_client()
    assert await deferToThread(client.connect) == "h2"
    stream_id = await deferToThread(client.get, "/bytes?size=4194304")
    response = client.responses[stream_id]
    await deferToThread(client.read_until, lambda: response.done)
    assert response.status == 200 and response.ended
    assert response.headers[b"content-length"] == b"4194304"
    assert bytes(response.body) == pattern(4 << 20)
    assert proxied.upstream.requests[-1]["headers"][b"via"] == [b"2 twisted_stream"]
    endless = await deferToThread(client.get, "/endless")
    await deferToThread(client.read_until, lambda: client.responses[endless].received > 100_000)
    await deferToThread(client.reset, endless)
    await until(lambda: proxied.upstream.closed == ["endless"], what="the upstream's finally")


@pytest_twisted.ensureDeferred
async def test_a_stream_refused_by_the_limits_closes_its_upstream_request(
    proxied: Proxied,
) -> None:
    """Proxied responses count against ``max_streams``: over it, the client gets ``503``
    and the upstream response nobody will read is closed at once (its source's ``finally``
    runs), not left holding a pooled connection."""
    proxied.proxy_site.stream_settings = StreamSettings(max_streams=1)
    first = await connect(proxied.port, get("/bytes?size=100000000"))
    await within(first.received_at_least(100_000))
    status, _, _ = parse_response(await fetch(proxied.port, "/endless"))
    assert status == 503
    await until(lambda: proxied.upstream.closed == ["endless"], what="the refused upstream")
    first.transport.abortConnection()  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_the_upstreams_reason_phrase_is_never_relayed(server: Any) -> None:
    """An upstream reason phrase holding a bare CR (``200 OK\\rX-Inj: 1``), which a client
    taking CR as a line end would read as an injected header, never reaches the client:
    the status line is then ours, with RFC 9110's phrase. A valid phrase is relayed."""
    answers = [
        b"HTTP/1.1 200 OK\rX-Inj: 1\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 Fine Thanks\r\nContent-Length: 2\r\n\r\nok",
    ]
    port = reactor.listenTCP(  # type: ignore[attr-defined]
        0, Factory.forProtocol(lambda: Scripted(answers, [0])), interface="127.0.0.1"
    )
    try:
        proxy_to(server, f"http://127.0.0.1:{port.getHost().port}")
        received = await fetch(server.port, "/x")
        valid = await fetch(server.port, "/x")
    finally:
        await port.stopListening()
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"X-Inj" not in received
    assert parse_response(received)[2] == b"ok"
    assert valid.startswith(b"HTTP/1.1 200 Fine Thanks\r\n")


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 abc\r\n\r\n",
    ],
    ids=["101", "TE and CL", "no status"],
)
@pytest_twisted.ensureDeferred
async def test_an_upload_answered_with_a_refused_response_is_502_at_once(
    server: Any, answer: bytes
) -> None:
    """An upstream answering an upload it has not read with a response we refuse (or
    cannot parse) gives the client 502 at once, not 504 at the proxy's timeout (60 s
    here): Twisted's client dropped the request's Deferred in that state."""
    answers = [answer]
    port = reactor.listenTCP(  # type: ignore[attr-defined]
        0, Factory.forProtocol(lambda: Scripted(answers, [0])), interface="127.0.0.1"
    )
    try:
        proxy_to(server, f"http://127.0.0.1:{port.getHost().port}", timeout=60)
        raw = await connect(
            server.port,
            b"PUT /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 100\r\n\r\n"
            + b"x" * 50,
        )
        await within(raw.closed, 5)
    finally:
        await port.stopListening()
    assert bytes(raw.received).startswith(b"HTTP/1.1 502 ")

"""The observing client protocol (``_http/_upstream.py``): Twisted's ``Agent`` over a pool
made to report each response's ``Connection`` tokens and interim ``100 Continue``, against a
raw HTTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Factory, Protocol
from twisted.web._newclient import ResponseFailed
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers

from twisted_stream._http._upstream import connection_options, observe_pool
from twisted_stream._proxy._upload import UpstreamBody

from ..waiting import within


class Server(Protocol):
    """Answers one request: ``100 Continue`` once the head is in, then, once the body is
    in, ``200`` with ``Connection: X-A`` naming ``X-A``."""

    def __init__(self, seen: list[bytes]) -> None:
        self.seen = seen
        self.data = b""
        self.continued = False

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        head, found, body = self.data.partition(b"\r\n\r\n")
        if not found:
            return
        if not self.continued and b"100-continue" in head:
            self.continued = True
            self.seen.append(b"sent 100")
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]
        length = int(head.lower().partition(b"content-length: ")[2].split(b"\r\n")[0] or 0)
        if len(body) >= length:
            self.seen.append(body)
            self.data = b""
            self.continued = False
            self.transport.write(  # type: ignore[union-attr]
                b"HTTP/1.1 200 OK\r\nConnection: X-A\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok"
            )


@pytest.fixture
def raw_server() -> Generator[tuple[int, list[bytes]], None, None]:
    seen: list[bytes] = []
    port = reactor.listenTCP(0, Factory.forProtocol(lambda: Server(seen)), interface="127.0.0.1")
    yield port.getHost().port, seen
    pytest_twisted.blockon(port.stopListening())


class Ready:
    length = 5

    def __init__(self) -> None:
        self.parts = [b"hello"]

    def read(self, size: int) -> Deferred[bytes]:
        return succeed(self.parts.pop(0) if self.parts else b"")


@pytest_twisted.ensureDeferred
async def test_an_observed_pool_reports_connection_tokens_and_100_continue(
    raw_server: tuple[int, list[bytes]],
) -> None:
    """Over an observed pool, a body sent with ``Expect: 100-continue`` waits for the
    server's ``100`` (its timeout is far away), and the response carries the tokens of its
    ``Connection`` header; the connection goes back to the pool as usual."""
    port, seen = raw_server
    pool = observe_pool(HTTPConnectionPool(reactor))
    agent = Agent(reactor, pool=pool)
    body = UpstreamBody(
        Ready(), clock=reactor, piece_size=100, expect_continue=True, continue_timeout=30
    )
    headers = Headers({b"expect": [b"100-continue"]})
    response: Any = await within(
        agent.request(b"POST", b"http://127.0.0.1:%d/" % port, headers, body)
    )
    assert seen == [b"sent 100", b"hello"]
    assert connection_options(response) == frozenset({b"x-a"})
    assert await within(treq.content(response)) == b"ok"
    again: Any = await within(agent.request(b"GET", b"http://127.0.0.1:%d/" % port))
    assert connection_options(again) == frozenset({b"x-a"})
    await treq.content(again)
    await pool.closeCachedConnections()


@pytest_twisted.ensureDeferred
async def test_a_pool_not_observed_reports_nothing(raw_server: tuple[int, list[bytes]]) -> None:
    """A response over a pool that was not observed has no tokens (None, not empty), and a
    pool with a factory of its own is left alone."""
    port, _ = raw_server
    pool = HTTPConnectionPool(reactor)
    response: Any = await within(
        Agent(reactor, pool=pool).request(b"GET", b"http://127.0.0.1:%d/" % port)
    )
    assert connection_options(response) is None
    await treq.content(response)
    await pool.closeCachedConnections()

    class Custom(HTTPConnectionPool):
        _factory = object  # type: ignore[assignment]

    custom = Custom(reactor)
    assert observe_pool(custom)._factory is object


# Hostile or broken upstream answers ------------------------------------------------------


class Scripted(Protocol):
    """Answers each request head with the next of ``answers`` (shared by all connections);
    counts its connections in ``opened``."""

    def __init__(self, answers: list[bytes], opened: list[int]) -> None:
        self.answers, self.opened, self.data = answers, opened, b""

    def connectionMade(self) -> None:
        self.opened[0] += 1

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        while b"\r\n\r\n" in self.data:
            _, _, self.data = self.data.partition(b"\r\n\r\n")
            self.transport.write(self.answers.pop(0))  # type: ignore[union-attr]


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def two_requests(
    first: bytes, method: bytes = b"GET"
) -> tuple[Any, bytes | BaseException, int]:
    """Ask a scripted upstream twice over one observed pool, ``first`` answering the first
    request and a plain 200 the second: the first response (or its failure), its body (or
    the failure reading it), and how many connections the upstream saw in all."""
    opened, answers = [0], [first, OK]
    port = reactor.listenTCP(
        0, Factory.forProtocol(lambda: Scripted(answers, opened)), interface="127.0.0.1"
    )
    pool = observe_pool(HTTPConnectionPool(reactor))
    agent = Agent(reactor, pool=pool)
    url = b"http://127.0.0.1:%d/" % port.getHost().port
    try:
        try:
            response: Any = await within(agent.request(method, url))
            body: bytes | BaseException = await within(treq.content(response))
        except Exception as error:  # the failure is what the test looks at
            response, body = None, error
        second: Any = await within(agent.request(b"GET", url))
        assert await within(treq.content(second)) == b"ok"
        return response, body, opened[0]
    finally:
        await pool.closeCachedConnections()
        await port.stopListening()


BROKEN = [
    (
        "two Transfer-Encoding lines",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
    ),
    (
        "Content-Length and Transfer-Encoding",
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
    ),
    ("a status of 4 digits", b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("a 101 nobody asked for", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n" + OK),
    ("17 interim responses", b"HTTP/1.1 102 Processing\r\n\r\n" * 17 + OK),
    (
        "a head over 64 KiB",
        b"HTTP/1.1 200 OK\r\n"
        + b"X-Big: "
        + b"b" * 1000
        + b"\r\n" * 1
        + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 1000) for i in range(70))
        + b"Content-Length: 2\r\n\r\nok",
    ),
]


@pytest.mark.parametrize("answer", [b[1] for b in BROKEN], ids=[b[0] for b in BROKEN])
@pytest_twisted.ensureDeferred
async def test_an_ambiguous_or_impossible_response_fails_and_its_connection_is_closed(
    answer: bytes,
) -> None:
    """A response whose framing two parsers could read two ways (RFC 9112 §6.1, §6.3), an
    impossible status, an unrequested 101, a flood of 1xx or an oversized head fails the
    request (the proxy's 502) and its connection is never reused: the next request opens
    a new one. (Twisted alone decoded the first two and pooled their connection.)"""
    response, body, opened = await two_requests(answer)
    assert response is None
    assert isinstance(body, Exception)
    assert opened == 2


DOUBTFUL = [
    (
        "Connection: keep-alive, close",
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\nok",
        b"ok",
    ),
    (
        "Connection: Close",
        b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n\r\nok",
        b"ok",
    ),
    ("bytes past the Content-Length", OK + b"HTTP/1.1 200 OK\r\nX-Evil: 1\r\n\r\n", b"ok"),
    ("a 204 declaring a body", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", b""),
]


@pytest.mark.parametrize(
    ("answer", "expected"), [d[1:] for d in DOUBTFUL], ids=[d[0] for d in DOUBTFUL]
)
@pytest_twisted.ensureDeferred
async def test_a_connection_that_asked_to_close_or_overran_its_response_is_not_pooled(
    answer: bytes, expected: bytes
) -> None:
    """The response is delivered, but its connection is closed, not pooled: a ``close``
    option among others or in another case (RFC 9110 §7.6.1), bytes past the response's
    end (RFC 9112 §6.3: never the next response), a 204 that declares a body. (Twisted
    alone pooled each, so the next request could read those bytes as its answer.)"""
    response, body, opened = await two_requests(answer)
    assert response is not None
    assert body == expected
    assert opened == 2


@pytest_twisted.ensureDeferred
async def test_a_head_answer_has_one_valid_content_length_or_fails() -> None:
    """A HEAD answer's ``Content-Length`` (which Twisted does not parse) is one number:
    ``5, 5`` is relayed as ``5``, ``abc`` fails the request."""
    response, _, _ = await two_requests(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", method=b"HEAD"
    )
    assert response.headers.getRawHeaders(b"content-length") == [b"5"]
    response, body, opened = await two_requests(
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", method=b"HEAD"
    )
    assert response is None
    assert isinstance(body, Exception)
    assert opened == 2


class Endless:
    """A request body of 100 bytes that never comes (an upload the upstream answers first)."""

    length = 100

    def __init__(self) -> None:
        self.stopped = False

    def startProducing(self, consumer: Any) -> Deferred[None]:
        return Deferred()

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        self.stopped = True


@pytest.mark.parametrize("answer", [b[1] for b in BROKEN[:4]], ids=[b[0] for b in BROKEN[:4]])
@pytest_twisted.ensureDeferred
async def test_a_refused_answer_while_the_body_is_sent_fails_the_request_at_once(
    answer: bytes,
) -> None:
    """An upstream that answers a request it is still being sent with a response we refuse
    fails that request at once (the proxy's 502) and the body stops. (Twisted dropped the
    request's Deferred in that state: it never fired, so the proxy answered 504 at its
    timeout.)"""
    opened, answers = [0], [answer]
    port = reactor.listenTCP(
        0, Factory.forProtocol(lambda: Scripted(answers, opened)), interface="127.0.0.1"
    )
    pool = observe_pool(HTTPConnectionPool(reactor))
    body = Endless()
    url = b"http://127.0.0.1:%d/" % port.getHost().port
    try:
        d = Agent(reactor, pool=pool).request(b"PUT", url, bodyProducer=body)  # type: ignore[arg-type]
        with pytest.raises(ResponseFailed):
            await within(d, 5)
        assert body.stopped
    finally:
        await pool.closeCachedConnections()
        await port.stopListening()

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

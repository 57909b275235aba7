"""The upstream body relayed one read at a time (``_proxy/_relay.py``): a raw upstream on
127.0.0.1 that sends thousands of tiny HTTP chunks, through a ProxyResource."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory

from twisted_stream import ProxyResource

from ..rawclient import parse_response
from .test_exchange import dechunk, fetch

CHUNKS = 20_000


class TinyChunks(Protocol):
    """Answers each request with :data:`CHUNKS` chunks of 10 bytes, all in one write."""

    def dataReceived(self, data: bytes) -> None:
        if b"\r\n\r\n" not in data:
            return
        body = b"".join(b"a\r\n%010d\r\n" % i for i in range(CHUNKS))
        self.transport.write(  # type: ignore[union-attr]
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n"
        )


@pytest.fixture
def tiny_upstream() -> Generator[str, None, None]:
    port = reactor.listenTCP(0, Factory.forProtocol(TinyChunks), interface="127.0.0.1")
    yield f"http://127.0.0.1:{port.getHost().port}"
    pytest_twisted.blockon(port.stopListening())


class ForeignFactory(_HTTP11ClientFactory):
    """A pool factory of someone else's: the proxy cannot observe its connections."""


@pytest.mark.parametrize("observed", [True, False], ids=["observed", "foreign-pool"])
@pytest_twisted.ensureDeferred
async def test_tiny_upstream_chunks_are_relayed_a_read_at_a_time(
    server: Any, tiny_upstream: str, observed: bool
) -> None:
    """Twenty thousand 10-byte upstream chunks arrive byte for byte. On the proxy's own
    pool each read of the upstream becomes one downstream chunk (a few dozen in all); on a
    pool it cannot observe, they are relayed as they are decoded (still byte for byte)."""
    pool = HTTPConnectionPool(reactor)
    if not observed:
        pool._factory = ForeignFactory
    server.serve(ProxyResource(tiny_upstream, pool=pool))
    status, _, body = parse_response(await fetch(server.port, "/"))
    data, complete = dechunk(body)
    assert status == 200 and complete
    assert data == b"".join(b"%010d" % i for i in range(CHUNKS))
    downstream_chunks = body.count(b"\r\n") // 2
    if observed:
        assert downstream_chunks < 200, downstream_chunks
    await pool.closeCachedConnections()

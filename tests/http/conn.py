"""A StreamSite connection driven byte by byte on a fake transport and a fake clock."""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource

from twisted_stream import StreamSettings, StreamSite

_STATUS = re.compile(rb"(?:^|\n)HTTP/1\.[01] (\d{3}) ")
PEER = IPv4Address("TCP", "10.0.0.7", 50123)


class Echo(Resource):
    """Answers every request with ``METHOD URI BODY-LENGTH`` (reading the whole body)."""

    isLeaf = True

    def render(self, request: Any) -> bytes:
        body = request.content.read()
        return b"%s %s %d\n" % (request.method, request.uri, len(body))


class Conn:
    """One connection to a site on a :class:`MemoryReactorClock`."""

    def __init__(
        self,
        resource: Resource | None = None,
        *,
        peer: IPv4Address = PEER,
        site: StreamSite | None = None,
        **settings: Any,
    ) -> None:
        if site is None:
            self.clock = MemoryReactorClock()
            site = StreamSite(
                resource or Echo(), settings=StreamSettings(**settings), reactor=self.clock
            )
        else:
            self.clock = site.reactor
        self.site = site
        self.protocol: Any = site.buildProtocol(peer)
        self.transport = StringTransport(peerAddress=peer)
        self.protocol.makeConnection(self.transport)

    @property
    def channel(self) -> Any:
        return self.protocol._channel

    def send(self, data: bytes) -> Conn:
        self.protocol.dataReceived(data)
        return self

    @property
    def output(self) -> bytes:
        return bytes(self.transport.value())

    @property
    def closing(self) -> bool:
        return bool(self.transport.disconnecting)

    def statuses(self) -> list[int]:
        """The status codes of the responses written so far, in order."""
        return [int(code) for code in _STATUS.findall(self.output)]

    def status(self) -> int:
        """The one response's status code."""
        found = self.statuses()
        assert len(found) == 1, self.output[:500]
        return found[0]

    def lose(self) -> None:
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        self.protocol.connectionLost(Failure(ConnectionDone()))


def head(
    path: str = "/", *, version: str = "1.1", method: str = "GET", headers: str = "Host: a\r\n"
) -> bytes:
    return f"{method} {path} HTTP/{version}\r\n{headers}\r\n".encode("latin-1")


def chunked(body: bytes, size: int = 1000) -> bytes:
    """``body`` in the chunked transfer coding, ``size`` bytes a chunk."""
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"

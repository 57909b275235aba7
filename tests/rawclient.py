"""A raw TCP client for tests that need exact bytes or misbehaving clients."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from .waiting import within


class RawClient(Protocol):
    """Sends bytes, records what comes back, and lets a test wait for data or the close."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.closed: Deferred[None] = Deferred()
        self._waiting: list[tuple[int, Deferred[bytes]]] = []

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        still = []
        for size, d in self._waiting:
            if len(self.received) >= size:
                d.callback(bytes(self.received))
            else:
                still.append((size, d))
        self._waiting = still

    def connectionLost(self, reason: Failure | None = None) -> None:  # type: ignore[override]
        if reason is None:
            reason = Failure(ConnectionDone())
        for _, d in self._waiting:
            d.errback(reason)
        self._waiting = []
        self.closed.callback(None)

    def received_at_least(self, size: int) -> Deferred[bytes]:
        """Fires once ``size`` bytes have arrived in all."""
        d: Deferred[bytes] = Deferred()
        if len(self.received) >= size:
            d.callback(bytes(self.received))
        else:
            self._waiting.append((size, d))
        return d

    def stop_reading(self) -> None:
        assert self.transport is not None
        self.transport.pauseProducing()  # type: ignore[attr-defined]

    def resume_reading(self) -> None:
        assert self.transport is not None
        self.transport.resumeProducing()  # type: ignore[attr-defined]


async def connect(port: int, request: bytes = b"") -> RawClient:
    """Connect to 127.0.0.1:``port`` and send ``request``."""
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    proto: Any = await connectProtocol(endpoint, RawClient())
    if request:
        proto.transport.write(request)
    result: RawClient = proto
    return result


def get(path: str = "/", version: str = "1.1", method: str = "GET", extra: str = "") -> bytes:
    """A request line and Host header."""
    return f"{method} {path} HTTP/{version}\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


Response = tuple[int, dict[str, list[str]], bytes]
"""Status, headers (lower-case names, every value) and body of one response."""


def parse_response(raw: bytes) -> Response:
    """Status, headers (lower-case names) and body of one raw HTTP/1.x response."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, raw[:200]
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(status_line.split(" ")[1]), headers, body


async def raw_get(port: int, path: str, method: str = "GET", extra: str = "") -> Response:
    """Send an HTTP/1.0 request with exactly this path and read the response to the close."""
    raw = await connect(port, get(path, version="1.0", method=method, extra=extra))
    await within(raw.closed)
    return parse_response(bytes(raw.received))

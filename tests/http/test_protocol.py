"""The per-connection protocol switch: our HTTP/1.x channel, or the HTTP/2 connection
class when TLS negotiated ``h2``, and the per-client connection count either way."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from twisted_stream import StreamSettings, StreamSite
from twisted_stream._http._channel import StreamHTTPChannel
from twisted_stream._http._protocol import HTTPProtocolSwitch

from .conn import Echo, head

PEER = IPv4Address("TCP", "10.0.0.9", 4000)


class FakeH2(Protocol):
    """Stands for an HTTP/2 connection class: records what it is given."""

    made: ClassVar[list[FakeH2]] = []

    def __init__(self) -> None:
        self.received = b""
        self.site: Any = None
        self.timeOut: Any = None
        FakeH2.made.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += data


class ALPNTransport(StringTransport):
    negotiatedProtocol: bytes | None = None


def connect(site: StreamSite, protocol: bytes | None) -> tuple[Any, ALPNTransport]:
    switch: Any = site.buildProtocol(PEER)
    transport = ALPNTransport(peerAddress=PEER)
    transport.negotiatedProtocol = protocol
    switch.makeConnection(transport)
    return switch, transport


def site_with(h2: Any = FakeH2, **settings: Any) -> StreamSite:
    site = StreamSite(Echo(), settings=StreamSettings(**settings), reactor=MemoryReactorClock())
    site.h2_connection = h2  # type: ignore[attr-defined]
    return site


@pytest.mark.parametrize("negotiated", [None, b"http/1.1"])
def test_http1_is_served_by_our_channel(negotiated: bytes | None) -> None:
    """Without ALPN, or with ``http/1.1``, our channel serves, with the site's settings."""
    site = site_with(server_header="x")
    switch, transport = connect(site, negotiated)
    assert isinstance(switch._channel, StreamHTTPChannel)
    assert switch.site is site and switch._channel.settings is site.stream_settings
    switch.dataReceived(head())
    assert transport.value().startswith(b"HTTP/1.1 200 OK\r\nServer: x\r\n")


def test_h2_is_handed_to_the_sites_http2_class() -> None:
    """With ``h2`` negotiated the site's ``h2_connection`` takes over on the first bytes:
    it gets the site, the timeout and the bytes, becomes the transport's producer, and our
    channel's timer is gone."""
    FakeH2.made.clear()
    site = site_with()
    switch, transport = connect(site, b"h2")
    switch.dataReceived(b"PRI * HTTP/2.0\r\n")
    [h2] = FakeH2.made
    assert switch._channel is h2
    assert h2.site is site and h2.timeOut == site.timeOut
    assert h2.received == b"PRI * HTTP/2.0\r\n"
    assert transport.producer is h2
    assert site.reactor.getDelayedCalls() == []  # type: ignore[attr-defined]


def test_h2_without_an_http2_class_fails_loudly() -> None:
    """``h2`` negotiated where no HTTP/2 class exists is an error, not HTTP/1 garbage."""
    switch, _ = connect(site_with(h2=None), b"h2")
    with pytest.raises(ValueError, match="HTTP/2"):
        switch.dataReceived(b"PRI")


def test_connections_are_counted_for_either_protocol() -> None:
    """A connection counts against its client while open, over HTTP/1.x or HTTP/2; one
    over the limit that negotiated ``h2`` is closed (there is no request to answer 503)."""
    site = site_with(max_connections_per_client=1)
    first, _ = connect(site, b"h2")
    first.dataReceived(b"PRI")
    assert site.connections.count("10.0.0.9") == 1
    second, transport = connect(site, b"h2")
    second.dataReceived(b"PRI")
    assert transport.disconnecting
    second.connectionLost(Failure(ConnectionDone()))
    assert site.connections.count("10.0.0.9") == 1
    first.connectionLost(Failure(ConnectionDone()))
    assert site.connections.count("10.0.0.9") == 0
    assert isinstance(connect(site, None)[0], HTTPProtocolSwitch)

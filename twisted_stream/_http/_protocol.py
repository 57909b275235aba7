"""The protocol a :class:`~twisted_stream.StreamSite` builds for each connection.

:class:`HTTPProtocolSwitch` stands in front of the connection's protocol, as Twisted's
``_GenericHTTPChannelProtocol`` does for a plain ``Site``: it starts with our
:class:`~._channel.StreamHTTPChannel` and, on the first bytes of a TLS connection that
negotiated ``h2`` by ALPN, hands the transport to the HTTP/2 connection class instead. That
class is a parameter (the site's ``h2_connection``, Twisted's ``H2Connection`` by default),
so an HTTP/2 connection of ours plugs in here. The switch also counts the connection
against its client's ``max_connections_per_client`` for its whole life, whichever protocol
serves it (only while such a limit is set: counting costs an address per connection).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IProtocol
from twisted.python.components import proxyForInterface
from twisted.python.failure import Failure

from ._channel import StreamHTTPChannel
from ._clients import ClientConnections, peer_host


def _twisted_h2() -> Callable[[], Any] | None:
    from twisted.web.http import H2_ENABLED

    if not H2_ENABLED:
        return None
    from twisted.web._http2 import H2Connection

    return H2Connection


H2_CONNECTION = _twisted_h2()
"""The HTTP/2 connection class used unless the site names its own; None without ``h2``."""


class HTTPProtocolSwitch(proxyForInterface(IProtocol, "_channel")):  # type: ignore[misc]
    """The protocol of one connection: HTTP/1.x (:class:`StreamHTTPChannel`), or HTTP/2
    (``h2_connection()``) when TLS negotiated ``h2``.

    ``site``, ``factory``, ``requestFactory``, ``timeOut`` and ``callLater``, set by
    ``HTTPFactory``/``Site.buildProtocol``, are passed to whichever protocol serves.
    """

    _channel: Any

    def __init__(
        self, channel: StreamHTTPChannel, h2_connection: Callable[[], Any] | None = None
    ) -> None:
        super().__init__(channel)
        self._h2_connection = h2_connection
        self._negotiated: bytes | None = None
        self._client: str | None = None
        self._connections: ClientConnections | None = None
        self._attributes: dict[str, Any] = {}

    def _set(self, name: str, value: Any) -> None:
        self._attributes[name] = value
        setattr(self._channel, name, value)

    site = property(lambda self: self._channel.site, lambda self, v: self._set("site", v))
    factory = property(lambda self: self._channel.factory, lambda self, v: self._set("factory", v))
    requestFactory = property(
        lambda self: self._channel.requestFactory, lambda self, v: self._set("requestFactory", v)
    )
    timeOut = property(lambda self: self._channel.timeOut, lambda self, v: self._set("timeOut", v))
    callLater = property(
        lambda self: self._channel.callLater, lambda self, v: self._set("callLater", v)
    )

    def makeConnection(self, transport: Any) -> None:
        site = self._attributes.get("site")
        limit = getattr(getattr(site, "stream_settings", None), "max_connections_per_client", 0)
        connections = getattr(site, "connections", None)
        if limit and isinstance(connections, ClientConnections):
            client = peer_host(transport.getPeer())
            if connections.open(client, limit):
                self._client, self._connections = client, connections
            else:
                self._channel.refusal = f"{client} already has {limit} connections open"
        self._channel.makeConnection(transport)

    def connectionLost(self, reason: Failure) -> None:
        if self._connections is not None and self._client is not None:
            self._connections.close(self._client)
            self._connections = None
        self._channel.connectionLost(reason)

    def dataReceived(self, data: bytes) -> None:
        if self._negotiated is None:
            transport = self._channel.transport
            negotiated = getattr(transport, "negotiatedProtocol", None) or b"http/1.1"
            self._negotiated = negotiated
            if negotiated == b"h2":
                self._become_h2(transport)
        self._channel.dataReceived(data)

    def _become_h2(self, transport: Any) -> None:
        if self._h2_connection is None:
            raise ValueError("HTTP/2 was negotiated but no HTTP/2 connection class is available")
        old = self._channel
        refused = old.refusal
        producer = old.handover()
        new = self._h2_connection()
        for name, value in self._attributes.items():
            setattr(new, name, value)
        self._channel = new
        new.makeConnection(transport)
        producer.registerProducer(new, True)
        if refused is not None:
            # HTTP/2 has no request yet to answer 503 to: the connection is closed.
            transport.loseConnection()


def http_protocol(factory: Any) -> HTTPProtocolSwitch:
    """``HTTPFactory.protocol`` for a site: a new connection's protocol."""
    h2 = getattr(factory, "h2_connection", H2_CONNECTION)
    return HTTPProtocolSwitch(StreamHTTPChannel(), h2)

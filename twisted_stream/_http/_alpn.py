"""The protocol a :class:`~twisted_stream.StreamSite` builds per connection: HTTP/1.1, or
our HTTP/2 connection when TLS negotiated ``h2`` (ALPN).

Twisted's ``_GenericHTTPChannelProtocol`` switches to its own ``H2Connection``, which it
names directly; this subclass does the same switch with :func:`._h2.make_h2_connection`.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.interfaces import IConsumer
from twisted.web.http import HTTPChannel, _GenericHTTPChannelProtocol


class StreamChannelProtocol(_GenericHTTPChannelProtocol):
    """Speaks HTTP/1.1 through Twisted's ``HTTPChannel``, or HTTP/2 through ours."""

    def dataReceived(self, data: bytes) -> None:
        if self._negotiatedProtocol is None:
            transport = self._channel.transport
            if getattr(transport, "negotiatedProtocol", None) == b"h2":
                self._switch_to_h2(transport)
        super().dataReceived(data)

    def _switch_to_h2(self, transport: Any) -> None:
        from ._h2 import make_h2_connection  # needs the http2 extra, as ALPN ``h2`` does

        # As Twisted does: the HTTP/1.1 channel leaves the transport to the new connection.
        old: HTTPChannel = cast(HTTPChannel, self._channel)
        # The transport itself (or Twisted's stand-in for one that is not a producer).
        network_producer = cast(IConsumer, old._networkProducer)
        network_producer.unregisterProducer()
        old.setTimeout(None)
        factory = self._factory
        h2 = make_h2_connection(getattr(factory, "reactor", None))
        h2.requestFactory = self._requestFactory
        h2.site = self._site
        h2.factory = factory
        h2.timeOut = self._timeOut
        h2.callLater = self._callLater  # type: ignore[method-assign,assignment]
        h2.makeConnection(transport)
        self._channel = h2
        network_producer.registerProducer(h2, True)
        self._negotiatedProtocol = b"h2"  # type: ignore[assignment]


def channel_protocol(factory: Any) -> StreamChannelProtocol:
    """``HTTPFactory.protocol`` for our sites (called with the factory, like Twisted's
    ``_genericHTTPChannelProtocolFactory``)."""
    return StreamChannelProtocol(HTTPChannel())

"""The protocol a :class:`~twisted_stream.StreamSite` builds per connection: HTTP/1.1, or
the site's HTTP/2 connection class (``h2_connection``) when TLS negotiated ``h2`` (ALPN).

Twisted's ``_GenericHTTPChannelProtocol`` switches to its own ``H2Connection``, which it
names directly; this subclass does the same switch with the class the site names, ours
(:func:`h2_connection_class`) for a ``StreamSite``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from twisted.internet.interfaces import IConsumer
from twisted.web.http import H2_ENABLED, HTTPChannel, _GenericHTTPChannelProtocol

if TYPE_CHECKING:
    from ._h2 import StreamH2Connection


class StreamChannelProtocol(_GenericHTTPChannelProtocol):
    """Speaks HTTP/1.1 through Twisted's ``HTTPChannel``, or HTTP/2 through ours."""

    def dataReceived(self, data: bytes) -> None:
        if self._negotiatedProtocol is None:
            transport = self._channel.transport
            if getattr(transport, "negotiatedProtocol", None) == b"h2":
                self._switch_to_h2(transport)
        super().dataReceived(data)

    def _switch_to_h2(self, transport: Any) -> None:
        factory = self._factory
        make = getattr(factory, "h2_connection", None) or h2_connection_class()
        if make is None:
            raise ValueError("HTTP/2 was negotiated without the h2 package")
        # As Twisted does: the HTTP/1.1 channel leaves the transport to the new connection.
        old: HTTPChannel = cast(HTTPChannel, self._channel)
        # The transport itself (or Twisted's stand-in for one that is not a producer).
        network_producer = cast(IConsumer, old._networkProducer)
        network_producer.unregisterProducer()
        old.setTimeout(None)
        h2 = make()
        h2.requestFactory = self._requestFactory
        h2.site = self._site
        h2.factory = factory
        h2.timeOut = self._timeOut
        h2.callLater = self._callLater  # type: ignore[method-assign]
        h2.makeConnection(transport)
        self._channel = h2
        network_producer.registerProducer(h2, True)
        self._negotiatedProtocol = b"h2"  # type: ignore[assignment]


def h2_connection_class() -> type[StreamH2Connection] | None:
    """Our HTTP/2 connection class, built with no arguments; None without the ``h2`` package
    (the ``http2`` extra), when ALPN never offers ``h2`` either."""
    if not H2_ENABLED:
        return None
    from ._h2 import StreamH2Connection

    return StreamH2Connection


def channel_protocol(factory: Any) -> StreamChannelProtocol:
    """``HTTPFactory.protocol`` for our sites (called with the factory, like Twisted's
    ``_genericHTTPChannelProtocolFactory``)."""
    return StreamChannelProtocol(HTTPChannel())

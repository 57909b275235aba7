"""An upstream response body, passed on to the engine one read of the upstream connection
at a time.

:class:`BodyRelay` is the protocol given to ``response.deliverBody``. On a connection of
ours (observed by :mod:`twisted_stream._http._upstream`) it is a *pull* producer for the
stream's consumer: the upstream connection is read once each time the engine asks for data
and then paused, and what that read brought (a chunked body of many small chunks, which
Twisted decodes one chunk at a time, included) is handed over as one write. So a client
that stops reading leaves at most one read of the upstream in our memory, beside the
transport's buffer, and small chunks cost one engine write per read, not one each. On a
connection that cannot be observed, the upstream transport itself is the push producer, as
``stream(request, response.deliverBody)`` does.
"""

from __future__ import annotations

from typing import cast

from twisted.internet.interfaces import (
    IConsumer,
    IProtocol,
    IPullProducer,
    IPushProducer,
    ITransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.iweb import IResponse
from zope.interface import implementer

from .._http._upstream import after_each_read


@implementer(IPullProducer)
class BodyRelay(Protocol):
    """Relays ``response``'s body to ``consumer`` (an ``IConsumer`` that is also an
    ``IProtocol``: the engine's producer adapter)."""

    def __init__(self, consumer: IConsumer, response: IResponse) -> None:
        self._consumer = consumer
        self._response = response
        self._parts: list[bytes] = []
        self._upstream: IPushProducer | None = None
        self._pulled = False

    def makeConnection(self, transport: ITransport) -> None:
        if not after_each_read(self._response, self._read_done):
            IProtocol(self._consumer).makeConnection(transport)  # push: the transport itself
            return
        self._upstream = cast(IPushProducer, transport)  # a TransportProxyProducer
        self._pulled = True
        self._consumer.registerProducer(self, False)

    def dataReceived(self, data: bytes) -> None:
        if self._pulled:
            self._parts.append(data)
        else:
            IProtocol(self._consumer).dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._pulled:
            after_each_read(self._response, None)
            self._hand_over()
        IProtocol(self._consumer).connectionLost(reason)

    # IPullProducer.

    def resumeProducing(self) -> None:
        """The engine wants data: what is here already, else one more read."""
        if self._parts:
            self._hand_over()
        elif self._upstream is not None:
            self._upstream.resumeProducing()

    def stopProducing(self) -> None:
        """The stream ended early: close the upstream connection (it is never reused)."""
        if self._upstream is not None:
            self._upstream.stopProducing()

    def delivered(self) -> None:
        """``deliverBody`` returned (it delivers what came before, then resumes reading):
        hand over what it delivered."""
        if self._parts and self._upstream is not None:
            self._upstream.pauseProducing()
            self._hand_over()

    # After each read.

    def _read_done(self) -> None:
        if self._parts and self._upstream is not None:
            self._upstream.pauseProducing()
            self._hand_over()

    def _hand_over(self) -> None:
        parts = self._parts
        if parts:
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            parts.clear()
            self._consumer.write(data)


class HangUp(Protocol):
    """Receives an upstream body nobody will read: stops its transport at once (the
    connection is closed, not pooled)."""

    def makeConnection(self, transport: ITransport) -> None:
        super().makeConnection(transport)  # type: ignore[no-untyped-call]
        cast(IPushProducer, transport).stopProducing()

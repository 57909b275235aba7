"""What the engine uses of the world around it, as Protocols.

- :class:`StreamRequest`: the request as the engine sees it. Twisted's
  ``twisted.web.server.Request`` provides it (HTTP/1.x and HTTP/2 alike); a later connection
  layer of ours must provide exactly this. Everything else the engine needs of a request
  (whether the client has gone, fake HEAD, the response encoder, aborting the connection...)
  touches Twisted's internals and lives in one module, :mod:`twisted_stream._http._twisted`.
- :class:`Clock`: timers and the time they run on (``IReactorTime``: the reactor, or a
  ``MemoryReactorClock`` in tests); :class:`Reactor` adds what threaded sources need.
- :data:`Monotonic`: the clock durations and the slice budget are measured on.
- :class:`StreamRegistry`: what a stream tells its site (``StreamSite`` implements it).
- :class:`UploadRegistry`: what a streamed request body tells its site.
- :class:`MultiplexedConnection`: a connection carrying many streams (our HTTP/2 connection)
  as graceful shutdown drains it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IPushProducer
from twisted.web.http_headers import Headers

from ._settings import StreamSettings

Monotonic = Callable[[], float]
"""Seconds on a clock that never goes back (``time.monotonic``; a fake clock's ``seconds``
in tests)."""


class StreamRequest(Protocol):
    """The parts of a ``twisted.web`` request the engine uses (all public Twisted API)."""

    method: bytes
    uri: bytes
    clientproto: bytes
    code: int
    requestHeaders: Headers
    responseHeaders: Headers

    def setResponseCode(self, code: int, message: bytes | None = None) -> None: ...

    def setHeader(self, name: bytes, value: bytes) -> None: ...

    def getHeader(self, key: bytes) -> bytes | None: ...

    def write(self, data: bytes) -> None: ...

    def finish(self) -> None: ...

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None: ...

    def unregisterProducer(self) -> None: ...

    def notifyFinish(self) -> Deferred[None]: ...

    def getClientAddress(self) -> IAddress: ...


class Clock(Protocol):
    """``IReactorTime`` as the engine uses it: the time now and timers on that time."""

    def seconds(self) -> float: ...

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: object, **kwargs: object
    ) -> IDelayedCall: ...


class Reactor(Clock, Protocol):
    """A clock that can also be called from other threads and be told of its shutdown
    (``IReactorThreads`` and ``IReactorCore``): what threaded sources and their pool need."""

    def callFromThread(
        self, callable: Callable[..., Any], *args: object, **kwargs: object
    ) -> None: ...

    def addSystemEventTrigger(
        self,
        phase: str,
        eventType: str,
        callable: Callable[..., Any],
        *args: object,
        **kwargs: object,
    ) -> Any: ...


_S = TypeVar("_S", contravariant=True)


@runtime_checkable
class StreamRegistry(Protocol[_S]):
    """What a stream tells the site serving it (``StreamSite``; a plain ``Site`` has none).

    ``admit`` is asked once, before anything is sent: it registers the stream as active and
    returns None, or returns why the stream is refused (it is then answered 503 and never
    registered). ``stream_ended`` is told once when an admitted stream ends, its result
    set. ``monotonic`` is the clock the site's streams measure durations on.
    """

    monotonic: Monotonic

    def admit(self, stream: _S, settings: StreamSettings) -> str | None: ...

    def stream_ended(self, stream: _S) -> None: ...


@runtime_checkable
class UploadRegistry(Protocol):
    """What a streamed request body tells the site receiving it (``StreamSite``): it
    started (``upload_started``), and it ended, its ``outcome`` set (``upload_ended``)."""

    def upload_started(self, body: Any) -> None: ...

    def upload_ended(self, body: Any) -> None: ...


@runtime_checkable
class MultiplexedConnection(Protocol):
    """A connection carrying many streams (HTTP/2), as graceful shutdown drains it."""

    @property
    def transport(self) -> object | None: ...

    def go_away(self) -> None:
        """Take no new stream (HTTP/2: send GOAWAY) and close once the open ones ended and
        all they queued has been sent."""

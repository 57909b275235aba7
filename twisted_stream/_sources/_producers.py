"""Adapter for the producers Twisted code already has: an ``IBodyProducer``, or a callable
given an ``IConsumer`` (``FileSender().beginFileTransfer``, ``response.deliverBody``...).

The consumer handed over buffers what is written; each engine read takes the buffer, and
the reads drive the registered producer (``IConsumer.registerProducer``):

- a push producer (``streaming=True``) writes on its own until a buffer is waiting that
  the engine has not asked for (the transport paused the stream); it is then paused, and
  the next read resumes it. Pause and resume are an on/off state, called only when it
  changes: a producer that counts them (``FileBodyProducer``'s ``CooperativeTask``,
  Twisted's ``_PullToPush``) gets exactly one resume per pause, so it never stalls;
- a pull producer (``streaming=False``) gets one ``resumeProducing()`` per read that finds
  the buffer empty, so nothing is produced while the transport is paused.

The stream ends when the Deferred returned by ``startProducing`` (or by the callable)
fires; with no Deferred, when the producer unregisters itself. The consumer is also an
``IProtocol``: given to ``response.deliverBody``, the end of the response body
(``connectionLost``) is the end, also when a Deferred fired before it. A failed Deferred is
a source failure. Nothing starts before the engine's first read (HEAD, 204, 304 and refused
streams never start the producer). When the stream ends early, the registered producer and
the ``IBodyProducer`` each get ``stopProducing()`` once, and a Deferred still pending is
never left with an unhandled failure. A producer that writes more than
:data:`OVERRUN_BUFFERS` buffers nobody asked for is stopped at once and its stream aborted
with :class:`~twisted_stream.ProducerOverflow`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, cast

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IConsumer, IProducer, IProtocol, ITransport
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from .._engine._source import EOF, ReadResult, Ready, SliceDeadline
from .._engine._stream import Stream
from .._errors import ProducerOverflow

OVERRUN_BUFFERS = 4
"""Buffers (of the engine's ``buffer_size``) a producer may write beyond what the engine asked
for before its stream is aborted: a push producer after ``pauseProducing()``, a pull
producer outside ``resumeProducing()``."""

_CLEAN_ENDS = (ResponseDone, PotentialDataLoss, ConnectionDone)
"""How ``connectionLost`` reports a body that ended normally (``PotentialDataLoss``: an
HTTP/1.0 body without a length, ended by the close, which treq also takes as the end)."""


class _Controllable(Protocol):
    """A registered producer as the adapter drives it (push producers have all three; a
    pull producer is only resumed and stopped)."""

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...

    def stopProducing(self) -> None: ...


@implementer(IConsumer, IProtocol)
class _Consumer:
    """What the user's code writes to. It is also an ``IProtocol``, so ``response.deliverBody``
    takes it as it is: the response's transport becomes the registered push producer, its
    data is written, and the end of the body ends the stream."""

    def __init__(self, source: ProducerSource) -> None:
        self._source = source

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self._source.register(producer, streaming)

    def unregisterProducer(self) -> None:
        self._source.unregister()

    def write(self, data: bytes) -> None:
        self._source.write(data)

    def makeConnection(self, transport: ITransport) -> None:
        self._source.connected(transport)

    def connectionMade(self) -> None:
        pass

    def dataReceived(self, data: bytes) -> None:
        self._source.write(data)

    def connectionLost(self, reason: Failure) -> None:
        self._source.disconnected(reason)


class ProducerSource:
    """Streams what the producers registered on a consumer write.

    ``start(consumer)`` begins the production on the first read and returns a Deferred
    that fires at the end, or None when the end is the producer unregistering itself.
    ``body`` is the ``IBodyProducer`` whose ``startProducing`` that is: it is registered as
    a push producer unless it registers a producer itself, and stopped when the stream ends
    before it does. ``convert`` turns each write into bytes.
    """

    def __init__(
        self,
        start: Callable[[IConsumer], object],
        convert: Callable[[object], bytes],
        *,
        body: IBodyProducer | None = None,
    ) -> None:
        self._start = start
        self._convert = convert
        self._body = body
        self._consumer = _Consumer(self)
        self._stream: Stream | None = None
        self._started = False
        self._ends_on_unregister = False
        """Whether the producer unregistering ends the stream: ``start`` returned no
        Deferred, or its Deferred fired while a body was still being delivered."""
        self._receiving = False
        """A body is delivered to the consumer as an ``IProtocol`` (``deliverBody``): its
        end is ``connectionLost``."""
        self._result: Deferred[object] | None = None
        self._body_running = False
        self._producer: _Controllable | None = None
        self._streaming = False
        self._paused = False
        self._parts: list[bytes] = []
        self._buffered = 0
        self._overrun = 0
        """Bytes written since the last read that nobody asked for."""
        self._limit = 0
        self._in_read = False
        self._waiter: Deferred[Ready] | None = None
        self._done = False
        self._failure: Failure | None = None
        self._closed = False

    def attach(self, stream: Stream | None) -> None:
        """Abort ``stream`` (the one reading this source) when a producer overflows;
        :func:`~twisted_stream.stream` calls this. Unattached, the overflow fails the
        next read."""
        self._stream = stream

    # The Source interface.

    def read(self, limit: int, deadline: SliceDeadline) -> ReadResult:
        self._limit = limit
        self._overrun = 0
        self._in_read = True
        try:
            if not self._started:
                self._begin()
            self._ask()
        finally:
            self._in_read = False
        if self._parts:
            data = b"".join(self._parts)  # a single part is returned without a copy
            self._parts.clear()
            self._buffered = 0
            return data
        if self._failure is not None:
            self._failure.raiseException()
        if self._done:
            return EOF
        waiter: Deferred[Ready] = Deferred()
        self._waiter = waiter
        return waiter

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._parts.clear()
        self._buffered = 0
        self._waiter = None
        self._release()

    # Driving the producer.

    def _begin(self) -> None:
        self._started = True
        result = self._start(self._consumer)
        body = self._body
        if result is not None and not isinstance(result, Deferred):
            raise TypeError(
                f"{self._start!r} returned {type(result).__qualname__}; expected a Deferred "
                "firing at the end of the body, or None (the end is then the producer "
                "unregistering itself)"
            )
        if result is None:
            if body is not None:
                raise TypeError(f"{body!r}.startProducing() returned None, not a Deferred")
            self._ends_on_unregister = True
            if self._producer is None:
                self._finish()  # it wrote what it had and registered nothing
            return
        self._result = result
        self._body_running = body is not None
        result.addCallbacks(self._ended, self._failed)
        if body is not None and self._body_running and self._producer is None:
            self.register(body, True)

    def _ask(self) -> None:
        """The transport wants data: resume a paused push producer, or ask a pull producer
        for one more write when nothing is buffered."""
        producer = self._producer
        if producer is None or self._done or self._failure is not None:
            return
        if self._streaming:
            if self._paused:
                self._paused = False
                producer.resumeProducing()
        elif not self._parts:
            producer.resumeProducing()

    def _ended(self, _: object) -> None:
        self._body_finished()
        if self._receiving:
            # ``lambda c: agent.request(...).addCallback(lambda r: r.deliverBody(c))``:
            # the Deferred fired as the body began; its connectionLost is the end.
            self._ends_on_unregister = True
        else:
            self._finish()

    def _failed(self, reason: Failure) -> None:
        self._body_finished()
        self.fail(reason)  # after close() this drops the failure: never unhandled

    def _body_finished(self) -> None:
        """The ``IBodyProducer``'s Deferred fired: it is no longer registered or running."""
        running, self._body_running = self._body_running, False
        if running and self._producer is self._body:
            self._producer = None

    def _finish(self) -> None:
        if self._closed or self._done or self._failure is not None:
            return
        self._done = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(EOF)

    def _release(self) -> None:
        """Stop what is still producing, each producer once; with nothing to stop, cancel
        the pending Deferred instead."""
        producer, self._producer = self._producer, None
        body = self._body if self._body_running else None
        self._body_running = False
        try:
            if producer is not None and producer is not body:
                producer.stopProducing()
        finally:
            if body is not None:
                body.stopProducing()
        result = self._result
        if producer is None and body is None and result is not None and not result.called:
            result.cancel()

    # What the consumer relays.

    def register(self, producer: object, streaming: bool) -> None:
        """``IConsumer.registerProducer``: one producer at a time, as Twisted's consumers
        allow; one registered after the stream ended is stopped at once."""
        registered = cast(_Controllable, producer)  # push or pull, as ``streaming`` says
        if self._closed:
            registered.stopProducing()
            return
        if self._producer is not None and self._producer is not producer:
            raise RuntimeError(
                f"cannot register {producer!r}: {self._producer!r} was never unregistered"
            )
        self._producer, self._streaming, self._paused = registered, streaming, False
        waiter = self._waiter
        if not streaming and waiter is not None:
            self._waiter = None
            waiter.callback(b"")  # the engine reads again, which resumes the new producer

    def unregister(self) -> None:
        """``IConsumer.unregisterProducer``; ends the stream when ``start`` returned no
        Deferred."""
        self._producer = None
        self._paused = False
        if self._ends_on_unregister:
            self._finish()

    def connected(self, transport: object) -> None:
        """``IProtocol.makeConnection``: a body is delivered to us; its transport is the
        registered push producer."""
        self._receiving = True
        self.register(transport, True)

    def disconnected(self, reason: Failure) -> None:
        """``IProtocol.connectionLost``: the body ended, cleanly or with ``reason``."""
        self._receiving = False
        if not reason.check(*_CLEAN_ENDS):
            self.fail(reason)
        self.unregister()

    def write(self, data: object) -> None:
        """``IConsumer.write``: hand ``data`` to a waiting read, or buffer it (pausing a push
        producer once a buffer waits; past the cap the stream is aborted)."""
        if self._closed or self._failure is not None:
            return  # the client has gone or the stream has failed: nothing more is sent
        try:
            chunk = self._convert(data)
        except Exception:
            self.fail(Failure())
            raise
        if not chunk:
            return
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.callback(chunk)
            return
        producer = self._producer
        pushing = producer is not None and self._streaming
        self._parts.append(chunk)
        self._buffered += len(chunk)
        if not (self._in_read or (pushing and not self._paused)):
            self._overrun += len(chunk)
            if self._overrun > OVERRUN_BUFFERS * self._limit:
                self._overflow(pushing)
            return
        if pushing and not self._in_read and self._buffered >= self._limit:
            assert producer is not None
            self._paused = True
            producer.pauseProducing()

    def fail(self, reason: Failure) -> None:
        """The production failed: the next read raises ``reason`` (after what was buffered);
        ignored once the stream has ended or failed."""
        if self._closed or self._failure is not None:
            return
        self._failure = reason
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.errback(reason)

    def _overflow(self, pushing: bool) -> None:
        culprit: object = self._producer
        if culprit is None:
            culprit = self._start if self._body is None else self._body
        name = repr(culprit)
        cap = OVERRUN_BUFFERS * self._limit
        if pushing:
            what = f"{name} kept writing after pauseProducing()"
        else:
            what = f"{name} wrote without being asked (pull producers write in resumeProducing)"
        error = ProducerOverflow(
            f"{what}: {self._overrun} bytes while the client was not reading, over the cap "
            f"of {cap} ({OVERRUN_BUFFERS} buffers)"
        )
        self._failure = Failure(error)  # first: what stopping makes its Deferred do is dropped
        self._parts.clear()
        self._buffered = 0
        self._release()
        if self._stream is not None:
            self._stream.abort(error)


def producer_source(obj: object, convert: Callable[[object], bytes]) -> ProducerSource | None:
    """The adapter for an ``IBodyProducer`` or a callable taking an ``IConsumer``; None for
    anything else."""
    if IBodyProducer.providedBy(obj):
        return ProducerSource(obj.startProducing, convert, body=obj)
    if callable(obj):
        return ProducerSource(obj, convert)
    return None


def body_length(obj: object) -> int | None:
    """An ``IBodyProducer``'s ``length`` for its ``Content-Length``; None for anything else
    or ``UNKNOWN_LENGTH``."""
    if not IBodyProducer.providedBy(obj):
        return None
    length = getattr(obj, "length", UNKNOWN_LENGTH)
    return length if isinstance(length, int) else None  # UNKNOWN_LENGTH is a str

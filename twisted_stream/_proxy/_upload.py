"""A request body sent upstream as the upstream connection takes it.

:class:`UpstreamBody` is the ``IBodyProducer`` handed to ``Agent.request``. Twisted
registers it as a push producer on the upstream connection's transport, which pauses it
while its send buffer is full; it reads the next piece from the client's body (a
:class:`BodyReader`) only while not paused and only once the previous piece was written, so
the client's socket is read no faster than the upstream takes the body. With
``Expect: 100-continue`` it reads nothing until the upstream asks for the body with an
interim ``100 Continue``, or ``continue_timeout`` passes without an answer (RFC 9110
§10.1.1: a server may not answer 100 at all), or it is stopped because the upstream gave
its final answer first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IDelayedCall, IPushProducer
from twisted.python.failure import Failure
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from .._errors import RequestBodyError
from .._types import Clock

CONTINUE_TIMEOUT = 1.0
"""Seconds to wait for an upstream's ``100 Continue`` before sending the body anyway (curl
waits 1 s too)."""


class BodyReader(Protocol):
    """The client's request body as the proxy reads it."""

    @property
    def length(self) -> int | None:
        """The declared length, None when unknown (chunked)."""

    def read(self, size: int) -> Deferred[bytes]:
        """At most ``size`` bytes, ``b""`` at the end; fails if the body cannot be read
        (the client left mid-body)."""


@implementer(IBodyProducer, IPushProducer)
class UpstreamBody:
    """Reads a :class:`BodyReader` into the upstream connection, one piece at a time, as
    the connection takes it. ``on_progress`` is called after each piece is written (the
    upstream is making progress)."""

    def __init__(
        self,
        reader: BodyReader,
        *,
        clock: Clock,
        piece_size: int,
        expect_continue: bool = False,
        continue_timeout: float = CONTINUE_TIMEOUT,
        on_progress: Callable[[], None] = lambda: None,
    ) -> None:
        self._reader = reader
        self._clock = clock
        self._piece_size = piece_size
        self._expect_continue = expect_continue
        self._continue_timeout = continue_timeout
        self.on_progress = on_progress
        declared = reader.length
        self.length: int | object = UNKNOWN_LENGTH if declared is None else declared
        self.bytes_sent = 0
        """Body bytes written to the upstream connection so far."""
        self.failure: Failure | None = None
        """Why reading the client's body failed, None while it has not."""
        self._consumer: IConsumer | None = None
        self._done: Deferred[None] | None = None
        self._continue_timer: IDelayedCall | None = None
        self._sending = False
        self._paused = False
        self._reading = False
        self._pumping = False
        self._stopped = False

    # IBodyProducer.

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        self._consumer = consumer
        self._done = Deferred(lambda _: self.stopProducing())
        if self._expect_continue:
            self._continue_timer = self._clock.callLater(self._continue_timeout, self._send)
        else:
            self._send()
        return self._done

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        """The upstream connection is gone or the request was cancelled: read no more (what
        is left of the client's body is the server's to discard)."""
        self._stopped = True
        self._cancel_continue()

    # The interim response (_http._upstream.InterimObserver).

    def interim_response(self, code: int) -> None:
        """The upstream sent ``code`` (1xx): ``100`` asks for the body."""
        if code == 100:
            self._send()

    @property
    def expects_continue(self) -> bool:
        """Whether the request is sent with ``Expect: 100-continue``."""
        return self._expect_continue

    @property
    def failed_by_client(self) -> bool:
        """Whether the client's body failed (the client left, sent too much, broke its
        framing or went quiet): the server answers that itself, if anything."""
        failure = self.failure
        return failure is not None and failure.check(RequestBodyError) is not None

    @property
    def finished(self) -> bool:
        """Whether the body was sent whole, failed, or was stopped."""
        return self._stopped

    # Reading and writing.

    def _cancel_continue(self) -> None:
        timer, self._continue_timer = self._continue_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _send(self) -> None:
        self._cancel_continue()
        if self._sending or self._stopped:
            return
        self._sending = True
        self._pump()

    def _pump(self) -> None:
        """Read pieces while the connection takes them; a read answered at once is looped
        over here, not recursed into."""
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._sending and not (self._paused or self._reading or self._stopped):
                self._reading = True
                self._reader.read(self._piece_size).addCallbacks(self._piece, self._failed)
        finally:
            self._pumping = False

    def _piece(self, data: bytes) -> None:
        self._reading = False
        if self._stopped or self._done is None or self._done.called:
            return
        if not data:
            self._stopped = True
            self._done.callback(None)
            return
        assert self._consumer is not None
        self.bytes_sent += len(data)
        self._consumer.write(data)  # may pause us
        self.on_progress()
        self._pump()

    def _failed(self, reason: Failure) -> None:
        self._reading = False
        if self.failure is None:
            self.failure = reason
        done = self._done
        if self._stopped or done is None or done.called:
            return  # after the end (or a stop): nobody waits for it
        self._stopped = True
        done.errback(reason)

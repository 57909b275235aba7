"""The one switch that decides whether a connection's transport reads.

``HTTPChannel`` pauses and resumes its transport from several places, each on its own
reasoning (its write side blocked while idle, its small read-ahead buffer full, a request
done), and one such pause could undo another: the unbounded pipelining buffer came from a
pause that was skipped because a different one was believed to hold. A :class:`ReadGate`
stands in for the transport as the channel's ``_networkProducer``: every pause names a
*reason* (a bit), reading stops when the first reason appears and resumes only when the
last one is gone, whoever asked. While reading is stopped, the peer's socket is watched for
hang-up (:mod:`._hangup`), so a client that leaves is noticed whatever the read state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from ._hangup import HangupWatch, hangup_watch

TWISTED = 1
"""``HTTPChannel``'s own pauses: its write side is blocked while no request is handled."""
READ_AHEAD = 2
"""More than the read-ahead bound is buffered behind the request being answered."""
BODY = 4
"""The consumer of a streamed request body has not asked for more (request bodies)."""


@implementer(IPushProducer)
class ReadGate:
    """Reading of ``producer`` (the transport as a push producer) gated by reasons.

    It also passes ``registerProducer``/``unregisterProducer``/``stopProducing`` through,
    since ``HTTPChannel`` registers itself on its ``_networkProducer``. ``on_hangup`` runs
    when the peer closes or resets the connection while reading is stopped.
    """

    def __init__(self, producer: Any, transport: Any, on_hangup: Callable[[], None]) -> None:
        self._producer = producer
        self._transport = transport
        self._on_hangup = on_hangup
        self._watched: tuple[HangupWatch, int] | None = None
        self.reasons = 0
        """The reasons (bits) reading is stopped for; 0 while it reads."""

    @property
    def producer(self) -> Any:
        """The transport this gate stands in for."""
        return self._producer

    def pause(self, reason: int) -> None:
        """Stop reading for ``reason`` (idempotent)."""
        if not self.reasons:
            self._producer.pauseProducing()
            self._watch()
        self.reasons |= reason

    def resume(self, reason: int) -> None:
        """Drop ``reason``; reading resumes when no reason is left."""
        if not self.reasons & reason:
            return
        self.reasons &= ~reason
        if not self.reasons:
            self._unwatch()
            self._producer.resumeProducing()

    def release(self) -> None:
        """Read again whatever the reasons (to drain and discard input before closing)."""
        if self.reasons:
            self.reasons = 0
            self._unwatch()
            self._producer.resumeProducing()

    def close(self) -> None:
        """The connection is gone: stop watching it."""
        self._unwatch()

    def _reactor(self) -> Any:
        found = getattr(self._transport, "reactor", None)  # TCP's (TLS passes it through)
        if found is None:
            from twisted.internet import reactor as found
        return found

    def _watch(self) -> None:
        watch = hangup_watch(self._reactor())
        fileno = getattr(self._transport, "fileno", None)  # TLS passes it through to TCP
        if watch is None or not callable(fileno):
            return
        try:
            fd = fileno()
        except (AttributeError, OSError):
            return
        if isinstance(fd, int) and fd >= 0:
            watch.watch(fd, self._hung_up)
            self._watched = (watch, fd)

    def _unwatch(self) -> None:
        watched, self._watched = self._watched, None
        if watched is not None:
            watch, fd = watched
            watch.unwatch(fd)

    def _hung_up(self) -> None:
        self._watched = None
        self._on_hangup()

    # IPushProducer, as HTTPChannel uses its _networkProducer.

    def pauseProducing(self) -> None:
        self.pause(TWISTED)

    def resumeProducing(self) -> None:
        self.resume(TWISTED)

    def stopProducing(self) -> None:
        self._producer.stopProducing()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._producer.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self._producer.unregisterProducer()

"""One subscriber of a :class:`~twisted_stream.Channel`: a bounded queue of events that is
both a source the engine reads (event-stream bytes) and an async iterator of
:class:`~._sse.Event` for Python code."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Literal, Protocol

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall

from .._engine._source import EOF, ReadResult, Ready, SliceDeadline
from .._errors import SubscriberOverflow
from .._sources._heartbeat import HEARTBEAT
from .._types import Clock
from ._sse import Event

Overflow = Literal["disconnect", "drop-oldest"]


class _Abortable(Protocol):
    def abort(self, reason: str = ...) -> None: ...


class _Owner(Protocol):
    """What a subscription needs of its channel."""

    queue_size: int
    overflow: Overflow
    gap_event: str

    def _remove(self, subscription: Subscription) -> None: ...


class _State(enum.Enum):
    OPEN = "open"
    ENDED = "ended"  # the channel was closed: EOF once the queue is drained
    OVERFLOWED = "overflowed"
    CLOSED = "closed"


class Subscription:
    """One subscriber of a :class:`Channel`: a source of event-stream bytes, and an async
    iterator of :class:`Event` (``async for event in channel.subscribe(): ...``; the
    iteration ends when the channel is closed, and raises
    :class:`~twisted_stream.SubscriberOverflow` if the queue overflowed with
    ``overflow="disconnect"``). Use one or the other, not both.

    Use it as the source of :func:`~twisted_stream.stream_events`, which also turns on its
    heartbeat (:meth:`heartbeat`: built in rather than a wrapper, so a published event costs
    one Deferred per subscriber). It leaves the channel when its stream ends (:meth:`close`).
    """

    __slots__ = (
        "_channel",
        "_clock",
        "_event_waiter",
        "_gap",
        "_interval",
        "_last",
        "_queue",
        "_replaying",
        "_state",
        "_timer",
        "_waiter",
        "stream",
    )

    def __init__(self, channel: _Owner) -> None:
        self._channel = channel
        self._queue: list[Event] = []
        self._waiter: Deferred[Ready] | None = None
        self._event_waiter: Deferred[Event] | None = None
        self._gap = 0
        """Events lost before the queue's head: -1 when unknown, 0 for none."""
        self._replaying = False
        """A shared channel is fetching what to replay: hold live events back until then."""
        self._state = _State.OPEN
        self._clock: Clock | None = None
        self._interval = 0.0
        self._last = 0.0
        self._timer: IDelayedCall | None = None
        self.stream: _Abortable | None = None
        """The stream serving this subscription, aborted when the queue overflows with
        ``overflow="disconnect"`` (set by :func:`~twisted_stream.stream_events`)."""

    @property
    def finished(self) -> bool:
        """True once nothing more will come: the channel was closed and the queue is empty,
        or the subscription was closed."""
        return self._state in (_State.ENDED, _State.CLOSED) and not self._queue

    @property
    def queued(self) -> int:
        """Events waiting to be read."""
        return len(self._queue)

    def heartbeat(self, interval: float, clock: Clock) -> None:
        """Send :data:`~._heartbeat.HEARTBEAT` after every ``interval`` seconds in which
        nothing was sent, measured on ``clock`` (an ``IReactorTime``)."""
        if not interval > 0:
            raise ValueError(f"heartbeat interval must be positive, not {interval}")
        self._interval = interval
        self._clock = clock
        self._last = clock.seconds()

    def attach(self, stream: _Abortable | None) -> None:
        """Abort ``stream`` (the one serving this subscription) if the queue overflows with
        ``overflow="disconnect"``; :func:`~twisted_stream.stream_events` calls this."""
        if self._state is _State.OPEN:
            self.stream = stream

    # Delivery (called by the channel).

    def _push(self, event: Event) -> None:
        if not self._replaying:
            waiter = self._waiter
            if waiter is not None:
                self._waiter = None
                if self._clock is not None:
                    self._last = self._clock.seconds()
                waiter.callback(event._wire)
                return
            event_waiter = self._event_waiter
            if event_waiter is not None:
                self._event_waiter = None
                event_waiter.callback(event)
                return
        if self._state is not _State.OPEN:
            return  # closed during this publish
        queue = self._queue
        channel = self._channel
        if len(queue) < channel.queue_size:
            queue.append(event)
            return
        if channel.overflow == "drop-oldest":
            del queue[0]
            queue.append(event)
            if self._gap >= 0:
                self._gap += 1
            return
        self._overflowed()

    def _overflowed(self) -> None:
        self._state = _State.OVERFLOWED
        self._queue = []
        self._channel._remove(self)
        if self.stream is not None:
            self.stream.abort("event subscriber too slow: its queue overflowed")
        self._wake()

    def _replayed(self, missed: list[Event], gap: int, drop: Callable[[Event], bool]) -> None:
        """A shared channel's replay arrived: ``missed`` goes before the live events queued
        meanwhile (those ``drop`` accepts are left out), after a gap marker if ``gap``."""
        self._replaying = False
        if self._state is not _State.OPEN:
            return
        live = [event for event in self._queue if not drop(event)]
        queue = missed + live
        excess = len(queue) - self._channel.queue_size
        if excess > 0:
            del queue[:excess]
            gap = -1 if gap < 0 else gap + excess
        self._queue = queue
        self._gap = gap
        self._wake()

    def _lost(self) -> None:
        """Events may have been lost here (a shared channel's backend lost them)."""
        self._push(Event("", event=self._channel.gap_event))

    def _end(self) -> None:
        if self._state is not _State.OPEN:
            return
        self._state = _State.ENDED
        self._wake()

    def _wake(self) -> None:
        """Hand what is ready (events or the end) to whoever waits."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            try:
                got = self.read(1 << 30, _NO_DEADLINE)
            except SubscriberOverflow as e:
                waiter.errback(e)
            else:
                if isinstance(got, Deferred):
                    got.chainDeferred(waiter)  # still nothing: wait again
                else:
                    waiter.callback(got)
        event_waiter, self._event_waiter = self._event_waiter, None
        if event_waiter is not None:
            self.__anext__().chainDeferred(event_waiter)

    # The engine's side.

    def read(self, limit: int, deadline: SliceDeadline) -> ReadResult:
        queue = self._queue
        if not self._replaying:
            self._take_gap()
        if queue and not self._replaying:
            if self._clock is not None:
                self._last = self._clock.seconds()
            if len(queue) == 1:
                return queue.pop()._wire
            size = 0
            taken = 0
            for event in queue:
                size += len(event._wire)
                taken += 1
                if size >= limit:
                    break
            parts = [event._wire for event in queue[:taken]]
            del queue[:taken]
            return b"".join(parts)
        state = self._state
        if state is _State.OPEN:
            waiter: Deferred[Ready] = Deferred()
            self._waiter = waiter
            if self._clock is not None and self._timer is None:
                self._arm()
            return waiter
        if state is _State.OVERFLOWED:
            raise SubscriberOverflow("the subscriber's event queue overflowed")
        return EOF

    def _take_gap(self) -> None:
        gap = self._gap
        if gap:
            self._gap = 0
            marker = Event("" if gap < 0 else str(gap), event=self._channel.gap_event)
            self._queue.insert(0, marker)

    def _arm(self) -> None:
        clock = self._clock
        assert clock is not None
        delay = self._last + self._interval - clock.seconds()
        self._timer = clock.callLater(delay if delay > 0 else 0, self._beat)

    def _beat(self) -> None:
        # The timer is not pushed back by each event (that would cost every subscriber a
        # reset per event): when it fires early it is armed again for the rest.
        self._timer = None
        waiter = self._waiter
        clock = self._clock
        if waiter is None or clock is None:
            return  # not waiting: the stream is writing, paused, or over
        now = clock.seconds()
        if now - self._last < self._interval:
            self._arm()
            return
        self._waiter = None
        self._last = now
        waiter.callback(HEARTBEAT)

    def close(self) -> None:
        """Leave the channel and drop anything queued."""
        if self._state is _State.OPEN:
            self._channel._remove(self)
        self._state = _State.CLOSED
        self._queue = []
        self._waiter = None
        event_waiter, self._event_waiter = self._event_waiter, None
        self.stream = None
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
        if event_waiter is not None:
            event_waiter.errback(StopAsyncIteration())

    # Python's side: async iteration.

    def __aiter__(self) -> Subscription:
        return self

    def __anext__(self) -> Deferred[Event]:
        """The next event (a Deferred, awaitable); ``StopAsyncIteration`` once the channel
        is closed and the queue is empty."""
        if not self._replaying:
            self._take_gap()
            if self._queue:
                return succeed(self._queue.pop(0))
        if self._state is _State.OPEN:
            if self._event_waiter is not None:
                return fail(RuntimeError("another task is already waiting on this subscription"))
            self._event_waiter = Deferred()
            return self._event_waiter
        if self._state is _State.OVERFLOWED:
            return fail(SubscriberOverflow("the subscriber's event queue overflowed"))
        return fail(StopAsyncIteration())


_NO_DEADLINE = SliceDeadline(float("inf"), time.monotonic)
"""A slice deadline that never passes (for reads outside the engine's slices)."""

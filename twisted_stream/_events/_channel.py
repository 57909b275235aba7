"""Broadcast channels: publish an event once, deliver it to every subscribed event stream.

A :class:`Channel` serialises each event once; every :class:`Subscription` is handed the same
bytes object. A subscription is a :class:`~._source.Source` the engine reads directly (no
iterator, no thread hop): when its stream is waiting, a published event is written at once;
when its stream is paused by a client that does not read, events wait in a bounded queue,
and once that is full the subscriber is disconnected or loses the oldest events (replaced by
one gap marker), so memory never grows with a slow subscriber. The channel keeps the last
``history`` events, so a client reconnecting with ``Last-Event-ID`` is first sent what it
missed. Everything here runs on the reactor thread (from another thread, publish with
``reactor.callFromThread(channel.publish, ...)``).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Literal, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall

from .._backends._memory import MemoryBackend
from .._engine._source import EOF, ReadResult, Ready, SliceDeadline
from .._errors import SubscriberOverflow
from .._sources._heartbeat import HEARTBEAT
from .._types import Clock
from ._sse import Event

Overflow = Literal["disconnect", "drop-oldest"]


class _Abortable(Protocol):
    def abort(self, reason: str = ...) -> None: ...


class _State(enum.Enum):
    OPEN = "open"
    ENDED = "ended"  # the channel was closed: EOF once the queue is drained
    OVERFLOWED = "overflowed"
    CLOSED = "closed"


class Channel:
    """Publish events once to every subscribed stream.

    ``history`` events are kept for ``Last-Event-ID`` resumes. Each subscriber queues at
    most ``queue_size`` events while its client is not reading; past that, ``overflow``
    decides: ``"disconnect"`` ends that subscriber's connection (a browser's EventSource
    reconnects and resumes from the history), ``"drop-oldest"`` drops its oldest queued
    events and sends it one ``gap_event`` event in their place, whose data is the number of
    events lost (empty when unknown).

    Serve it with ``stream_events(request, channel)``, ``EventStreamResource(channel)`` or
    ``stream_events(request, lambda last_id: channel.subscribe(last_id))``.
    """

    def __init__(
        self,
        *,
        history: int = 100,
        queue_size: int = 256,
        overflow: Overflow = "disconnect",
        gap_event: str = "gap",
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, not {queue_size}")
        if overflow not in ("disconnect", "drop-oldest"):
            raise ValueError(f'overflow must be "disconnect" or "drop-oldest", not {overflow!r}')
        Event("", event=gap_event)  # validates the name
        self.queue_size = queue_size
        self.overflow: Overflow = overflow
        self.gap_event = gap_event
        self._backend: MemoryBackend[Event] = MemoryBackend(history)
        self._subscribers: dict[Subscription, None] = {}
        self._closed = False

    @property
    def subscribers(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscribers)

    @property
    def history(self) -> list[Event]:
        """The events kept for resumes, oldest first."""
        return self._backend.history()

    def publish(self, item: str | Event, *, event: str | None = None) -> Event:
        """Send ``item`` to every subscriber; return the :class:`Event` sent.

        A ``str`` is the event's data (``event`` names its type). An event without an ``id``
        is given the channel's next number as its id; one with an id keeps it.
        """
        if self._closed:
            raise RuntimeError("publish on a closed Channel")
        if isinstance(item, str):
            sent = Event(item, event=event, id=self._backend.next_id())
        elif isinstance(item, Event):
            if event is not None:
                raise TypeError("event= is for str items; set it on the Event")
            sent = item
            if item.id is None:
                sent = dataclasses.replace(item, id=self._backend.next_id())
        else:
            raise TypeError(f"publish takes a str or an Event, not {type(item).__qualname__}")
        self._backend.keep(sent)
        for subscriber in list(self._subscribers):
            subscriber._push(sent)
        return sent

    def subscribe(self, last_event_id: str | None = None, *, replay: int = 0) -> Subscription:
        """A new subscription; with ``last_event_id`` it first replays the events published
        after that one. If that id is no longer (or never was) in the history, the whole
        history is replayed after a gap marker. Without ``last_event_id``, the last
        ``replay`` events of the history are replayed (e.g. 1 to send the current state)."""
        subscription = Subscription(self)
        if self._closed:
            subscription._state = _State.ENDED
            return subscription
        if last_event_id is None and replay > 0:
            subscription._queue = self._backend.last(min(replay, self.queue_size))
        elif last_event_id is not None:
            missed, known = self._backend.after(lambda event: event.id == last_event_id)
            excess = len(missed) - self.queue_size
            if excess > 0:
                missed = missed[excess:]
            if not known:
                subscription._gap = -1
            elif excess > 0:
                subscription._gap = excess
            subscription._queue = missed
        self._subscribers[subscription] = None
        return subscription

    def close(self) -> None:
        """End every subscription (each stream finishes once its queue is sent) and refuse
        further publishing; later subscriptions end at once."""
        self._closed = True
        subscribers, self._subscribers = self._subscribers, {}
        for subscriber in subscribers:
            subscriber._end()

    def _remove(self, subscription: Subscription) -> None:
        self._subscribers.pop(subscription, None)


class Subscription:
    """One subscriber of a :class:`Channel`: a source of event-stream bytes.

    Use it as the source of :func:`~twisted_stream.stream_events`, which also turns on its
    heartbeat (:meth:`heartbeat`: built in rather than a wrapper, so a published event costs
    one Deferred per subscriber). It leaves the channel when its stream ends (:meth:`close`).
    """

    __slots__ = (
        "_channel",
        "_clock",
        "_gap",
        "_interval",
        "_last",
        "_queue",
        "_state",
        "_timer",
        "_waiter",
        "stream",
    )

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._queue: list[Event] = []
        self._waiter: Deferred[Ready] | None = None
        self._gap = 0
        """Events lost before the queue's head: -1 when unknown, 0 for none."""
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

    def _push(self, event: Event) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if self._clock is not None:
                self._last = self._clock.seconds()
            waiter.callback(event._wire)
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
        self._state = _State.OVERFLOWED
        self._queue = []
        channel._remove(self)
        if self.stream is not None:
            self.stream.abort("event subscriber too slow: its queue overflowed")

    def _end(self) -> None:
        if self._state is not _State.OPEN:
            return
        self._state = _State.ENDED
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(EOF)

    def read(self, limit: int, deadline: SliceDeadline) -> ReadResult:
        queue = self._queue
        gap = self._gap
        if gap:
            self._gap = 0
            marker = Event("" if gap < 0 else str(gap), event=self._channel.gap_event)
            queue.insert(0, marker)
        if queue:
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
        self.stream = None
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

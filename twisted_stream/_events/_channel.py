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

A named channel with a shared backend configured (:func:`set_channel_backend`) is one
channel across processes and hosts: its events go through the backend (Redis), which
assigns their ids and keeps the history; each process delivers them to its own subscribers
(:class:`_SharedFeed`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from .._backends._current import channel_backend
from .._backends._memory import MemoryBackend
from .._backends._shared import Entry, Fields, SharedBackend
from ._sse import Event
from ._subscription import Overflow, Subscription, _State

_log = Logger(namespace="twisted_stream.channels")


class Channel:
    """Publish events once to every subscribed stream.

    ``name`` (optional) names the channel: with a shared backend configured
    (:func:`set_channel_backend`, the ``StreamSite`` setting ``channel_backend`` or the
    plugin's ``--channel-backend``), every ``Channel`` of that name in any process on any
    host is one channel: a ``publish()`` anywhere reaches subscribers everywhere, in publish
    order, and the backend assigns the ids and keeps the history. Without a backend, or
    without a name, the channel lives in this process.

    ``history`` events are kept for ``Last-Event-ID`` resumes. Each subscriber queues at
    most ``queue_size`` events while its client is not reading; past that, ``overflow``
    decides: ``"disconnect"`` ends that subscriber's connection (a browser's EventSource
    reconnects and resumes from the history), ``"drop-oldest"`` drops its oldest queued
    events and sends it one ``gap_event`` event in their place, whose data is the number of
    events lost (empty when unknown).

    Serve it with ``stream_events(request, channel)``, ``EventStreamResource(channel)`` or
    ``stream_events(request, lambda last_id: channel.subscribe(last_id))``; in Python,
    ``async for event in channel.subscribe(): ...``.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        history: int = 100,
        queue_size: int = 256,
        overflow: Overflow = "disconnect",
        gap_event: str = "gap",
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"a channel's name must be a non-empty str, not {name!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, not {queue_size}")
        if overflow not in ("disconnect", "drop-oldest"):
            raise ValueError(f'overflow must be "disconnect" or "drop-oldest", not {overflow!r}')
        Event("", event=gap_event)  # validates the name
        self.name = name
        self.queue_size = queue_size
        self.overflow: Overflow = overflow
        self.gap_event = gap_event
        self._history_size = history
        self._backend: MemoryBackend[Event] = MemoryBackend(history)
        self._subscribers: dict[Subscription, None] = {}
        self._closed = False
        self._feed: _SharedFeed | None = None
        self._resolved = False

    @property
    def shared(self) -> bool:
        """Whether this channel goes through a shared backend (decided when first used)."""
        return self._shared_feed() is not None

    @property
    def subscribers(self) -> int:
        """How many subscriptions are open (in this process)."""
        return len(self._subscribers)

    @property
    def history(self) -> list[Event]:
        """The events kept for resumes, oldest first (of a shared channel: the last ones
        this process delivered; the backend keeps the full history)."""
        return self._backend.history()

    def _shared_feed(self) -> _SharedFeed | None:
        if not self._resolved:
            self._resolved = True
            backend = channel_backend()
            if backend is not None and self.name is not None:
                self._feed = _SharedFeed(self, self.name, backend)
        return self._feed

    def publish(self, item: str | Event, *, event: str | None = None) -> Deferred[Event]:
        """Send ``item`` to every subscriber; a Deferred firing with the :class:`Event`
        sent.

        A ``str`` is the event's data (``event`` names its type). An in-process channel
        gives an event without an ``id`` its next number as id (one with an id keeps it),
        delivers it at once and returns a Deferred that has already fired. A shared channel
        sends it to the backend, which assigns its id (an event with an id of its own is a
        ``ValueError``): the Deferred fires once the backend accepted it, or fails with
        :class:`~twisted_stream.ChannelBackendError` when it cannot (not reachable, or an
        error). ``RuntimeError`` once the channel is closed.
        """
        if self._closed:
            raise RuntimeError("publish on a closed Channel")
        feed = self._shared_feed()
        if isinstance(item, str):
            sent = Event(item, event=event)
        elif isinstance(item, Event):
            if event is not None:
                raise TypeError("event= is for str items; set it on the Event")
            sent = item
        else:
            raise TypeError(f"publish takes a str or an Event, not {type(item).__qualname__}")
        if feed is not None:
            return feed.publish(sent)
        if sent.id is None:
            sent = dataclasses.replace(sent, id=self._backend.next_id())
        self._deliver(sent)
        return succeed(sent)

    def _deliver(self, sent: Event) -> None:
        self._backend.keep(sent)
        for subscriber in list(self._subscribers):
            subscriber._push(sent)

    def subscribe(self, last_event_id: str | None = None, *, replay: int = 0) -> Subscription:
        """A new subscription; with ``last_event_id`` it first replays the events published
        after that one. If that id is no longer (or never was) in the history, the whole
        history is replayed after a gap marker. Without ``last_event_id``, the last
        ``replay`` events of the history are replayed (e.g. 1 to send the current state).
        Of a shared channel, the replay comes from the backend: live events wait behind it.
        """
        subscription = Subscription(self)
        if self._closed:
            subscription._state = _State.ENDED
            return subscription
        feed = self._shared_feed()
        self._subscribers[subscription] = None
        if feed is not None:
            feed.subscribed(subscription, last_event_id, replay)
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
        return subscription

    def close(self) -> None:
        """End every subscription (each stream finishes once its queue is sent) and refuse
        further publishing; later subscriptions end at once. (Of a shared channel, this
        process's channel only.)"""
        self._closed = True
        subscribers, self._subscribers = self._subscribers, {}
        for subscriber in subscribers:
            subscriber._end()
        if self._feed is not None:
            self._feed.left()

    def _remove(self, subscription: Subscription) -> None:
        self._subscribers.pop(subscription, None)
        if not self._subscribers and self._feed is not None:
            self._feed.left()


def _fields(event: Event) -> Fields:
    """An event without its id as backend fields."""
    fields = [(b"data", event.data.encode("utf-8"))]
    if event.event is not None:
        fields.append((b"event", event.event.encode("utf-8")))
    if event.retry is not None:
        fields.append((b"retry", b"%d" % event.retry))
    return tuple(fields)


def _event(entry: Entry) -> Event:
    """The event an entry of the backend carries, with the entry's id."""
    kind = entry.get(b"event")
    retry = entry.get(b"retry")
    return Event(
        (entry.get(b"data") or b"").decode("utf-8"),
        event=kind.decode("utf-8") if kind is not None else None,
        id=entry.id,
        retry=int(retry) if retry is not None else None,
    )


class _SharedFeed:
    """A named :class:`Channel`'s link to a shared backend: it listens while the channel
    has subscribers, turns entries into events once per process, and replays resumes."""

    def __init__(self, channel: Channel, name: str, backend: SharedBackend) -> None:
        self._channel = channel
        self._name = name
        self._backend = backend
        self._listening = False

    def publish(self, event: Event) -> Deferred[Event]:
        if event.id is not None:
            raise ValueError(
                "a shared channel's event ids are assigned by its backend: "
                f"publish Event(..., id=None), not id={event.id!r}"
            )
        accepted = self._backend.append(self._name, _fields(event), self._channel._history_size)
        return accepted.addCallback(lambda entry_id: dataclasses.replace(event, id=entry_id))

    def subscribed(self, subscription: Subscription, last_id: str | None, replay: int) -> None:
        if not self._listening:
            self._listening = True
            self._backend.listen(self._name, self)
        if last_id is None and replay <= 0:
            return
        subscription._replaying = True
        replaying = Deferred.fromCoroutine(self._replay(subscription, last_id, replay))
        replaying.addErrback(self._replay_failed)

    def _replay_failed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):  # CancelledError: nobody listens any more
            _log.failure("Replaying channel {name} failed", failure, name=self._name)

    async def _replay(self, subscription: Subscription, last_id: str | None, count: int) -> None:
        backend = self._backend
        upto = await backend.position(self._name)
        size = self._channel.queue_size
        if last_id is None:
            entries = await backend.read_last(self._name, min(count, size), upto)
            subscription._replayed([_event(e) for e in entries], 0, lambda _: False)
            return
        found = await backend.read_range(self._name, last_id, upto)
        missed = found.entries[-self._channel._history_size :] if found.entries else []
        gap = len(found.entries) - len(missed) if found.known else -1
        if found.known and backend.precedes(upto, last_id):
            # The client saw events this process has not delivered yet: skip those.
            def drop(event: Event) -> bool:
                return event.id is not None and not backend.precedes(last_id, event.id)
        else:

            def drop(event: Event) -> bool:
                return False

        subscription._replayed([_event(e) for e in missed], gap, drop)

    def left(self) -> None:
        if self._listening and not self._channel._subscribers:
            self._listening = False
            self._backend.unlisten(self._name, self)

    # FeedListener.

    def entries(self, entries: Sequence[Entry]) -> None:
        channel = self._channel
        for entry in entries:
            try:
                event = _event(entry)
            except (ValueError, TypeError) as e:
                _log.warn("Skipped a malformed entry {id} of channel {name}: {e}",
                          id=entry.id, name=self._name, e=e)  # fmt: skip
                continue
            channel._deliver(event)

    def gap(self) -> None:
        for subscriber in list(self._channel._subscribers):
            subscriber._lost()

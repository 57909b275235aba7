"""Broadcast channels: ids, history and Last-Event-ID replay, bounded queues with both
overflow policies, heartbeats, unsubscribe on disconnect, and fan-out to 1,000 subscribers
over real connections with a few that never read."""

from __future__ import annotations

import random
import socket
import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from twisted_stream import Outcome, stream_for
from twisted_stream._engine._source import EOF, SliceDeadline
from twisted_stream._errors import SubscriberOverflow
from twisted_stream._events._channel import Channel, Subscription
from twisted_stream._events._event_stream import EventStreamResource
from twisted_stream._events._sse import Event
from twisted_stream._sources._heartbeat import HEARTBEAT

from ..rawclient import connect, get
from ..waiting import until, within
from .test_event_stream import body_of
from .test_sse import parse_sse

PAST = SliceDeadline(0.0, time.monotonic)
"""A slice deadline already passed (these sources hand over what they have at once)."""


def take(sub: Subscription) -> bytes:
    """Everything the subscription has ready (it must not be waiting)."""
    got = sub.read(1 << 20, PAST)
    assert isinstance(got, bytes), got
    return got


def waiting(sub: Subscription) -> list[object]:
    """Start a waiting read; the list gets what it fires with."""
    d = sub.read(1 << 20, PAST)
    assert isinstance(d, Deferred), d
    got: list[object] = []
    d.addBoth(got.append)
    return got


class FakeStream:
    def __init__(self) -> None:
        self.aborted: list[str] = []

    def abort(self, reason: str = "aborted") -> None:
        self.aborted.append(reason)


# Publishing, ids and delivery.


def published(d: Deferred) -> Event:  # type: ignore[type-arg]
    """The event an in-process publish fired its Deferred with (at once)."""
    got: list[object] = []
    d.addBoth(got.append)
    assert len(got) == 1 and isinstance(got[0], Event), got
    return got[0]


def test_publish_assigns_ids_and_returns_the_event() -> None:
    """str items get the next number as id; Events without id get one; explicit ids stay;
    the Deferred publish returns has already fired with the event sent."""
    channel = Channel()
    assert published(channel.publish("a")) == Event("a", id="1")
    assert published(channel.publish("b", event="tick")) == Event("b", event="tick", id="2")
    assert published(channel.publish(Event("c", retry=5))) == Event("c", id="3", retry=5)
    assert published(channel.publish(Event("d", id="mine"))) == Event("d", id="mine")
    assert published(channel.publish("e")).id == "4"
    with pytest.raises(TypeError):
        channel.publish(Event("x"), event="no")
    with pytest.raises(TypeError):
        channel.publish(42)  # type: ignore[arg-type]


def test_every_waiting_subscriber_gets_the_same_bytes_object() -> None:
    """One publish serialises once: each subscriber is handed the very same bytes."""
    channel = Channel()
    subs = [channel.subscribe() for _ in range(5)]
    got = [waiting(s) for s in subs]
    channel.publish("hello")
    assert all(g == [b"id: 1\ndata: hello\n\n"] for g in got)
    assert len({id(g[0]) for g in got}) == 1


def test_events_queue_while_the_stream_is_not_reading() -> None:
    """A subscriber that is not waiting queues events; the next read gives them all at once
    (up to the read limit), in order."""
    channel = Channel()
    sub = channel.subscribe()
    for i in range(3):
        channel.publish(str(i))
    assert sub.queued == 3
    assert take(sub) == b"id: 1\ndata: 0\n\nid: 2\ndata: 1\n\nid: 3\ndata: 2\n\n"
    for i in range(3):
        channel.publish(str(i))
    one = len(Event("0", id="4").encode())
    assert sub.read(one, PAST) == b"id: 4\ndata: 0\n\n"
    assert sub.queued == 2


def test_a_new_subscriber_gets_only_new_events() -> None:
    """Without Last-Event-ID nothing from the history is replayed."""
    channel = Channel()
    channel.publish("old")
    sub = channel.subscribe()
    got = waiting(sub)
    channel.publish("new")
    assert got == [b"id: 2\ndata: new\n\n"]


# Last-Event-ID.


def test_resume_replays_what_was_missed() -> None:
    """subscribe(last_id) first gives the events after last_id, then live ones."""
    channel = Channel(history=10)
    for i in range(1, 6):
        channel.publish(f"e{i}")
    sub = channel.subscribe("3")
    assert parse_sse(take(sub).decode()).events == [
        ("message", "e4", "4"),
        ("message", "e5", "5"),
    ]
    got = waiting(sub)
    channel.publish("e6")
    assert got == [b"id: 6\ndata: e6\n\n"]
    up_to_date = channel.subscribe("6")
    assert isinstance(up_to_date.read(100, PAST), Deferred)


def test_resume_from_an_id_the_history_lost_says_so() -> None:
    """An id older than the history (or unknown) gets a gap marker with empty data (count
    unknown), then the whole history."""
    channel = Channel(history=3)
    for i in range(1, 7):
        channel.publish(f"e{i}")
    assert [e.id for e in channel.history] == ["4", "5", "6"]
    events = parse_sse(take(channel.subscribe("1")).decode()).events
    assert events == [
        ("gap", "", ""),
        ("message", "e4", "4"),
        ("message", "e5", "5"),
        ("message", "e6", "6"),
    ]


def test_a_replay_longer_than_the_queue_is_cut_with_a_counted_gap() -> None:
    """At most queue_size events are replayed: the older ones are counted in a gap marker."""
    channel = Channel(history=20, queue_size=4)
    for i in range(1, 11):
        channel.publish(f"e{i}")
    events = parse_sse(take(channel.subscribe("2")).decode()).events
    assert events[0] == ("gap", "4", "")
    assert [e[1] for e in events[1:]] == ["e7", "e8", "e9", "e10"]


def test_without_history_a_resume_gets_a_gap_marker() -> None:
    """history=0 keeps nothing: a resuming client is told it may have missed events."""
    channel = Channel(history=0)
    channel.publish("x")
    assert channel.history == []
    assert take(channel.subscribe("1")) == b"event: gap\ndata: \n\n"


# Slow subscribers.


def test_drop_oldest_keeps_the_queue_bounded_and_marks_the_gap() -> None:
    """With drop-oldest a subscriber that does not read holds at most queue_size events;
    the ones dropped are replaced by one gap event counting them, ahead of the rest."""
    channel = Channel(queue_size=4, overflow="drop-oldest", gap_event="missed")
    sub = channel.subscribe()
    for i in range(1, 1001):
        channel.publish(f"e{i}")
        assert sub.queued <= 4
    assert channel.subscribers == 1
    events = parse_sse(take(sub).decode()).events
    assert events == [("missed", "996", "")] + [
        ("message", f"e{i}", str(i)) for i in range(997, 1001)
    ]
    got = waiting(sub)
    channel.publish("live")
    assert got == [b"id: 1001\ndata: live\n\n"]


def test_disconnect_drops_the_subscriber_and_aborts_its_stream() -> None:
    """With disconnect (the default) the overflowing subscriber leaves the channel at once,
    its queue is freed and its stream is aborted; reading it raises."""
    channel = Channel(queue_size=3)
    slow = channel.subscribe()
    stream = FakeStream()
    slow.attach(stream)
    fast = channel.subscribe()
    for i in range(4):
        got = waiting(fast)
        channel.publish(str(i))
        assert len(got) == 1
    assert channel.subscribers == 1
    assert slow.queued == 0
    assert len(stream.aborted) == 1 and "too slow" in stream.aborted[0]
    with pytest.raises(SubscriberOverflow):
        slow.read(100, PAST)
    slow.close()


def test_overflow_during_publish_does_not_disturb_the_others() -> None:
    """Subscribers that overflow and are removed in the middle of a publish do not make the
    others miss the event."""
    channel = Channel(queue_size=1)
    subs = [channel.subscribe() for _ in range(10)]
    for s in subs:
        s.attach(FakeStream())
    readers = subs[1::2]
    channel.publish("a")  # everyone queues it
    for r in readers:
        assert take(r) == b"id: 1\ndata: a\n\n"
    got = [waiting(r) for r in readers]
    channel.publish("b")  # the five non-readers overflow
    assert channel.subscribers == 5
    assert all(g == [b"id: 2\ndata: b\n\n"] for g in got)


# Closing.


def test_close_unsubscribes() -> None:
    """A closed subscription leaves the channel and receives nothing more."""
    channel = Channel()
    subs = [channel.subscribe() for _ in range(3)]
    got = waiting(subs[0])
    subs[0].close()
    subs[0].close()
    assert channel.subscribers == 2
    channel.publish("x")
    assert got == []


def test_closing_the_channel_ends_every_subscription() -> None:
    """Channel.close() ends waiting subscriptions with EOF, lets queued ones drain first,
    refuses publishing, and later subscriptions end at once."""
    channel = Channel()
    idle = channel.subscribe()
    busy = channel.subscribe()
    got = waiting(idle)
    channel.publish("last")
    got2 = waiting(idle)
    channel.close()
    assert got == [b"id: 1\ndata: last\n\n"]
    assert got2 == [EOF]
    assert take(busy) == b"id: 1\ndata: last\n\n"
    assert busy.read(100, PAST) is EOF
    assert channel.subscribers == 0
    with pytest.raises(RuntimeError):
        channel.publish("more")
    assert channel.subscribe().read(100, PAST) is EOF


def test_subscribers_coming_and_going() -> None:
    """Random subscribes, closes and publishes: the channel counts exactly the open
    subscriptions, and each one receives every event published in its lifetime, in order."""
    rng = random.Random(5)
    channel = Channel(queue_size=10_000)
    live: dict[Subscription, list[str]] = {}
    received: dict[Subscription, list[str]] = {}
    for step in range(3000):
        action = rng.random()
        if action < 0.3:
            sub = channel.subscribe()
            live[sub] = []
            received[sub] = []
        elif action < 0.5 and live:
            sub = rng.choice(list(live))
            received[sub] += [e[1] for e in parse_sse(drain(sub)).events]
            assert received[sub] == live.pop(sub)
            sub.close()
        else:
            event = published(channel.publish(f"s{step}"))
            for expected in live.values():
                expected.append(event.data)
        assert channel.subscribers == len(live)
    for sub, expected in live.items():
        assert [e[1] for e in parse_sse(drain(sub)).events] == expected


def drain(sub: Subscription) -> str:
    got = sub.read(1 << 30, PAST)
    return got.decode() if isinstance(got, bytes) else ""


def test_invalid_settings_are_refused() -> None:
    """Negative history, a queue smaller than one, an unknown policy or a gap event name
    with a line break are refused."""
    with pytest.raises(ValueError):
        Channel(history=-1)
    with pytest.raises(ValueError):
        Channel(queue_size=0)
    with pytest.raises(ValueError):
        Channel(overflow="block")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Channel(gap_event="a\nb")


# Heartbeats of a subscription (built in, on a fake clock).


def test_subscription_heartbeat_after_silence_and_not_while_events_flow() -> None:
    """A waiting subscription gets a comment after ``interval`` seconds without events;
    events push it back; close() cancels the timer."""
    clock = MemoryReactorClock()
    channel = Channel()
    sub = channel.subscribe()
    sub.heartbeat(15.0, clock)
    got = waiting(sub)
    clock.advance(14.75)
    assert got == []
    clock.advance(0.25)
    assert got == [HEARTBEAT]
    for _ in range(5):  # an event every 10 s: no heartbeat
        got = waiting(sub)
        clock.advance(10)
        channel.publish("x")
        assert got == [b"id: %d\ndata: x\n\n" % int(channel.history[-1].id or 0)]
    got = waiting(sub)
    clock.advance(14.75)
    assert got == []
    clock.advance(0.25)
    assert got == [HEARTBEAT]
    got = waiting(sub)
    assert len(clock.getDelayedCalls()) == 1
    sub.close()
    assert [c for c in clock.getDelayedCalls() if c.active()] == []
    clock.advance(100)
    assert got == []
    with pytest.raises(ValueError):
        channel.subscribe().heartbeat(0, clock)


# Over HTTP.


@pytest_twisted.ensureDeferred
async def test_stream_a_channel_and_resume_with_last_event_id(server: Any) -> None:
    """A client reconnecting with Last-Event-ID is first sent what it missed, then live
    events; the subscription leaves the channel when the client goes."""
    channel = Channel()
    server.serve(EventStreamResource(channel, heartbeat=None))
    raw = await connect(server.port, get())
    await until(lambda: channel.subscribers == 1, what="the subscription")
    channel.publish("one")
    channel.publish("two")
    await until(lambda: body_of(raw).count(b"\n\n") == 2, what="two events")
    raw.transport.abortConnection()  # type: ignore[union-attr]
    await until(lambda: channel.subscribers == 0, what="unsubscribe on disconnect")
    channel.publish("three")
    channel.publish("four")
    raw = await connect(server.port, get(extra="Last-Event-ID: 2\r\n"))
    await until(lambda: body_of(raw).count(b"\n\n") == 2, what="the replay")
    channel.publish("five")
    await until(lambda: body_of(raw).count(b"\n\n") == 3, what="the live event")
    assert parse_sse(body_of(raw).decode()).events == [
        ("message", "three", "3"),
        ("message", "four", "4"),
        ("message", "five", "5"),
    ]
    raw.transport.abortConnection()  # type: ignore[union-attr]
    await until(lambda: channel.subscribers == 0, what="unsubscribe on disconnect")


@pytest_twisted.ensureDeferred
async def test_many_subscribers_coming_and_going_over_http(server: Any) -> None:
    """Rounds of 60 connections opening and a random half of them leaving: the channel always
    ends up with exactly the connected ones, which all keep receiving."""
    channel = Channel()
    server.serve(EventStreamResource(channel, heartbeat=None))
    rng = random.Random(7)
    clients: list[Any] = []
    for round_ in range(4):
        clients += [await connect(server.port, get()) for _ in range(60)]
        await until(lambda cs=clients: channel.subscribers == len(cs), what="the subscriptions")
        marker = f"round-{round_}"
        channel.publish(marker)
        await until(
            lambda m=marker, cs=clients: all(m.encode() in body_of(c) for c in cs),
            what="the event everywhere",
        )
        leaving = rng.sample(clients, len(clients) // 2)
        for c in leaving:
            c.transport.abortConnection()
            clients.remove(c)
        await until(lambda cs=clients: channel.subscribers == len(cs), what="the unsubscribes")
    for c in clients:
        c.transport.abortConnection()
    await until(lambda: channel.subscribers == 0, what="everyone gone")


class Counting(Protocol):
    """Counts the events it receives (each ends with a blank line) without keeping them."""

    def __init__(self) -> None:
        self.events = 0
        self.headers = False
        self.tail = b""
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        data = self.tail + data
        if not self.headers:
            head, sep, data = data.partition(b"\r\n\r\n")
            if not sep:
                self.tail = head
                return
            self.headers = True
        self.events += data.count(b"\n\n")
        self.tail = data[-1:]

    def connectionLost(self, reason: Failure | None = None) -> None:  # type: ignore[override]
        self.lost.callback(None)


def buffered(request: Any) -> int:
    """Bytes the server's transport holds for ``request``'s connection."""
    transport = request.channel.transport
    return (
        len(transport.dataBuffer)
        - transport.offset
        + sum(len(b) for b in transport._tempDataBuffer)
    )


@pytest.mark.parametrize("overflow", ["drop-oldest", "disconnect"])
@pytest_twisted.ensureDeferred
async def test_fan_out_to_1000_subscribers_with_a_few_that_never_read(
    server: Any, overflow: str
) -> None:
    """1,000 event streams on one channel, 5 of whose clients never read: the 995 others
    receive every event; each silent one ends up paused with a bounded transport buffer and
    at most queue_size queued events (drop-oldest) or disconnected (disconnect)."""
    queue_size = 8
    channel = Channel(history=16, queue_size=queue_size, overflow=overflow)  # type: ignore[arg-type]
    subs: dict[int, tuple[Subscription, Any]] = {}

    class Resource(EventStreamResource):
        def events(self, request: Any, last_event_id: str | None) -> object:
            # Small kernel buffers so a client that does not read is felt after ~80 KB.
            handle = request.channel.transport.getHandle()
            handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            sub = channel.subscribe(last_event_id)
            subs[request.getClientAddress().port] = (sub, request)
            return sub

    server.serve(Resource(heartbeat=None))
    silent_socks = []
    for _ in range(5):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", server.port))
        silent_socks.append(s)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", server.port)
    readers: list[Counting] = []
    for _ in range(995):
        proto: Any = await connectProtocol(endpoint, Counting())
        proto.transport.write(get())
        readers.append(proto)
    for s in silent_socks:
        await until(lambda s=s: _send(s, get()), what="the silent clients' requests")
    await until(lambda: channel.subscribers == 1000, timeout=30, what="1000 subscriptions")
    silent = [subs[s.getsockname()[1]] for s in silent_socks]
    silent_handles = [stream_for(request) for _, request in silent]
    payload = "x" * 1000
    published = 0

    def saturated() -> bool:
        if overflow == "disconnect":
            return channel.subscribers == 995
        return all(sub._gap > 0 for sub, _ in silent)

    while not saturated():
        assert published < 1000, "the silent clients never filled up"
        for _ in range(4):
            channel.publish(payload)
            published += 1
        await until(
            lambda n=published: all(r.events == n for r in readers),
            timeout=30,
            what="every reader to get the burst",
        )
        for sub, request in silent:
            assert sub.queued <= queue_size
            if not request.finished and not request._disconnected:
                assert buffered(request) <= 2 * 65536 + 8192
    # Keep publishing well past the point of overflow: nothing grows.
    for _ in range(10):
        for _ in range(queue_size):
            channel.publish(payload)
            published += 1
        await until(
            lambda n=published: all(r.events == n for r in readers),
            timeout=30,
            what="every reader to get the burst",
        )
        for sub, _ in silent:
            assert sub.queued <= queue_size
    if overflow == "disconnect":
        for handle in silent_handles:
            assert handle is not None
            result = await within(handle.when_done())
            assert result.outcome is Outcome.ABORTED
    else:
        assert channel.subscribers == 1000
        for sub, request in silent:
            assert sub.queued == queue_size
            assert buffered(request) <= 2 * 65536 + 8192
    assert all(r.events == published for r in readers)
    for s in silent_socks:
        s.close()
    for r in readers:
        r.transport.abortConnection()  # type: ignore[union-attr]
    await until(lambda: channel.subscribers == 0, timeout=30, what="every unsubscribe")


def _send(sock: socket.socket, data: bytes) -> bool:
    """Send on a non-blocking socket once it is connected; True when sent."""
    try:
        sock.send(data)
    except (BlockingIOError, OSError):
        return False
    return True


@pytest_twisted.ensureDeferred
async def test_a_closed_channel_answers_204_so_browsers_stop(server: Any) -> None:
    """Streams of a channel that gets closed finish cleanly; a client coming back then gets
    204 No Content, which tells EventSource not to reconnect again."""
    channel = Channel()
    server.serve(EventStreamResource(channel, heartbeat=None))
    raw = await connect(server.port, get(extra="Connection: close\r\n"))
    await until(lambda: channel.subscribers == 1, what="the subscription")
    channel.publish("bye")
    channel.close()
    await within(raw.closed)
    assert body_of(raw) == b"id: 1\ndata: bye\n\n"
    raw = await connect(server.port, get(extra="Connection: close\r\nLast-Event-ID: 1\r\n"))
    await within(raw.closed)
    assert raw.received.startswith(b"HTTP/1.1 204 ")
    assert b"text/event-stream" not in raw.received

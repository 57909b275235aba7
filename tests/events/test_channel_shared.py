"""Named channels shared through a real Redis: each ``RedisBackend`` here stands for one
process (its own connections), so two channels of the same name on two backends are what two
workers or two hosts see. Delivery across them, publish order, ``Last-Event-ID`` resumes
against the central ids, async iteration, and Redis going away and coming back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted

from twisted_stream import (
    Channel,
    ChannelBackendError,
    Event,
    RedisBackend,
    Subscription,
    set_channel_backend,
)

from ..redis_server import RedisServer
from ..waiting import until, within

MakeChannel = Callable[..., Channel]


@pytest.fixture
def shared(redis: RedisServer) -> Iterator[MakeChannel]:
    """``shared(name, **channel_options)``: a channel of that name on a backend of its own
    (one "process"), connected to the test's Redis."""
    made: list[RedisBackend] = []

    def channel(name: str, **options: Any) -> Channel:
        backend = RedisBackend(redis.url, timeout=2.0, retry=(0.05, 0.2))
        made.append(backend)
        set_channel_backend(backend)
        try:
            made_channel = Channel(name, **options)
            assert made_channel.shared
        finally:
            set_channel_backend(None)
        return made_channel

    yield channel
    set_channel_backend(None)
    for backend in made:
        pytest_twisted.blockon(backend.stop())


async def take(subscription: Subscription, count: int, timeout: float = 10.0) -> list[Event]:
    """The next ``count`` events of ``subscription``, read as an async iterator."""
    got: list[Event] = []
    while len(got) < count:
        got.append(await within(subscription.__anext__(), timeout))
    return got


async def joined(*channels: Channel) -> None:
    """Wait until the processes of ``channels`` (each subscribed to) read their channel:
    every event published from now on reaches their subscribers."""
    for channel in channels:
        feed = channel._feed
        assert feed is not None and channel.name is not None
        await within(feed._backend.position(channel.name))


def test_unnamed_or_no_backend_stays_in_process() -> None:
    """Without a backend a named channel is in-process; an unnamed one is even with one."""
    assert not Channel("news").shared
    backend = set_channel_backend(RedisBackend("redis://127.0.0.1:1/0"))
    try:
        assert backend is not None
        assert not Channel().shared
        assert Channel("news").shared
    finally:
        set_channel_backend(None)


@pytest_twisted.ensureDeferred
async def test_an_event_published_in_one_process_reaches_the_other(shared: MakeChannel) -> None:
    """publish() on one backend fires with the event and its central id once Redis accepted
    it; a subscriber of the same name on another backend receives the same event (bytes
    with that id), and so does one of the publishing process."""
    here, there = shared("news"), shared("news")
    far = there.subscribe()
    near = here.subscribe()
    await joined(here, there)
    sent = await within(here.publish("hello", event="greeting"))
    assert sent.data == "hello" and sent.event == "greeting"
    assert sent.id is not None and sent.id.count("-") == 1  # a Redis stream id
    assert await take(far, 1) == [sent]
    assert await take(near, 1) == [sent]
    assert far.queued == 0


@pytest_twisted.ensureDeferred
async def test_publish_order_is_kept_across_processes(shared: MakeChannel) -> None:
    """Events published without waiting arrive everywhere in publish order, with ids that
    grow; other channel names are not mixed in."""
    here, there, other = shared("orders"), shared("orders"), shared("other")
    far = there.subscribe()
    await joined(there)
    other.publish("elsewhere")
    published = [here.publish(str(i)) for i in range(200)]
    events = await take(far, 200)
    assert [e.data for e in events] == [str(i) for i in range(200)]
    assert [e.id for e in events] == [(await d).id for d in published]
    ids = [tuple(int(p) for p in (e.id or "").split("-")) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 200


@pytest_twisted.ensureDeferred
async def test_last_event_id_resumes_in_another_process(shared: MakeChannel) -> None:
    """A client that saw events through one process and reconnects to another with
    Last-Event-ID is first sent exactly what it missed (from Redis), then live events."""
    here, there = shared("feed", history=50), shared("feed", history=50)
    first = here.subscribe()
    await joined(here)
    seen = await within(here.publish("a"))
    assert await take(first, 1) == [seen]
    first.close()
    missed = [await within(here.publish(x)) for x in ("b", "c", "d")]
    resumed = there.subscribe(seen.id)
    assert await take(resumed, 3) == missed
    live = await within(here.publish("e"))
    assert await take(resumed, 1) == [live]
    assert resumed.queued == 0  # nothing more: no duplicate of the replay


@pytest_twisted.ensureDeferred
async def test_an_unknown_last_event_id_gets_a_gap_and_the_history(shared: MakeChannel) -> None:
    """An id Redis does not have (malformed, or trimmed away) replays the history after a
    gap marker with empty data; replay=N without an id replays the last N."""
    here, there = shared("hist", history=3), shared("hist", history=3)
    here.subscribe()
    await joined(here)
    sent = [await within(here.publish(x)) for x in "wxyz"]
    resumed = there.subscribe("not-an-id")
    events = await take(resumed, 4)
    assert events[0] == Event("", event="gap")
    assert events[1:] == sent[1:]  # history=3: the newest three
    latest = there.subscribe(replay=2)
    assert await take(latest, 2) == sent[2:]


@pytest_twisted.ensureDeferred
async def test_a_shared_event_with_its_own_id_is_refused(shared: MakeChannel) -> None:
    """Ids of a shared channel come from Redis: an Event with an id is a ValueError."""
    channel = shared("ids")
    with pytest.raises(ValueError, match="assigned by its backend"):
        channel.publish(Event("x", id="7"))


@pytest_twisted.ensureDeferred
async def test_async_iteration_ends_when_the_channel_closes(shared: MakeChannel) -> None:
    """``async for`` over a subscription yields events and stops once the channel is
    closed."""
    here, there = shared("iter"), shared("iter")
    sub = there.subscribe()
    await joined(there)
    await within(here.publish("one"))
    got = []
    async for event in sub:
        got.append(event.data)
        if len(got) == 1:
            there.close()
    assert got == ["one"]


@pytest_twisted.ensureDeferred
async def test_redis_lost_and_back(shared: MakeChannel, redis: RedisServer) -> None:
    """Redis stops: subscribers stay subscribed, publish fails at once with
    ChannelBackendError naming Redis. It comes back (empty: no persistence): subscribers
    get a gap marker (the history is gone) and then new events again."""
    here, there = shared("outage"), shared("outage")
    far = there.subscribe()
    await joined(there)
    before = await within(here.publish("before"))
    assert await take(far, 1) == [before]
    redis.stop()
    await until(lambda: _disconnected(here), what="the publisher to see Redis gone")
    with pytest.raises(ChannelBackendError, match=r"Redis at redis://127\.0\.0\.1"):
        await within(here.publish("lost"))
    assert there.subscribers == 1 and not far.finished
    redis.start()
    await until(lambda: not _disconnected(here), what="the publisher to reconnect")
    back = await within(here.publish("back"))
    events = await take(far, 2)
    assert events == [Event("", event="gap"), back]


@pytest_twisted.ensureDeferred
async def test_a_reader_cut_off_catches_up_from_the_stream(
    shared: MakeChannel, redis: RedisServer
) -> None:
    """A process whose reading connection drops gets, once it reconnects, every event
    published meanwhile, in order, and no gap (the stream still holds them)."""
    here, there = shared("catchup"), shared("catchup")
    far = there.subscribe()
    await joined(there)
    before = await within(here.publish("before"))
    assert await take(far, 1) == [before]
    reader = _backend(there)._reader_id
    assert reader is not None
    assert redis.command("CLIENT", "KILL", "ID", str(reader)) == b":1"
    sent = [await within(here.publish(str(i))) for i in range(5)]
    assert await take(far, 5) == sent
    assert _backend(there)._reader_id != reader  # it did reconnect


def _backend(channel: Channel) -> RedisBackend:
    feed = channel._feed
    assert feed is not None
    backend = feed._backend
    assert isinstance(backend, RedisBackend)
    return backend


def _disconnected(channel: Channel) -> bool:
    return _backend(channel)._commands.connection is None

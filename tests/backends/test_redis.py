"""The Redis backend on its own: the data model in Redis, ids, and failing loudly."""

from __future__ import annotations

import pytest
import pytest_twisted

from twisted_stream import ChannelBackendError, RedisBackend
from twisted_stream._backends._redis import KEY_PREFIX

from ..redis_server import RedisServer, free_port
from ..waiting import within


@pytest_twisted.ensureDeferred
async def test_entries_are_a_capped_redis_stream(redis: RedisServer) -> None:
    """append() is an XADD to the channel's stream: Redis assigns ids in order, the fields
    are stored as given, and read_range / read_last read them back."""
    backend = RedisBackend(redis.url)
    try:
        ids = [await within(backend.append("ch", ((b"data", b"%d" % i),), 10)) for i in range(3)]
        assert backend.precedes(ids[0], ids[1]) and backend.precedes(ids[1], ids[2])
        assert redis.command("TYPE", KEY_PREFIX + "ch") == b"+stream"
        assert redis.command("XLEN", KEY_PREFIX + "ch") == b":3"
        found = await within(backend.read_range("ch", ids[0], ids[2]))
        assert found.known and [e.id for e in found.entries] == ids[1:]
        assert found.entries[0].get(b"data") == b"1"
        unknown = await within(backend.read_range("ch", "1-1", ids[2]))
        assert not unknown.known and [e.id for e in unknown.entries] == ids
        last = await within(backend.read_last("ch", 2, ids[2]))
        assert [e.id for e in last] == ids[1:]
    finally:
        await backend.stop()


@pytest_twisted.ensureDeferred
async def test_publishing_without_redis_fails_loudly() -> None:
    """With nothing listening where Redis should be, append() fails (after the first
    connection attempt) with ChannelBackendError naming the server and the channel."""
    backend = RedisBackend(f"redis://127.0.0.1:{free_port()}/0", timeout=1.0)
    try:
        with pytest.raises(ChannelBackendError, match=r"Redis at redis://127\.0\.0\.1.*'ch'"):
            await within(backend.append("ch", ((b"data", b"x"),), 10))
        # Later ones fail at once, without waiting for a reconnection.
        failed = backend.append("ch", ((b"data", b"y"),), 10)
        assert failed.called
        with pytest.raises(ChannelBackendError):
            await failed
    finally:
        await backend.stop()


@pytest_twisted.ensureDeferred
async def test_an_error_from_redis_fails_the_publish(redis: RedisServer) -> None:
    """A key of another type makes XADD fail: the publish fails with Redis's message."""
    redis.command("SET", KEY_PREFIX + "taken", "a string")
    backend = RedisBackend(redis.url)
    try:
        with pytest.raises(ChannelBackendError, match="WRONGTYPE"):
            await within(backend.append("taken", ((b"data", b"x"),), 10))
    finally:
        await backend.stop()

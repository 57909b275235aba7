"""The bounded thread pool for threaded sources (``twisted_stream._sources._pool``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from twisted_stream._sources._pool import thread_pool

from ..waiting import until, within
from .test_threaded import FAR, source


def test_pool_size_must_be_positive() -> None:
    """A pool of zero threads is refused with a clear error."""
    with pytest.raises(ValueError, match="thread_pool_size"):
        thread_pool(reactor, 0)


def test_the_pool_is_shared_and_resized() -> None:
    """One pool per reactor; asking for another size resizes it."""
    pool = thread_pool(reactor, 3)
    assert thread_pool(reactor, 3) is pool
    assert pool.max == 3
    thread_pool(reactor, 10)
    assert pool.max == 10


@pytest_twisted.ensureDeferred
async def test_the_pool_is_bounded_and_extra_sources_wait() -> None:
    """With all threads busy, another threaded source waits its turn instead of a new thread."""
    release = threading.Event()
    started: list[int] = []

    def blocking(n: int) -> Iterator[bytes]:
        started.append(n)
        release.wait(10)
        yield b"%d" % n

    sources = [source(blocking(n), size=2) for n in range(3)]
    results = [s.read(65536, FAR) for s in sources]
    await until(lambda: len(started) == 2, what="two workers to start")
    assert thread_pool(reactor, 2).workers <= 2
    release.set()
    for d in results:
        assert isinstance(d, Deferred)
        await within(d)
    assert sorted(started) == [0, 1, 2]
    for s in sources:
        await within(s.close())
    thread_pool(reactor, 10)

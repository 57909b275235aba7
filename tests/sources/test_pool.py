"""The bounded thread pool for threaded sources (``twisted_stream._sources._pool``): one per
``StreamSite``, one default per reactor for a plain ``Site``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.web.test.requesthelper import DummyRequest

from twisted_stream import StreamSettings, StreamSite
from twisted_stream._sources._pool import StreamThreadPool, default_pool, pool_for

from ..waiting import until, within
from .test_threaded import FAR, POOL, source


def test_pool_size_must_be_positive() -> None:
    """A pool of zero threads is refused with a clear error, made or resized."""
    with pytest.raises(ValueError, match="thread_pool_size"):
        StreamThreadPool(0)
    with pytest.raises(ValueError, match="thread_pool_size"):
        StreamThreadPool(2).resize(0)


def test_the_default_pool_is_one_per_reactor_and_resized() -> None:
    """A request outside a StreamSite uses its reactor's one default pool; asking for another
    size resizes it."""
    request = DummyRequest([b""])
    pool = pool_for(request, reactor, 3)  # type: ignore[arg-type]
    assert pool_for(request, reactor, 3) is pool is default_pool(reactor)  # type: ignore[arg-type]
    assert pool.size == 3
    pool_for(request, reactor, 10)  # type: ignore[arg-type]
    assert pool.size == 10
    other = MemoryReactorClock()
    assert default_pool(other) is not pool  # type: ignore[arg-type]


def test_each_stream_site_owns_its_pool() -> None:
    """A StreamSite's threaded sources run on the site's own pool, sized by its settings, so
    two sites never resize each other's pool."""
    small = StreamSite(None, settings=StreamSettings(thread_pool_size=2))
    large = StreamSite(None, settings=StreamSettings(thread_pool_size=7))
    assert small.thread_pool is not large.thread_pool
    assert (small.thread_pool.size, large.thread_pool.size) == (2, 7)

    def request_of(site: Any) -> Any:
        request = DummyRequest([b""])
        request.site = site
        return request

    assert pool_for(request_of(small), reactor, 2) is small.thread_pool  # type: ignore[arg-type]
    assert pool_for(request_of(large), reactor, 7) is large.thread_pool  # type: ignore[arg-type]
    assert small.thread_pool.size == 2
    assert small.thread_pool.workers == 0, "no thread starts before the first threaded source"


def test_a_pool_stopped_with_its_reactor_starts_again() -> None:
    """The pool stops when the reactor that first used it shuts down; used again, it starts
    new threads."""
    clock = MemoryReactorClock()
    pool = StreamThreadPool(1)
    ran = threading.Event()
    pool.run(clock, ran.set)  # type: ignore[arg-type]
    assert ran.wait(10)
    [(stop, args, _)] = clock.triggers["during"]["shutdown"]
    stop(*args)  # the reactor shuts down
    assert pool.workers == 0
    again = threading.Event()
    pool.run(clock, again.set)  # type: ignore[arg-type]
    assert again.wait(10)
    pool.stop()


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
    assert POOL.workers <= 2
    release.set()
    for d in results:
        assert isinstance(d, Deferred)
        await within(d)
    assert sorted(started) == [0, 1, 2]
    for s in sources:
        await within(s.close())
    POOL.resize(4)


# Admission: a bounded, timed queue for new streams.


class Blocker:
    """Work that blocks its thread until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> None:
        self.entered.set()
        self.release.wait(10)


def test_new_streams_wait_in_a_bounded_queue() -> None:
    """With every thread busy, ``queue_size`` new items may wait and one more is refused
    (None); a cancelled one frees its place and never runs; items run in order once a thread
    is free, on the worker that finished the previous one."""
    clock = MemoryReactorClock()
    pool = StreamThreadPool(1, queue_size=2, queue_timeout=0)
    blocker = Blocker()
    ran: list[str] = []
    done = threading.Event()
    assert pool.admit(clock, blocker, print) is not None  # type: ignore[arg-type]
    assert blocker.entered.wait(10)
    first = pool.admit(clock, lambda: ran.append("first"), print)  # type: ignore[arg-type]
    second = pool.admit(clock, lambda: ran.append("second"), print)  # type: ignore[arg-type]
    assert first is not None and second is not None
    assert pool.admit(clock, lambda: ran.append("refused"), print) is None  # type: ignore[arg-type]
    assert pool.cancel(first) and pool.waiting == 1
    third = pool.admit(clock, lambda: (ran.append("third"), done.set()), print)  # type: ignore[arg-type]
    assert third is not None
    blocker.release.set()
    assert done.wait(10)
    assert ran == ["second", "third"]
    assert pool.workers == 1 and not pool.cancel(third)
    pool.stop()


def test_runs_of_admitted_streams_are_not_refused() -> None:
    """``run`` (the later runs of a stream already admitted, and closes) always queues."""
    clock = MemoryReactorClock()
    pool = StreamThreadPool(1, queue_size=0, queue_timeout=0)
    blocker = Blocker()
    pool.run(clock, blocker)  # type: ignore[arg-type]
    assert blocker.entered.wait(10)
    done = threading.Event()
    pool.run(clock, done.set)  # type: ignore[arg-type]
    assert pool.admit(clock, print, print) is None  # type: ignore[arg-type]
    blocker.release.set()
    assert done.wait(10)
    pool.stop()


def test_a_new_stream_waits_at_most_the_queue_timeout() -> None:
    """An admitted item still waiting after ``queue_timeout`` is dropped and its
    ``on_timeout`` called (in the reactor thread); one that got a thread in time is not."""
    clock = MemoryReactorClock()
    pool = StreamThreadPool(1, queue_size=5, queue_timeout=2.0)
    blocker = Blocker()
    pool.admit(clock, blocker, print)  # type: ignore[arg-type]
    assert blocker.entered.wait(10)
    timed_out: list[str] = []
    ran: list[str] = []
    pool.admit(clock, lambda: ran.append("a"), lambda: timed_out.append("a"))  # type: ignore[arg-type]
    clock.advance(1.0)
    pool.admit(clock, lambda: ran.append("b"), lambda: timed_out.append("b"))  # type: ignore[arg-type]
    clock.advance(1.0)
    assert timed_out == ["a"] and pool.waiting == 1
    clock.advance(0.5)
    assert timed_out == ["a"]
    clock.advance(0.5)
    assert timed_out == ["a", "b"] and pool.waiting == 0
    blocker.release.set()
    pool.stop()
    assert ran == []


@pytest.mark.filterwarnings("error")
def test_shutdown_does_not_wait_for_a_stuck_worker() -> None:
    """The pool's threads are daemon threads, started without any warning (Python 3.13 warns
    of a ``functools.partial`` thread factory), and its shutdown trigger returns at once even
    with a worker stuck in a blocking call (it would otherwise hold the process)."""
    clock = MemoryReactorClock()
    pool = StreamThreadPool(2)
    stuck = Blocker()
    pool.run(clock, stuck)  # type: ignore[arg-type]
    assert stuck.entered.wait(10)
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("twisted_stream"))
    [(stop, args, _)] = clock.triggers["during"]["shutdown"]
    started = time.monotonic()
    stop(*args)
    assert time.monotonic() - started < 0.5
    stuck.release.set()

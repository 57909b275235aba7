"""The threaded adapter (``twisted_stream._sources._threaded``): blocking generators."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from twisted_stream._engine._chunks import chunk_converter
from twisted_stream._engine._source import EOF, SliceDeadline
from twisted_stream._errors import StreamRejected
from twisted_stream._sources._pool import StreamThreadPool
from twisted_stream._sources._threaded import ThreadedSource

from ..waiting import until, within

FAR = SliceDeadline(math.inf, time.monotonic)

POOL = StreamThreadPool(4)
"""The pool of these tests' sources (one for the module: its threads live until the reactor
stops)."""


def source(items: object, size: int = 4) -> ThreadedSource:
    """A threaded source of ``items`` on :data:`POOL`, resized to ``size`` threads."""
    POOL.resize(size)
    return ThreadedSource(items, chunk_converter("utf-8"), POOL, reactor)  # type: ignore[arg-type]


async def read(src: ThreadedSource, limit: int = 65536) -> object:
    result = src.read(limit, FAR)
    if isinstance(result, Deferred):
        return await within(result)
    return result


@pytest_twisted.ensureDeferred
async def test_next_runs_off_the_reactor_thread() -> None:
    """The generator's body runs on a worker thread, never the reactor's."""
    threads: list[threading.Thread] = []

    def gen() -> Iterator[bytes]:
        threads.append(threading.current_thread())
        yield b"x"

    src = source(gen())
    assert await read(src) == b"x"
    assert await read(src) is EOF
    assert threads and threads[0] is not threading.main_thread()
    await within(src.close())


@pytest_twisted.ensureDeferred
async def test_an_item_is_delivered_before_the_next_one_exists() -> None:
    """A slow generator's item arrives while the generator is still blocked on the next."""
    release = threading.Event()

    def gen() -> Iterator[bytes]:
        yield b"first"
        release.wait(10)
        yield b"second"

    src = source(gen())
    assert await read(src) == b"first"
    release.set()
    assert await read(src) == b"second"
    await within(src.close())


@pytest_twisted.ensureDeferred
async def test_fast_items_are_batched_per_thread_hop() -> None:
    """Many quick items cost few hand-overs: each read takes everything queued."""
    src = source(b"0123456789" for _ in range(20_000))
    reads = 0
    total = 0
    while True:
        data = await read(src, 65536)
        if data is EOF:
            break
        assert isinstance(data, bytes)
        reads += 1
        total += len(data)
    assert total == 200_000
    assert reads < 2_000, f"{reads} hand-overs for 20,000 items (not one per item)"
    await within(src.close())


@pytest_twisted.ensureDeferred
async def test_close_waits_for_the_running_next_and_closes_on_a_worker() -> None:
    """close() during a blocked next() closes the generator once that call returns, on a
    worker thread; the generator is never closed while it runs."""
    entered = threading.Event()
    release = threading.Event()
    closed_on: list[threading.Thread] = []

    def gen() -> Iterator[bytes]:
        try:
            entered.set()
            release.wait(10)
            yield b"late"
            yield b"never"
        finally:
            closed_on.append(threading.current_thread())

    src = source(gen())
    pending = src.read(65536, FAR)
    assert isinstance(pending, Deferred)
    pending.addErrback(lambda f: None)
    await until(entered.is_set, what="next() to start")
    closing = src.close()
    assert closed_on == []
    release.set()
    await within(closing)
    assert len(closed_on) == 1
    assert closed_on[0] is not threading.main_thread()


@pytest_twisted.ensureDeferred
async def test_a_failure_is_delivered_after_earlier_items() -> None:
    """Items before a failure are delivered, then the failure."""

    def gen() -> Iterator[bytes]:
        yield b"ok"
        raise ValueError("boom")

    src = source(gen())
    got = await read(src)
    if got == b"ok":
        try:
            await read(src)
        except ValueError as e:
            assert "boom" in str(e)
        else:
            raise AssertionError("the failure was lost")
    await within(src.close())


@pytest_twisted.ensureDeferred
async def test_a_source_refused_by_the_pool_closes_at_once() -> None:
    """With every thread busy and no room to wait, the first read fails at once with
    ``StreamRejected``; closing it then needs no thread (the generator never ran), so it is
    not queued behind the busy pool."""
    pool = StreamThreadPool(1, queue_size=0, queue_timeout=0)
    release = threading.Event()
    busy = ThreadedSource(iter_blocking(release), chunk_converter("utf-8"), pool, reactor)  # type: ignore[arg-type]
    busy.read(65536, FAR)
    await until(lambda: pool.busy == 1, what="the pool to be busy")
    refused = ThreadedSource(iter([b"never"]), chunk_converter("utf-8"), pool, reactor)  # type: ignore[arg-type]
    result = refused.read(65536, FAR)
    assert isinstance(result, Deferred) and result.called
    with pytest.raises(StreamRejected, match="every thread is busy"):
        await result
    await within(refused.close(), 1)
    release.set()
    await within(busy.close())


@pytest_twisted.ensureDeferred
async def test_a_waiting_source_closed_leaves_the_queue_and_never_runs() -> None:
    """A source waiting for a thread whose stream ends (its client left) is dropped from the
    queue at once: its generator never runs, its close fires at once."""
    pool = StreamThreadPool(1, queue_size=5, queue_timeout=0)
    release = threading.Event()
    busy = ThreadedSource(iter_blocking(release), chunk_converter("utf-8"), pool, reactor)  # type: ignore[arg-type]
    busy.read(65536, FAR)
    await until(lambda: pool.busy == 1, what="the pool to be busy")
    ran: list[int] = []

    def never() -> Iterator[bytes]:
        ran.append(1)
        yield b"x"

    waiting = ThreadedSource(never(), chunk_converter("utf-8"), pool, reactor)  # type: ignore[arg-type]
    d = waiting.read(65536, FAR)
    assert isinstance(d, Deferred) and pool.waiting == 1
    await within(waiting.close(), 1)
    assert pool.waiting == 0
    release.set()
    await within(busy.close())
    assert ran == []


@pytest_twisted.ensureDeferred
async def test_a_source_waiting_past_the_queue_timeout_is_refused() -> None:
    """A new source still waiting for a thread after ``queue_timeout`` fails its read with
    ``StreamRejected`` (the engine answers 503)."""
    pool = StreamThreadPool(1, queue_size=5, queue_timeout=0.2)
    release = threading.Event()
    busy = ThreadedSource(iter_blocking(release), chunk_converter("utf-8"), pool, reactor)  # type: ignore[arg-type]
    busy.read(65536, FAR)
    await until(lambda: pool.busy == 1, what="the pool to be busy")
    waiting = ThreadedSource(iter([b"x"]), chunk_converter("utf-8"), pool, reactor)  # type: ignore[arg-type]
    d = waiting.read(65536, FAR)
    assert isinstance(d, Deferred)
    with pytest.raises(StreamRejected, match=r"no thread was free for 0\.2 s"):
        await within(d, 5)
    await within(waiting.close(), 1)
    release.set()
    await within(busy.close())


def iter_blocking(release: threading.Event) -> Iterator[bytes]:
    release.wait(10)
    yield b"late"

"""The async iterator adapter (``twisted_stream._sources._async``)."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import AsyncIterator

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock

from twisted_stream._engine._chunks import chunk_converter
from twisted_stream._engine._source import EOF, SliceDeadline
from twisted_stream._sources._async import AsyncIteratorSource, run_awaitable

FAR = SliceDeadline(math.inf, time.monotonic)


def source(agen: object) -> AsyncIteratorSource:
    return AsyncIteratorSource(agen, chunk_converter("utf-8"))  # type: ignore[arg-type]


def result(d: object) -> object:
    assert isinstance(d, Deferred)
    out: list[object] = []
    d.addBoth(out.append)
    return out[0] if out else None


def test_items_ready_at_once_are_coalesced_without_deferreds() -> None:
    """An async generator that never suspends is read like a sync one."""

    async def gen() -> AsyncIterator[str]:
        for word in ("a", "b", "c"):
            yield word

    src = source(gen())
    assert src.read(100, FAR) == b"abc"
    assert src.read(100, FAR) is EOF


def test_a_suspension_returns_what_came_before_then_waits() -> None:
    """Bytes before an await are returned; the next read waits for the await to finish."""
    gate: Deferred[str] = Deferred()

    async def gen() -> AsyncIterator[str]:
        yield "a"
        yield await gate
        yield "c"

    src = source(gen())
    assert src.read(100, FAR) == b"a"
    waiting = src.read(100, FAR)
    assert isinstance(waiting, Deferred) and not waiting.called
    gate.callback("b")
    assert result(waiting) == b"b"
    assert src.read(100, FAR) == b"c"
    assert src.read(100, FAR) is EOF


def test_end_while_waiting_is_eof() -> None:
    """An async generator that ends after an await delivers EOF through the Deferred."""
    gate: Deferred[None] = Deferred()

    async def gen() -> AsyncIterator[str]:
        await gate
        return
        yield "never"  # pragma: no cover

    src = source(gen())
    waiting = src.read(100, FAR)
    gate.callback(None)
    assert result(waiting) is EOF


def test_errors_are_raised_or_delivered() -> None:
    """A failure before or after an await reaches the engine."""

    async def gen() -> AsyncIterator[str]:
        raise ValueError("boom")
        yield ""  # pragma: no cover

    with pytest.raises(ValueError):
        source(gen()).read(100, FAR)


def closed_while_waiting(agen: object) -> Deferred[None] | None:
    """Read ``a`` from ``agen``, let the next read wait on it, then close the source: what
    ``close()`` returned."""
    src = source(agen)
    assert src.read(100, FAR) == b"a"
    waiting = src.read(100, FAR)
    assert isinstance(waiting, Deferred)
    waiting.addErrback(lambda f: None)
    return src.close()


def test_close_cancels_the_pending_await_and_runs_finally() -> None:
    """close() cancels what the generator awaits, so its finally runs, then acloses it."""
    ran: list[str] = []
    gate: Deferred[None] = Deferred()

    async def gen() -> AsyncIterator[str]:
        try:
            yield "a"
            await gate
            yield "b"
        finally:
            ran.append("finally")

    closed = closed_while_waiting(gen())
    assert ran == ["finally"]
    assert closed is None or result(closed) is None


def test_close_waits_for_a_finally_that_awaits() -> None:
    """Kind 4 (a client leaving is logged as an error): a generator whose ``finally``
    awaits again after the cancellation is still running, and its ``aclose()`` would raise
    "asynchronous generator is already running" (logged as a failed close). close() returns
    a Deferred that fires once that ``finally`` has finished, and nothing fails."""
    ran: list[str] = []
    gate: Deferred[None] = Deferred()
    cleanup: Deferred[None] = Deferred()

    async def gen() -> AsyncIterator[str]:
        try:
            yield "a"
            await gate
        finally:
            ran.append("finally")
            await cleanup
            ran.append("cleaned up")

    closed = closed_while_waiting(gen())
    assert ran == ["finally"]
    assert isinstance(closed, Deferred) and not closed.called
    cleanup.callback(None)
    assert ran == ["finally", "cleaned up"]
    assert result(closed) is None


def test_close_of_a_generator_suspended_at_yield_runs_finally() -> None:
    """A generator paused at a yield is aclose()d: its finally runs."""
    ran: list[str] = []

    async def gen() -> AsyncIterator[str]:
        try:
            while True:
                yield "x"
        finally:
            ran.append("finally")

    src = source(gen())
    assert src.read(3, FAR) == b"xxx"
    src.close()
    assert ran == ["finally"]


def test_run_awaitable_drives_to_completion() -> None:
    """run_awaitable gives a Deferred of a coroutine's result, waiting on Deferreds."""
    gate: Deferred[int] = Deferred()

    async def work() -> int:
        return (await gate) + 1

    d = run_awaitable(work())
    gate.callback(41)
    assert result(d) == 42


def test_waiting_between_items_leaves_no_reference_cycles() -> None:
    """An async generator that awaits a Deferred before every item (an idle event stream)
    leaves no garbage reference cycles behind: what each wait created is freed as soon as
    the item is delivered, so thousands of such streams do not feed the cyclic GC."""
    clock = MemoryReactorClock()

    async def ticks() -> AsyncIterator[str]:
        while True:
            await deferLater(clock, 1.0, lambda: None)
            yield "tick"

    src = source(ticks())
    waiting = src.read(100, FAR)
    clock.advance(1.0)
    assert result(waiting) == b"tick"  # warmed up
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(50):
            waiting = src.read(100, FAR)
            clock.advance(1.0)
            assert result(waiting) == b"tick"
        del waiting
        gc.collect()
        cycles = len(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert cycles == 0
    src.close()


def test_heartbeat_fires_the_wait_then_the_item_comes_with_the_next_read() -> None:
    """With a built-in heartbeat, the Deferred the engine waits on fires with the comment
    once it has waited ``interval`` seconds, and again after each further interval; the
    item the generator then produces is given by the next read, nothing lost or reordered."""
    from twisted_stream._sources._heartbeat import HEARTBEAT

    clock = MemoryReactorClock()
    gate: Deferred[str] = Deferred()

    async def gen() -> AsyncIterator[str]:
        yield await gate
        yield "after"

    src = source(gen())
    src.heartbeat(15.0, clock, HEARTBEAT)
    first = src.read(100, FAR)
    clock.advance(14.9)
    assert isinstance(first, Deferred) and not first.called
    clock.advance(0.1)
    assert result(first) is HEARTBEAT
    second = src.read(100, FAR)
    clock.advance(15.0)
    assert result(second) is HEARTBEAT
    third = src.read(100, FAR)
    gate.callback("item")
    assert result(third) == b"item"
    assert src.read(100, FAR) == b"after"
    assert src.read(100, FAR) is EOF


def test_heartbeat_timer_is_not_moved_while_items_flow() -> None:
    """Items arriving within the interval send no comment, and the stream keeps one timer
    that is armed again for the rest of the interval when it fires early, not one per
    item."""
    from twisted_stream._sources._heartbeat import HEARTBEAT

    clock = MemoryReactorClock()
    gates: list[Deferred[str]] = [Deferred() for _ in range(3)]

    async def gen() -> AsyncIterator[str]:
        for gate in gates:
            yield await gate

    src = source(gen())
    src.heartbeat(15.0, clock, HEARTBEAT)
    for gate in gates[:2]:
        waiting = src.read(100, FAR)
        clock.advance(10.0)
        gate.callback("x")
        assert result(waiting) == b"x"
        assert len(clock.getDelayedCalls()) == 1
    waiting = src.read(100, FAR)  # waiting since t=20: the timer (due at 15) re-arms
    clock.advance(14.0)
    assert isinstance(waiting, Deferred) and not waiting.called
    clock.advance(1.0)
    assert result(waiting) is HEARTBEAT


def test_close_with_a_heartbeat_cancels_its_timer_and_the_await() -> None:
    """Closing a source with a heartbeat leaves no timer behind and cancels what the
    generator awaits, so its ``finally`` runs."""
    from twisted_stream._sources._heartbeat import HEARTBEAT

    clock = MemoryReactorClock()
    cleaned: list[str] = []

    async def gen() -> AsyncIterator[str]:
        try:
            yield await Deferred()
        finally:
            cleaned.append("finally")

    src = source(gen())
    src.heartbeat(15.0, clock, HEARTBEAT)
    src.read(100, FAR)
    clock.advance(15.0)  # a heartbeat: the await goes on, held for the next read
    src.close()
    assert cleaned == ["finally"]
    assert not [c for c in clock.getDelayedCalls() if c.active()]

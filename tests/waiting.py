"""Waiting on conditions in tests: bounded, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from twisted_stream import State, Stream


async def until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Let the reactor run until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await deferLater(reactor, 0.002, lambda: None)


async def turns(n: int) -> None:
    """Let the reactor run ``n`` iterations (to show that something does NOT happen)."""
    for _ in range(n):
        await deferLater(reactor, 0, lambda: None)


def within(d: Deferred, timeout: float = 10.0) -> Deferred:  # type: ignore[type-arg]
    """``d``, failing with a timeout after ``timeout`` seconds."""
    return d.addTimeout(timeout, reactor)


async def settled_pause(handle: Stream, count: Callable[[], int], timeout: float = 10.0) -> int:
    """Wait until the stream is paused and ``count()`` has not moved for three windows in a
    row (loopback socket buffers keep growing for a while, so the first pause may not
    hold); the count it settled at. Fails if it never settles."""
    deadline = time.monotonic() + timeout
    last, stable = -1, 0
    while stable < 3:
        assert time.monotonic() < deadline, "the source never stopped for a paused client"
        await until(lambda: handle.state is State.PAUSED, what="the stream to pause")
        await turns(30)
        now = count()
        if now == last and handle.state is State.PAUSED:
            stable += 1
        else:
            last, stable = now, 0
    return last

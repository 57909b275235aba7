""":class:`StreamTestClock`, the fake reactor a :class:`~twisted_stream.testing.StreamTestClient`
runs on.

A ``MemoryReactorClock`` that runs the way a reactor does, not the way ``Clock.advance``
does: ``advance`` runs every call due until nothing is left *now* (a call that schedules
another for now would spin there for ever), while a reactor's iteration runs the calls due
when it starts and leaves those they schedule for its next iteration. The clock runs turn
by turn, stops when nothing is left to do without time passing, and moves time from one
timer to the next so each runs at its own time. It also takes ``callFromThread``, so
threaded sources (real threads) can hand their results to it, and stopping it runs the
``"shutdown"`` triggers, which stops a site's thread pool.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.base import DelayedCall
from twisted.internet.testing import MemoryReactorClock

MAX_TURNS = 100_000
"""Turns one settling may take: more means something reschedules itself at once for ever."""

_EPSILON = 1e-9
"""Seconds a timer may be late by float rounding (0.1 added ten times is not 1.0) and still
count as due at the time advanced to."""

_Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class StreamTestClock(MemoryReactorClock):
    """A ``MemoryReactorClock`` that runs turn by turn, steps time from timer to timer,
    takes calls from threads (``IReactorThreads.callFromThread``) and fires its shutdown
    triggers when stopped. Give it to your resources wherever they take a clock or a
    reactor, and to :class:`~twisted_stream.testing.StreamTestClient`."""

    thread_timeout = 10.0
    """Real seconds :meth:`flush` waits for a busy thread to hand something back."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._from_threads: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._ready: deque[_Call] = deque()
        self._thread_work: list[Callable[[], bool]] = []

    def watch_threads(self, busy: Callable[[], bool]) -> None:
        """Have :meth:`flush` wait while ``busy()`` (a thread pool working for this
        reactor: each worker reports back with ``callFromThread`` or ends its work)."""
        self._thread_work.append(busy)

    def callFromThread(self, callable: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue ``callable`` for the next turn (``IReactorThreads``; any thread)."""
        self._from_threads.put((callable, args, kwargs))

    def run_turn(self) -> bool:
        """One reactor iteration: the calls from threads that arrived, then each timed call
        due now, once; what they schedule for now waits for the next turn. True if
        anything ran. An exception raised by a call propagates (a test should see it)."""
        ran = self._run_from_threads()
        now = self.seconds()
        due = sorted((c for c in self.calls if c.getTime() <= now), key=DelayedCall.getTime)
        for call in due:
            # A call cancelled or pushed back by an earlier one of this turn is skipped.
            if call.getTime() <= now and call in self.calls:
                self.calls.remove(call)
                call.called = 1
                ran = True
                call.func(*call.args, **call.kw)
        return ran

    def _run_from_threads(self) -> bool:
        while True:
            try:
                self._ready.append(self._from_threads.get_nowait())
            except queue.Empty:
                break
        ran = bool(self._ready)
        while self._ready:
            callable, args, kwargs = self._ready.popleft()
            callable(*args, **kwargs)
        return ran

    def flush(self) -> None:
        """Run turns until nothing is left to do without the clock moving: no call due,
        and no thread working for the reactor. A busy thread is waited for, in real time,
        up to :attr:`thread_timeout` for each thing it hands back; one that hands nothing
        back in that time (blocked) is left running, and what it hands back later runs on a
        later flush. Raises ``RuntimeError`` after :data:`MAX_TURNS` turns."""
        for _ in range(MAX_TURNS):
            if self.run_turn():
                continue
            if not self._wait_for_threads():
                return
        raise RuntimeError(
            f"the reactor did not settle in {MAX_TURNS} turns at t={self.seconds():g}: "
            "something reschedules itself at once for ever (an endless source read as fast "
            "as it comes? give the request read_rate=, stop_reading_after= or "
            "disconnect_after=)"
        )

    def threads_busy(self) -> bool:
        """Whether a thread is working for this reactor."""
        return any(busy() for busy in self._thread_work)

    def _wait_for_threads(self) -> bool:
        """Block until a thread hands a call over (True), or until no thread is busy or
        :attr:`thread_timeout` passed (False)."""
        deadline = time.monotonic() + self.thread_timeout
        while self.threads_busy() and time.monotonic() < deadline:
            try:
                self._ready.append(self._from_threads.get(timeout=0.001))
                return True
            except queue.Empty:
                continue
        return False

    def advance(self, amount: float) -> None:
        """Move the clock ``amount`` seconds on, stopping at each timer due meanwhile to run
        it at its own time (and what follows from it: :meth:`flush`)."""
        if amount < 0:
            raise ValueError(f"time cannot go back: advance({amount})")
        target = self.seconds() + amount
        self.flush()
        while True:
            next_call = min((c.getTime() for c in self.calls), default=None)
            if next_call is None or next_call > target + _EPSILON:
                break
            self.rightNow = max(self.rightNow, next_call)
            self.flush()
        self.rightNow = max(self.rightNow, target)
        self.flush()

    def stop(self) -> None:
        """Stop as a reactor does: run the ``"shutdown"`` triggers (before, during, after)."""
        super().stop()  # type: ignore[no-untyped-call]
        for phase in ("before", "during", "after"):
            for callable, args, kwargs in self.triggers.get(phase, {}).pop("shutdown", []):
                callable(*args, **kwargs)

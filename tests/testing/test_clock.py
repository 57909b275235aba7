"""The client's fake clock (``twisted_stream.testing._clock``): it runs turn by turn,
steps time from timer to timer, takes calls from threads and fires its shutdown triggers."""

from __future__ import annotations

import threading

import pytest

from twisted_stream.testing import _clock
from twisted_stream.testing._clock import StreamTestClock


def test_a_turn_runs_what_is_due_once_and_leaves_what_it_schedules_for_the_next() -> None:
    """A call that schedules another for now does not run it in the same turn (as a real
    clock's iteration), so a call rescheduling itself at once cannot spin in one turn."""
    clock = StreamTestClock()
    ran: list[str] = []

    def again() -> None:
        ran.append("again")
        clock.callLater(0, again)

    clock.callLater(0, again)
    clock.callLater(1, ran.append, "later")
    assert clock.run_turn()
    assert ran == ["again"]
    assert clock.run_turn()
    assert ran == ["again", "again"]


def test_a_call_cancelled_or_pushed_back_by_another_of_its_turn_does_not_run() -> None:
    """Calls due together run in the order they were scheduled; one cancelled or delayed
    by an earlier one of the same turn is skipped, and a turn with nothing due says so."""
    clock = StreamTestClock()
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        second.cancel()
        third.delay(1)

    clock.callLater(0, first)
    second = clock.callLater(0, ran.append, "cancelled")
    third = clock.callLater(0, ran.append, "delayed")
    assert clock.run_turn()
    assert ran == ["first"]
    assert not clock.run_turn()
    clock.advance(1)
    assert ran == ["first", "delayed"]


def test_flush_settles_and_a_self_rescheduling_call_is_reported() -> None:
    """``flush`` runs turns until nothing is due; a call rescheduling itself at once for
    ever is a RuntimeError after MAX_TURNS, naming what to do about an endless source."""
    clock = StreamTestClock()
    count = [0]

    def chain(n: int) -> None:
        count[0] += 1
        if n:
            clock.callLater(0, chain, n - 1)

    clock.callLater(0, chain, 50)
    clock.flush()
    assert count[0] == 51

    def forever() -> None:
        clock.callLater(0, forever)

    clock.callLater(0, forever)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_clock, "MAX_TURNS", 100)
        with pytest.raises(RuntimeError, match="stop_reading_after"):
            clock.flush()


def test_advance_runs_each_timer_at_its_own_time() -> None:
    """Advancing 10 s runs a 1 s LoopingCall-like timer at 1, 2, ... 10 (Clock.advance
    would run it once, at 10), and timers past the target wait."""
    clock = StreamTestClock()
    seen: list[float] = []

    def tick() -> None:
        seen.append(clock.seconds())
        clock.callLater(1, tick)

    clock.callLater(1, tick)
    clock.advance(10)
    assert seen == [float(t) for t in range(1, 11)]
    assert clock.seconds() == 10
    clock.advance(0.5)
    assert len(seen) == 10
    with pytest.raises(ValueError, match="back"):
        clock.advance(-1)


def test_calls_from_threads_run_on_the_next_turn_and_flush_waits_for_busy_threads() -> None:
    """A worker's ``callFromThread`` runs in the clock's thread on a turn; while a watched
    thread is busy, flush waits for what it hands back."""
    clock = StreamTestClock()
    busy = threading.Event()
    busy.set()
    clock.watch_threads(busy.is_set)
    where: list[str] = []
    go = threading.Event()

    def work() -> None:
        go.wait(10)
        clock.callFromThread(lambda: where.append(threading.current_thread().name))
        busy.clear()

    worker = threading.Thread(target=work, name="worker")
    worker.start()
    go.set()
    clock.flush()
    worker.join(10)
    assert where == [threading.main_thread().name]


def test_a_blocked_thread_is_left_running_after_the_thread_timeout() -> None:
    """A busy thread that hands nothing back within ``thread_timeout`` is left running:
    flush returns, and what the thread hands back later runs on a later flush."""
    clock = StreamTestClock()
    clock.thread_timeout = 0.05
    release = threading.Event()
    done: list[int] = []
    clock.watch_threads(lambda: not done)

    def work() -> None:
        release.wait(10)
        clock.callFromThread(done.append, 1)

    worker = threading.Thread(target=work)
    worker.start()
    clock.flush()
    assert done == []
    release.set()
    worker.join(10)
    clock.flush()
    assert done == [1]


def test_stop_fires_the_shutdown_triggers_in_order() -> None:
    """Stopping runs the ``shutdown`` triggers before, during and after, once each."""
    clock = StreamTestClock()
    fired: list[str] = []
    clock.addSystemEventTrigger("after", "shutdown", fired.append, "after")
    clock.addSystemEventTrigger("during", "shutdown", fired.append, "during")
    clock.addSystemEventTrigger("before", "shutdown", fired.append, "before")
    clock.addSystemEventTrigger("during", "startup", fired.append, "startup")
    clock.stop()
    assert fired == ["before", "during", "after"]
    assert clock.hasStopped

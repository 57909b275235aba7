"""Adapter for async iterables and async generators.

Each ``__anext__()`` awaitable is driven by hand: when it completes without suspending (the
common case for a fast async generator) the item is taken at once, with no Deferred and no
extra reactor turn; when it suspends on a Deferred, the read returns a Deferred that resumes
it. Cancelling that Deferred cancels whatever the generator awaits, so its ``finally`` runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from .._engine._source import EOF, Heartbeat, ReadResult, Ready, SliceDeadline
from .._types import Clock
from ._gather import Gatherer

_StepResult = tuple[bool, object]
"""(completed, value): completed=True with the awaitable's result, else what it yielded."""


def _start(aw: Awaitable[object]) -> Generator[Any, Any, object]:
    return aw.__await__()


class _Driver:
    """Resumes a suspended awaitable until it completes, like Twisted's coroutine driver:
    the Deferred :meth:`drive` returns fires with its value (or fails with its exception).

    One small object per suspension, and no reference cycle outlives a step: the Deferred
    it waits on refers to it only until that Deferred fires, and once the awaitable is done
    nothing refers back to the driver. An idle stream waiting on its generator therefore
    leaves nothing for the cyclic garbage collector (closures calling each other did, for
    every event). Cancelling the result cancels the Deferred the awaitable waits on.

    For an ``__anext__`` step, ``convert`` turns the item into body bytes and
    ``StopAsyncIteration`` is the end (:data:`EOF`, recorded in ``gather``), so the result
    is what the engine waits for, with no Deferred in between.
    """

    __slots__ = ("_convert", "_finished", "_gather", "_result", "_step", "_waiting")

    def __init__(
        self,
        step: Generator[Any, Any, object],
        convert: Callable[[object], bytes] | None = None,
        gather: Gatherer | None = None,
    ) -> None:
        self._step: Generator[Any, Any, object] | None = step
        self._convert = convert
        self._gather = gather
        self._waiting: Deferred[object] | None = None
        self._result: Deferred[Any] | None = None
        self._finished: list[Deferred[None]] | None = None

    def drive(self, yielded: object) -> Deferred[Any]:
        """Start from what the awaitable first ``yielded``; the Deferred of its result."""
        result: Deferred[Any] = Deferred(self._cancel)
        self._result = result
        self._resume(yielded, None, first=True)
        return result

    def rebind(self) -> Deferred[Any] | None:
        """A fresh Deferred for the result, replacing the current one (which the caller
        then fires itself, with a heartbeat); None once the awaitable is done."""
        if self._step is None:
            return None
        result: Deferred[Any] = Deferred(self._cancel)
        self._result = result
        return result

    def when_finished(self) -> Deferred[None]:
        """A Deferred firing (never failing) once the awaitable has really finished, which
        after a cancellation may be later than its result (an ``await`` in a ``finally``
        goes on running). Made only when asked for: nothing per step."""
        if self._step is None:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        if self._finished is None:
            self._finished = []
        self._finished.append(waiter)
        return waiter

    def _cancel(self, _: Deferred[Any]) -> None:
        waiting = self._waiting
        if waiting is not None:
            waiting.cancel()

    def _resumed(self, value: object) -> None:
        self._resume(value, None)

    def _failed(self, reason: Failure) -> None:
        self._resume(None, reason)

    def _resume(self, value: object, failure: Failure | None, first: bool = False) -> None:
        self._waiting = None
        step = self._step
        if step is None:
            return
        while True:
            if first:
                out, first = value, False
            else:
                try:
                    if failure is not None:
                        out = failure.throwExceptionIntoGenerator(step)
                    else:
                        out = step.send(value)
                except StopIteration as e:
                    self._finish(e.value)
                    return
                except BaseException:
                    self._finish(None, Failure())
                    return
                failure = None
            if isinstance(out, Deferred):
                self._waiting = out
                out.addCallbacks(self._resumed, self._failed)
                return
            value = out  # a bare yield: resume at once, as Twisted does

    def _finish(self, value: object, failure: Failure | None = None) -> None:
        """Fire the result, forgetting everything (its canceller refers to us)."""
        result, convert, gather = self._result, self._convert, self._gather
        self._step = self._result = self._convert = self._gather = None
        finished, self._finished = self._finished, None
        for waiter in finished or ():
            waiter.callback(None)
        if result is None or result.called:
            return
        if failure is None:
            if convert is not None:
                try:
                    value = convert(value)
                except Exception:
                    result.errback()
                    return
            result.callback(value)
        elif gather is not None and failure.check(StopAsyncIteration):
            gather.exhausted = True
            result.callback(EOF)
        else:
            result.errback(failure)


def run_awaitable(aw: Awaitable[object]) -> Deferred[object]:
    """Run ``aw`` to completion on the reactor; a Deferred of its result."""
    step = _start(aw)
    try:
        first = step.send(None)
    except StopIteration as e:
        return succeed(e.value)
    except BaseException:
        return fail()
    return _Driver(step).drive(first)


class AsyncIteratorSource:
    """Pulls items from an async iterator, coalescing the ones that are ready at once."""

    __slots__ = (
        "_beat_since",
        "_beat_timer",
        "_clock",
        "_closed",
        "_comment",
        "_convert",
        "_driver",
        "_gather",
        "_interval",
        "_it",
        "_pending",
        "_waiting_on",
    )

    def __init__(
        self, iterable: AsyncIterable[object], convert: Callable[[object], bytes]
    ) -> None:
        self._it: AsyncIterator[object] = aiter(iterable)
        self._convert = convert
        self._pending: Deferred[Ready] | None = None
        self._driver: _Driver | None = None
        """The driver of the last suspended ``__anext__`` (to close the generator only once
        that step is really over)."""
        """A suspended ``__anext__`` not yet handed to the engine (bytes came first)."""
        self._waiting_on: Deferred[Ready] | None = None
        """The suspended ``__anext__`` the engine is waiting on."""
        self._gather = Gatherer()
        self._closed = False
        self._interval = 0.0
        """Seconds of waiting for an item after which :meth:`heartbeat`'s comment is given
        (0: none)."""
        self._comment = b""
        self._clock: Clock | None = None
        self._beat_since = 0.0
        """When the engine began waiting for the next item (or got the last heartbeat)."""
        self._beat_timer: IDelayedCall | None = None

    def heartbeat(self, interval: float, clock: Clock, comment: Heartbeat) -> None:
        """Give ``comment`` whenever the engine has waited ``interval`` seconds for the next
        item: the Deferred it waits on fires with ``comment``, and the item, when it comes,
        is given by the next read. One timer per stream, armed when the engine starts
        waiting and not moved while items flow (it re-arms itself for the rest when it
        fires early), as :class:`~._heartbeat.HeartbeatSource` does for other sources."""
        if not interval > 0:
            raise ValueError(f"heartbeat interval must be positive, not {interval}")
        self._interval, self._clock, self._comment = interval, clock, comment

    def read(self, limit: int, deadline: SliceDeadline) -> ReadResult:
        if self._pending is not None:
            return self._wait()
        gather = self._gather
        if gather.begin():
            return EOF
        parts: list[bytes] = []
        size = 0
        anext_ = self._it.__anext__
        convert = self._convert
        at, monotonic = deadline
        while True:
            try:
                step = _start(anext_())
                yielded = step.send(None)
            except StopIteration as e:
                try:
                    chunk = convert(e.value)
                except BaseException:
                    gather.fail(parts)
                    break
                parts.append(chunk)
                size += len(chunk)
                if size >= limit or monotonic() >= at:
                    break
                continue
            except StopAsyncIteration:
                gather.exhausted = True
                break
            except BaseException:
                gather.fail(parts)
                break
            # The generator suspended: hand over what we have, then wait for it.
            self._driver = driver = _Driver(step, convert, gather)
            self._pending = driver.drive(yielded)
            if parts:
                break
            return self._wait()
        return gather.end(parts)

    def _wait(self) -> Deferred[Ready]:
        pending, self._pending = self._pending, None
        if pending is None:
            raise AssertionError("nothing to wait for")
        self._waiting_on = pending
        clock = self._clock
        if clock is not None:
            self._beat_since = clock.seconds()
            if self._beat_timer is None:
                self._beat_timer = clock.callLater(self._interval, self._beat)
        return pending

    def _beat(self) -> None:
        self._beat_timer = None
        waiting, driver, clock = self._waiting_on, self._driver, self._clock
        if waiting is None or waiting.called or driver is None or clock is None:
            return  # the engine is not waiting on us: its next wait arms the timer again
        left = self._beat_since + self._interval - clock.seconds()
        if left > 0:
            self._beat_timer = clock.callLater(left, self._beat)
            return
        fresh = driver.rebind()
        if fresh is None:
            return
        # The item still to come goes to the next read; the engine gets the comment now.
        self._pending, self._waiting_on = fresh, None
        waiting.callback(self._comment)

    def close(self) -> Deferred[None] | None:
        if self._closed:
            return None
        self._closed = True
        timer, self._beat_timer = self._beat_timer, None
        if timer is not None and timer.active():
            timer.cancel()
        for pending in (self._pending, self._waiting_on):
            if pending is not None:
                pending.addErrback(lambda _: None)
                pending.cancel()  # a no-op once it has fired
        self._pending = self._waiting_on = None
        aclose = getattr(self._it, "aclose", None)
        if aclose is None:
            return None
        driver, self._driver = self._driver, None
        if driver is not None:
            # The generator may go on after the cancellation (an await in its finally); its
            # aclose() would raise "already running": close it once that step is over.
            return driver.when_finished().addCallback(lambda _: _run_aclose(aclose))
        return _run_aclose(aclose)


def _run_aclose(aclose: Callable[[], Awaitable[object]]) -> Deferred[None]:
    """Run an async generator's ``aclose()``; a Deferred of its end."""
    return run_awaitable(aclose()).addCallback(lambda _: None)

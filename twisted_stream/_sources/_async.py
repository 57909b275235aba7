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
from twisted.python.failure import Failure

from .._engine._source import EOF, ReadResult, Ready, SliceDeadline, relay
from ._gather import Gatherer

_StepResult = tuple[bool, object]
"""(completed, value): completed=True with the awaitable's result, else what it yielded."""


def _start(aw: Awaitable[object]) -> Generator[Any, Any, object]:
    return aw.__await__()


def _drive(
    step: Generator[Any, Any, object], yielded: object
) -> tuple[Deferred[object], Deferred[None]]:
    """Resume a suspended awaitable until it completes, like Twisted's coroutine driver.

    Returns ``(result, completed)``: ``result`` fires with the awaitable's outcome, and
    cancelling it cancels the Deferred the awaitable waits on; ``completed`` fires (never
    fails) once the awaitable has really finished, which after a cancellation may be later
    (an ``await`` in a ``finally`` goes on running).
    """
    current: list[Deferred[object]] = []
    result: Deferred[object] = Deferred(lambda _: current[0].cancel() if current else None)
    completed: Deferred[None] = Deferred()

    def resume(value: object, failure: Failure | None) -> None:
        while True:
            try:
                if failure is not None:
                    out = failure.throwExceptionIntoGenerator(step)
                else:
                    out = step.send(value)
            except StopIteration as e:
                completed.callback(None)
                if not result.called:
                    result.callback(e.value)
                return
            except BaseException:
                completed.callback(None)
                if not result.called:
                    result.errback()
                return
            failure = None
            if isinstance(out, Deferred):
                wait(out)
                return
            value = out  # a bare yield: resume at once, as Twisted does

    def wait(d: Deferred[object]) -> None:
        current[:] = [d]
        d.addCallbacks(lambda v: resume(v, None), lambda f: resume(None, f))

    if isinstance(yielded, Deferred):
        wait(yielded)
    else:
        resume(yielded, None)
    return result, completed


def run_awaitable(aw: Awaitable[object]) -> Deferred[object]:
    """Run ``aw`` to completion on the reactor; a Deferred of its result."""
    step = _start(aw)
    try:
        first = step.send(None)
    except StopIteration as e:
        return succeed(e.value)
    except BaseException:
        return fail()
    return _drive(step, first)[0]


class AsyncIteratorSource:
    """Pulls items from an async iterator, coalescing the ones that are ready at once."""

    def __init__(
        self, iterable: AsyncIterable[object], convert: Callable[[object], bytes]
    ) -> None:
        self._it: AsyncIterator[object] = aiter(iterable)
        self._convert = convert
        self._pending: Deferred[object] | None = None
        """A suspended ``__anext__`` not yet handed to the engine (bytes came first)."""
        self._waiting_on: Deferred[object] | None = None
        """The suspended ``__anext__`` the engine is waiting on."""
        self._completed: Deferred[None] | None = None
        """Fires once the last suspended ``__anext__`` has really finished."""
        self._gather = Gatherer()
        self._closed = False

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
            self._pending, self._completed = _drive(step, yielded)
            if parts:
                break
            return self._wait()
        return gather.end(parts)

    def _wait(self) -> Deferred[Ready]:
        pending, self._pending = self._pending, None
        if pending is None:
            raise AssertionError("nothing to wait for")
        self._waiting_on = pending
        return relay(pending.addErrback(self._end_of_iteration), self._chunk_of)

    def _end_of_iteration(self, reason: Failure) -> object:
        """``StopAsyncIteration`` from a suspended ``__anext__`` is the end, not a failure."""
        if reason.check(StopAsyncIteration):
            self._gather.exhausted = True
            return EOF
        return reason

    def _chunk_of(self, item: object) -> Ready:
        return EOF if item is EOF else self._convert(item)

    def close(self) -> Deferred[None] | None:
        if self._closed:
            return None
        self._closed = True
        for pending in (self._pending, self._waiting_on):
            if pending is not None:
                pending.addErrback(lambda _: None)
                pending.cancel()  # a no-op once it has fired
        self._pending = self._waiting_on = None
        aclose = getattr(self._it, "aclose", None)
        if aclose is None:
            return None
        completed = self._completed
        if completed is not None and not completed.called:
            # The generator went on after the cancellation (an await in its finally); its
            # aclose() would raise "already running": close it once that step is over.
            return completed.addCallback(lambda _: _run_aclose(aclose))
        return _run_aclose(aclose)


def _run_aclose(aclose: Callable[[], Awaitable[object]]) -> Deferred[None]:
    """Run an async generator's ``aclose()``; a Deferred of its end."""
    return run_awaitable(aclose()).addCallback(lambda _: None)

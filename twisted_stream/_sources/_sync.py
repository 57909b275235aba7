"""Adapter for sync iterables, including generators that yield Deferreds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from twisted.internet.defer import Deferred

from .._engine._source import EOF, ReadResult, Ready, SliceDeadline, relay
from ._gather import Gatherer


class IteratorSource:
    """Pulls items from a sync iterator on the reactor thread.

    Items are coalesced up to ``limit`` bytes per read. A yielded Deferred makes the read
    return what was gathered so far; the next read waits for the Deferred and writes its
    result (``None`` writes nothing, so ``yield deferLater(...)`` works as a pause).
    """

    def __init__(self, iterable: Iterable[object], convert: Callable[[object], bytes]) -> None:
        self._it: Iterator[object] = iter(iterable)
        self._convert = convert
        self._gather = Gatherer()
        self._waiting_on: Deferred[object] | None = None
        self._next_deferred: Deferred[object] | None = None
        self._closed = False

    def read(self, limit: int, deadline: SliceDeadline) -> ReadResult:
        if self._next_deferred is not None:
            d, self._next_deferred = self._next_deferred, None
            return self._wait(d)
        gather = self._gather
        if gather.begin():
            return EOF
        parts: list[bytes] = []
        size = 0
        nxt = self._it.__next__
        convert = self._convert
        at, monotonic = deadline
        try:
            while True:
                item = nxt()
                if type(item) is bytes:
                    chunk = item
                elif isinstance(item, Deferred):
                    if parts:
                        self._next_deferred = item
                        break
                    return self._wait(item)
                else:
                    chunk = convert(item)
                parts.append(chunk)
                size += len(chunk)
                if size >= limit or monotonic() >= at:
                    break
        except StopIteration:
            gather.exhausted = True
        except BaseException:
            gather.fail(parts)
        return gather.end(parts)

    def _wait(self, d: Deferred[object]) -> Deferred[Ready]:
        self._waiting_on = d
        return relay(d, self._chunk_of)

    def _chunk_of(self, result: object) -> bytes:
        """A Deferred's result as body bytes: ``None`` (a pause) writes nothing."""
        return b"" if result is None else self._convert(result)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        pending, self._waiting_on = self._waiting_on, None
        if pending is not None:
            pending.cancel()  # a no-op once it has fired
        if self._next_deferred is not None:
            self._next_deferred.addErrback(lambda _: None)
            self._next_deferred.cancel()
            self._next_deferred = None
        close = getattr(self._it, "close", None)
        if close is not None:
            close()

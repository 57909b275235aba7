"""A channel's backend in this process: the ids it gives and the history it keeps."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

_T = TypeVar("_T")


class MemoryBackend(Generic[_T]):
    """Numbers published items and keeps the last ``history`` of them, oldest first, for
    clients that resume (``Last-Event-ID``). 0 keeps none."""

    def __init__(self, history: int) -> None:
        if history < 0:
            raise ValueError(f"history must not be negative, not {history}")
        self._kept: deque[_T] = deque(maxlen=history)
        self._next_id = 1

    def next_id(self) -> str:
        """A new id, one more than the last given (ids are ``"1"``, ``"2"``, ...)."""
        given = self._next_id
        self._next_id += 1
        return str(given)

    def keep(self, item: _T) -> None:
        """Add ``item`` to the history, dropping the oldest beyond its size."""
        if self._kept.maxlen:
            self._kept.append(item)

    def history(self) -> list[_T]:
        """The kept items, oldest first."""
        return list(self._kept)

    def last(self, count: int) -> list[_T]:
        """The newest ``count`` kept items, oldest first."""
        return list(self._kept)[-count:] if count > 0 else []

    def after(self, is_mark: Callable[[_T], bool]) -> tuple[list[_T], bool]:
        """The items kept after the newest one ``is_mark`` accepts, and whether one did; all
        kept items when none did."""
        kept = self._kept
        for back, item in enumerate(reversed(kept)):
            if is_mark(item):
                return list(kept)[len(kept) - back :], True
        return list(kept), False

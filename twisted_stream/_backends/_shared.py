"""The interface of a channel backend shared between processes (:mod:`._redis` is one).

A shared backend keeps, per channel name, an ordered log of entries: each entry has an id
the backend assigns once, centrally, and fields (``bytes`` to ``bytes``). It knows nothing of
events: the channel layer (``_events``) turns an event into fields and back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred

Fields = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a channel's log: its id (assigned by the backend) and its fields."""

    id: str
    fields: Fields

    def get(self, name: bytes) -> bytes | None:
        """The value of field ``name``, or None."""
        for key, value in self.fields:
            if key == name:
                return value
        return None


class FeedListener(Protocol):
    """What a backend delivers a channel's entries to, in the order they were assigned ids."""

    def entries(self, entries: Sequence[Entry]) -> None:
        """New entries, oldest first."""

    def gap(self) -> None:
        """Entries may have been lost (the backend was unreachable for longer than its
        history lasts, or lost its history); delivery goes on after it."""


class SharedBackend(Protocol):
    """A channel store shared by every process using the same backend."""

    def append(self, name: str, fields: Fields, keep: int) -> Deferred[str]:
        """Add an entry to channel ``name``, keeping at least the newest ``keep``; fires
        with its id once the backend accepted it, fails with
        :class:`~twisted_stream.ChannelBackendError` when it cannot."""

    def listen(self, name: str, listener: FeedListener) -> None:
        """Deliver the entries of ``name`` added from now on to ``listener``."""

    def unlisten(self, name: str, listener: FeedListener) -> None:
        """Stop delivering to ``listener``."""

    def position(self, name: str) -> Deferred[str]:
        """The id of the last entry of ``name`` delivered to its listeners (every later
        one is delivered too), once they are listening."""

    def read_range(self, name: str, after: str | None, upto: str) -> Deferred[Replayed]:
        """The entries after id ``after`` up to and including ``upto``, oldest first."""

    def read_last(self, name: str, count: int, upto: str) -> Deferred[list[Entry]]:
        """The newest ``count`` entries up to and including ``upto``, oldest first."""

    def precedes(self, first: str, second: str) -> bool:
        """Whether id ``first`` was assigned before id ``second``."""

    def describe(self) -> str:
        """Where the backend is, for messages (no secrets)."""


@dataclass(frozen=True)
class Replayed:
    """What :meth:`SharedBackend.read_range` found."""

    entries: list[Entry]
    known: bool
    """Whether ``after`` is an entry of the log (False: it was trimmed or never existed, and
    ``entries`` is the whole log up to ``upto``)."""

"""What the sync, async and file adapters share: gathering several items into one read.

A read gathers items until about ``limit`` bytes or the end of the engine's slice (the
gathering loop itself stays in each adapter: it runs once per item, where a helper call
would cost a third of the time of a tiny item). When the source fails after some bytes were
gathered, the read returns those bytes and the failure is held and raised by the next read,
so nothing produced before a failure is lost.
"""

from __future__ import annotations

from twisted.python.failure import Failure

from .._engine._source import EOF, Ready


class Gatherer:
    """The end of each gathering read: the held failure, the end of the source, the join."""

    __slots__ = ("_held", "exhausted")

    def __init__(self) -> None:
        self._held: Failure | None = None
        self.exhausted = False
        """The source has ended: every later read gives :data:`EOF`."""

    def begin(self) -> bool:
        """Raise the failure held from the previous read; True when the read must give
        :data:`EOF`."""
        if self._held is not None:
            self._held.raiseException()
        return self.exhausted

    def fail(self, parts: list[bytes]) -> None:
        """Call from an ``except`` block: re-raise when nothing was gathered, else hold the
        failure for the next read."""
        if not parts:
            raise
        self._held = Failure()

    @staticmethod
    def end(parts: list[bytes]) -> Ready:
        """What the read returns: the gathered bytes (a single chunk without a copy), or
        :data:`EOF` when nothing was gathered because the source ended."""
        if not parts:
            return EOF
        return parts[0] if len(parts) == 1 else b"".join(parts)

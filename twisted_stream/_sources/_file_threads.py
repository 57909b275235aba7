"""File bodies read on the site's thread pool (setting ``threaded_file_reads``).

A file read on the reactor thread takes microseconds from the page cache but can take
milliseconds or more from a cold disk or a network filesystem, and every other connection
waits meanwhile. :class:`ThreadedFileReads` runs each read of a file source on the bounded
pool of ``threaded=True`` sources instead, one buffer per thread hop, so no file I/O happens
on the reactor thread; it is then never sent with ``sendfile``, which reads the file in the
calling thread too.

Off by default: from the page cache a thread hop costs more than the read it moves (see
``benchmarks/RESULTS.md``), and the usual body of known length on plain HTTP/1.x goes out
with ``sendfile`` anyway. Turn it on for storage that can be slow.
"""

from __future__ import annotations

import math

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from .._engine._source import ReadResult, Ready, SliceDeadline, Source
from .._types import Reactor
from ._pool import StreamThreadPool


class ThreadedFileReads:
    """``inner`` (a file source), each read run on ``pool``.

    The engine never reads again before a read has landed; :meth:`close` waits for a read
    still running before it closes the file, so the descriptor is never closed (and its
    number reused) under a read.
    """

    __slots__ = ("_closed", "_in_flight", "_inner", "_pool", "_reactor")

    def __init__(self, inner: Source, pool: StreamThreadPool, reactor: Reactor) -> None:
        self._inner = inner
        self._pool = pool
        self._reactor = reactor
        self._in_flight: Deferred[None] | None = None
        self._closed = False

    def read(self, limit: int, deadline: SliceDeadline) -> ReadResult:
        """A Deferred of the next read, made on a thread of the pool."""
        if self._closed:
            raise ValueError("read from a closed ThreadedFileReads")
        result: Deferred[Ready] = Deferred()
        landed: Deferred[None] = Deferred()
        self._in_flight = landed
        inner, reactor = self._inner, self._reactor
        # The slice deadline is the reactor's: a read on a thread holds nobody up.
        unhurried = SliceDeadline(math.inf, deadline.monotonic)

        def work() -> None:
            try:
                data = inner.read(limit, unhurried)
            except BaseException:
                reactor.callFromThread(self._land, result, landed, Failure())
            else:
                reactor.callFromThread(self._land, result, landed, data)

        self._pool.run(reactor, work)
        return result

    def _land(self, result: Deferred[Ready], landed: Deferred[None], data: object) -> None:
        if self._in_flight is landed:
            self._in_flight = None
        landed.callback(None)
        if isinstance(data, Failure):
            result.errback(data)
        elif isinstance(data, Deferred):  # file sources never wait; refuse rather than hang
            result.errback(Failure(TypeError("a threaded file read returned a Deferred")))
        else:
            result.callback(data)  # type: ignore[arg-type]

    def close(self) -> Deferred[None] | None:
        """Close the file, once a read still running on the pool has returned."""
        if self._closed:
            return None
        self._closed = True
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            return self._inner.close()
        closed: Deferred[None] = Deferred()

        def close_now(_: object) -> None:
            done = self._inner.close()
            if done is None:
                closed.callback(None)
            else:
                done.chainDeferred(closed)

        in_flight.addCallback(close_now)
        return closed

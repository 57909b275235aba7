"""Adapter for blocking sync iterables: ``next()`` runs in a bounded thread pool.

A worker *run* pulls items until one buffer is queued (or the source ends), handing each
item to the reactor as soon as it exists; the reactor takes everything queued in one go, so
a fast generator costs one thread hop per buffer, and a slow one delivers every item at once.
Nothing is pulled while the engine is not reading (a paused stream holds no thread).

The first run is *admitted* by the pool (:meth:`~._pool.StreamThreadPool.admit`): when it
may not wait for a thread, or waited ``thread_queue_timeout``, the first read fails with
:class:`~twisted_stream.StreamRejected` (503). A run still waiting when the stream ends is
dropped from the pool's queue. The generator is closed on a worker thread, never while its
``next()`` is running, except one that never ran: it is closed at once in the reactor
thread (closing a generator that never started runs none of its code), never behind the
pool.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from .._engine._source import EOF, ReadResult, Ready, SliceDeadline
from .._errors import StreamRejected
from .._types import Reactor
from ._pool import StreamThreadPool, Ticket


class ThreadedSource:
    """A sync iterable pulled on worker threads."""

    def __init__(
        self,
        iterable: Iterable[object],
        convert: Callable[[object], bytes],
        pool: StreamThreadPool,
        reactor: Reactor,
    ) -> None:
        self._iterable = iterable
        self._iterator: Iterator[object] | None = None
        self._convert = convert
        self._pool = pool
        self._reactor = reactor
        self._lock = threading.Lock()
        # Everything below is guarded by _lock.
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._eof = False
        self._error: Failure | None = None
        self._running = False
        self._stopping = False
        self._waiter: Deferred[Ready] | None = None
        self._notify_scheduled = False
        self._limit = 0
        # Reactor thread only.
        self._closed: Deferred[None] | None = None
        self._ticket: Ticket | None = None
        """The pool's ticket of the latest run (None before the first)."""

    # Reactor thread.

    def read(self, limit: int, deadline: SliceDeadline) -> ReadResult:
        with self._lock:
            self._limit = limit
            data = self._take()
            failure = self._error if data is None else None
            done = self._eof and data is None and failure is None
            start = not (self._running or self._eof or self._error or self._stopping)
            if start:
                self._running = True
            waiter = None
            if data is None and failure is None and not done:
                waiter = self._waiter = Deferred(self._cancel_wait)
        if start:
            self._start_run()
        if data is not None:
            return data
        if failure is not None:
            failure.raiseException()
        if done:
            return EOF
        assert waiter is not None
        return waiter

    def _start_run(self) -> None:
        if self._ticket is None:
            ticket = self._pool.admit(self._reactor, self._work, self._queue_timed_out)
            if ticket is None:
                self._refuse(
                    f"every thread is busy and {self._pool.queue_size} streams wait for one"
                )
            self._ticket = ticket
        else:
            self._ticket = self._pool.run(self._reactor, self._work)

    def _refuse(self, why: str) -> None:
        with self._lock:
            self._running = False
            waiter, self._waiter = self._waiter, None
        error = StreamRejected(why)
        if waiter is None:
            raise error
        waiter.errback(Failure(error))

    def _queue_timed_out(self) -> None:
        self._refuse(f"no thread was free for {self._pool.queue_timeout:g} s")

    def _take(self) -> bytes | None:
        if not self._queue:
            return None
        data = b"".join(self._queue)
        self._queue.clear()
        self._queued = 0
        return data

    def _cancel_wait(self, d: Deferred[Ready]) -> None:
        with self._lock:
            if self._waiter is d:
                self._waiter = None

    def _deliver(self) -> None:
        with self._lock:
            self._notify_scheduled = False
            waiter = self._waiter
            if waiter is None:
                return
            data = self._take()
            failure = self._error if data is None else None
            if data is None and failure is None and not self._eof:
                return
            self._waiter = None
        if data is not None:
            waiter.callback(data)
        elif failure is not None:
            waiter.errback(failure)
        else:
            waiter.callback(EOF)

    def close(self) -> Deferred[None]:
        if self._closed is not None:
            return self._closed
        self._closed = Deferred()
        with self._lock:
            self._stopping = True
            waiter, self._waiter = self._waiter, None
            running = self._running
        if waiter is not None:
            waiter.addErrback(lambda _: None)
            waiter.cancel()
        if running and self._ticket is not None and self._pool.cancel(self._ticket):
            with self._lock:
                self._running = running = False  # it was still waiting: it never runs
        if running:
            return self._closed  # the run ends soon and closes on its worker
        if self._iterator is None:
            self._close_here()  # never ran: nothing of it runs on closing
        else:
            self._pool.run(self._reactor, self._close_here)
        return self._closed

    # Worker threads.

    def _work(self) -> None:
        try:
            if self._iterator is None:
                self._iterator = iter(self._iterable)
            nxt = self._iterator.__next__
            while True:
                with self._lock:
                    if self._stopping or self._queued >= self._limit:
                        break
                try:
                    chunk = self._convert(nxt())
                except StopIteration:
                    with self._lock:
                        self._eof = True
                        notify = self._notify_locked()
                    self._maybe_notify(notify)
                    break
                except BaseException:
                    with self._lock:
                        self._error = Failure()
                        notify = self._notify_locked()
                    self._maybe_notify(notify)
                    break
                with self._lock:
                    self._queue.append(chunk)
                    self._queued += len(chunk)
                    notify = self._notify_locked()
                self._maybe_notify(notify)
        finally:
            with self._lock:
                self._running = False
                stopping = self._stopping
            if stopping:
                self._close_here()

    def _notify_locked(self) -> bool:
        if self._waiter is not None and not self._notify_scheduled:
            self._notify_scheduled = True
            return True
        return False

    def _maybe_notify(self, notify: bool) -> None:
        if notify:
            self._reactor.callFromThread(self._deliver)

    def _close_here(self) -> None:
        target: object = self._iterator if self._iterator is not None else self._iterable
        close = getattr(target, "close", None)
        failure = None
        if close is not None:
            try:
                close()
            except BaseException:
                failure = Failure()
        self._reactor.callFromThread(self._closed_on_worker, failure)

    def _closed_on_worker(self, failure: Failure | None) -> None:
        assert self._closed is not None
        if failure is None:
            self._closed.callback(None)
        else:
            self._closed.errback(failure)

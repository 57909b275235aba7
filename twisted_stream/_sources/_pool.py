"""The bounded thread pool that runs blocking (``threaded=True``) sources, with admission.

Each ``StreamSite`` owns one :class:`StreamThreadPool` (its ``thread_pool``), sized by the
site's ``thread_pool_size``; a request served by a plain ``Site`` uses one default pool per
reactor (:func:`pool_for`).

At most ``size`` work items run at once. Others wait in the pool's own queue, not in
Twisted's ``ThreadPool`` (which only ever gets as many items as it has threads), so that:

- a new stream is *admitted*: it waits only if fewer than ``queue_size`` items wait
  already, and at most ``queue_timeout`` seconds (otherwise its source raises
  :class:`~twisted_stream.StreamRejected`, which the engine answers 503 with
  ``Retry-After``);
- an item whose stream has ended (its client left) is dropped from the queue at once and
  never runs (:meth:`StreamThreadPool.cancel`);
- a worker that finishes an item takes the next waiting one itself, with no reactor hop.

The threads are daemon threads, and the pool stops at reactor shutdown without waiting for
a worker stuck in a blocking call: such a worker cannot keep the process alive.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from functools import partial

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from .._http._twisted import site_of
from .._settings import DEFAULT_SETTINGS, DEFAULT_THREAD_POOL_SIZE
from .._types import Reactor, StreamRequest

_log = Logger(namespace="twisted_stream.pool")


def _check_size(size: int) -> int:
    if size < 1:
        raise ValueError(f"thread_pool_size must be at least 1, not {size}")
    return size


class _DaemonThreadPool(ThreadPool):
    """Twisted's pool with daemon threads: a worker stuck in a blocking call does not keep
    the interpreter from exiting."""

    # A staticmethod: a bare partial as a class attribute makes Python 3.13 warn
    # (FutureWarning) at every thread start, and later Pythons bind it as a method.
    threadFactory = staticmethod(partial(threading.Thread, daemon=True))  # type: ignore[assignment]


class Ticket:
    """One work item given to the pool."""

    __slots__ = ("cancelled", "on_timeout", "started", "work")

    def __init__(self, work: Callable[[], object], on_timeout: Callable[[], object] | None):
        self.work = work
        self.on_timeout = on_timeout
        self.started = False
        self.cancelled = False


class StreamThreadPool:
    """At most ``size`` threads running sources at once; a bounded, timed queue for new
    streams beyond that (see the module docstring).

    The threads start on first use and stop when that use's reactor shuts down (a pool
    used again after that starts anew).
    """

    def __init__(
        self,
        size: int = DEFAULT_THREAD_POOL_SIZE,
        *,
        queue_size: int = DEFAULT_SETTINGS.thread_queue_size,
        queue_timeout: float = DEFAULT_SETTINGS.thread_queue_timeout,
        name: str = "twisted_stream",
    ) -> None:
        self._size = _check_size(size)
        self.queue_size = queue_size
        """How many items may wait when a new stream is admitted (0: none)."""
        self.queue_timeout = queue_timeout
        """Seconds a new stream may wait for a thread; 0 for no limit."""
        self._name = name
        self._pool: _DaemonThreadPool | None = None
        self._lock = threading.Lock()
        # Guarded by _lock: the items waiting, in order, and how many are on threads.
        self._waiting: dict[Ticket, None] = {}
        self._busy = 0
        # Reactor thread only: admitted items still waiting, with their deadlines.
        self._deadlines: dict[Ticket, float] = {}
        self._timer: IDelayedCall | None = None

    @property
    def size(self) -> int:
        """The most threads running at once."""
        return self._size

    def resize(self, size: int) -> None:
        """Allow ``size`` threads at once from now on (running work is not interrupted)."""
        self._size = _check_size(size)
        if self._pool is not None and self._pool.max != size:
            self._pool.adjustPoolsize(minthreads=0, maxthreads=size)

    @property
    def workers(self) -> int:
        """Threads started now (0 before the first use)."""
        return 0 if self._pool is None else self._pool.workers

    @property
    def busy(self) -> int:
        """Items running on threads now."""
        return self._busy

    @property
    def waiting(self) -> int:
        """Items waiting for a thread now."""
        return len(self._waiting)

    def admit(
        self, reactor: Reactor, work: Callable[[], object], on_timeout: Callable[[], object]
    ) -> Ticket | None:
        """Run the first ``work`` of a new stream: at once if a thread is free, else after
        the items waiting if fewer than ``queue_size`` wait (``on_timeout()`` is called, in
        the reactor thread, if it still waits after ``queue_timeout`` seconds; it never runs
        then). None if it may not wait: the stream is refused."""
        ticket = Ticket(work, on_timeout)
        if not self._submit(reactor, ticket, admission=True):
            return None
        if not ticket.started and self.queue_timeout:
            self._deadlines[ticket] = reactor.seconds() + self.queue_timeout
            if self._timer is None:
                self._timer = reactor.callLater(self.queue_timeout, self._expire, reactor)
        return ticket

    def run(self, reactor: Reactor, work: Callable[[], object]) -> Ticket:
        """Run ``work`` of a stream already admitted: at once, or after the items waiting
        (each stream has at most one item at a time, so this queue is bounded by the
        streams)."""
        ticket = Ticket(work, None)
        self._submit(reactor, ticket, admission=False)
        return ticket

    def cancel(self, ticket: Ticket) -> bool:
        """Drop ``ticket`` if it has not started; True if so (it will never run)."""
        with self._lock:
            if ticket.started:
                return False
            ticket.cancelled = True
            self._waiting.pop(ticket, None)
        self._deadlines.pop(ticket, None)
        return True

    def _submit(self, reactor: Reactor, ticket: Ticket, *, admission: bool) -> bool:
        with self._lock:
            if self._busy < self._size:
                self._busy += 1
                ticket.started = True
            elif admission and len(self._waiting) >= self.queue_size:
                return False
            else:
                self._waiting[ticket] = None
                return True
        self._threads(reactor).callInThread(self._worker, ticket)
        return True

    def _threads(self, reactor: Reactor) -> ThreadPool:
        pool = self._pool
        if pool is None or not pool.started:
            pool = self._pool = _DaemonThreadPool(0, self._size, name=self._name)
            pool.start()
            reactor.addSystemEventTrigger("during", "shutdown", self._stop_at_shutdown, pool)
        return pool

    def _worker(self, ticket: Ticket | None) -> None:
        # A worker thread: run the item, then each next waiting one, until none waits.
        while ticket is not None:
            try:
                ticket.work()
            except BaseException:
                _log.failure("A threaded source's work raised")
            with self._lock:
                if self._waiting:
                    ticket = next(iter(self._waiting))
                    del self._waiting[ticket]
                    ticket.started = True
                else:
                    self._busy -= 1
                    ticket = None

    def _expire(self, reactor: Reactor) -> None:
        """Refuse the admitted items that waited ``queue_timeout`` (reactor thread)."""
        self._timer = None
        now = reactor.seconds()
        expired = []
        with self._lock:
            for ticket, deadline in list(self._deadlines.items()):
                if ticket.started or ticket.cancelled:
                    del self._deadlines[ticket]
                elif deadline <= now:
                    del self._deadlines[ticket]
                    self._waiting.pop(ticket, None)
                    ticket.cancelled = True
                    expired.append(ticket)
                else:
                    break
        if self._deadlines:
            first = next(iter(self._deadlines.values()))
            self._timer = reactor.callLater(max(first - now, 0.0), self._expire, reactor)
        for ticket in expired:
            if ticket.on_timeout is not None:
                ticket.on_timeout()

    def _stop_at_shutdown(self, pool: ThreadPool) -> None:
        """Stop the threads without waiting for one stuck in a blocking call: idle workers
        exit, a stuck one is a daemon thread that ends with the process."""
        if self._pool is pool:
            self._pool = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        threading.Thread(target=pool.stop, name=f"{self._name}-stop", daemon=True).start()

    def stop(self) -> None:
        """Stop the threads now (waiting for running work); the next use restarts them."""
        pool, self._pool = self._pool, None
        if pool is not None and pool.started:
            pool.stop()


_defaults: weakref.WeakKeyDictionary[object, StreamThreadPool] = weakref.WeakKeyDictionary()


def default_pool(reactor: Reactor) -> StreamThreadPool:
    """The pool of requests served outside a ``StreamSite``: one per reactor."""
    found = _defaults.get(reactor)
    if found is None:
        found = _defaults[reactor] = StreamThreadPool()
    return found


def pool_for(request: StreamRequest, reactor: Reactor, size: int) -> StreamThreadPool:
    """The pool for ``request``'s threaded source: its site's ``thread_pool`` (a
    ``StreamSite``), else the reactor's default pool; resized to ``size`` if it differs (the
    ``thread_pool_size`` in force for this stream)."""
    found = getattr(site_of(request), "thread_pool", None)
    pool = found if isinstance(found, StreamThreadPool) else default_pool(reactor)
    if pool.size != size:
        pool.resize(size)
    return pool

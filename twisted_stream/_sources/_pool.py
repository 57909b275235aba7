"""The bounded thread pool that runs blocking (``threaded=True``) sources.

Each ``StreamSite`` owns one :class:`StreamThreadPool` (its ``thread_pool``), sized by the
site's ``thread_pool_size``; a request served by a plain ``Site`` uses one default pool per
reactor (:func:`pool_for`). A pool starts its threads on first use and stops when the reactor
that first used it shuts down.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from twisted.python.threadpool import ThreadPool

from .._http._twisted import site_of
from .._settings import DEFAULT_THREAD_POOL_SIZE
from .._types import Reactor, StreamRequest


def _check_size(size: int) -> int:
    if size < 1:
        raise ValueError(f"thread_pool_size must be at least 1, not {size}")
    return size


class StreamThreadPool:
    """At most ``size`` threads running sources at once; further work queues until a thread
    is free, so a burst of blocking streams never creates threads without bound.

    The threads start on the first :meth:`run` and stop when that call's reactor shuts down
    (a pool used again after that starts anew).
    """

    def __init__(self, size: int = DEFAULT_THREAD_POOL_SIZE, *, name: str = "twisted_stream"):
        self._size = _check_size(size)
        self._name = name
        self._pool: ThreadPool | None = None

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

    def run(self, reactor: Reactor, work: Callable[[], object]) -> None:
        """Run ``work`` on a thread of the pool, starting the pool if needed."""
        pool = self._pool
        if pool is None or not pool.started:
            pool = self._pool = ThreadPool(minthreads=0, maxthreads=self._size, name=self._name)
            pool.start()
            reactor.addSystemEventTrigger("during", "shutdown", pool.stop)
        pool.callInThread(work)

    def stop(self) -> None:
        """Stop the threads now (waiting for running work); the next :meth:`run` restarts."""
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

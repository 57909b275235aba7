"""The bounded thread pool that runs blocking (``threaded=True``) sources."""

from __future__ import annotations

from typing import Any

from twisted.python.threadpool import ThreadPool

_pool: ThreadPool | None = None
_pool_reactor: Any = None

DEFAULT_THREAD_POOL_SIZE = 10


def thread_pool(reactor: Any, size: int = DEFAULT_THREAD_POOL_SIZE) -> ThreadPool:
    """Return the process-wide pool for threaded sources, started on first use.

    At most ``size`` threads run sources at once (the latest ``size`` asked for wins); further
    work queues until a thread is free, so a burst of blocking streams never creates threads
    without bound. The pool stops when the reactor shuts down.
    """
    global _pool, _pool_reactor
    if size < 1:
        raise ValueError(f"thread_pool_size must be at least 1, not {size}")
    if _pool is None or _pool_reactor is not reactor or not _pool.started:
        pool = ThreadPool(minthreads=0, maxthreads=size, name="twisted_stream")
        pool.start()
        reactor.addSystemEventTrigger("during", "shutdown", pool.stop)
        _pool, _pool_reactor = pool, reactor
    elif _pool.max != size:
        _pool.adjustPoolsize(minthreads=0, maxthreads=size)
    return _pool

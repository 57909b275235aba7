"""Choosing the adapter for a source given to :func:`twisted_stream.stream`."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable

from twisted.internet.defer import Deferred

from .._engine._chunks import chunk_converter
from .._engine._source import Source
from .._settings import StreamSettings
from .._types import Reactor, StreamRequest
from ._async import AsyncIteratorSource
from ._file import file_source
from ._pool import StreamThreadPool, pool_for
from ._producers import producer_source
from ._sync import IteratorSource
from ._threaded import ThreadedSource


def adapt(
    source: object,
    *,
    charset: str,
    threaded: bool,
    reactor: Reactor,
    pool: Callable[[], StreamThreadPool],
    convert: Callable[[object], bytes] | None = None,
) -> Source:
    """Wrap ``source`` in the adapter for its kind.

    - ``bytes``/``bytearray``/``memoryview``/``str`` and a single Deferred: a one-chunk body
      (a ``str`` is text, never a path);
    - a ``pathlib.Path``, ``FilePath`` or binary file object: the file adapter;
    - an async iterable: the async adapter (``threaded=True`` is refused for it);
    - any other iterable: the sync adapter, or with ``threaded=True`` the threaded one,
      running on the pool ``pool()`` returns;
    - an ``IBodyProducer``, or any other callable (given an ``IConsumer``): the producer
      adapter, whose writes are bytes or ``str`` in ``charset`` (``convert`` is not used).

    ``convert`` turns each item into bytes (default: bytes-like and ``str`` in ``charset``);
    event streams and NDJSON pass their own serialiser. Raises ``TypeError`` for anything
    that is not a source.
    """
    if convert is None:
        convert = chunk_converter(charset)
    if isinstance(source, (bytes, bytearray, memoryview, str, Deferred)):
        return IteratorSource([source], convert)
    file = file_source(source)
    if file is not None:
        return file
    if isinstance(source, AsyncIterable):
        if threaded:
            raise TypeError("threaded=True is for blocking sync iterables, not async ones")
        return AsyncIteratorSource(source, convert)
    if isinstance(source, Iterable):
        if threaded:
            return ThreadedSource(source, convert, pool(), reactor)
        return IteratorSource(source, convert)
    producer = producer_source(source, chunk_converter(charset))
    if producer is not None:
        if threaded:
            raise TypeError("threaded=True is for blocking sync iterables, not producers")
        return producer
    raise TypeError(
        f"cannot stream a {type(source).__module__}.{type(source).__qualname__}: expected an "
        "iterable, async iterable, file, Path, bytes, str, IBodyProducer or a callable "
        "taking an IConsumer"
    )


def adapt_for(
    request: StreamRequest,
    source: object,
    *,
    settings: StreamSettings,
    reactor: Reactor,
    charset: str = "utf-8",
    threaded: bool = False,
    convert: Callable[[object], bytes] | None = None,
) -> Source:
    """:func:`adapt` for a source streamed into ``request``: a threaded source runs on the
    pool of ``request``'s site (see :func:`~._pool.pool_for`)."""
    return adapt(
        source,
        charset=charset,
        threaded=threaded,
        reactor=reactor,
        pool=lambda: pool_for(request, reactor, settings.thread_pool_size),
        convert=convert,
    )

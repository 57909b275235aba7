"""Choosing the adapter for a source given to :func:`twisted_stream.stream`."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred

from .._engine._chunks import chunk_converter
from .._engine._source import Source
from ._async import AsyncIteratorSource
from ._pool import thread_pool
from ._sync import IteratorSource
from ._threaded import ThreadedSource


def adapt(
    source: object,
    *,
    charset: str,
    threaded: bool,
    reactor: Any,
    thread_pool_size: int,
    convert: Callable[[object], bytes] | None = None,
) -> Source:
    """Wrap ``source`` in the adapter for its kind.

    - ``bytes``/``bytearray``/``memoryview``/``str`` and a single Deferred: a one-chunk body
      (a ``str`` is text, never a path);
    - a ``pathlib.Path``, ``FilePath`` or binary file object: the file adapter;
    - an async iterable: the async adapter (``threaded=True`` is refused for it);
    - any other iterable: the sync adapter, or the threaded one with ``threaded=True``.

    ``convert`` turns each item into bytes (default: bytes-like and ``str`` in ``charset``);
    event streams and NDJSON pass their own serialiser.
    """
    if convert is None:
        convert = chunk_converter(charset)
    if isinstance(source, (bytes, bytearray, memoryview, str, Deferred)):
        return IteratorSource([source], convert)
    file = _file_source(source)
    if file is not None:
        return file
    if isinstance(source, AsyncIterable):
        if threaded:
            raise TypeError("threaded=True is for blocking sync iterables, not async ones")
        return AsyncIteratorSource(source, convert)
    if isinstance(source, Iterable):
        if threaded:
            return ThreadedSource(source, convert, thread_pool(reactor, thread_pool_size), reactor)
        return IteratorSource(source, convert)
    raise TypeError(
        f"cannot stream a {type(source).__module__}.{type(source).__qualname__}: expected an "
        "iterable, async iterable, file, Path, bytes or str"
    )


def _file_source(source: object) -> Source | None:
    from ._file import file_source

    return file_source(source)

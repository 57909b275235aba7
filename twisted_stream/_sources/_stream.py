"""The public entry point, :func:`stream`, and :func:`stream_source` for adapted sources.

Both apply gzip (:func:`~._compression.maybe_compress`) before handing the source to the
engine (:func:`twisted_stream._engine._stream.start_stream`), which knows no source kind.
"""

from __future__ import annotations

from types import GeneratorType
from typing import cast

from .._engine._chunks import chunk_converter
from .._engine._source import Source
from .._engine._stream import start_stream, stream_for
from .._http._twisted import site_of
from .._settings import StreamSettings, settings_for
from .._types import Reactor, StreamRequest
from ._adapt import adapt_for
from ._compression import maybe_compress
from ._file import FileSource, PathSource, file_content_type, path_length
from ._file_threads import ThreadedFileReads
from ._pool import pool_for
from ._producers import ProducerSource, body_length
from ._sync import IteratorSource


def stream(
    request: StreamRequest,
    source: object,
    *,
    content_type: str | None = None,
    charset: str | None = None,
    content_length: int | None = None,
    threaded: bool = False,
    reactor: Reactor | None = None,
    buffer_size: int | None = None,
    slice_seconds: float | None = None,
    thread_pool_size: int | None = None,
    stall_timeout: float | None = None,
    idle_timeout: float | None = None,
    deadline: float | None = None,
    compress: bool | None = None,
    sendfile: bool | None = None,
    threaded_file_reads: bool | None = None,
) -> int:
    """Stream ``source`` into ``request`` with flow control; returns ``NOT_DONE_YET``.

    ``source`` is a sync iterable (items may be Deferreds), an async iterable, a file
    (``pathlib.Path``, ``FilePath`` or binary file object), ``bytes``/``str``, an
    ``IBodyProducer`` (``startProducing``'s Deferred ends the body), or a callable given an
    ``IConsumer`` whose producers it registers (its Deferred, else the producer
    unregistering, ends the body; see :mod:`twisted_stream._sources._producers`). Items are
    ``bytes``, ``bytearray``, ``memoryview`` or ``str`` (encoded with ``charset``, else the
    ``charset`` of ``content_type``, else utf-8). ``threaded=True`` runs a blocking sync
    iterable in the site's bounded thread pool. ``content_length`` sets ``Content-Length``
    (a path to a regular file gets its size, an ``IBodyProducer`` its ``length`` unless
    ``UNKNOWN_LENGTH``); a source producing a different length then aborts the connection.
    A file without ``content_type`` (and no ``Content-Type`` set yet) is typed from the
    fixed table by its name, as ``FileResource`` does (``application/octet-stream`` when
    unknown), and files are sent with ``X-Content-Type-Options: nosniff``. The remaining
    keywords override the :class:`StreamSettings` of the site (:class:`StreamSite`) for
    this response. The stream's timers and threads report to ``reactor``, by default the
    site's (the global reactor unless the site was built with another, such as the fake
    clock of :mod:`twisted_stream.testing`). Raises ``TypeError`` for a source of no known
    kind.
    """
    settings = settings_for(request).replace(
        buffer_size=buffer_size,
        slice_seconds=slice_seconds,
        thread_pool_size=thread_pool_size,
        stall_timeout=stall_timeout,
        idle_timeout=idle_timeout,
        deadline=deadline,
        compress=compress,
        sendfile=sendfile,
        threaded_file_reads=threaded_file_reads,
    )
    reactor = default_reactor(reactor, request)
    # A generator, the common source, is no file, path or producer: nothing to look up.
    generator = isinstance(source, GeneratorType)
    file_type = None if generator else file_content_type(source)
    if file_type is not None:
        # A file's bytes are data: typed from the fixed table like FileResource, never
        # left to the site's default (text/html), and never sniffed.
        if content_type is None and not request.responseHeaders.hasHeader(b"content-type"):
            content_type = file_type
        request.setHeader(b"x-content-type-options", b"nosniff")
    if content_type is not None:
        request.setHeader(b"content-type", content_type.encode("latin-1"))
    if charset is None:
        charset = _charset_of(request) or "utf-8"
    if content_length is None and not generator:
        content_length = path_length(source)
        if content_length is None:
            content_length = body_length(source)
    adapted: Source
    if isinstance(source, GeneratorType) and not threaded:
        adapted = IteratorSource(source, chunk_converter(charset))  # what adapt_for picks
    else:
        adapted = adapt_for(
            request, source, settings=settings, reactor=reactor, charset=charset, threaded=threaded
        )
    result = stream_source(
        request, adapted, content_length=content_length, settings=settings, reactor=reactor
    )
    if isinstance(adapted, ProducerSource):
        adapted.attach(stream_for(request))
    return result


def stream_source(
    request: StreamRequest,
    source: Source,
    *,
    content_length: int | None = None,
    settings: StreamSettings | None = None,
    reactor: Reactor | None = None,
    flush_headers: bool = False,
    endless: bool = False,
) -> int:
    """Stream an already adapted :class:`~twisted_stream._engine._source.Source` (files,
    templates, events), gzipped when the response should be, a file read on the thread pool
    with ``threaded_file_reads``; returns ``NOT_DONE_YET``.

    ``content_length`` sets ``Content-Length`` (``ValueError`` if negative);
    ``flush_headers`` and ``endless`` are those of
    :func:`~twisted_stream._engine._stream.start_stream`.
    """
    reactor = default_reactor(reactor, request)
    if settings is None:
        settings = settings_for(request)
    if content_length is not None:
        if content_length < 0:
            raise ValueError(f"content_length must not be negative, not {content_length}")
        request.setHeader(b"content-length", b"%d" % content_length)
    if settings.threaded_file_reads and isinstance(source, (FileSource, PathSource)):
        pool = pool_for(request, reactor, settings.thread_pool_size)
        source = ThreadedFileReads(source, pool, reactor)
    source = maybe_compress(request, source, settings)
    return start_stream(
        request,
        source,
        settings=settings,
        clock=reactor,
        flush_headers=flush_headers,
        endless=endless,
    )


def default_reactor(reactor: Reactor | None, request: StreamRequest | None = None) -> Reactor:
    """``reactor``; else the reactor of ``request``'s site (a ``Site`` built with
    ``reactor=``, such as a test's fake clock: the connection's own timeouts run on it too);
    else the global reactor.

    The global reactor is imported here, when first needed, not at module level: importing
    it installs the default reactor, which an application may still want to choose.
    """
    if reactor is not None:
        return reactor
    found = getattr(site_of(request), "reactor", None) if request is not None else None
    if found is not None:
        return cast(Reactor, found)
    global _global_reactor
    if _global_reactor is None:
        from twisted.internet import reactor as global_reactor

        # The global reactor provides IReactorThreads too; its declared type leaves that out.
        _global_reactor = cast(Reactor, global_reactor)
    return _global_reactor


_global_reactor: Reactor | None = None
"""The global reactor once :func:`default_reactor` has imported it (an import statement per
stream costs more than the rest of its choice of settings)."""


def _charset_of(request: StreamRequest) -> str | None:
    value = request.responseHeaders.getRawHeaders(b"content-type", [None])[-1]
    if not value:
        return None
    for param in value.split(b";")[1:]:
        name, _, found = param.strip().partition(b"=")
        if name.strip().lower() == b"charset" and found:
            return found.strip().strip(b'"').decode("ascii", "replace")
    return None

"""The public entry point, :func:`stream`, and the :class:`Stream` handle it creates."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET

from .._ops._limits import client_address, refusal, send_refusal
from .._ops._site import StreamSite
from .._settings import StreamSettings, settings_for
from .._sources._adapt import adapt
from .._sources._compression import maybe_compress
from .._sources._file import path_length
from ._outcome import Outcome, StreamResult
from ._producer import StreamProducer, request_line
from ._source import Source
from ._state import State

_log = Logger(namespace="twisted_stream")
_ATTRIBUTE = "_twisted_stream_handle"
"""Where a request keeps its :class:`Stream`. An attribute, not a global weak mapping: the
handle refers to its request, so a mapping keyed by the request would keep both alive."""


class Stream:
    """One response being streamed: its state, its byte count and how it ended.

    Get it with :func:`stream_for` after calling :func:`stream`.
    """

    def __init__(
        self,
        request: Any,
        source: Source,
        settings: StreamSettings,
        content_length: int | None,
        reactor: Any,
    ) -> None:
        self.request = request
        self.settings = settings
        self.started_at = time.monotonic()
        self.result: StreamResult | None = None
        self.endless = False
        """True for streams that never end on their own (event streams): graceful shutdown
        ends them cleanly with :meth:`end` instead of aborting them."""
        self.path = str(getattr(request, "uri", b"").decode("latin-1", "replace"))
        self.client = client_address(request, settings.trust_forwarded_for)
        site = getattr(request, "site", None)
        self._site: StreamSite | None = site if isinstance(site, StreamSite) else None
        self._waiters: list[Deferred[StreamResult]] = []
        self._producer = StreamProducer(
            request,
            source,
            settings=settings,
            clock=reactor,
            content_length=content_length,
            on_end=self._ended,
        )

    @property
    def state(self) -> State:
        """Where the stream is in its lifecycle."""
        return self._producer.state

    @property
    def bytes_sent(self) -> int:
        """Body bytes written so far."""
        return self._producer.bytes_sent

    @property
    def paused(self) -> bool:
        """Whether the transport holds the stream paused (its client is not reading)."""
        return self._producer.state in (State.PAUSED, State.WAITING_PAUSED)

    @property
    def pause_count(self) -> int:
        """How many times the transport paused the stream."""
        return self._producer.pause_count

    @property
    def paused_seconds(self) -> float:
        """Total seconds the transport kept the stream paused."""
        return self._producer.paused_seconds

    @property
    def first_byte_seconds(self) -> float | None:
        """Seconds from start to the first body byte, None before it."""
        at = self._producer.first_byte_at
        return None if at is None else at - self.started_at

    @property
    def age(self) -> float:
        """Seconds since the stream started."""
        return time.monotonic() - self.started_at

    @property
    def outcome(self) -> Outcome | None:
        """How the stream ended, or None while it runs."""
        return None if self.result is None else self.result.outcome

    @property
    def source_closed(self) -> Deferred[None]:
        """Fires once the source has been released (a threaded one closes on its worker)."""
        d: Deferred[None] = Deferred()

        def relay(result: object) -> object:
            d.callback(None)
            return result

        self._producer.source_closed.addBoth(relay)
        return d

    def when_done(self) -> Deferred[StreamResult]:
        """A new Deferred firing with the :class:`StreamResult` when the stream ends.

        It never fails: a client leaving or a source failing is an outcome, not an error.
        """
        if self.result is not None:
            return succeed(self.result)
        d: Deferred[StreamResult] = Deferred()
        self._waiters.append(d)
        return d

    def end(self) -> None:
        """Finish the response cleanly now (for event streams, which never end on their own;
        a response with a declared Content-Length is aborted instead). No-op once ended."""
        self._producer.end()

    def abort(self, reason: str = "aborted by the server") -> None:
        """End the stream now; the client sees an incomplete body. No-op once ended."""
        self._producer.abort(reason)

    def _start(self, *, flush_headers: bool = False) -> None:
        site = self._site
        if site is not None:
            reason = refusal(site, self.request, self.settings)
            if reason is not None:
                self._refuse(reason)
                return
            site.active_streams.add(self)
            site.metrics.stream_started()
        self._producer.start(flush_headers=flush_headers)

    def _refuse(self, reason: str) -> None:
        _log.info(
            "{request_line}: refused with 503: {reason}",
            request_line=request_line(self.request),
            reason=reason,
        )
        self._producer.reject()
        send_refusal(self.request, self.settings, reason)
        self.result = StreamResult(Outcome.REJECTED, 0, None, 0.0)
        if self._site is not None:
            self._site.metrics.stream_rejected()

    def _ended(self, outcome: Outcome, failure: Failure | None) -> None:
        self.result = StreamResult(
            outcome, self.bytes_sent, failure, time.monotonic() - self.started_at
        )
        site = self._site
        if site is not None:
            site.active_streams.discard(self)
            if self.first_byte_seconds is not None:
                site.metrics.first_byte(self.first_byte_seconds)
            site.metrics.stream_ended(self.result, self.pause_count, self.paused_seconds)
        if not getattr(self.request, "finished", True):
            _access_log(self.request)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(self.result)


def stream(
    request: Any,
    source: object,
    *,
    content_type: str | None = None,
    charset: str | None = None,
    content_length: int | None = None,
    threaded: bool = False,
    reactor: Any = None,
    buffer_size: int | None = None,
    slice_seconds: float | None = None,
    thread_pool_size: int | None = None,
    stall_timeout: float | None = None,
    idle_timeout: float | None = None,
    deadline: float | None = None,
    compress: bool | None = None,
) -> int:
    """Stream ``source`` into ``request`` with flow control; returns ``NOT_DONE_YET``.

    ``source`` is a sync iterable (items may be Deferreds), an async iterable, a file
    (``pathlib.Path``, ``FilePath`` or binary file object), or ``bytes``/``str``. Items are
    ``bytes``, ``bytearray``, ``memoryview`` or ``str`` (encoded with ``charset``, else the
    ``charset`` of ``content_type``, else utf-8). ``threaded=True`` runs a blocking sync
    iterable in a bounded thread pool. ``content_length`` sets ``Content-Length`` (a path to
    a regular file gets its size); a source producing a different length then aborts the
    connection. The remaining keywords override
    the :class:`StreamSettings` of the site (:class:`StreamSite`) for this response.
    """
    settings = settings_for(request).replace(
        buffer_size=buffer_size,
        slice_seconds=slice_seconds,
        thread_pool_size=thread_pool_size,
        stall_timeout=stall_timeout,
        idle_timeout=idle_timeout,
        deadline=deadline,
        compress=compress,
    )
    reactor = _reactor(reactor)
    if content_type is not None:
        request.setHeader(b"content-type", content_type.encode("latin-1"))
    if charset is None:
        charset = _charset_of(request) or "utf-8"
    if content_length is None:
        content_length = path_length(source)
    adapted = adapt(
        source,
        charset=charset,
        threaded=threaded,
        reactor=reactor,
        thread_pool_size=settings.thread_pool_size,
    )
    return stream_source(
        request, adapted, content_length=content_length, settings=settings, reactor=reactor
    )


def stream_source(
    request: Any,
    source: Source,
    *,
    content_length: int | None = None,
    settings: StreamSettings | None = None,
    reactor: Any = None,
    flush_headers: bool = False,
    endless: bool = False,
) -> int:
    """Stream an already adapted :class:`~._source.Source` (files, templates, events).

    ``flush_headers`` sends the status line and headers at once instead of with the first
    body bytes (event streams); ``endless`` marks a stream that never ends on its own, so
    graceful shutdown ends it cleanly rather than aborting it.
    """
    reactor = _reactor(reactor)
    if settings is None:
        settings = settings_for(request)
    if content_length is not None:
        if content_length < 0:
            raise ValueError(f"content_length must not be negative, not {content_length}")
        request.setHeader(b"content-length", b"%d" % content_length)
    source = maybe_compress(request, source, settings)
    handle = Stream(request, source, settings, _declared_length(request), reactor)
    handle.endless = endless
    setattr(request, _ATTRIBUTE, handle)
    handle._start(flush_headers=flush_headers)
    return NOT_DONE_YET


def _reactor(reactor: Any) -> Any:
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        return global_reactor
    return reactor


def _access_log(request: Any) -> None:
    """Write the access-log line of a response that ended without ``finish()`` (aborted,
    client gone), so it carries the real status and bytes sent like every other line."""
    factory = getattr(getattr(request, "channel", None), "factory", None)
    if factory is None:
        site = getattr(request, "site", None)
        factory = site
    log = getattr(factory, "log", None)
    if log is not None:
        log(request)


def stream_for(request: Any) -> Stream | None:
    """The :class:`Stream` that :func:`stream` started for ``request``, if any."""
    found = getattr(request, _ATTRIBUTE, None)
    return found if isinstance(found, Stream) else None


def _charset_of(request: Any) -> str | None:
    value = request.responseHeaders.getRawHeaders(b"content-type", [None])[-1]
    if not value:
        return None
    for param in value.split(b";")[1:]:
        name, _, found = param.strip().partition(b"=")
        if name.strip().lower() == b"charset" and found:
            return str(found.strip().strip(b'"').decode("ascii", "replace"))
    return None


def _declared_length(request: Any) -> int | None:
    value = request.responseHeaders.getRawHeaders(b"content-length", [None])[-1]
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise ValueError(f"the response's Content-Length is not a number: {value!r}") from None
    if length < 0:
        raise ValueError(f"the response's Content-Length is negative: {value!r}")
    return length

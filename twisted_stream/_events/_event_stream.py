"""Serving Server-Sent Events: :func:`stream_events` and :class:`EventStreamResource`.

An event stream is an endless ``text/event-stream`` response. The source is any source kind
:func:`twisted_stream.stream` takes (sync or async iterable, generator yielding Deferreds,
``threaded=True`` blocking generator), yielding :class:`Event` objects or ``str`` (one
event's data), or a :class:`~twisted_stream.Channel` subscription. A comment line goes out
after ``heartbeat`` seconds of silence so proxies keep idle streams open, and the browser's
``Last-Event-ID`` is handed to the source so a reconnecting client resumes where it left off.
The wire format (:class:`~._sse.Event`) is in :mod:`._sse`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.resource import IResource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from .._engine._source import ReadResult, SliceDeadline, Source
from .._engine._stream import stream_for
from .._http._methods import MethodsResource
from .._settings import settings_for
from .._sources._adapt import adapt_for
from .._sources._async import AsyncIteratorSource
from .._sources._heartbeat import HEARTBEAT, HeartbeatSource
from .._sources._stream import default_reactor, stream_source
from .._types import Reactor, StreamRequest
from ._channel import Channel
from ._sse import CONTENT_TYPE, check_retry, convert_event, last_event_id
from ._subscription import Subscription

DEFAULT_HEARTBEAT = 15.0

EventsFactory = Callable[[str | None], object]
"""What :func:`stream_events` may take instead of a source: called with the request's
``Last-Event-ID`` (``None`` when absent), it returns the source."""


class _Prefixed:
    """A source that gives ``prefix`` first, then what ``inner`` gives."""

    __slots__ = ("_inner", "_prefix")

    def __init__(self, prefix: bytes, inner: Source) -> None:
        self._prefix: bytes | None = prefix
        self._inner = inner

    def read(self, limit: int, deadline: SliceDeadline) -> ReadResult:
        prefix = self._prefix
        if prefix is not None:
            self._prefix = None
            return prefix
        return self._inner.read(limit, deadline)

    def close(self) -> Deferred[None] | None:
        return self._inner.close()


def _is_factory(source: object) -> bool:
    return callable(source) and not isinstance(source, (Iterable, AsyncIterable))


def stream_events(
    request: StreamRequest,
    source: object,
    *,
    heartbeat: float | None = DEFAULT_HEARTBEAT,
    retry: int | None = None,
    threaded: bool = False,
    reactor: Reactor | None = None,
    **settings: Any,
) -> int:
    """Stream ``source`` as Server-Sent Events into ``request``; returns ``NOT_DONE_YET``.

    ``source`` is any source :func:`twisted_stream.stream` takes, yielding :class:`Event`
    objects or ``str`` (one event's data); a :class:`~twisted_stream.Channel` (subscribed
    with the request's ``Last-Event-ID``); or a callable that receives the ``Last-Event-ID``
    (``None`` when the client sent none) and returns one of these. A callable returning
    ``None``, or a closed channel, answers ``204 No Content``, which tells a browser's
    ``EventSource`` to stop reconnecting.

    The headers (``Content-Type: text/event-stream; charset=utf-8``, ``Cache-Control:
    no-store``, ``X-Accel-Buffering: no``) go out at once. While the source is silent for
    ``heartbeat`` seconds a comment line (``:``) is sent; ``None`` or 0 turns that off.
    ``retry`` (milliseconds) is sent first as the browser's reconnection delay.
    ``threaded=True`` runs a blocking generator in the thread pool. Other keywords override
    the site's :class:`~twisted_stream.StreamSettings` for this response.

    The stream is endless: graceful shutdown ends it cleanly (the browser reconnects), the
    client leaving tears the source down like any stream.
    """
    if heartbeat is not None and heartbeat < 0:
        raise ValueError(f"heartbeat must not be negative, not {heartbeat}")
    retry_bytes = b"retry: %d\n\n" % check_retry(retry) if retry is not None else b""
    merged = settings_for(request).replace(**settings)
    reactor = default_reactor(reactor, request)
    headers = request.responseHeaders
    headers.setRawHeaders(b"content-type", [CONTENT_TYPE])
    headers.setRawHeaders(b"cache-control", [b"no-store"])
    headers.setRawHeaders(b"x-accel-buffering", [b"no"])
    headers.removeHeader(b"content-length")

    resume = last_event_id(request)
    if isinstance(source, Channel):
        source = source.subscribe(resume)
    elif _is_factory(source):
        source = source(resume)  # type: ignore[operator]
        if isinstance(source, Channel):
            source = source.subscribe(resume)
    if source is None or (isinstance(source, Subscription) and source.finished):
        # 204 tells EventSource to stop reconnecting.
        request.setResponseCode(204)
        headers.removeHeader(b"content-type")
        request.finish()
        return NOT_DONE_YET
    adapted: Source
    if isinstance(source, Subscription):
        adapted = source
    else:
        adapted = adapt_for(
            request,
            source,
            settings=merged,
            reactor=reactor,
            threaded=threaded,
            convert=convert_event,
        )
    if heartbeat:
        if isinstance(adapted, Subscription):
            adapted.heartbeat(heartbeat, reactor)
        elif isinstance(adapted, AsyncIteratorSource):
            adapted.heartbeat(heartbeat, reactor, HEARTBEAT)
        else:
            adapted = HeartbeatSource(adapted, heartbeat, reactor)
    if retry_bytes:
        adapted = _Prefixed(retry_bytes, adapted)
    try:
        result = stream_source(
            request, adapted, settings=merged, reactor=reactor, flush_headers=True, endless=True
        )
    except BaseException:
        adapted.close()  # e.g. leave the channel
        raise
    if isinstance(source, Subscription):
        source.attach(stream_for(request))
    return result


@implementer(IResource)
class EventStreamResource(MethodsResource):
    """A resource answering ``GET`` (and ``HEAD``) with an event stream.

    Give it ``events``, a callable ``(request, last_event_id) -> source`` or a
    :class:`~twisted_stream.Channel`, or subclass it and override :meth:`events`. The other
    keywords are those of :func:`stream_events`.
    """

    isLeaf = True

    def __init__(
        self,
        events: Callable[[Request, str | None], object] | Channel | None = None,
        *,
        heartbeat: float | None = DEFAULT_HEARTBEAT,
        retry: int | None = None,
        threaded: bool = False,
        **settings: Any,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._events = events
        self.heartbeat = heartbeat
        self.retry = retry
        self.threaded = threaded
        self.settings = settings

    def events(self, request: Request, last_event_id: str | None) -> object:
        """The source of the event stream for ``request``; ``last_event_id`` is the
        ``Last-Event-ID`` the client sent (``None`` on a first connection)."""
        events = self._events
        if events is None:
            raise NotImplementedError("give EventStreamResource events= or override events()")
        if isinstance(events, Channel):
            return events.subscribe(last_event_id)
        return events(request, last_event_id)

    def render_GET(self, request: Request) -> int:
        return stream_events(
            request,
            lambda last_id: self.events(request, last_id),
            heartbeat=self.heartbeat,
            retry=self.retry,
            threaded=self.threaded,
            **self.settings,
        )

"""Server-Sent Events: :class:`Event`, its wire format, :func:`stream_events` and
:class:`EventStreamResource`.

An event stream is an endless ``text/event-stream`` response. The source is any source kind
:func:`twisted_stream.stream` takes (sync or async iterable, generator yielding Deferreds,
``threaded=True`` blocking generator), yielding :class:`Event` objects or ``str`` (one
event's data), or a :class:`~twisted_stream.Channel` subscription. A comment line goes out
after ``heartbeat`` seconds of silence so proxies keep idle streams open, and the browser's
``Last-Event-ID`` is handed to the source so a reconnecting client resumes where it left off.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from .._engine._source import ReadResult, Source
from .._engine._stream import _reactor, stream_for, stream_source
from .._errors import ChunkTypeError
from .._settings import settings_for
from .._sources._adapt import adapt
from .._sources._heartbeat import HeartbeatSource

if TYPE_CHECKING:
    from ._channel import Channel

CONTENT_TYPE = b"text/event-stream; charset=utf-8"
DEFAULT_HEARTBEAT = 15.0

EventsFactory = Callable[[str | None], object]
"""What :func:`stream_events` may take instead of a source: called with the request's
``Last-Event-ID`` (``None`` when absent), it returns the source."""


def _check_field(name: str, value: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"Event {name} must be a str, not {type(value).__qualname__}")
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"Event {name} must not contain CR, LF or NUL: {value!r}")


def _check_retry(retry: int) -> int:
    if type(retry) is not int:
        raise TypeError(f"retry must be an int (milliseconds), not {type(retry).__qualname__}")
    if retry < 0:
        raise ValueError(f"retry must not be negative, not {retry}")
    return retry


def _data_field(data: str) -> str:
    """``data`` as ``data:`` lines: one per line of ``data`` (CRLF and CR count as LF)."""
    if "\r" in data:
        data = data.replace("\r\n", "\n").replace("\r", "\n")
    return "data: " + data.replace("\n", "\ndata: ") + "\n"


def encode_data(data: str) -> bytes:
    """The wire form of an event carrying only ``data`` (what a ``str`` item becomes)."""
    return (_data_field(data) + "\n").encode("utf-8")


@dataclass(frozen=True, slots=True)
class Event:
    """One Server-Sent Event.

    ``data`` may span several lines (``\\n``, ``\\r\\n`` and ``\\r`` all separate lines;
    each becomes a ``data:`` line, so the browser's ``event.data`` joins them with ``\\n``).
    ``event`` names the event type (``addEventListener(name, ...)``; the default type is
    ``message``), ``id`` becomes the browser's ``lastEventId`` and is sent back as
    ``Last-Event-ID`` when it reconnects, and ``retry`` sets the browser's reconnection
    delay in milliseconds. ``event`` and ``id`` containing CR, LF or NUL are rejected with
    :class:`ValueError`: they would let data inject fields or events of its own.

    The wire bytes are computed once, when the event is made, and shared by every stream
    that sends it (:meth:`encode`).
    """

    data: str
    event: str | None = field(default=None, kw_only=True)
    id: str | None = field(default=None, kw_only=True)
    retry: int | None = field(default=None, kw_only=True)
    _wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.data, str):
            raise TypeError(f"Event data must be a str, not {type(self.data).__qualname__}")
        text = ""
        if self.id is not None:
            _check_field("id", self.id)
            text += f"id: {self.id}\n"
        if self.event is not None:
            _check_field("event", self.event)
            text += f"event: {self.event}\n"
        if self.retry is not None:
            text += f"retry: {_check_retry(self.retry)}\n"
        text += _data_field(self.data) + "\n"
        object.__setattr__(self, "_wire", text.encode("utf-8"))

    def encode(self) -> bytes:
        """The event as it goes on the wire, blank line included (UTF-8)."""
        return self._wire


def convert_event(item: object) -> bytes:
    """Turn one item of an event source into wire bytes.

    An :class:`Event` gives its wire form; a ``str`` is one event's data; ``bytes`` (also
    ``bytearray``/``memoryview``) are written as they are, already in event-stream format.
    """
    if isinstance(item, Event):
        return item._wire
    if isinstance(item, str):
        return encode_data(item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    raise ChunkTypeError(
        f"an event source yielded {type(item).__module__}.{type(item).__qualname__}; "
        "expected twisted_stream.Event or str"
    )


class _Prefixed:
    """A source that gives ``prefix`` first, then what ``inner`` gives."""

    __slots__ = ("_inner", "_prefix")

    def __init__(self, prefix: bytes, inner: Source) -> None:
        self._prefix: bytes | None = prefix
        self._inner = inner

    def read(self, limit: int, deadline: float) -> ReadResult:
        prefix = self._prefix
        if prefix is not None:
            self._prefix = None
            return prefix
        return self._inner.read(limit, deadline)

    def close(self) -> Any:
        return self._inner.close()


def last_event_id(request: Any) -> str | None:
    """The ``Last-Event-ID`` request header (``None`` when absent or empty)."""
    raw = request.getHeader(b"last-event-id")
    if not raw:
        return None
    value: str = raw.decode("utf-8", "replace")
    return value


def _is_factory(source: object) -> bool:
    return callable(source) and not isinstance(source, (Iterable, AsyncIterable))


def stream_events(
    request: Any,
    source: object,
    *,
    heartbeat: float | None = DEFAULT_HEARTBEAT,
    retry: int | None = None,
    threaded: bool = False,
    reactor: Any = None,
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
    from ._channel import Channel, Subscription

    if heartbeat is not None and heartbeat < 0:
        raise ValueError(f"heartbeat must not be negative, not {heartbeat}")
    retry_bytes = b"retry: %d\n\n" % _check_retry(retry) if retry is not None else b""
    merged = settings_for(request).replace(**settings)
    reactor = _reactor(reactor)
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
        adapted = adapt(
            source,
            charset="utf-8",
            threaded=threaded,
            reactor=reactor,
            thread_pool_size=merged.thread_pool_size,
            convert=convert_event,
        )
    if heartbeat:
        if isinstance(adapted, Subscription):
            adapted.heartbeat(heartbeat, reactor)
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


class EventStreamResource(Resource):
    """A resource answering ``GET`` with an event stream.

    Give it ``events``, a callable ``(request, last_event_id) -> source`` or a
    :class:`~twisted_stream.Channel`, or subclass it and override :meth:`events`. The other
    keywords are those of :func:`stream_events`.
    """

    isLeaf = True

    def __init__(
        self,
        events: Callable[[Any, str | None], object] | Channel | None = None,
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

    def events(self, request: Any, last_event_id: str | None) -> object:
        """The source of the event stream for ``request``; ``last_event_id`` is the
        ``Last-Event-ID`` the client sent (``None`` on a first connection)."""
        from ._channel import Channel

        events = self._events
        if events is None:
            raise NotImplementedError("give EventStreamResource events= or override events()")
        if isinstance(events, Channel):
            return events.subscribe(last_event_id)
        return events(request, last_event_id)

    def render_GET(self, request: Any) -> int:
        return stream_events(
            request,
            lambda last_id: self.events(request, last_id),
            heartbeat=self.heartbeat,
            retry=self.retry,
            threaded=self.threaded,
            **self.settings,
        )


__all__ = [
    "CONTENT_TYPE",
    "Event",
    "EventStreamResource",
    "EventsFactory",
    "convert_event",
    "encode_data",
    "last_event_id",
    "stream_events",
]

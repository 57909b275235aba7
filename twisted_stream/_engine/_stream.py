"""The :class:`Stream` handle of one streamed response, and :func:`start_stream`, which
starts the engine on an adapted source.

The public :func:`twisted_stream.stream` (in :mod:`twisted_stream._sources._stream`) adapts a
source, applies compression and calls :func:`start_stream`. A stream registers with its
site through the :class:`~twisted_stream._types.StreamRegistry` Protocol (``StreamSite``
implements it); it never imports the site.
"""

from __future__ import annotations

import time
from typing import TypeGuard

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET

from .._errors import StreamAborted
from .._http._twisted import (
    client_address,
    request_line,
    send_refusal,
    site_of,
    write_access_log,
)
from .._settings import StreamSettings
from .._types import Clock, Monotonic, StreamRegistry, StreamRequest
from ._outcome import Outcome, StreamResult
from ._producer import StreamProducer
from ._source import Source
from ._state import State

_log = Logger(namespace="twisted_stream")
_ATTRIBUTE = "_twisted_stream_handle"
"""Where a request keeps its :class:`Stream`. An attribute, not a global weak mapping: the
handle refers to its request, so a mapping keyed by the request would keep both alive."""


class Stream:
    """One response being streamed: its state, its byte count and how it ended.

    Get it with :func:`stream_for` after calling :func:`twisted_stream.stream`. Durations
    (``age``, ``first_byte_seconds``, the result's ``duration``) are measured on the site's
    ``monotonic`` clock (``time.monotonic`` outside a ``StreamSite``).
    """

    __slots__ = (
        "__weakref__",
        "_monotonic",
        "_producer",
        "_registry",
        "_waiters",
        "client",
        "endless",
        "path",
        "protocol",
        "request",
        "result",
        "settings",
        "started_at",
    )

    def __init__(
        self,
        request: StreamRequest,
        source: Source,
        settings: StreamSettings,
        content_length: int | None,
        clock: Clock,
        registry: StreamRegistry[Stream] | None = None,
    ) -> None:
        self.request = request
        self.settings = settings
        self._registry = registry
        self._monotonic: Monotonic = registry.monotonic if registry is not None else time.monotonic
        self.started_at = self._monotonic()
        self.result: StreamResult | None = None
        self.endless = False
        """True for streams that never end on their own (event streams): graceful shutdown
        ends them cleanly with :meth:`end` instead of aborting them."""
        self.path = request.uri.decode("latin-1", "replace")
        self.protocol = request.clientproto.decode("latin-1", "replace")
        """The HTTP version the response is sent with: ``HTTP/1.1``, ``HTTP/1.0`` or
        ``HTTP/2``."""
        self.client = client_address(request, settings.trust_forwarded_for)
        self._waiters: list[Deferred[StreamResult]] = []
        self._producer = StreamProducer(
            request,
            source,
            settings=settings,
            clock=clock,
            monotonic=self._monotonic,
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
        return self._monotonic() - self.started_at

    @property
    def outcome(self) -> Outcome | None:
        """How the stream ended, or None while it runs."""
        return None if self.result is None else self.result.outcome

    @property
    def source_closed(self) -> Deferred[None]:
        """Fires once the source has been released (a threaded one closes on its worker)."""
        return self._producer.when_source_closed()

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

    def abort(self, reason: str | StreamAborted = "aborted by the server") -> None:
        """End the stream now; the client sees an incomplete body. No-op once ended.
        ``reason`` is a message, or the :class:`~twisted_stream.StreamAborted` (or subclass)
        that the result's ``failure`` then carries."""
        self._producer.abort(reason)

    def _start(self, *, flush_headers: bool = False) -> None:
        if self._registry is not None:
            reason = self._registry.admit(self, self.settings)
            if reason is not None:
                self._refuse(reason)
                return
        self._producer.start(flush_headers=flush_headers)

    def _refuse(self, reason: str) -> None:
        _log.info(
            "{request_line}: refused with 503: {reason}",
            request_line=request_line(self.request),
            reason=reason,
        )
        self._producer.reject()
        send_refusal(self.request, reason, self.settings.retry_after)
        self.result = StreamResult(Outcome.REJECTED, 0, None, 0.0)

    def _ended(self, outcome: Outcome, failure: Failure | None) -> None:
        self.result = StreamResult(
            outcome, self.bytes_sent, failure, self._monotonic() - self.started_at
        )
        if self._registry is not None:
            self._registry.stream_ended(self)
        write_access_log(self.request)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(self.result)


def start_stream(
    request: StreamRequest,
    source: Source,
    *,
    settings: StreamSettings,
    clock: Clock,
    flush_headers: bool = False,
    endless: bool = False,
) -> int:
    """Start streaming an adapted :class:`~._source.Source` into ``request``; returns
    ``NOT_DONE_YET``. The response's ``Content-Length`` header, if set, is the declared
    length the source must produce exactly.

    ``flush_headers`` sends the status line and headers at once instead of with the first
    body bytes (event streams); ``endless`` marks a stream that never ends on its own, so
    graceful shutdown ends it cleanly rather than aborting it. The stream registers with the
    request's site when that is a :class:`~twisted_stream._types.StreamRegistry`.
    """
    site = site_of(request)
    registry = site if _is_registry(site) else None
    handle = Stream(request, source, settings, declared_length(request), clock, registry)
    handle.endless = endless
    setattr(request, _ATTRIBUTE, handle)
    handle._start(flush_headers=flush_headers)
    return NOT_DONE_YET


_REGISTRY_TYPES: dict[type, bool] = {}
"""Whether a site class is a :class:`StreamRegistry`: a runtime Protocol check costs more
than the rest of starting a stream, and a site's class does not change."""


def _is_registry(site: object) -> TypeGuard[StreamRegistry[Stream]]:
    kind = type(site)
    found = _REGISTRY_TYPES.get(kind)
    if found is None:
        found = _REGISTRY_TYPES[kind] = isinstance(site, StreamRegistry)
    return found


def stream_for(request: object) -> Stream | None:
    """The :class:`Stream` that :func:`twisted_stream.stream` started for ``request``, if
    any."""
    found = getattr(request, _ATTRIBUTE, None)
    return found if isinstance(found, Stream) else None


def declared_length(request: StreamRequest) -> int | None:
    """The response's ``Content-Length`` as a number (None when unset); raises
    ``ValueError`` for a value that is not a non-negative number."""
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

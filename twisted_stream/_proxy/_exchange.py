"""One proxied request: sent upstream with ``Agent``, its answer relayed through the engine.

The upstream response's head is relayed as soon as it arrives (status, reason, end-to-end
headers, ``Via``); its body is a stream of the engine, through the adapter of Twisted
producers (:class:`~twisted_stream._sources._producers.ProducerSource`, given what
``response.deliverBody`` delivers to a :class:`~._relay.BodyRelay`), so the upstream
connection is read only as fast as our client reads, the stall and idle timeouts, limits,
metrics and graceful shutdown apply, and the upstream connection is closed (never pooled
again) when the stream ends early. Before the head:

- the client leaving cancels the upstream request (its connection is aborted);
- ``timeout`` seconds without progress (connecting, taking the request body, answering)
  answer ``504``; a connect timeout answers ``504``, any other failure to get a response
  ``502``; each with a one-line plain-text body naming the upstream, logged once.

After the head, an upstream that sends nothing of its body for the site's ``idle_timeout``
(:data:`READ_TIMEOUT` when the site has none) while the client is waiting for more fails the
stream as a source failure: the client's connection is aborted (an incomplete body), the
upstream's closed, and it is logged once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet import error
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IConsumer, IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    RequestGenerationFailed,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http import NO_BODY_CODES
from twisted.web.iweb import IAgent, IResponse
from twisted.web.server import Request

from .._engine._chunks import chunk_converter
from .._engine._outcome import StreamResult
from .._engine._stream import stream_for
from .._http._answers import reason
from .._http._twisted import is_disconnected, request_line, without_default_content_type
from .._http._upstream import READ_SIZE, connection_options
from .._settings import settings_for
from .._sources._producers import ProducerSource
from .._sources._stream import stream_source
from .._types import Reactor
from ._headers import Downstream, downstream_response_headers, upstream_request_headers
from ._relay import BodyRelay, HangUp
from ._target import Upstream
from ._upload import UpstreamBody

_log = Logger(namespace="twisted_stream")
_EVENT_STREAM = b"text/event-stream"
_Start = Callable[[IConsumer], None]
READ_TIMEOUT = 60.0
"""Seconds an upstream may send nothing of its body while the client waits for more (the
stream is not paused) before the client's connection is aborted and the upstream's closed,
when the site sets no ``idle_timeout`` of its own (nginx's ``proxy_read_timeout``)."""


_REASON_PHRASE = re.compile(rb"[\t \x21-\x7e\x80-\xff]+")
"""``reason-phrase`` of RFC 9112 §4: no CR, LF, NUL or other control character."""


@dataclass(frozen=True)
class Route:
    """What every exchange of one :class:`~twisted_stream.ProxyResource` shares."""

    upstream: Upstream
    agent: IAgent
    reactor: Reactor
    timeout: float
    connect_timeout: float
    headers: dict[bytes, bytes]
    preserve_host: bool


def answer(request: Request, code: int, text: str) -> None:
    """Answer ``code`` with a one-line plain-text body (unless the client has gone)."""
    if is_disconnected(request):
        return
    phrase = reason(code)
    body = b"%d %s: %s\n" % (code, phrase, text.encode("utf-8", "replace"))
    request.setResponseCode(code, phrase)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"content-length", b"%d" % len(body))
    request.write(body)
    request.finish()


def downstream_of(request: Request) -> Downstream:
    """Who sent ``request``: its peer address, the ``Host`` it asked for, its scheme."""
    host = getattr(request.getClientAddress(), "host", None)
    return Downstream(
        address=host if isinstance(host, str) else None,
        host=request.getHeader(b"host"),
        scheme="https" if request.isSecure() else "http",
    )


class Exchange:
    """Sends ``request`` upstream to ``target`` (an absolute URL) along ``route`` and relays
    the answer; ``body`` is the request body producer (None for a request without a
    body)."""

    def __init__(
        self, request: Request, route: Route, target: bytes, body: UpstreamBody | None
    ) -> None:
        self.request = request
        self.target = target
        self.route = route
        self.body = body
        self._pending: Deferred[IResponse] | None = None
        self._timer: IDelayedCall | None = None
        self._timed_out = False
        self._client_gone = False
        self._answered = False
        """The upstream request ended: a head came, or it failed."""
        self._delivered = False

    def start(self) -> None:
        request, route = self.request, self.route
        headers = upstream_request_headers(
            request.requestHeaders,
            downstream_of(request),
            protocol=request.clientproto,
            host=request.getHeader(b"host") if route.preserve_host else None,
            extra=route.headers,
            expect_continue=self.body is not None and self.body.expects_continue,
        )
        try:
            pending = route.agent.request(request.method, self.target, headers, self.body)
        except ValueError as e:  # a target Twisted's client refuses to send
            answer(request, 400, f"the request cannot be forwarded: {e}")
            return
        self._pending = pending
        self._timer = route.reactor.callLater(route.timeout, self._time_out)
        request.notifyFinish().addCallbacks(self._gone, self._gone)
        pending.addCallbacks(self._head, self._failed)

    # Before the head.

    def progress(self) -> None:
        """The upstream took more of the request body: the timeout starts again."""
        timer = self._timer
        if timer is not None and timer.active():
            timer.reset(self.route.timeout)

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _time_out(self) -> None:
        self._timer = None
        self._timed_out = True
        if self._pending is not None:
            self._pending.cancel()

    def _gone(self, reason: Failure | None) -> None:
        """The client left, or the request was answered by someone else before the head
        (the server refusing the client's body: 413, 400, 408); the upstream request is
        cancelled (its connection aborted). After the head the stream's teardown does the
        same."""
        self._client_gone = True
        self._stop_timer()
        if self._pending is not None and not self._answered:
            self._pending.cancel()

    def _failed(self, reason: Failure) -> None:
        self._answered = True
        self._stop_timer()
        if self._client_gone or is_disconnected(self.request):
            return  # the cancellation, or a body that ended because the client left
        if self.body is not None and self.body.failed_by_client:
            return  # the server answers the body's own failure (413, 400, 408) or closes
        code, problem = self._classify(reason)
        _log.warn(
            "{request_line}: answered {code}: upstream {upstream}: {problem}",
            request_line=request_line(self.request),
            code=code,
            upstream=self.route.upstream.url,
            problem=problem,
        )
        answer(self.request, code, f"upstream {self.route.upstream.url}: {problem}")

    def _classify(self, reason: Failure) -> tuple[int, str]:
        """The status and the words for a failure to get a response head."""
        route = self.route
        if self._timed_out:
            return 504, f"no response within {route.timeout:g} s"
        if reason.check(error.TimeoutError):
            return 504, f"connecting timed out after {route.connect_timeout:g} s"
        if reason.check(error.DNSLookupError):
            return 502, f"cannot resolve the host ({_first_line(reason)})"
        if reason.check(error.ConnectError):
            return 502, f"cannot connect ({_first_line(reason)})"
        if reason.check(ResponseNeverReceived):
            return 502, "the connection closed before a response"
        if reason.check(ResponseFailed):
            return 502, f"the response could not be read ({_wrapped(reason)})"
        if reason.check(RequestTransmissionFailed):
            return 502, f"the connection failed while the request was sent ({_wrapped(reason)})"
        if reason.check(RequestGenerationFailed):
            return 502, f"the request body could not be sent ({_wrapped(reason)})"
        if reason.check(CancelledError):
            return 502, "the request was cancelled"
        return 502, _first_line(reason)

    # The head, then the body.

    def _head(self, response: IResponse) -> None:
        self._answered = True
        self._stop_timer()
        request = self.request
        body = self.body
        if body is not None and not body.finished:
            body.stopProducing()  # answered before the whole body was sent
        if self._client_gone or is_disconnected(request):
            response.deliverBody(HangUp())
            return
        relay_head(request, response)
        head_only = request.method == b"HEAD" or response.code in NO_BODY_CODES
        length = response.length if isinstance(response.length, int) else None
        settings = settings_for(request)
        # Unchanged (never compressed), written a read of the upstream at a time, and given
        # up on when the upstream sends nothing for a while though we asked for more.
        settings = settings.replace(
            compress=False,
            buffer_size=max(settings.buffer_size, READ_SIZE),
            idle_timeout=settings.idle_timeout or READ_TIMEOUT,
        )
        source = ProducerSource(self._start_body(response), chunk_converter("utf-8"))
        content_type = request.responseHeaders.getRawHeaders(b"content-type", [b""])[-1]
        stream_source(
            request,
            source,
            content_length=None if head_only else length,
            settings=settings,
            reactor=self.route.reactor,
            flush_headers=True,
            endless=content_type.lower().startswith(_EVENT_STREAM),
        )
        handle = stream_for(request)
        source.attach(handle)
        if handle is not None:
            handle.when_done().addCallback(self._ended, response)

    def _start_body(self, response: IResponse) -> _Start:
        def start(consumer: IConsumer) -> None:
            self._delivered = True
            relay = BodyRelay(consumer, response)
            response.deliverBody(relay)
            relay.delivered()

        return start

    def _ended(self, result: StreamResult, response: IResponse) -> None:
        """A stream that ended without reading the body (refused, HEAD, 204, 304, the
        client gone before the start) must not leave the upstream connection waiting."""
        if not self._delivered:
            self._delivered = True
            response.deliverBody(HangUp())


def relay_head(request: Request, response: IResponse) -> None:
    """Status, reason and the end-to-end headers of ``response`` onto ``request``. A reason
    phrase that is not ``*( HTAB / SP / VCHAR / obs-text )`` (RFC 9112 §4), or is empty,
    is replaced by ours (RFC 9110's): Twisted's client does not check it, and a bare CR in
    it would reach the client as a line end of its own (response splitting)."""
    phrase = response.phrase
    if phrase and _REASON_PHRASE.fullmatch(phrase):
        request.setResponseCode(response.code, phrase)
    else:
        request.setResponseCode(response.code)
    without_default_content_type(request)
    named = connection_options(response) or frozenset()
    protocol = b"%s/%d.%d" % response.version
    relayed = downstream_response_headers(
        response.headers, named, protocol=protocol, keep_length=request.method == b"HEAD"
    )
    for name, values in relayed:
        request.responseHeaders.setRawHeaders(name, values)


def _first_line(reason: Failure) -> str:
    return (reason.getErrorMessage().strip().splitlines() or [type(reason.value).__name__])[0]


def _wrapped(reason: Failure) -> str:
    """The first reason a Twisted client ``_WrapperException`` carries."""
    reasons = getattr(reason.value, "reasons", None) or []
    inner = reasons[0] if reasons and isinstance(reasons[0], Failure) else reason
    return _first_line(inner)

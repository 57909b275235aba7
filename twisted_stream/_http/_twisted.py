"""The only module that reads or changes Twisted's request and channel internals (but for
our own ``HTTPChannel`` subclass, :mod:`._channel`, which *is* the channel).

Everything the engine needs of a request beyond :class:`~twisted_stream._types.StreamRequest`
is here, named for what it means: whether the client has gone (``_disconnected``), whether
the headers went out (``startedWriting``), fake HEAD (``_inFakeHead``), Twisted's response
encoder (``_encoder``), the body bytes the access log counts (``sentLength``), the site and
channel of a request, the HTTP/2 connection of a stream, aborting a connection or an HTTP/2
stream, and the answers written in place of a stream (the 500 page, the 503 refusal), the
request line for logs, the client address and the access-log line. The transport under a
request, which the engine flushes and sends files to directly, is :mod:`._transport`'s.
Checked against Twisted 26.10 (``web/http.py``, ``web/server.py``, ``web/_http2.py``).
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import unquote_to_bytes as unquote

from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.http import parse_qs
from twisted.web.resource import getChildForRequest
from twisted.web.server import _GzipEncoder

from .._errors import RequestBodyError
from .._types import Clock, MultiplexedConnection, StreamRequest
from ._answers import reason

FORCE_ABORT_AFTER = 15.0
"""Seconds a failed response may take to flush what it sent before the connection is reset
(the same grace Twisted's ``HTTPChannel.abortTimeout`` gives)."""

REPRESENTATION_HEADERS = (
    b"content-length",
    b"content-encoding",
    b"content-range",
    b"etag",
    b"last-modified",
    b"content-disposition",
)
"""Headers describing the body a resource meant to send: dropped when another answer (an
error page, a refusal) is written in its place."""


# State of the request and its connection.


def is_disconnected(request: StreamRequest) -> bool:
    """Whether the client had gone before we looked (``Request._disconnected``)."""
    return bool(getattr(request, "_disconnected", False))


def headers_sent(request: StreamRequest) -> bool:
    """Whether the status line and headers were written (``Request.startedWriting``)."""
    return bool(getattr(request, "startedWriting", False))


def is_chunked(request: StreamRequest) -> bool:
    """Whether the body is sent with the chunked transfer coding (``Request.chunked``, decided
    by Twisted when the headers are written)."""
    return bool(getattr(request, "chunked", False))


def in_fake_head(request: StreamRequest) -> bool:
    """Whether Twisted renders a HEAD request as GET and drops the body (``_inFakeHead``)."""
    return bool(getattr(request, "_inFakeHead", False))


def has_channel(request: StreamRequest) -> bool:
    """Whether the request is still attached to its connection (Twisted detaches it once
    the response is done or the connection is lost)."""
    return getattr(request, "channel", None) is not None


def site_of(request: StreamRequest) -> object | None:
    """The site serving ``request`` (``Request.site``), None outside a ``Site``."""
    site: object | None = getattr(request, "site", None)
    return site


def default_content_type(request: StreamRequest) -> bytes | None:
    """The site's default ``Content-Type`` (``Request.defaultContentType``)."""
    found = getattr(request, "defaultContentType", None)
    return found if isinstance(found, bytes) else None


def without_default_content_type(request: StreamRequest) -> None:
    """Send no ``Content-Type`` unless one is set (``Request.defaultContentType``, which
    would otherwise label an untyped response ``text/html``): a relayed response keeps
    exactly the upstream's headers."""
    request.defaultContentType = None  # type: ignore[attr-defined]


def channel_of(request: StreamRequest) -> object | None:
    """The connection (HTTP/1.x channel, or HTTP/2 stream) carrying ``request``; None once
    detached."""
    channel: object | None = getattr(request, "channel", None)
    return channel


def transport_of(request: StreamRequest) -> object | None:
    """The transport of the connection carrying ``request`` (None once detached)."""
    transport: object | None = getattr(getattr(request, "channel", None), "transport", None)
    return transport


def multiplexed_connection_of(request: StreamRequest) -> MultiplexedConnection | None:
    """The HTTP/2 connection carrying ``request`` (``H2Stream._conn``) if it is one that
    graceful shutdown can drain (ours); None over HTTP/1 or once detached."""
    connection = getattr(getattr(request, "channel", None), "_conn", None)
    return connection if isinstance(connection, MultiplexedConnection) else None


def has_gzip_encoder(request: StreamRequest) -> bool:
    """Whether Twisted's gzip encoder (``EncodingResourceWrapper`` with
    ``GzipEncoderFactory``) is set to encode this response."""
    return isinstance(getattr(request, "_encoder", None), _GzipEncoder)


def has_encoder(request: StreamRequest) -> bool:
    """Whether Twisted encodes the body on its way out (``Request._encoder``, set by
    ``EncodingResourceWrapper``): then every body byte must go through ``Request.write``."""
    return getattr(request, "_encoder", None) is not None


_TWISTED_WRITES = (server.Request.write, http.Request.write)


def must_write_through(request: StreamRequest) -> bool:
    """Whether every body byte of ``request`` must pass through its ``write``: in a fake
    HEAD, with Twisted's encoder set, or when its class overrides ``write`` (a user's
    ``Request`` subclass that transforms or counts what is written); then the engine sends
    neither with ``sendfile`` nor directly to the socket."""
    write = getattr(type(request), "write", None)
    return in_fake_head(request) or has_encoder(request) or write not in _TWISTED_WRITES


def count_sent(request: StreamRequest, length: int) -> None:
    """Count ``length`` body bytes sent around ``Request.write`` (``sendfile``, direct
    sends) in the
    request's ``sentLength``, which the access log reports."""
    request.sentLength += length  # type: ignore[attr-defined]


def drop_gzip_encoder(request: StreamRequest) -> bool:
    """Remove Twisted's gzip encoder (``EncodingResourceWrapper`` with
    ``GzipEncoderFactory``), which holds the body back until ``finish()``; True if there was
    one. The ``gzip`` it added to ``Content-Encoding`` is the caller's to remove."""
    if not has_gzip_encoder(request):
        return False
    request._encoder = None  # type: ignore[attr-defined]
    return True


# Ending a connection abnormally.


def abort_connection(request: StreamRequest, clock: Clock, *, flush: bool) -> IDelayedCall | None:
    """End the connection (HTTP/1) or the stream (HTTP/2) carrying ``request`` abnormally.

    With ``flush``, an HTTP/1.1 client first receives what was already sent, then the
    connection closes short of the chunked terminator or the Content-Length, which every
    client reports as an incomplete body; a client that does not drain it within
    :data:`FORCE_ABORT_AFTER` is reset (the returned call does that; cancel it when the
    connection goes). HTTP/1.0 without a length cannot signal truncation by closing, so it
    is reset at once, as is everything without ``flush``. HTTP/2 resets just the stream:
    with ``flush``, our streams (:class:`~._h2.StreamH2Stream`) send what they queued first,
    and are reset anyway after :data:`FORCE_ABORT_AFTER` (the returned call).
    """
    channel = getattr(request, "channel", None)
    if channel is None:
        return None
    stream_abort = getattr(channel, "abortConnection", None)  # H2Stream: RST_STREAM
    if stream_abort is not None:
        after_queued = getattr(channel, "abort_after_queued", None) if flush else None
        if after_queued is None:
            stream_abort()
            return None
        after_queued()
        return clock.callLater(FORCE_ABORT_AFTER, stream_abort)
    transport = getattr(channel, "transport", None)
    if transport is None:
        return None
    delimited = request.clientproto != b"HTTP/1.0" or request.responseHeaders.hasHeader(
        b"content-length"
    )
    if not (flush and delimited):
        transport.abortConnection()
        return None
    transport.loseConnection()
    return clock.callLater(FORCE_ABORT_AFTER, transport.abortConnection)


# Answers written instead of a stream.


def _answer(request: StreamRequest, code: int, content_type: bytes, body: bytes) -> None:
    """Answer ``code`` with ``body``, dropping the headers of the body the resource meant to
    send (:data:`REPRESENTATION_HEADERS`)."""
    request.setResponseCode(code, reason(code))
    headers = request.responseHeaders
    for name in REPRESENTATION_HEADERS:
        headers.removeHeader(name)
    headers.setRawHeaders(b"content-type", [content_type])
    headers.setRawHeaders(b"content-length", [b"%d" % len(body)])
    request.write(body)
    request.finish()


def send_error_page(request: StreamRequest, reason: Failure) -> None:
    """Answer 500 for a stream that failed before its headers went out; the traceback is
    shown only with the site's ``displayTracebacks``."""
    if getattr(site_of(request), "displayTracebacks", False):
        detail = "<pre>" + escape(reason.getTraceback()) + "</pre>"
    else:
        detail = "<p>The response could not be produced.</p>"
    body = (
        "<html><head><title>500 Internal Server Error</title></head><body>"
        "<h1>Internal Server Error</h1>" + detail + "</body></html>"
    ).encode()
    _answer(request, 500, b"text/html; charset=utf-8", body)


def send_refusal(request: StreamRequest, reason: str, retry_after: int) -> None:
    """Answer 503 with ``Retry-After`` (seconds): the limit is temporary, nothing running is
    touched."""
    request.responseHeaders.setRawHeaders(b"retry-after", [b"%d" % retry_after])
    body = f"Service Unavailable: {reason}.\n".encode()
    _answer(request, 503, b"text/plain; charset=utf-8", body)


def answer_body_error(request: StreamRequest, error: RequestBodyError) -> bool:
    """Answer ``error.code`` (a request body's 4xx) with its message, if the request is
    still open and nothing was sent; whether it did."""
    code = error.code
    if code is None or headers_sent(request) or is_disconnected(request):
        return False
    if getattr(request, "finished", False):
        return False
    answer_status(request, code, str(error))
    return True


def answer_status(request: StreamRequest, code: int, detail: str) -> None:
    """Answer ``code`` with a plain-text body saying ``"<code> <reason>: <detail>"``, as the
    channel's own answers do."""
    body = b"%d %s: %s\n" % (code, reason(code), detail.encode("utf-8", "replace"))
    _answer(request, code, b"text/plain; charset=utf-8", body)


# Processing a request from its head (request bodies streamed to the resource).

_KEPT = "_twisted_stream_traversal"
"""Where a request keeps the traversal done at its head, for ``Site.getResourceFor``."""


def traverse_early(request: Any, command: bytes, uri: bytes, version: bytes) -> object | None:
    """Find the resource of ``request`` from its head alone, walking the site's resource tree
    (``getChildForRequest``: every ``getChild``/``getChildWithDefault`` on the way, with
    ``prepath`` and ``postpath`` as ``Request.process`` sets them), after setting what
    ``requestReceived`` sets from the head (``method``, ``uri``, ``clientproto``, ``path``,
    ``args`` of the query). The result is kept on the request for the site's
    ``getResourceFor`` (:func:`resume_traversal`), which ``process`` still calls (once,
    whenever the request is processed), so the tree is walked once. None for ``*`` and when
    traversal raised (the failure is kept, and raised again where ``process`` answers it
    500)."""
    request.method, request.uri, request.clientproto = command, uri, version
    path, _, query = uri.partition(b"?")
    request.path = path
    request.args = parse_qs(query, 1) if query else {}
    if path == b"*":
        return None
    site = request.channel.site
    request.site = site
    request.prepath = []
    request.postpath = list(map(unquote, path[1:].split(b"/")))
    try:
        resource: object = getChildForRequest(site.resource, request)
    except BaseException:
        setattr(request, _KEPT, Failure())
        return None
    setattr(request, _KEPT, (resource, list(request.prepath), list(request.postpath)))
    return resource


def resume_traversal(request: Any) -> object | None:
    """The resource :func:`traverse_early` found for ``request`` (its ``prepath`` and
    ``postpath`` restored), once; None if there is none (then traverse as usual)."""
    kept = request.__dict__.pop(_KEPT, None)
    if kept is None:
        return None
    if isinstance(kept, Failure):
        kept.raiseException()
    resource, request.prepath, request.postpath = kept
    return resource  # type: ignore[no-any-return]


def kept_resource(request: object) -> object | None:
    """The resource :func:`traverse_early` found for ``request``, without taking it."""
    kept = getattr(request, _KEPT, None)
    return kept[0] if isinstance(kept, tuple) else None


def process_early(request: Any) -> None:
    """Process ``request`` now, before its body arrived (its resource takes bodies as
    streams): ``Request.process``, whose ``getResourceFor`` gets the kept traversal."""
    request.process()


# Logging.


def request_line(request: StreamRequest) -> str:
    """``METHOD URI HTTP/x.y`` of ``request``, for log lines."""
    parts = (request.method, request.uri, request.clientproto)
    return " ".join(p.decode("latin-1") if isinstance(p, bytes) else str(p) for p in parts)


def client_address(request: StreamRequest, trust_forwarded_for: bool) -> str:
    """The client a stream counts against: the connection's peer, or with
    ``trust_forwarded_for`` the address the (trusted) proxy appended last to
    ``X-Forwarded-For`` (earlier entries are the client's own claims)."""
    if trust_forwarded_for:
        values = request.requestHeaders.getRawHeaders(b"x-forwarded-for") or []
        hops = [h.strip() for v in values for h in v.split(b",") if h.strip()]
        if hops:
            return hops[-1].decode("latin-1")
    return peer_host(request.getClientAddress())


def peer_host(address: object) -> str:
    """The client an address counts as: its host, or ``"local"`` for a UNIX socket (one
    local client)."""
    host = getattr(address, "host", None)
    return str(host) if host is not None else "local"


def write_access_log(request: StreamRequest) -> None:
    """Write the access-log line of a response that ended without ``finish()`` (aborted,
    client gone), so it carries the real status and bytes sent like every other line.
    Nothing for a finished request: Twisted logged it."""
    if getattr(request, "finished", True):
        return
    factory = getattr(getattr(request, "channel", None), "factory", None)
    if factory is None:
        factory = site_of(request)
    log = getattr(factory, "log", None)
    if log is not None:
        log(request)


def connection_state(protocol: object) -> tuple[object | None, int | None]:
    """The transport of a connection a ``Site`` built ``protocol`` for (None until it is
    connected) and how many requests it has in progress (None when it cannot tell, e.g. an
    HTTP/2 connection). ``Site`` builds a ``_GenericHTTPChannelProtocol`` wrapping the
    ``HTTPChannel`` that carries the transport and the ``requests`` list."""
    channel = getattr(protocol, "_channel", protocol)
    requests = getattr(channel, "requests", None)
    return getattr(channel, "transport", None), len(requests) if isinstance(
        requests, list
    ) else None

"""The only module touching the internals of Twisted's HTTP client (``web/client.py``,
``web/_newclient.py``), for the reverse proxy.

Twisted's ``Agent`` gives a response's headers without its connection-control ones
(``Connection`` goes to the parser's ``connHeaders``), so the fields a ``Connection`` header
names, which are hop-by-hop (RFC 9110 §7.6.1), cannot be told apart; and it drops interim
(1xx) responses with a log line, so a request sent with ``Expect: 100-continue`` cannot know
that the server asked for its body; and its chunked decoder copies the rest of its buffer
for every chunk. :func:`observe_pool` makes a pool's connections use
:class:`_ObservingProtocol`, an ``HTTP11ClientProtocol`` that reports both (each final
response carries the ``Connection`` tokens, :func:`connection_options`; an interim response
is told to the request's body producer if it has an ``interim_response(code)`` method,
:class:`InterimObserver`), decodes chunked bodies with :class:`~._chunked.ChunkedDecoder`,
reads 192 KiB at a time and calls back after each read (:func:`after_each_read`).
Everything else is Twisted's own behaviour. Checked against Twisted 26.10.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.web._newclient import HTTP11ClientProtocol, HTTPClientParser
from twisted.web._newclient import Request as ClientRequest
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory
from twisted.web.iweb import IResponse

from ._chunked import ChunkedDecoder
from ._head import header_tokens

_TOKENS = "_twisted_stream_connection_options"
"""Where a response keeps the lower-cased tokens of its ``Connection`` header."""
_PROTOCOL = "_twisted_stream_protocol"
"""Where a response keeps the client protocol of its connection."""
READ_SIZE = 192 * 1024
"""Bytes an upstream connection reads at once (Twisted's default is 64 KiB): fewer reactor
turns per byte relayed, while a stalled client holds about one read. Measured on the proxy
benchmark: 128 KiB cost 1.3 CPU s/GiB and 17 MB with 100 stalled clients, 256 KiB 0.83 and
32 MB. It is also the connection's write mark, past which a request body producer is
paused."""


@runtime_checkable
class InterimObserver(Protocol):
    """A request body producer that wants to know of interim responses (``100 Continue``)."""

    def interim_response(self, code: int) -> None: ...


def _observe(
    parser: HTTPClientParser, observer: InterimObserver | None, protocol: _ObservingProtocol
) -> None:
    """Wrap the parser's end-of-headers step: tell ``observer`` of a 1xx (which Twisted then
    ignores), and keep a final response's ``Connection`` tokens and ``protocol`` on it; and
    decode chunked bodies with :class:`~._chunked.ChunkedDecoder`."""
    decoders: dict[bytes, object] = {b"chunked": ChunkedDecoder}
    parser._transferDecoders = decoders  # type: ignore[assignment]
    original = parser.allHeadersReceived

    def allHeadersReceived() -> None:
        response = parser.response
        if 100 <= response.code < 200:
            if observer is not None:
                observer.interim_response(response.code)
        else:
            values = parser.connHeaders.getRawHeaders(b"connection", [])
            setattr(response, _TOKENS, header_tokens(values))
            setattr(response, _PROTOCOL, protocol)
        original()  # type: ignore[no-untyped-call]

    parser.allHeadersReceived = allHeadersReceived  # type: ignore[method-assign]


class _ObservingProtocol(HTTP11ClientProtocol):
    """Twisted's client protocol, with each request's parser observed (:func:`_observe`),
    reads of :data:`READ_SIZE`, and a callback after each read (:func:`after_each_read`)."""

    after_read: Callable[[], None] | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        if hasattr(self.transport, "bufferSize"):  # a TCP or TLS transport
            setattr(self.transport, "bufferSize", READ_SIZE)  # noqa: B010

    def dataReceived(self, bytes: bytes) -> None:
        super().dataReceived(bytes)  # type: ignore[no-untyped-call]
        after = self.after_read
        if after is not None:
            after()

    def request(self, request: ClientRequest) -> Deferred[IResponse]:
        before = self._parser
        d = super().request(request)
        parser = self._parser
        if parser is not None and parser is not before:
            producer = request.bodyProducer
            observer = producer if isinstance(producer, InterimObserver) else None
            _observe(parser, observer, self)
        return d


class _ObservingFactory(_HTTP11ClientFactory):
    """The pool's protocol factory, building :class:`_ObservingProtocol`."""

    def buildProtocol(self, addr: IAddress | None) -> HTTP11ClientProtocol:
        return _ObservingProtocol(self._quiescentCallback)  # type: ignore[no-untyped-call]


def observe_pool(pool: HTTPConnectionPool) -> HTTPConnectionPool:
    """Make the new connections of ``pool`` report ``Connection`` tokens and interim
    responses; returns ``pool``. A pool whose factory is not Twisted's own is left alone
    (its responses then have no tokens and interim responses go unseen)."""
    if pool._factory in (_HTTP11ClientFactory, _ObservingFactory):
        pool._factory = _ObservingFactory
    return pool


def connection_options(response: IResponse) -> frozenset[bytes] | None:
    """The lower-cased tokens of ``response``'s ``Connection`` header (the hop-by-hop fields
    it names, and ``close``/``keep-alive``); None when its connection was not observed."""
    found = getattr(response, _TOKENS, None)
    return found if isinstance(found, frozenset) else None


def after_each_read(response: IResponse, callback: Callable[[], None] | None) -> bool:
    """Call ``callback`` after each read of ``response``'s connection has been parsed (so a
    body delivered in many small pieces can be passed on once per read); None stops it.
    False when the connection was not observed (nothing will be called)."""
    protocol = getattr(response, _PROTOCOL, None)
    if not isinstance(protocol, _ObservingProtocol):
        return False
    protocol.after_read = callback
    return True

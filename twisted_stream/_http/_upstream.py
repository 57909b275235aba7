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
reads 192 KiB at a time and calls back after each read (:func:`after_each_read`). It also
refuses what Twisted's client would take from a hostile or broken upstream and then reuse
the connection after (response desynchronisation): ambiguous framing, an impossible status,
an unbounded head or stream of 1xx, a 101 never asked for (:func:`_check_final`); and it
closes rather than pools a connection that sent bytes past a response's end, a ``close``
option among others, or a 204 declaring a body; and when a response is refused while the
request body is still being sent, it fails the request at once (Twisted dropped its
Deferred, so the caller waited for its own timeout). Everything else is Twisted's own
behaviour. Checked against Twisted 26.10.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.python.failure import Failure
from twisted.web._newclient import HTTP11ClientProtocol, HTTPClientParser, ResponseFailed
from twisted.web._newclient import Request as ClientRequest
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory
from twisted.web.iweb import IResponse

from .._errors import UpstreamProtocolError
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


MAX_HEAD_SIZE = 64 * 1024
"""Bytes of one upstream response head (status line and fields, line ends counted): past
it, 502 (nginx stops at its 4-8 KiB ``proxy_buffer_size``, Go at 10 MiB)."""
MAX_INTERIM = 16
"""Interim (1xx) responses taken before a final one: past it, 502 (Go stops at 5)."""


@runtime_checkable
class InterimObserver(Protocol):
    """A request body producer that wants to know of interim responses (``100 Continue``)."""

    def interim_response(self, code: int) -> None: ...


def _observe(
    parser: HTTPClientParser, observer: InterimObserver | None, protocol: _ObservingProtocol
) -> None:
    """Wrap the parser's line and end-of-headers steps: bound each head
    (:data:`MAX_HEAD_SIZE`) and the interim responses (:data:`MAX_INTERIM`), check a final
    response's framing (:func:`_check_final`), tell ``observer`` of a 1xx (which Twisted
    then ignores), and keep a final response's ``Connection`` tokens and ``protocol`` on it;
    and decode chunked bodies with :class:`~._chunked.ChunkedDecoder`. A problem raises
    :class:`UpstreamProtocolError` out of the parser: Twisted fails the request (502) and
    closes the connection."""
    decoders: dict[bytes, object] = {b"chunked": ChunkedDecoder}
    parser._transferDecoders = decoders  # type: ignore[assignment]
    original = parser.allHeadersReceived
    line_received = parser.lineReceived
    head = [0, 0]  # bytes of the current head, interim responses so far

    def lineReceived(line: bytes) -> None:
        head[0] += len(line) + 2
        if head[0] > MAX_HEAD_SIZE:
            raise UpstreamProtocolError(f"a response head over {MAX_HEAD_SIZE} bytes")
        line_received(line)  # type: ignore[no-untyped-call]

    def allHeadersReceived() -> None:
        response = parser.response
        head[0] = 0
        if 100 <= response.code < 200:
            head[1] += 1
            if response.code == 101:  # we never send Upgrade (RFC 9110 §15.2.2)
                raise UpstreamProtocolError("a 101 Switching Protocols nobody asked for")
            if head[1] > MAX_INTERIM:
                raise UpstreamProtocolError(f"more than {MAX_INTERIM} interim responses")
            if observer is not None:
                observer.interim_response(response.code)
        else:
            tokens = _check_final(parser)
            setattr(response, _TOKENS, tokens)
            setattr(response, _PROTOCOL, protocol)
        original()  # type: ignore[no-untyped-call]

    parser.lineReceived = lineReceived  # type: ignore[method-assign]
    parser.allHeadersReceived = allHeadersReceived  # type: ignore[method-assign]


def _check_final(parser: HTTPClientParser) -> frozenset[bytes]:
    """Check the head of a final response before Twisted frames its body; its
    ``Connection`` tokens. Raises :class:`UpstreamProtocolError` for a status code outside
    100-599 (RFC 9112 §4), several ``Transfer-Encoding`` lines (one list, RFC 9112 §6.1:
    Twisted read the first alone), ``Transfer-Encoding`` with ``Content-Length`` (RFC 9112
    §6.3: "ought to be handled as an error", nginx's 502), or a ``Content-Length`` on a HEAD
    answer that is not one number (Twisted does not parse it there). A ``close`` option
    anywhere in ``Connection``, or a 204 that declares a body, makes Twisted close the
    connection after the response instead of pooling it (it looks for ``close`` as a whole
    field value)."""
    response = parser.response
    if not 100 <= response.code <= 599:
        raise UpstreamProtocolError(f"the status code {response.code} is not 3 digits")
    fields = parser.connHeaders
    codings = fields.getRawHeaders(b"transfer-encoding", [])
    if len(codings) > 1:
        raise UpstreamProtocolError("several Transfer-Encoding lines")
    if codings and fields.hasHeader(b"content-length"):
        raise UpstreamProtocolError("both Transfer-Encoding and Content-Length")
    if parser.request.method == b"HEAD":
        lengths = response.headers.getRawHeaders(b"content-length")
        if lengths is not None:
            response.headers.setRawHeaders(b"content-length", [_one_length(lengths)])
    tokens = header_tokens(fields.getRawHeaders(b"connection", []))
    declares_body = bool(codings) or fields.getRawHeaders(b"content-length", [b"0"]) != [b"0"]
    if b"close" in tokens or (response.code == 204 and declares_body):
        fields.setRawHeaders(b"connection", [b"close"])
    return tokens


def _one_length(values: list[bytes]) -> bytes:
    """The one ``Content-Length`` of field lines ``values`` (``5``, or ``5, 5``);
    :class:`UpstreamProtocolError` for anything but equal digit strings (RFC 9110 §8.6)."""
    found = {part.strip(b" \t") for value in values for part in value.split(b",")}
    if len(found) != 1 or not next(iter(found)).isdigit():
        raise UpstreamProtocolError(f"an invalid Content-Length {b', '.join(values)!r}")
    return next(iter(found)).lstrip(b"0") or b"0"


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

    def _finishResponse_WAITING(self, rest: bytes) -> None:
        # Twisted ignores bytes past the response's end and pools the connection: such bytes
        # mean the upstream frames its messages otherwise than we read them (RFC 9112 §6.3:
        # never to be taken as the next response), so the connection is closed instead.
        parser = self._parser
        if rest and parser is not None:
            parser.connHeaders.setRawHeaders(b"connection", [b"close"])
        super()._finishResponse_WAITING(rest)

    def _giveUp(self, reason: Failure) -> None:
        # Twisted gives up on a connection whose response could not be parsed by dropping
        # the request's Deferred; while the request body is still being sent (TRANSMITTING)
        # that Deferred is the caller's, which then never fires (the proxy answered 504 at
        # its timeout, not 502 at once). It is failed here, and the body stopped.
        finished = self._finishedRequest if self._state == "TRANSMITTING" else None
        request = self._currentRequest
        if finished is not None:
            self._state = "TRANSMITTING_AFTER_RECEIVING_RESPONSE"  # its close is then quiet
        super()._giveUp(reason)  # type: ignore[no-untyped-call]
        if finished is not None:
            if request is not None:
                request.stopWriting()
            finished.errback(Failure(ResponseFailed([reason])))

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

"""Our HTTP/1.x connection: Twisted's ``HTTPChannel`` with its input side bounded.

A subclass, not a replacement. Twisted's parser (request line, header names and values,
``Content-Length``, its chunked decoder, persistence, ``Expect``) is well exercised and
``Request``, ``Site``, the access log and websocket upgrades all lean on the channel's exact
behaviour; what is wrong is what the channel *allows*, and each fault has one place where
the whole class of it can be closed:

- **Reading** goes through one :class:`~._reading.ReadGate`, put in place of the transport as
  the channel's ``_networkProducer`` before its first pause (the write side blocking,
  ``pauseProducing``, or the read-ahead bound): every pause names a reason and reading resumes
  only when none is left, so no pause can be skipped or undone by another (the pipelining
  flood). A connection that never pauses never needs one. Input read ahead of the request
  being answered (``rawDataReceived`` while a request is handled) pauses reading past
  ``max_read_ahead`` bytes whatever the write side does. While reading is paused, the socket
  is watched for hang-up, so a client that leaves is noticed (``CLIENT_GONE``).
- **The request head** (``lineLengthExceeded``, ``allHeadersReceived`` and Twisted's
  ``_respondToBadRequestAndDisconnect``): Twisted's one timer per connection runs for
  ``header_timeout`` from the moment the channel waits for a head, not reset by each byte
  (``resetTimeout``, ``timeoutConnection``: 408, or a quiet close when nothing of a request
  came, neither read nor waiting in the socket), then is the site's idle timeout again for a
  body; Twisted's own size accounts are set to ``max_header_size`` and answered 414 (the
  request line) or 431 (the head, or more than ``maxHeaders`` fields); and one check of the
  complete head runs before anything else: per-client connection limit (503), the rules
  :mod:`._head` keeps (request-target form, ``CONNECT``, ``Host``, RFC 9112 §3.2) and the
  declared body length (413 before any body byte is read). The request line's version and
  each ``Content-Length`` line go through :mod:`._head` before Twisted parses them, and
  ``Connection`` options are read from every line, comma-separated (``checkPersistence``); a
  ``ValueError`` out of Twisted's parser is a 400. A ``Transfer-Encoding`` Twisted refuses
  is told apart when it refuses: 501 for a coding we do not decode, 400 when ``chunked`` is
  not alone (an ``identity`` it lets through is refused the same way).
- **The body** (:mod:`._h1body`, the channel's body half): when one follows the head, the
  resource is found then (:func:`~._twisted.traverse_early`, kept for ``process``); a leaf
  that streams bodies is rendered at once and reads the body as it arrives; for any other
  the per-request limit (``body_limit``) cuts a chunked body with 413 before the byte past
  the limit is stored.
- **Every answer of ours** (:meth:`StreamHTTPChannel._answer`) is a complete response with
  ``Connection: close``; after it nothing more is parsed (``dataReceived`` drops), and the
  connection closes the way nginx's lingering close does: our side is shut down once the
  answer is sent while input is read and dropped, for at most :data:`LINGER_SECONDS` and
  :data:`LINGER_BYTES`, so the client reads the answer instead of a reset.

HTTP/1.0 requests may omit ``Host`` (HTTP/1.0 has none); two ``Host`` headers or an invalid
one get 400 in any version.

A short response pays for a few attribute checks only: the overrides on its path are
``connectionMade``, ``resetTimeout``, ``lineReceived``, ``allHeadersReceived``,
``requestDone``, ``writeHeaders`` and ``connectionLost``, with no timer added to Twisted's
one.

HTTP/2 never reaches this class: :mod:`._protocol` picks the HTTP/2 connection by ALPN.
"""

from __future__ import annotations

import functools
from typing import Any

from twisted.internet.interfaces import IDelayedCall, ITCPTransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import version as twisted_server

from .._settings import DEFAULT_SETTINGS, StreamSettings
from ._answers import answer, modern_reason
from ._h1body import BodyStreaming
from ._head import (
    absolute_form,
    content_length_field,
    header_tokens,
    host_problem,
    request_line,
    target_problem,
)
from ._reading import READ_AHEAD, ReadGate
from ._request_body import streams_body
from ._transport import input_waiting
from ._twisted import process_early, traverse_early

_log = Logger(namespace="twisted_stream.http")

LINGER_SECONDS = 2.0
"""After an answer of ours, how long the connection may stay open while the client's
remaining input is read and dropped (so that it reads the answer, not a reset)..."""
LINGER_BYTES = 4 * 1024 * 1024
"""... and how much input may be dropped meanwhile; past either, the connection is reset."""

_TRANSFER_ENCODING = b"transfer-encoding:"
_TWISTED_SERVER = [twisted_server]

_HTTPChannel: Any = HTTPChannel
"""Twisted's channel, untyped: subclassed through this alias so our methods are typed and
calls into Twisted's need no casts."""


class StreamHTTPChannel(BodyStreaming, _HTTPChannel):  # type: ignore[misc]
    """``HTTPChannel`` whose input is bounded by the site's :class:`StreamSettings`."""

    settings: StreamSettings = DEFAULT_SETTINGS
    """Taken from the site (``site.stream_settings``) when the connection is made."""
    refusal: str | None = None
    """Why this connection is refused (its client has too many): its first request is
    answered 503 with ``Retry-After``."""

    _gate: ReadGate | None = None
    _networkProducer: Any
    _command: bytes
    _path: bytes
    _version: bytes
    """The request line being parsed, as Twisted keeps it."""
    _server: bytes = b""
    _idle_timeout: float | None = None
    _linger_call: IDelayedCall | None = None
    _in_head = False
    _read_ahead = 0
    _answered = False
    _dropped = 0

    # The connection.

    def connectionMade(self) -> None:
        found = getattr(getattr(self, "site", None), "stream_settings", None)
        if isinstance(found, StreamSettings):
            self.settings = found
        settings = self.settings
        # Twisted's own accounts of the head, answered 414/431 by us instead of a bare close
        # or a 400: one line over MAX_LENGTH, all lines (line ends not counted) over the total.
        self.MAX_LENGTH = self.totalHeadersSize = settings.max_header_size
        self._server = _encoded(settings.server_header)
        # One timer per connection, Twisted's own (TimeoutMixin): while a head is awaited it
        # runs for header_timeout from the head's start (bytes do not reset it); during a
        # body it is the site's idle timeout again, as in Twisted.
        self._idle_timeout = getattr(self, "timeOut", None)
        if settings.header_timeout:
            self.timeOut = settings.header_timeout
        super().connectionMade()
        self._in_head = True

    def connectionLost(self, reason: Failure) -> None:
        self._in_head = False
        self._linger_call = _cancel(self._linger_call)
        if self._gate is not None:
            self._gate.close()
        super().connectionLost(reason)
        self._lose_body()  # after the request heard (a body fails from its notifyFinish)

    def handover(self) -> Any:
        """Give the connection up to another protocol (HTTP/2 after ALPN): stop our timers
        and return the transport as the push producer the new protocol registers on."""
        self._in_head = False
        self.setTimeout(None)
        gate = self._gate
        if gate is not None:
            gate.release()
            gate.close()
            self._networkProducer = gate.producer
        self._networkProducer.unregisterProducer()
        return self._networkProducer

    def _drop(self, data: bytes) -> None:
        """``dataReceived`` after an answer of ours: nothing is parsed, input is dropped
        (within :data:`LINGER_BYTES`)."""
        self._dropped += len(data)
        if self._dropped > LINGER_BYTES:
            self.transport.abortConnection()

    def _reading(self) -> ReadGate:
        """The gate of this connection's reading, put in place of the transport as
        ``_networkProducer`` before the first pause (a connection that never pauses, the
        usual case, never needs one)."""
        gate = self._gate
        if gate is None:
            gate = self._gate = ReadGate(self._networkProducer, self.transport, self._hung_up)
            self._networkProducer = gate
        return gate

    def pauseProducing(self) -> None:
        # The transport's send buffer is full; Twisted then pauses reading too when no
        # request is being handled: through the gate.
        self._reading()
        super().pauseProducing()

    def _hung_up(self) -> None:
        _log.info(
            "{peer}: the client closed the connection while its reading was paused",
            peer=_peer(self),
        )
        self.transport.abortConnection()

    # The request head.

    def resetTimeout(self) -> None:
        # Called on every read: while a head is awaited the deadline stays where it is.
        if not (self._in_head and self.settings.header_timeout):
            super().resetTimeout()

    def timeoutConnection(self) -> None:
        if self._in_head and self.settings.header_timeout:
            self._head_timed_out()
        else:
            super().timeoutConnection()

    def _head_timed_out(self) -> None:
        """The header timeout passed while waiting for a head: 408, or a quiet close if
        nothing of a request came (bytes in the socket not read yet when the timer ran
        count as come: they arrived in time)."""
        if not self._in_head or self._answered:
            return
        timeout = self.settings.header_timeout
        if self._buffer or self.requests or input_waiting(self.transport):
            self._answer(408, f"the request head did not arrive within {timeout:g} s")
        else:
            _log.info(
                "{peer}: closing a connection idle for {timeout:g} s",
                peer=_peer(self),
                timeout=timeout,
            )
            self._answered = True
            self._in_head = False
            self.dataReceived = self._drop
            self._linger()

    def lineLengthExceeded(self, line: bytes) -> None:
        # One line over max_header_size: the request line (no request begun yet) or a field.
        self._head_too_large(request_line=not self.requests)

    def _head_too_large(self, *, request_line: bool) -> None:
        limit = self.settings.max_header_size
        if request_line:
            self._answer(414, f"the request line is longer than {limit} bytes")
        else:
            self._answer(
                431, f"the request head is over {limit} bytes or {self.maxHeaders} fields"
            )

    def lineReceived(self, line: bytes) -> None:
        awaiting_request_line: int = getattr(self, "_HTTPChannel__first_line", 0)
        if line and awaiting_request_line and self.persistent:
            parsed = request_line(line)  # Twisted refuses all but HTTP/1.0 and 1.1 with 400
            if isinstance(parsed, tuple):
                self._answer(*parsed)
                return
            line = parsed
        try:
            super().lineReceived(line)
        except ValueError as error:  # raised out of Twisted's parser: the input's fault
            self._answer(400, f"the request could not be parsed: {error}")
            return
        request = self._render_pending
        if request is not None:  # its head is complete and its resource streams bodies
            self._render_pending = None
            process_early(request)

    def headerReceived(self, line: bytes) -> bool:
        parsed = content_length_field(line)
        if isinstance(parsed, tuple):
            self._answer(*parsed)
            return False
        ok: bool = super().headerReceived(parsed)
        return ok

    def checkPersistence(self, request: Any, version: bytes) -> bool:
        # Twisted reads the first Connection line only, split at spaces.
        if version != b"HTTP/1.1":
            return False  # as Twisted: an HTTP/1.0 response may need the close to end it
        if b"close" in header_tokens(request.requestHeaders.getRawHeaders(b"Connection", ())):
            request.responseHeaders.setRawHeaders(b"Connection", [b"close"])
            return False
        return True

    def allHeadersReceived(self) -> None:
        self._in_head = False
        request = self.requests[-1]
        problem = self._check_head(request)
        if problem is None and self.length != 0:  # a body follows: find its resource now
            resource = traverse_early(request, self._command, self._path, self._version)
            if streams_body(resource):
                self._new_body(request, self.body_limit(request))
            else:
                problem = self._check_length(request)
        if problem is not None:
            self._answer(*problem)
            self.length = None  # Twisted's lineReceived then switches to raw mode: dropped
            return
        super().allHeadersReceived()
        decoder = self._transferDecoder
        if decoder is not None and self._streamed is not None:
            self._stream_body(request, decoder)
        elif decoder is not None:
            self._limit_body(request, decoder)

    def _check_head(self, request: Any) -> tuple[int, str] | tuple[int, str, int] | None:
        """Why the complete head of ``request`` is refused: (status, detail[, retry after])."""
        if self.refusal is not None:
            return 503, self.refusal, self.settings.retry_after
        length = self.length
        # Headers keeps canonical names in _rawHeaders: two lookups, no name encoding.
        fields = request.requestHeaders._rawHeaders
        codings = fields.get(b"Transfer-Encoding")
        if codings is not None and (length is not None or len(codings) != 1):
            # Twisted skipped an "identity" line (a coding RFC 9112 no longer has).
            if length is None or b"Content-Length" in fields:
                return 400, "Transfer-Encoding must be chunked alone, without Content-Length"
            return 501, "the transfer coding 'identity' is not supported"
        problem = target_problem(self._command, self._path) or host_problem(
            fields.get(b"Host"), self._version
        )
        if problem is None and self._path[:1] != b"/":
            mapped = absolute_form(self._path)
            if mapped is not None:  # RFC 9112 §3.2.2: its authority, not Host, is the host
                fields[b"Host"], self._path = [mapped[0]], mapped[1]
        return problem

    # Input behind the request being answered.

    def rawDataReceived(self, data: bytes) -> None:
        if self._answered:
            return
        if self._handlingRequest:
            self._dataBuffer.append(data)
            self._read_ahead += len(data)
            if self._read_ahead > self.settings.max_read_ahead:
                self._reading().pause(READ_AHEAD)
            return
        super().rawDataReceived(data)

    def requestDone(self, request: Any) -> None:
        body = self._streamed
        if body is not None and body.request is request:
            self._response_done_early(request)  # its body is not all in yet
            return
        self._read_ahead = 0
        if self.persistent:
            # Before Twisted replays the buffered input (which may hold the next head) and
            # re-arms its timer with _savedTimeOut: for the next head, header_timeout.
            self._in_head = True
            if self.settings.header_timeout:
                self._savedTimeOut = self.settings.header_timeout
        super().requestDone(request)
        if self._gate is not None and self._read_ahead <= self.settings.max_read_ahead:
            self._gate.resume(READ_AHEAD)

    # Responses.

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:
        # Twisted's default Server (its name and version) gives way to ours, and its
        # outdated reason phrases to RFC 9110's; an application's own stay. Headers keeps
        # canonical names in ``_rawHeaders``.
        if self._streamed is not None:
            self._close_if_unread(self.requests[0] if self.requests else None, headers)
        raw = getattr(headers, "_rawHeaders", None)
        if isinstance(raw, dict) and raw.get(b"Server") == _TWISTED_SERVER:
            if self._server:
                raw[b"Server"] = [self._server]
            else:
                del raw[b"Server"]
        super().writeHeaders(version, code, modern_reason(code, reason), headers)

    def _send100Continue(self) -> None:
        if self._streamed is None:  # a streamed body sends it when the application reads
            super()._send100Continue()

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted's one answer to every bad request, told apart here (off the normal path):
        # its own counters tell a head too large, and the header line it was processing
        # (``__header``) a transfer coding it does not decode; a streamed body's framing
        # fails that body.
        if self._malformed_body():
            return
        if (
            self._receivedHeaderSize > self.totalHeadersSize
            or self._receivedHeaderCount > self.maxHeaders
        ):
            self._head_too_large(request_line=False)
            return
        line = getattr(self, "_HTTPChannel__header", b"")
        if line[:18].lower() == _TRANSFER_ENCODING:
            codings = [c.strip().lower() for c in line[18:].split(b",")]
            unknown = [c for c in codings if c != b"chunked"]
            if unknown:
                name = unknown[0].decode("latin-1")
                self._answer(501, f"the transfer coding {name!r} is not supported")
                return
        self._answer(400, "the request is malformed")

    def _answer(self, status: int, detail: str, retry_after: int | None = None) -> None:
        """Answer ``status`` ourselves and close; nothing after it is parsed."""
        if self._answered:
            return
        _log.info(
            "{peer}: answered {status}: {detail}", peer=_peer(self), status=status, detail=detail
        )
        self.transport.write(answer(status, detail, server=self._server, retry_after=retry_after))
        self._close_quietly()

    def _close_quietly(self) -> None:
        """Close after what was written, parsing nothing more (input is dropped)."""
        if self._answered:
            return
        self._answered = True
        self._in_head = False
        self.setTimeout(None)  # the linger call ends it now
        self.dataReceived = self._drop
        self.setRawMode()  # what is left of the input goes to rawDataReceived, which drops it
        self._linger()

    def _linger(self) -> None:
        """Close once what was written is sent, reading and dropping input meanwhile."""
        if self._gate is not None:
            self._gate.release()
        self._networkProducer.unregisterProducer()  # a paused channel would hold the close
        transport = self.transport
        if ITCPTransport.providedBy(transport):
            transport.loseWriteConnection()  # FIN after the answer; the client closes then
        else:
            transport.loseConnection()
        self._linger_call = self.callLater(LINGER_SECONDS, transport.abortConnection)


@functools.lru_cache(maxsize=16)
def _encoded(text: str) -> bytes:
    return text.encode("latin-1")


def _cancel(call: IDelayedCall | None) -> IDelayedCall | None:
    """Cancel ``call`` if pending; returns None, to clear the caller's slot."""
    if call is not None and call.active():
        call.cancel()
    return None


def _peer(channel: Any) -> str:
    peer = channel.transport.getPeer() if channel.transport is not None else None
    host = getattr(peer, "host", None)
    return f"{host}:{getattr(peer, 'port', '')}" if host is not None else str(peer)

"""Request bodies on HTTP/1.x: the body half of our channel (:mod:`._channel`), which holds
a buffered body to its limit and feeds a streamed one to its :class:`~._body.RequestBody` as
the application asks for it.

A mixin of :class:`~._channel.StreamHTTPChannel`, and so, like the channel, allowed to touch
Twisted's channel internals.

- **A buffered body** (its resource does not stream bodies) goes to ``request.content`` as
  in Twisted, through :meth:`BodyStreaming._body_data`, where the per-request limit
  (:meth:`BodyStreaming.body_limit`: the request's ``max_body_size``, else its resource's,
  else the site's) cuts a chunked body with 413 before the byte past it is stored; a
  declared length over it is refused at the head (:meth:`BodyStreaming._check_length`).
- **Chunk sizes** of either kind of body are checked as each chunk-size line is parsed
  (:meth:`BodyStreaming._declared_chunk`): a chunk that would take the body past its limit
  is refused with 413 then, before its bytes arrive, and a size over
  :data:`MAX_CHUNK_SIZE` is malformed (400) even without a limit.

The channel is the :class:`~._body.BodySource` of the one streamed body it can be reading at
a time:

- **Start** (the head is complete and the leaf found by traversal streams its bodies): the
  decoder Twisted chose (``Content-Length`` or chunked) delivers to the body instead of
  ``request.content``; reading stops (the read gate's ``BODY`` reason) before the resource
  renders, and resumes only while the application waits for bytes; Twisted's idle timer
  gives way to the body's own, which runs only while the application waits. While the
  application keeps up (it asks for more with nothing held, :data:`KEEPING_UP` times in a
  row), the socket is read :data:`READ_FACTOR` buffers at a time.
- **End** of the body: the channel resets its parser as Twisted's ``allContentReceived``
  does, without processing the request again (it was rendered at its head); input after it
  is the next request's, buffered under ``max_read_ahead`` until the response is done.
- **A response done first**: the rest is read and dropped within ``discard_limit`` and the
  connection kept; a larger (declared) rest, an ``Expect: 100-continue`` never answered
  with ``100``, a failed body or HTTP/1.0 close it instead, after a ``Connection: close``
  when the headers had not gone out yet, and with the lingering close of our own answers.
- **Failures**: past the limit, after the idle timeout, or on malformed chunked framing,
  the body fails (its pending read first, so the application may answer), then the request
  is answered ``413``/``408``/``400`` if nothing was sent, else the connection is aborted;
  a client that leaves fails it with :class:`~twisted_stream.RequestBodyIncomplete`.
"""

from __future__ import annotations

import io
from typing import Any

from twisted.internet.abstract import FileDescriptor
from twisted.web.http import HTTPChannel, _ChunkedTransferDecoder, _MalformedChunkedDataError
from twisted.web.http_headers import Headers

from .._errors import RequestBodyError, RequestBodyIncomplete
from .._types import UploadRegistry
from ._body import RequestBody
from ._chunked import strict_trailers
from ._reading import BODY
from ._request_body import attach, resource_body_limit
from ._twisted import answer_body_error, headers_sent, kept_resource

MAX_CHUNK_SIZE = 2**63 - 1
"""The largest chunk size accepted (the largest file offset, as nginx checks): a larger one
is malformed (400), whatever the body's limit."""
KEEPING_UP = 4
"""Asks in a row, each with nothing held, after which the application counts as keeping up."""
READ_FACTOR = 8
"""While the application keeps up, the socket is read this many buffers at a time (Twisted
reads 64 KiB): an eighth of the reactor's work per byte, which puts a discarding reader at
aiohttp's throughput. Reading returns to the transport's own size as soon as the application
falls behind, so a slow one is held to about one buffer beyond the kernel's; one that kept
up and stops at once holds at most this one read more."""


class BodyStreaming:
    """The streamed-body half of :class:`~._channel.StreamHTTPChannel` (see the module)."""

    _streamed: RequestBody | None = None
    """The body being read, from its head until its end is parsed or the connection goes."""
    _render_pending: Any = None
    """A request to render once the line that completed its head has been handled."""
    _done_pending: Any = None
    """A request whose response ended before its body: done once the rest is dropped."""

    _keeping_up = 0
    """Times in a row the application asked for more with nothing held for it."""
    _body_limit = 0
    _body_received = 0
    _deliver: Any = None
    _finish_body: Any = None

    # Provided by the channel.
    settings: Any
    transport: Any
    persistent: bool
    requests: list[Any]
    length: int | None
    _answered: bool
    _gate: Any
    _idle_timeout: float | None

    # A buffered body.

    def body_limit(self, request: Any) -> int:
        """The most body bytes ``request`` may send; 0 for no limit.

        The per-request decision point: a request carrying its own ``max_body_size``, else
        its resource's ``max_body_size`` (the resource is found when the head is complete),
        else the site's ``max_body_size``.
        """
        own = getattr(request, "max_body_size", None)
        if not isinstance(own, int):
            own = resource_body_limit(kept_resource(request))
        return own if own is not None else self.settings.max_body_size

    def _check_length(self, request: Any) -> tuple[int, str] | None:
        """Why the declared body length of ``request`` is refused (its resource known)."""
        length = self.length
        limit = self.body_limit(request)
        if limit and length is not None and length > limit:
            return 413, f"the body of {length} bytes is over the limit of {limit} bytes"
        return None

    def _limit_body(self, request: Any, decoder: Any) -> None:
        """Route a buffered body through :meth:`_body_data` (its limit) to the request."""
        channel: Any = self
        if self.settings.header_timeout:
            channel.setTimeout(self._idle_timeout)  # the body: Twisted's idle timeout
        self._body_limit = self.body_limit(request)
        self._body_received = 0
        self._deliver, self._finish_body = decoder.dataCallback, decoder.finishCallback
        decoder.dataCallback = self._body_data
        decoder.finishCallback = self._body_done
        self._check_chunks(decoder)

    def _body_data(self, data: bytes) -> None:
        """Decoded body bytes on their way to the request, within its limit."""
        if self._answered:
            return
        self._body_received += len(data)
        limit = self._body_limit
        if limit and self._body_received > limit:
            channel: Any = self
            channel._answer(413, f"the body is over the limit of {limit} bytes")
            return
        self._deliver(data)

    def _body_done(self, rest: bytes) -> None:
        if not self._answered:
            self._finish_body(rest)

    # Chunk sizes, checked as each chunk-size line is parsed; trailer lines, as each comes.

    def _check_chunks(self, decoder: Any) -> None:
        """Make Twisted's chunked ``decoder`` check each chunk's declared size as soon as
        its chunk-size line is parsed (:meth:`_declared_chunk`), not when its bytes arrive:
        a size past the body's limit is refused with 413 at once, as nginx does, so a
        client announcing more than it may send is not left waiting for a timeout; and
        each trailer line as a field line (:func:`~._chunked.strict_trailers`: a bare LF
        there would end the body for a front end and not for Twisted)."""
        if not isinstance(decoder, _ChunkedTransferDecoder):
            return
        strict_trailers(decoder)
        parse = decoder._dataReceived_CHUNK_LENGTH

        def chunk_length() -> bool:
            go_on: bool = parse()
            if go_on and decoder.state == "BODY":
                return self._declared_chunk(decoder.length)
            return go_on

        # The decoder looks its state's method up by name on each step.
        hooked: Any = decoder
        hooked._dataReceived_CHUNK_LENGTH = chunk_length

    def _declared_chunk(self, size: int) -> bool:
        """A chunk of ``size`` bytes was announced: whether the body may go on (else it was
        refused: 413 past the limit, else 400 for a size no sane body has)."""
        body = self._streamed
        if body is not None:
            if not body.declare(size):
                return False
        else:
            limit = self._body_limit
            if limit and self._body_received + size > limit:
                channel: Any = self
                channel._answer(
                    413, f"a chunk of {size} bytes takes the body over the limit of {limit} bytes"
                )
                return False
        if size > MAX_CHUNK_SIZE:
            raise _MalformedChunkedDataError(f"a chunk size of {size} bytes is absurd")
        return True

    # Starting.

    def _new_body(self, request: Any, limit: int) -> RequestBody:
        """The body of ``request`` (head complete, its resource streams bodies)."""
        settings = self.settings
        expect = request.requestHeaders.getRawHeaders(b"Expect") or [b""]
        site = getattr(self, "site", None)
        body = RequestBody(
            self,
            length=self.length,
            max_size=limit,
            buffer_size=settings.buffer_size,
            clock=getattr(getattr(self, "factory", None), "reactor", None),
            idle_timeout=settings.idle_timeout or self._idle_timeout or 0.0,
            expect_continue=(
                request.clientproto == b"HTTP/1.1" and expect[0].lower() == b"100-continue"
            ),
            request=request,
            registry=site if isinstance(site, UploadRegistry) else None,
            monotonic=getattr(site, "monotonic", None),
        )
        attach(request, body)
        self._streamed = body
        return body

    def _stream_body(self, request: Any, decoder: Any) -> None:
        """Route the decoded body to the streamed body and stop reading until asked."""
        body = self._streamed
        assert body is not None
        channel: Any = self
        channel.setTimeout(None)  # the body's own idle timer runs while the app waits
        channel._savedTimeOut = self._idle_timeout  # restored when the response is done
        channel._body_limit = 0  # the body checks its own limit
        decoder.dataCallback = body.feed
        decoder.finishCallback = self._streamed_body_done
        self._check_chunks(decoder)
        content = getattr(request, "content", None)
        if content is not None:
            content.close()  # Twisted's temporary file for a large body, unused
        request.content = io.BytesIO()
        body.paused = True
        channel._reading().pause(BODY)
        self._render_pending = request

    # BodySource.

    def want(self, more: bool) -> None:
        if self._streamed is None or self._answered:
            return
        gate = self._reading()
        if more:
            gate.resume(BODY)
            self._keeping_up += 1
            if self._keeping_up == KEEPING_UP:
                self._read_size(READ_FACTOR * self.settings.buffer_size)
        else:
            gate.pause(BODY)
            if self._keeping_up >= KEEPING_UP:
                self._read_size(None)
            self._keeping_up = 0

    def _read_size(self, size: int | None) -> None:
        """Read ``size`` bytes at a time from the socket (None: the transport's own)."""
        transport: Any = self.transport
        socket = getattr(transport, "transport", transport)  # TLS reads through TCP
        if not isinstance(socket, FileDescriptor):
            return
        if size is None:
            socket.__dict__.pop("bufferSize", None)
        else:
            socket.bufferSize = size

    def consumed(self, flow: int) -> None:
        pass  # HTTP/1 has no flow control of its own: reading is the window

    def send_continue(self) -> None:
        body = self._streamed
        channel: Any = self
        if body is not None and not self._answered and not headers_sent(channel.requests[0]):
            HTTPChannel._send100Continue(channel)

    def refuse(self, error: RequestBodyError) -> None:
        body = self._streamed
        if body is None:
            return
        request: Any = body.request
        if request.finished or self._done_pending is request:
            self._close_after_response(request)
            return
        self.persistent = False
        if not answer_body_error(request, error):  # else done: closes after the answer
            self.transport.abortConnection()

    def _reading(self) -> Any:
        raise NotImplementedError  # the channel's

    def _close_quietly(self) -> None:
        raise NotImplementedError  # the channel's

    # The end of the body, or of its response.

    def _streamed_body_done(self, rest: bytes) -> None:
        """The body's end was parsed: reset the parser for the next request (as Twisted's
        ``allContentReceived``, without processing this one again); ``rest`` is input past
        it."""
        body, self._streamed = self._streamed, None
        self._end_reads()
        channel: Any = self
        channel.length = 0
        channel._receivedHeaderCount = channel._receivedHeaderSize = 0
        channel._HTTPChannel__first_line = 1
        channel._transferDecoder = None
        for name in ("_command", "_path", "_version"):
            channel.__dict__.pop(name, None)
        channel._handlingRequest = True
        channel.setRawMode()
        if self._gate is not None:
            self._gate.resume(BODY)
        if rest:
            channel.rawDataReceived(rest)  # buffered as pipelined input, within the bound
        if body is not None:
            body.finish()
        pending, self._done_pending = self._done_pending, None
        if pending is not None:
            channel.requestDone(pending)

    def _response_done_early(self, request: Any) -> None:
        """The response to ``request`` ended before its body: drop the rest within
        ``discard_limit`` and keep the connection, or close it."""
        body = self._streamed
        assert body is not None
        if self._must_close(body):
            self._close_after_response(request)
            return
        self._done_pending = request
        body.drain(self.settings.discard_limit)

    def _must_close(self, body: RequestBody) -> bool:
        """Whether the connection closes after a response that leaves ``body`` unread."""
        limit = self.settings.discard_limit
        remaining = None if body.length is None else body.length - body.bytes_received
        return (
            not self.persistent
            or not limit
            or body.error is not None
            or (body.expect_continue and not body.continued)
            or (remaining is not None and remaining > limit)
        )

    def _close_after_response(self, request: Any) -> None:
        """End the connection after the response to ``request``, its body left unread."""
        if self.requests and self.requests[0] is request:
            del self.requests[0]
        self._end_reads()
        body, self._streamed = self._streamed, None
        self._done_pending = None
        if body is not None:
            body.lose(
                RequestBodyIncomplete(
                    "the response ended before the body was read", body.bytes_received
                ),
                "discarded",
            )
        self._close_quietly()

    def _close_if_unread(self, request: Any, headers: Any) -> None:
        """Before the response's headers go out: ``Connection: close`` if the connection
        will close because the body is left unread (see :meth:`_must_close`)."""
        body = self._streamed
        if body is None or body.complete or body.request is not request:
            return
        if isinstance(headers, Headers) and self._must_close(body):
            self.persistent = False
            headers.setRawHeaders(b"Connection", [b"close"])

    def _malformed_body(self) -> bool:
        """Twisted's decoder refused the chunked framing of a streamed body: fail it (400
        if nothing was sent). False when no body streams (the channel answers itself)."""
        body = self._streamed
        if body is None:
            return False
        error = RequestBodyIncomplete(
            "the chunked framing of the body is malformed", body.bytes_received, code=400
        )
        body.lose(error)
        self.refuse(error)
        return True

    def _end_reads(self) -> None:
        if self._keeping_up >= KEEPING_UP:
            self._read_size(None)
        self._keeping_up = 0

    def _lose_body(self) -> None:
        """The connection is gone: a body still being read fails."""
        self._keeping_up = 0
        body, self._streamed = self._streamed, None
        self._done_pending = self._render_pending = None
        if body is not None:
            body.lose(
                RequestBodyIncomplete(
                    f"the client went away after {body.bytes_received} bytes of the body",
                    body.bytes_received,
                )
            )

"""The engine: one push producer that moves a :class:`~._source.Source` into a request.

It pulls only while the transport wants data, in slices so no stream holds the reactor,
keeps at most one buffer beyond the transport's, and tears everything down exactly once on
whichever comes first: the end of the source, a source failure, the client going away
(``stopProducing`` or the ``notifyFinish`` errback; HTTP/2 only sends the latter) or an
abort by the server. Its lifecycle moves only through :func:`._state.transition`. What it
needs of Twisted beyond the :class:`~twisted_stream._types.StreamRequest` Protocol comes from
the seam, :mod:`twisted_stream._http._twisted`. Time is read from the ``monotonic`` callable
it is given (the slice budget, the time to first byte) and timers run on its ``clock``.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import NO_BODY_CODES
from zope.interface import implementer

from .._errors import ContentLengthError, SourceIdleTimeout, StreamAborted, StreamRejected
from .._http._direct import DirectWriter, chunk_framing
from .._http._sendfile import SendfileWriter
from .._http._transport import SocketTransport, direct_transport, flush
from .._http._twisted import (
    abort_connection,
    count_sent,
    has_channel,
    headers_sent,
    is_chunked,
    is_disconnected,
    must_write_through,
    request_line,
    send_error_page,
    send_refusal,
)
from .._settings import StreamSettings
from .._types import Clock, Monotonic, StreamRequest
from ._outcome import Outcome
from ._source import (
    EOF,
    FileBodySource,
    Heartbeat,
    Ready,
    SliceDeadline,
    Source,
    close_source,
)
from ._state import TERMINAL, Signal, State, transition

_log = Logger(namespace="twisted_stream")

EndCallback = Callable[[Outcome, "Failure | None"], None]


_PAUSED = frozenset({State.PAUSED, State.WAITING_PAUSED})

SLICE_BUFFERS = 2
"""Most buffers one slice writes when the transport never pauses the stream."""


def _cancel(call: IDelayedCall | None) -> IDelayedCall | None:
    """Cancel ``call`` if it is still pending; returns None, to clear the caller's slot."""
    if call is not None and call.active():
        call.cancel()
    return None


@implementer(IPushProducer)
class StreamProducer:
    """Streams one source into one request. Use :func:`twisted_stream.stream`."""

    __slots__ = (
        "_carry",
        "_carry_at",
        "_chunked",
        "_clock",
        "_connection_lost",
        "_deadline_timer",
        "_declared",
        "_direct",
        "_file_writer",
        "_force_abort",
        "_held",
        "_idle_timer",
        "_limit",
        "_monotonic",
        "_next_slice",
        "_on_end",
        "_paused_seconds",
        "_paused_since",
        "_release_waiters",
        "_running",
        "_settings",
        "_slice",
        "_source",
        "_source_released",
        "_stall_timer",
        "_transport",
        "_unflushed",
        "bytes_sent",
        "first_byte_at",
        "pause_count",
        "request",
        "state",
    )
    """Slotted: an instance dictionary of these 32 members cost about 1.4 KB per stream."""

    def __init__(
        self,
        request: StreamRequest,
        source: Source,
        *,
        settings: StreamSettings,
        clock: Clock,
        monotonic: Monotonic,
        content_length: int | None,
        on_end: EndCallback,
    ) -> None:
        self.request = request
        self.state = State.IDLE
        self.bytes_sent = 0
        self.first_byte_at: float | None = None
        self.pause_count = 0
        self._paused_seconds = 0.0
        self._paused_since: float | None = None
        self._source = source
        self._settings = settings
        self._limit = settings.buffer_size
        self._slice = settings.slice_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._stall_timer: IDelayedCall | None = None
        self._idle_timer: IDelayedCall | None = None
        self._deadline_timer: IDelayedCall | None = None
        self._declared = content_length
        self._on_end = on_end
        self._carry: bytes | None = None
        """A chunk not fully written yet (split at the buffer size, or a Deferred's result
        that arrived while paused); ``_carry_at`` is how much of it went out."""
        self._carry_at = 0
        self._held: bytes | None = None
        self._running = False
        self._next_slice: IDelayedCall | None = None
        self._connection_lost = False
        self._force_abort: IDelayedCall | None = None
        self._transport: SocketTransport | None = None
        """The socket transport, when the engine may flush it and send files to it itself."""
        self._unflushed = 0
        """Bytes written since the transport was last flushed."""
        self._file_writer: SendfileWriter | None = None
        self._direct: DirectWriter | None = None
        """Sends the body's bytes to the socket itself once the headers are out (no
        ``Request.write``, no copy into the transport's buffer, no reactor call per chunk)."""
        self._chunked = False
        self._source_released = False
        self._release_waiters: list[Deferred[None]] = []

    # Lifecycle.

    def _fire(self, signal: Signal) -> State:
        self.state = transition(self.state, signal)
        return self.state

    def start(self, *, flush_headers: bool = False) -> None:
        """Register on the request and start pulling (Twisted never resumes us first)."""
        request = self.request
        if is_disconnected(request):
            self._lost(Failure(StreamAborted("the client had gone before the stream started")))
            return
        request.notifyFinish().addErrback(self._notified_lost)
        if request.method == b"HEAD" or request.code in NO_BODY_CODES:
            # Headers only: the source is closed without ever being read.
            self._fire(Signal.FINISH)
            self._close_source()
            request.finish()
            self._on_end(Outcome.COMPLETED, None)
            return
        self._fire(Signal.START)
        if self._settings.deadline:
            self._deadline_timer = self._clock.callLater(
                self._settings.deadline, self.abort, "the stream deadline passed"
            )
        request.registerProducer(self, True)
        self._transport = transport = direct_transport(request)
        if transport is not None and self._declared is not None and self._settings.sendfile:
            self._file_writer = self._sendfile_writer(transport)
        if transport is not None and self._file_writer is None and not must_write_through(request):
            self._direct = DirectWriter(transport, self)
        if flush_headers:
            request.write(b"")
            self._unflushed = 1
        self._run()

    def _sendfile_writer(self, transport: SocketTransport) -> SendfileWriter | None:
        """A writer sending the body with ``sendfile`` when it is exactly one region of an
        open file and nothing needs to pass through ``Request.write`` (fake HEAD, Twisted's
        encoders); None to read and write it instead."""
        source, request = self._source, self.request
        if not isinstance(source, FileBodySource) or not SendfileWriter.possible(transport):
            return None
        if must_write_through(request):
            return None
        body = source.file_body()
        if body is None or body.length != self._declared or not body.length:
            return None
        return SendfileWriter(transport, self, *body)

    def reject(self) -> None:
        """The stream is refused before it starts: release the source unread."""
        self._fire(Signal.ABORT)
        self._close_source()

    # IPushProducer: called by the transport, repeatedly and re-entrantly.

    def pauseProducing(self) -> None:
        before = self.state
        if self._fire(Signal.PAUSE) is not before and self.state in _PAUSED:
            self.pause_count += 1
            self._paused_since = self._clock.seconds()
            timeout = self._settings.stall_timeout
            if timeout and self._stall_timer is None:
                # One timer per stream, not one per pause: it re-arms itself for what is
                # left of the current pause when it fires (pauses come once per buffer).
                self._stall_timer = self._clock.callLater(timeout, self._check_stall)

    def resumeProducing(self) -> None:
        before = self.state
        after = self._fire(Signal.RESUME)
        if before in _PAUSED and after not in _PAUSED:
            self._unpaused()
            if after is State.STREAMING:
                self._next_slice = _cancel(self._next_slice)
                self._run()

    def _unpaused(self) -> None:
        if self._paused_since is not None:
            self._paused_seconds += self._clock.seconds() - self._paused_since
            self._paused_since = None

    @property
    def paused_seconds(self) -> float:
        """Total time the transport has kept this stream paused."""
        since = self._paused_since
        return self._paused_seconds + (0.0 if since is None else self._clock.seconds() - since)

    def _check_stall(self) -> None:
        self._stall_timer = None
        since = self._paused_since
        if since is None:
            return  # not paused now; the next pause arms the timer again
        left = since + self._settings.stall_timeout - self._clock.seconds()
        if left > 0:
            self._stall_timer = self._clock.callLater(left, self._check_stall)
            return
        self._abort(
            f"the client read nothing for {self._settings.stall_timeout:g} s (stalled)",
            Outcome.STALLED,
        )

    def _idle(self) -> None:
        self._idle_timer = None
        timeout = self._settings.idle_timeout
        self._fail(Failure(SourceIdleTimeout(f"the source produced nothing for {timeout:g} s")))

    def stopProducing(self) -> None:
        self._lost(Failure(StreamAborted("the connection was closed")))

    def _notified_lost(self, reason: Failure) -> None:
        self._lost(reason)

    # The pull loop.

    def _run(self) -> None:
        """Pull and write until paused, waiting, finished, or this slice is used up."""
        if self._running:
            return
        self._running = True
        try:
            if self._file_writer is not None:
                self._send_file(self._file_writer)
            else:
                self._pull()
        finally:
            self._running = False

    def _pull(self) -> None:
        monotonic = self._monotonic
        deadline = SliceDeadline(monotonic() + self._slice, monotonic)
        transport = self._transport
        while True:
            slice_over = self._fill(deadline)
            if transport is None or not self._unflushed:
                return
            # The slice ends (paused, waiting, over): what it wrote goes out now, not on the
            # reactor's next turn. If that empties the transport it resumes a paused stream
            # from inside the flush, and the slice goes on.
            self._flush(transport)
            if slice_over or self.state is not State.STREAMING:
                return

    def _flush(self, transport: SocketTransport) -> None:
        self._unflushed = 0
        if self._direct is None or not self._direct.direct:
            flush(transport)  # (a direct writer sending to the socket left it nothing)

    def _fill(self, deadline: SliceDeadline) -> bool:
        """Pull and write until the transport pauses us, the source waits or ends, or the
        slice is over (True: the next slice is scheduled)."""
        limit = self._limit
        monotonic = self._monotonic
        transport = self._transport
        # A slice fills the transport once: it ends when the transport pauses us (its buffer
        # is full), after slice_seconds, or after SLICE_BUFFERS buffers for a transport that
        # never pushes back (HTTP/2 with a large window; a body with a Content-Length, whose
        # 64 KiB writes only reach Twisted's pause mark on the second one). A transport the
        # engine flushes itself is sent to as soon as a buffer is written, so it holds at
        # most about one buffer and never needs a reactor turn per buffer.
        budget = SLICE_BUFFERS * limit
        while self.state is State.STREAMING:
            if budget <= 0 or monotonic() >= deadline.at:
                self._next_slice = self._clock.callLater(0, self._slice_due)
                return True
            if self._carry is not None:
                budget -= self._write_carry(budget)
            else:
                try:
                    result = self._source.read(limit, deadline)
                except Exception:
                    self._fail(Failure())
                    return False
                if result is EOF:
                    self._complete()
                    return False
                if not isinstance(result, bytes):
                    self._fire(Signal.WAIT)
                    if self._settings.idle_timeout and self._idle_timer is None:
                        self._idle_timer = self._clock.callLater(
                            self._settings.idle_timeout, self._idle
                        )
                    result.addCallbacks(self._ready, self._read_failed)
                    # A Deferred that had already fired has moved us on; else we wait for it.
                    continue
                budget -= self._accept(result, budget)
            if transport is not None and self._unflushed >= limit:
                self._flush(transport)
                budget = SLICE_BUFFERS * limit
        return False

    def _send_file(self, writer: SendfileWriter) -> None:
        """Send the file body with ``sendfile`` while the socket takes it, within the slice;
        the writer pauses us while the socket is full."""
        monotonic = self._monotonic
        at = monotonic() + self._slice
        while self.state is State.STREAMING:
            if not writer.attached:
                self.request.write(b"")  # the headers, which the transport sends first
                writer.attach()  # pauses us until they are sent, or resumes us at once
                continue
            if monotonic() >= at:
                self._next_slice = self._clock.callLater(0, self._slice_due)
                return
            try:
                sent = writer.send()
            except ConnectionError:
                self._lost(Failure())
                abort_connection(self.request, self._clock, flush=False)
                return
            except OSError:  # reading the file failed, or it was truncated
                self._fail(Failure())
                return
            if self.first_byte_at is None:
                self.first_byte_at = monotonic()
            self.bytes_sent += sent
            count_sent(self.request, sent)
            if not writer.remaining:
                writer.detach()
                self._complete()
                return

    def _slice_due(self) -> None:
        self._next_slice = None
        self._run()

    def _ready(self, result: Ready) -> None:
        if self.state not in (State.WAITING, State.WAITING_PAUSED):
            return  # ended while the source was busy
        if type(result) is not Heartbeat:
            self._idle_timer = _cancel(self._idle_timer)
        if result is EOF:
            self._fire(Signal.READY)
            self._complete()
            return
        if result:
            self._carry, self._carry_at = result, 0
        if self._fire(Signal.READY) is State.STREAMING:
            self._run()

    def _read_failed(self, reason: Failure) -> None:
        if self.state in TERMINAL:
            return  # the cancellation (or anything else) after we ended
        self._fail(reason)

    # Writing.

    def _accept(self, data: bytes, budget: int) -> int:
        """Write ``data`` (split at the buffer size); the number of bytes written."""
        if len(data) <= self._limit:
            if data and self._write(data):
                return len(data)
            return 0
        self._carry, self._carry_at = data, 0
        return self._write_carry(budget)

    def _write_carry(self, budget: int) -> int:
        """Write the carried chunk in buffer-sized pieces until paused or ``budget`` is spent;
        a chunk that fits one buffer goes out as it is, without a copy."""
        carry = self._carry
        assert carry is not None
        limit = self._limit
        written = 0
        while written < budget and self.state is State.STREAMING:
            at = self._carry_at
            piece = carry if at == 0 and len(carry) <= limit else carry[at : at + limit]
            self._carry_at = at + len(piece)
            if self._carry_at >= len(carry):
                self._carry = None
            written += len(piece)
            if not self._write(piece) or self._carry is None:
                break
        return written

    def _write(self, data: bytes) -> bool:
        """Write ``data`` within the declared Content-Length, if any; False if that failed."""
        declared = self._declared
        if declared is not None:
            room = declared - self.bytes_sent
            if self._held is not None or len(data) > room:
                self._fail(Failure(ContentLengthError(declared, None)))
                return False
            if len(data) == room:
                # The last declared bytes go out only once the source confirms its end, so a
                # source that has more never lets the client see a complete-looking body.
                self._held = data
                return True
        self._send(data)
        return True

    def _send(self, data: bytes) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = self._monotonic()
        self.bytes_sent += len(data)
        self._unflushed += len(data)
        direct = self._direct
        if direct is not None and not direct.attached and self._running:
            # Only inside the pull loop: attaching may resume us, which must not re-enter.
            self._attach(direct)
        if direct is not None and direct.attached:
            count_sent(self.request, len(data))
            direct.write(chunk_framing(data) if self._chunked else [data])
            return
        self.request.write(data)

    def _attach(self, direct: DirectWriter) -> None:
        """Let ``direct`` send the rest of the body, once ``Request.write`` has sent the
        headers with the first bytes (until then a failing source still gets a 500)."""
        transport = self._transport
        assert transport is not None
        if headers_sent(self.request) and direct.possible(transport):
            self._chunked = is_chunked(self.request)
            direct.attach()

    # Endings, each reached once.

    def _complete(self) -> None:
        declared = self._declared
        produced = self.bytes_sent + len(self._held or b"")
        if declared is not None and produced != declared:
            self._fail(Failure(ContentLengthError(declared, produced)))
            return
        if self._held is not None:
            held, self._held = self._held, None
            self._send(held)
            if self.state in TERMINAL:
                return  # the client vanished during that write
        self._fire(Signal.FINISH)
        self._teardown()
        self.request.unregisterProducer()
        self._unflushed += 1  # the chunked terminator, if any, goes out with the slice's end
        self.request.finish()
        self._on_end(Outcome.COMPLETED, None)

    def _lost(self, reason: Failure) -> None:
        self._connection_lost = True
        self._force_abort = _cancel(self._force_abort)
        if self.state in TERMINAL:
            return
        self._fire(Signal.ABORT)
        self._teardown()
        _log.info(
            "{request_line}: client went away after {bytes_sent} bytes",
            request_line=request_line(self.request),
            bytes_sent=self.bytes_sent,
        )
        self._on_end(Outcome.CLIENT_GONE, reason)

    def _fail(self, reason: Failure) -> None:
        if self.state in TERMINAL:
            return
        self._fire(Signal.ABORT)
        self._teardown()
        request = self.request
        started = headers_sent(request)
        if not started and reason.check(StreamRejected):
            # No capacity for it now (the thread pool's queue): a temporary refusal.
            _log.info(
                "{request_line}: refused with 503: {reason}",
                request_line=request_line(request),
                reason=reason.getErrorMessage(),
            )
            self._unregister()
            send_refusal(request, reason.getErrorMessage(), self._settings.retry_after)
            self._on_end(Outcome.REJECTED, reason)
            return
        _log.failure(
            "{request_line}: stream failed after {bytes_sent} bytes; "
            + ("aborting the connection" if started else "answering 500"),
            failure=reason,
            request_line=request_line(request),
            bytes_sent=self.bytes_sent,
        )
        self._unregister()
        if started:
            self._force_abort = abort_connection(request, self._clock, flush=True)
        else:
            send_error_page(request, reason)
        self._on_end(Outcome.SOURCE_FAILED, reason)

    def end(self) -> None:
        """End the response cleanly now, as if the source had ended (event streams, whose
        end is normal). Anything the source has not produced yet is not sent."""
        if self.state in TERMINAL:
            return
        if self._declared is not None:
            self.abort("ended early with a declared Content-Length")
            return
        self._fire(Signal.FINISH)
        self._teardown()
        self._unregister()
        if not self._connection_lost:
            self.request.finish()
        self._on_end(Outcome.COMPLETED, None)

    def abort(self, reason: str | StreamAborted = "aborted by the server") -> None:
        """End the stream now from the server side: the client sees an incomplete body.
        ``reason`` is a message, or the :class:`StreamAborted` the result is to carry."""
        self._abort(reason, Outcome.ABORTED)

    def _abort(self, reason: str | StreamAborted, outcome: Outcome) -> None:
        if self.state in TERMINAL:
            return
        error = reason if isinstance(reason, StreamAborted) else StreamAborted(reason)
        self._fire(Signal.ABORT)
        self._teardown()
        _log.info(
            "{request_line}: stream aborted after {bytes_sent} bytes: {reason}",
            request_line=request_line(self.request),
            bytes_sent=self.bytes_sent,
            reason=str(error),
        )
        self._unregister()
        abort_connection(self.request, self._clock, flush=False)
        self._on_end(outcome, Failure(error))

    def _teardown(self) -> None:
        for writer in (self._file_writer, self._direct):
            if writer is not None:
                writer.detach()
        for call in (self._next_slice, self._stall_timer, self._idle_timer, self._deadline_timer):
            if call is not None and call.active():
                call.cancel()
        self._next_slice = self._stall_timer = self._idle_timer = self._deadline_timer = None
        self._unpaused()
        self._carry = None
        self._held = None
        self._close_source()

    def _unregister(self) -> None:
        if not self._connection_lost and has_channel(self.request):
            self.request.unregisterProducer()

    def _close_source(self) -> None:
        closing = close_source(self._source, self._request_line)
        if closing is None:
            self._released()
        else:
            closing.addCallback(lambda _: self._released())

    def _released(self) -> None:
        self._source_released = True
        waiters, self._release_waiters = self._release_waiters, []
        for d in waiters:
            d.callback(None)

    def when_source_closed(self) -> Deferred[None]:
        """A new Deferred firing once the source has been released (never failing)."""
        if self._source_released:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._release_waiters.append(d)
        return d

    def _request_line(self) -> str:
        return request_line(self.request)

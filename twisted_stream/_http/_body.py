"""Request bodies read as streams: :class:`RequestBody` (what ``request_body`` returns,
:mod:`._request_body`).

A body reaches the application only as fast as it asks: the connection side (a
:class:`BodySource`: our HTTP/1.1 channel, an HTTP/2 stream, or a buffered body) is told to
read more only while a read waits, and to stop once a buffer's worth is held that nobody
asked for. HTTP/1.1 then stops reading the socket (the read gate's ``BODY`` reason); HTTP/2
keeps the stream's flow-control window closed until the application takes the bytes.

``Expect: 100-continue`` is answered when the application first asks for the body (a read,
``async for`` or :meth:`RequestBody.discard`), never before: an application that answers
without reading (401, 413, a redirect) sends no ``100`` at all (RFC 9110 §10.1.1).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall

from .._errors import RequestBodyError, RequestBodyIncomplete, RequestBodyTooLarge
from .._types import Clock, StreamRequest, UploadRegistry


class BodySource(Protocol):
    """The connection side of one :class:`RequestBody`: what it asks of the connection."""

    def want(self, more: bool) -> None:
        """Read more of the body from the client (True), or stop reading it (False)."""

    def consumed(self, flow: int) -> None:
        """The application took body bytes that cost ``flow`` bytes of flow control
        (HTTP/2: reopen the stream's window by that much)."""

    def send_continue(self) -> None:
        """Send ``100 Continue`` now (the application first asked for the body)."""

    def refuse(self, error: RequestBodyError) -> None:
        """The body failed for the server's reasons (too large, timed out, too much left
        unread): answer ``error.code`` if nothing was sent, and read no more of it."""


class RequestBody:
    """The body of one request, read as it arrives.

    An async iterator of ``bytes`` chunks of at most ``buffer_size`` bytes each (the site's
    setting), which ends with the body; or, without ``async for``, :meth:`read` and
    :meth:`discard`, which return Deferreds. One read at a time. Attributes:

    - ``length``: the declared ``Content-Length``, or None (chunked, or HTTP/2 without one);
    - ``bytes_received``: body bytes received from the client so far;
    - ``max_size``: the limit in force (0: none);
    - ``complete``: whether the whole body has arrived;
    - ``expect_continue`` / ``continued``: whether the client sent ``Expect: 100-continue``
      and whether ``100 Continue`` was sent.

    A read fails with :class:`~twisted_stream.RequestBodyTooLarge` past ``max_size`` (the
    server answers ``413`` if nothing was sent) and with
    :class:`~twisted_stream.RequestBodyIncomplete` if the body can no longer be read to its
    end (client gone, malformed framing, idle timeout, response ended first); both carry
    ``bytes_received``.
    """

    def __init__(
        self,
        source: BodySource,
        *,
        length: int | None,
        max_size: int = 0,
        buffer_size: int = 65536,
        clock: Clock | None = None,
        idle_timeout: float = 0.0,
        expect_continue: bool = False,
        request: StreamRequest | None = None,
        registry: UploadRegistry | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.request = request
        self.length = length
        self.bytes_received = 0
        self.bytes_discarded = 0
        self.complete = False
        self.expect_continue = expect_continue
        self.continued = False
        self.paused = False
        """Whether reading is stopped because the application has not asked for more."""
        self.error: RequestBodyError | None = None
        self.outcome: str | None = None
        """How the body ended: ``completed``, ``too-large``, ``incomplete`` or ``discarded``
        (the response ended first); None while it is read."""
        self.started_at = monotonic() if monotonic is not None else 0.0
        self._source = source
        self._max_size = max_size
        self._chunk = buffer_size
        self._clock = clock
        self._idle = idle_timeout
        self._timer: IDelayedCall | None = None
        self._quiet_since = 0.0
        self._chunks: deque[list[Any]] = deque()
        """[data, start, flow] of each piece held: the bytes from ``start`` on are unread, and
        ``flow`` the flow control they still owe (a piece split by reads is never copied
        but for the chunk handed out)."""
        self._buffered = 0
        self._reader: tuple[Deferred[bytes], int] | None = None
        self._discard: Deferred[int] | None = None
        self._discard_limit = 0
        self._discard_start = 0
        self._asked = False
        self._limit_checked = False
        self._registry = registry
        if registry is not None:
            registry.upload_started(self)
        if request is not None:
            # Registered before the resource renders, so its errback comes before any the
            # application adds: a handler waiting for the body hears that the client left
            # as RequestBodyIncomplete, not as a cancellation.
            request.notifyFinish().addErrback(self._request_lost)

    def _request_lost(self, reason: object) -> None:
        self.lose(
            RequestBodyIncomplete(
                f"the client went away after {self.bytes_received} bytes of the body",
                self.bytes_received,
            )
        )

    # What the application uses.

    @property
    def max_size(self) -> int:
        """The most body bytes accepted (0: no limit)."""
        return self._max_size

    @property
    def waiting(self) -> bool:
        """Whether the application waits for more of the body from the client."""
        return self._reader is not None or self._discard is not None

    @property
    def buffer_size(self) -> int:
        """The most bytes one chunk of ``async for`` holds."""
        return self._chunk

    def __aiter__(self) -> RequestBody:
        return self

    async def __anext__(self) -> bytes:
        if self._buffered and self._reader is None and self._discard is None:
            return self._take(self._chunk)  # held already: no Deferred to make and await
        chunk = await self._ask(self._chunk)
        if not chunk:
            raise StopAsyncIteration
        return chunk

    def read(self, n: int = -1) -> Deferred[bytes]:
        """The next at most ``n`` bytes of the body as soon as any arrive (``b""`` at its
        end); with ``n`` negative, all the rest of it (held in memory: mind ``max_size``)."""
        if n == 0:
            return succeed(b"")
        if n > 0:
            return self._ask(n)
        return Deferred.fromCoroutine(self._read_all())

    async def _read_all(self) -> bytes:
        parts = [chunk async for chunk in self]
        return b"".join(parts)

    def discard(self) -> Deferred[int]:
        """Read the rest of the body and drop it (as a read, it sends ``100 Continue``);
        fires with the bytes dropped, or fails as a read would."""
        if self.error is not None:
            return fail(self.error)
        if self._reader is not None or self._discard is not None:
            return fail(RuntimeError("a read of this request body is already pending"))
        self._discard_start = self.bytes_discarded
        self._drop_buffered()
        if self.complete:
            return succeed(self.bytes_discarded - self._discard_start)
        self._discard = Deferred()
        self._want(send_continue=True)
        return self._discard

    # The limit, set once by request_body().

    def limit(self, max_size: int | None) -> None:
        """Set the limit (None: keep the one in force) and check a declared length against
        it, once: a body declared larger is refused before any of it is read."""
        if max_size is not None:
            if max_size < 0:
                raise ValueError(f"max_size must not be negative, not {max_size}")
            self._max_size = max_size
            self._limit_checked = False
        if self._limit_checked or self.error is not None:
            return
        self._limit_checked = True
        limit = self._max_size
        if limit and self.length is not None and self.length > limit:
            self._refuse(
                RequestBodyTooLarge(
                    f"the body of {self.length} bytes is over the limit of {limit} bytes",
                    self.bytes_received,
                    limit,
                )
            )

    # Reading.

    def _ask(self, n: int) -> Deferred[bytes]:
        if self.error is not None:
            return fail(self.error)
        if self._reader is not None or self._discard is not None:
            return fail(RuntimeError("a read of this request body is already pending"))
        if self._buffered:
            return succeed(self._take(n))
        if self.complete:
            return succeed(b"")
        d: Deferred[bytes] = Deferred(self._cancel_read)
        self._reader = (d, n)
        self._want(send_continue=True)
        return d

    def _cancel_read(self, d: Deferred[bytes]) -> None:
        if self._reader is not None and self._reader[0] is d:
            self._reader = None

    def _want(self, *, send_continue: bool) -> None:
        if not self._asked:
            self._asked = True
            if self.expect_continue and send_continue and not self.continued:
                self.continued = True
                self._source.send_continue()
        self.paused = False
        self._source.want(True)
        self._start_timer()  # the application waits from now

    def _take(self, n: int) -> bytes:
        """Up to ``n`` buffered bytes, coalesced; their flow control is handed back."""
        out: list[bytes] = []
        size = flow = 0
        chunks = self._chunks
        while chunks and size < n:
            piece = chunks[0]
            data: bytes = piece[0]
            start: int = piece[1]
            room = n - size
            left = len(data) - start
            if left <= room:
                chunks.popleft()
                out.append(data[start:] if start else data)
                size += left
                flow += piece[2]
            else:
                out.append(data[start : start + room])
                piece[1] = start + room
                taken = min(piece[2], room)
                piece[2] -= taken
                flow += taken
                size += room
        self._buffered -= size
        if flow:
            self._source.consumed(flow)
        return out[0] if len(out) == 1 else b"".join(out)

    def _drop_buffered(self) -> None:
        flow = sum(piece[2] for piece in self._chunks)
        self.bytes_discarded += self._buffered
        self._chunks.clear()
        self._buffered = 0
        if flow:
            self._source.consumed(flow)

    # What the connection side calls.

    def feed(self, data: bytes, flow: int | None = None) -> None:
        """Body bytes from the client (``flow``: what they cost of HTTP/2 flow control)."""
        if flow is None:
            flow = len(data)
        if self.complete or self.error is not None:
            if flow:
                self._source.consumed(flow)
            return
        size = len(data)
        self.bytes_received += size
        limit = self._max_size
        if limit and self.bytes_received > limit:
            if flow:
                self._source.consumed(flow)
            self._refuse(
                RequestBodyTooLarge(
                    f"the body is over the limit of {limit} bytes", self.bytes_received, limit
                )
            )
            return
        if self._timer is not None:
            self._quiet_since = self._clock.seconds()  # type: ignore[union-attr]
        if self._discard is not None:
            self.bytes_discarded += size
            if flow:
                self._source.consumed(flow)
            if self._discard_limit and self.bytes_discarded > self._discard_limit:
                self._refuse(
                    RequestBodyIncomplete(
                        f"more than {self._discard_limit} bytes were left unread when the "
                        "response ended",
                        self.bytes_received,
                    ),
                    outcome="discarded",
                )
            return
        self._chunks.append([data, 0, flow])
        self._buffered += size
        reader = self._reader
        if reader is not None:
            self._reader = None
            reader[0].callback(self._take(reader[1]))
        if self._reader is None and self._buffered >= self._chunk and not self.paused:
            self.paused = True
            self._source.want(False)

    def declare(self, size: int) -> bool:
        """The client announced ``size`` more body bytes (an HTTP/1.1 chunk-size line):
        refused at once (:class:`~twisted_stream.RequestBodyTooLarge`, 413) if they take the
        body past ``max_size``, before they arrive. Whether the body may go on."""
        if self.complete or self.error is not None:
            return self.error is None
        limit = self._max_size
        if limit and self.bytes_received + size > limit:
            self._refuse(
                RequestBodyTooLarge(
                    f"a chunk of {size} bytes takes the body over the limit of {limit} bytes",
                    self.bytes_received,
                    limit,
                )
            )
            return False
        return True

    def finish(self) -> None:
        """The whole body has arrived."""
        if self.complete or self.error is not None:
            return
        self.complete = True
        self._stop_timer()
        self._ended("discarded" if self._discard_limit else "completed")
        reader, self._reader = self._reader, None
        if reader is not None:
            reader[0].callback(self._take(reader[1]) if self._buffered else b"")
        discard, self._discard = self._discard, None
        if discard is not None:
            discard.callback(self.bytes_discarded - self._discard_start)

    def lose(self, error: RequestBodyError, outcome: str = "incomplete") -> None:
        """The body can no longer be read to its end (the client went away, its framing
        broke): pending and later reads fail with ``error``."""
        if self.complete or self.error is not None:
            return
        self.error = error
        self._stop_timer()
        self._chunks.clear()
        self._buffered = 0
        self._ended(outcome)
        reader, self._reader = self._reader, None
        discard, self._discard = self._discard, None
        for waiting in (reader[0] if reader is not None else None, discard):
            if waiting is not None:
                waiting.errback(error)

    def drain(self, limit: int) -> None:
        """The response ended before the body: read and drop the rest, at most ``limit``
        bytes of it (past that the source is told to refuse it). A read still pending
        fails."""
        if self.complete or self.error is not None:
            return
        reader, self._reader = self._reader, None
        if reader is not None:
            reader[0].errback(
                RequestBodyIncomplete(
                    "the response ended before the body was read", self.bytes_received
                )
            )
        self._discard_limit = limit
        self._discard_start = self.bytes_discarded
        self._drop_buffered()
        if self._discard is None:
            self._discard = Deferred()
            self._discard.addErrback(lambda f: f.trap(RequestBodyError, CancelledError))
        self._want(send_continue=False)

    # Failing for the server's reasons, the idle timer, the registry.

    def _refuse(self, error: RequestBodyError, outcome: str | None = None) -> None:
        if outcome is None:
            outcome = "too-large" if isinstance(error, RequestBodyTooLarge) else "incomplete"
        self.lose(error, outcome)
        self._source.refuse(error)

    # One timer, moved only when it fires (starting and cancelling one per chunk would cost
    # more than the chunk): quiet time counts from the later of the last byte and the moment
    # the application started waiting.

    def _start_timer(self) -> None:
        clock = self._clock
        if self._idle <= 0 or clock is None:
            return
        self._quiet_since = clock.seconds()
        if self._timer is None:
            self._timer = clock.callLater(self._idle, self._check_idle)

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _check_idle(self) -> None:
        self._timer = None
        clock = self._clock
        if clock is None or not self.waiting:
            return  # the application is busy: the next wait starts the timer again
        quiet = clock.seconds() - self._quiet_since
        if quiet < self._idle:
            self._timer = clock.callLater(self._idle - quiet, self._check_idle)
            return
        self._refuse(
            RequestBodyIncomplete(
                f"the client sent nothing of the body for {self._idle:g} s",
                self.bytes_received,
                code=408,
            )
        )

    def _ended(self, outcome: str) -> None:
        self.outcome = outcome
        registry, self._registry = self._registry, None
        if registry is not None:
            registry.upload_ended(self)

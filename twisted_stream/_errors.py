"""Every exception twisted_stream raises or reports, all under :class:`StreamError`.

``except StreamError`` catches each of them; those that are also a kind of built-in error
(:class:`ChunkTypeError` a ``TypeError``, :class:`FileTruncated` an ``OSError``,
:class:`StateError` a ``RuntimeError``) are caught by that too.
"""

from __future__ import annotations


class StreamError(Exception):
    """Base class of twisted_stream's own errors."""


class StreamAborted(StreamError):
    """The stream was ended before its source was: the client went away or the server
    aborted it."""


class ProducerOverflow(StreamAborted):
    """A producer streamed through :func:`~twisted_stream.stream` wrote more than a few
    buffers nobody asked for (a push producer ignoring ``pauseProducing()``, a pull producer
    writing outside ``resumeProducing()``): the stream was aborted. The message names it."""


class StreamRejected(StreamError):
    """A source cannot start for lack of capacity now (every thread of the pool busy and
    ``thread_queue_size`` streams waiting, or ``thread_queue_timeout`` passed while waiting):
    the stream ends ``REJECTED`` with 503 and ``Retry-After`` when no header went out yet."""


class ContentLengthError(StreamError):
    """The source produced a different number of bytes than the declared Content-Length."""

    def __init__(self, declared: int, produced: int | None) -> None:
        self.declared = declared
        self.produced = produced
        got = "more" if produced is None else str(produced)
        super().__init__(f"Content-Length is {declared} but the source produced {got} bytes")


class ChunkTypeError(StreamError, TypeError):
    """A source yielded something that is not body data (the message names its type)."""


class SourceIdleTimeout(StreamError):
    """The source produced nothing for longer than the idle timeout."""


class FileTruncated(StreamError, OSError):
    """The file ended before the bytes the response promised (it shrank while served)."""


class SubscriberOverflow(StreamError):
    """A :class:`~twisted_stream.Channel` subscriber's queue overflowed with
    ``overflow="disconnect"``."""


class RequestBodyError(StreamError):
    """A streamed request body cannot be read to its end. ``bytes_received`` is how many body
    bytes had arrived from the client; ``code`` the status a
    :class:`~twisted_stream.StreamingResource` answers when its handler lets the error
    through before anything was sent (None: no answer is possible or one was already given).
    """

    code: int | None = None

    def __init__(self, message: str, bytes_received: int = 0, *, code: int | None = None) -> None:
        super().__init__(message)
        self.bytes_received = bytes_received
        if code is not None:
            self.code = code


class RequestBodyTooLarge(RequestBodyError):
    """The request body is larger than its limit (``max_size``, in bytes): a declared
    ``Content-Length`` over it before any byte was read, or a chunked (or HTTP/2) body
    passing it. The server answers ``413`` if nothing was sent yet, and reads no more of it:
    HTTP/1.1 closes the connection, HTTP/2 resets the stream."""

    code = 413

    def __init__(self, message: str, bytes_received: int = 0, max_size: int = 0) -> None:
        super().__init__(message, bytes_received)
        self.max_size = max_size


class RequestBodyIncomplete(RequestBodyError):
    """The request body ended short: the client went away or reset the stream, its chunked
    framing was malformed (answered ``400``), it sent nothing for the idle timeout (answered
    ``408``), or the response ended first and the rest was discarded. ``bytes_received``
    says how far it got."""


class MalformedRequestBody(RequestBodyError, ValueError):
    """The request body does not parse as the form it claims to be (``multipart/form-data``,
    ``application/x-www-form-urlencoded``): ``code`` is ``400``, or ``415`` when the
    ``Content-Type`` is not the one expected."""

    code = 400

    def __init__(self, message: str, bytes_received: int = 0, *, code: int = 400) -> None:
        super().__init__(message, bytes_received, code=code)


class MultipartUnavailable(RequestBodyError, ImportError):
    """:func:`~twisted_stream.multipart_parts` cannot parse a form: python-multipart (the
    ``multipart`` extra) is not installed. A server fault, so the answer is ``500``, with a
    plain-text line saying that forms cannot be parsed here (still an ``ImportError``, what
    it was before it answered)."""

    code = 500


class ChannelBackendError(StreamError):
    """A shared :class:`~twisted_stream.Channel`'s backend (Redis) did not accept an event:
    it cannot be reached, or it answered with an error (the message says which)."""


class StateError(StreamError, RuntimeError):
    """A signal arrived in a stream state where it cannot happen: a bug in the engine."""


class HTTPRefusal(StreamError):
    """A request is answered with ``code`` and a short plain-text ``message`` instead of a
    body (a path that names no servable file, a failed precondition...)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MalformedRange(StreamError, ValueError):
    """A range-spec of a ``Range`` header does not follow the grammar (RFC 9110 §14.1.1);
    the header is then ignored."""


class UpstreamProtocolError(StreamError):
    """An upstream response the reverse proxy's client will not relay: its head is too
    large, its framing ambiguous, or its status impossible. Raised out of Twisted's parser,
    so the request fails with ``ResponseFailed`` (the client's 502) and the upstream
    connection is closed, never pooled."""

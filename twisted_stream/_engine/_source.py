"""The one small interface every source kind is adapted to.

The engine (:mod:`twisted_stream._engine._producer`) knows nothing about generators, files
or threads: it asks a :class:`Source` for bytes while the transport wants them and tells it
to release everything when the stream ends. Each source kind lives in its own adapter
module in :mod:`twisted_stream._sources`; :func:`twisted_stream._sources._adapt.adapt` picks
the adapter.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import NamedTuple, Protocol, TypeVar, runtime_checkable

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from .._types import Monotonic

_T = TypeVar("_T")
_log = Logger(namespace="twisted_stream")


class _EOF(enum.Enum):
    """The source has nothing more to give."""

    EOF = "EOF"


EOF = _EOF.EOF
"""Returned (or delivered by a Deferred) by :meth:`Source.read` once the source is exhausted."""


class Heartbeat(bytes):
    """Bytes that keep an idle connection alive but are not data (an event-stream comment):
    a read returning them does not count as the source producing something, so they do not
    reset the idle timeout."""


Ready = bytes | _EOF
"""What a read that needs no waiting gives: some bytes, or :data:`EOF`."""

ReadResult = bytes | _EOF | Deferred[Ready]
"""What :meth:`Source.read` returns."""


class SliceDeadline(NamedTuple):
    """When the engine's current slice ends: ``at``, in seconds of ``monotonic``.

    The engine measures time on a clock it is given (``time.monotonic`` in production, a fake
    clock in tests), so a source compares ``monotonic()`` with ``at`` rather than reading a
    clock of its own.
    """

    at: float
    monotonic: Monotonic

    def passed(self) -> bool:
        """Whether the slice is over."""
        return self.monotonic() >= self.at


class FileBody(NamedTuple):
    """A body that is exactly ``length`` bytes of the open file ``fileno`` from ``offset``:
    what a file source offers the engine to send without reading it (``sendfile``)."""

    fileno: int
    offset: int
    length: int


class Source(Protocol):
    """A body source as the engine sees it."""

    def read(self, limit: int, deadline: SliceDeadline) -> ReadResult:
        """Return body bytes that are ready now, :data:`EOF`, or a Deferred.

        ``limit`` is the engine's buffer size: an adapter coalesces small chunks up to about
        that many bytes (a single larger chunk may be returned whole; the engine splits it).
        Past ``deadline`` the adapter returns what it has (possibly ``b""``) so one stream
        cannot hold the reactor. A Deferred means the source
        has to wait; it fires with bytes or :data:`EOF`, or fails with the source's error.
        Anything buffered must be returned before waiting, never held back behind the wait.
        The engine never calls ``read`` again before a returned Deferred has fired.
        A source failure is raised (or delivered as the Deferred's failure).
        """
        ...

    def close(self) -> Deferred[None] | None:
        """Release the source at once: cancel a pending wait, close generators and files.

        Called exactly once, whatever way the stream ended (also after :data:`EOF`). May
        return a Deferred when releasing takes time (a threaded generator closes on its worker
        thread once its in-flight ``next()`` returns); it must never fail.
        """
        ...


@runtime_checkable
class FileBodySource(Source, Protocol):
    """A :class:`Source` that can also hand over its whole body as a :class:`FileBody`."""

    def file_body(self) -> FileBody | None:
        """The whole body, nothing read yet, as one region of an open regular file; None
        when it is not that (several parts, not a regular file, reading has begun). May open
        the file; the source still owns it and closes it in :meth:`Source.close`."""
        ...


def relay(inner: Deferred[_T], transform: Callable[[_T], Ready]) -> Deferred[Ready]:
    """A Deferred of ``transform(result of inner)``, for a :meth:`Source.read` to return.

    Cancelling it cancels ``inner`` (so the engine's teardown reaches what the source
    waits on); a failure of ``inner``, or an exception from ``transform``, fails it. Once it
    has fired (or was cancelled), later results of ``inner`` are dropped.
    """
    out: Deferred[Ready] = Deferred(lambda _: inner.cancel())

    def ready(result: _T) -> None:
        if out.called:
            return
        try:
            value = transform(result)
        except Exception:
            out.errback()
        else:
            out.callback(value)

    def failed(reason: Failure) -> None:
        if not out.called:
            out.errback(reason)

    inner.addCallbacks(ready, failed)
    return out


def close_source(source: Source, request_line: Callable[[], str]) -> Deferred[None] | None:
    """Close ``source`` (:meth:`Source.close`); None when it is released at once, else a
    Deferred firing once it is. It never fails: a failure to close is logged with
    ``request_line()`` (called only then)."""
    try:
        closing = source.close()
    except BaseException:
        _log.failure(
            "{request_line}: closing the stream source failed", request_line=request_line()
        )
        return None
    if closing is None:
        return None

    def closed_badly(reason: Failure) -> None:
        _log.failure(
            "{request_line}: closing the stream source failed",
            failure=reason,
            request_line=request_line(),
        )

    return closing.addErrback(closed_badly)

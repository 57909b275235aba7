"""Request bodies on HTTP/2: the part of our HTTP/2 stream (:mod:`._h2`) that finds a
request's resource when its headers arrive, streams the body to it under flow control, and
holds buffered bodies to their limit.

Twisted's ``H2Stream`` hands each DATA frame to ``request.content`` and reopens the stream's
flow-control window at once (``openStreamWindow``), with no size limit, and answers
``Expect: 100-continue`` while converting the headers. A mixin of
:class:`~._h2.StreamH2Stream` changes that:

- **The headers** complete the head: a ``:path`` that is neither a path nor ``*`` with
  ``OPTIONS`` is answered ``400``, and ``CONNECT`` ``501`` (:func:`~._head.target_problem`:
  the h2 library checks only that ``:path`` is not empty, and Twisted routes ``xadmin`` as
  ``/admin``). If a body follows (no ``END_STREAM`` on HEADERS) the
  resource is found then (:func:`~._twisted.traverse_early`). A leaf that streams bodies is
  rendered at once; ``100 Continue`` waits for its first read. For any other, a declared
  ``content-length`` over its limit is answered ``413`` before any DATA is taken, and DATA
  past the limit likewise; otherwise ``100 Continue`` goes out as Twisted sends it.
- **Flow control is the backpressure**: a streamed body's DATA is held, with its
  flow-controlled length, until the application takes it; only then is the stream's window
  reopened (:meth:`consumed`). A client can send at most one window (64 KiB unless the
  server's settings say otherwise) that nobody asked for.
- **A response done first** (or a ``413``) ends our side of the stream, then resets it with
  ``NO_ERROR`` (RFC 9113 §8.1): the client stops sending, nothing more is read.
- A client that resets the stream or leaves fails the body with
  :class:`~twisted_stream.RequestBodyIncomplete`; a failed body (past its limit, idle for
  the timeout) is answered ``413``/``408`` if nothing was sent, else the stream is reset.
"""

from __future__ import annotations

import io
from typing import Any

from .._errors import RequestBodyError, RequestBodyIncomplete, RequestBodyTooLarge
from .._settings import DEFAULT_SETTINGS, StreamSettings
from .._types import UploadRegistry
from ._body import RequestBody
from ._head import target_problem
from ._request_body import attach, resource_body_limit, streams_body
from ._twisted import (
    answer_body_error,
    answer_status,
    headers_sent,
    process_early,
    traverse_early,
)


class H2BodyStreaming:
    """The request-body half of :class:`~._h2.StreamH2Stream` (see the module)."""

    _streamed: RequestBody | None = None
    _expects_continue = False
    reset_after_end = False
    """Reset the stream (``NO_ERROR``) once the end of the response is sent: its body is
    left unread."""
    _limit = 0
    _received = 0
    _refused = False

    # Provided by H2Stream.
    _request: Any
    _conn: Any
    streamID: int
    site: Any

    def _send100Continue(self) -> None:
        # Twisted's _convertHeaders calls it before the resource is known: held.
        self._expects_continue = True

    def _settings(self) -> StreamSettings:
        found = getattr(self.site, "stream_settings", None)
        return found if isinstance(found, StreamSettings) else DEFAULT_SETTINGS

    def head_complete(self, has_body: bool) -> None:
        """The request's headers are all in; ``has_body`` when DATA follows."""
        request = self._request
        stream: Any = self
        path = stream.path or b""  # None for CONNECT, which has no :path
        problem = target_problem(stream.command, path, absolute=False)
        if problem is not None:  # the h2 library checks only that :path is not empty
            self._refused = True
            request.method, request.uri, request.clientproto = stream.command, path, b"HTTP/2"
            answer_status(request, *problem)
            return
        if has_body:
            resource = traverse_early(request, stream.command, stream.path, b"HTTP/2")
            settings = self._settings()
            limit = resource_body_limit(resource)
            if limit is None:
                limit = settings.max_body_size
            if streams_body(resource):
                self._start(request, limit, settings)
                process_early(request)
                return
            declared = _declared_length(request)
            if limit and declared is not None and declared > limit:
                self._refuse_buffered(
                    RequestBodyTooLarge(
                        f"the body of {declared} bytes is over the limit of {limit} bytes",
                        0,
                        limit,
                    )
                )
                return
            self._limit = limit
        if self._expects_continue:
            self._conn._send100Continue(self.streamID)

    def _start(self, request: Any, limit: int, settings: StreamSettings) -> None:
        site = self.site
        conn = self._conn
        body = RequestBody(
            self,
            length=_declared_length(request),
            max_size=limit,
            buffer_size=settings.buffer_size,
            clock=conn._reactor,
            idle_timeout=settings.idle_timeout or getattr(conn, "timeOut", None) or 0.0,
            expect_continue=self._expects_continue,
            request=request,
            registry=site if isinstance(site, UploadRegistry) else None,
            monotonic=getattr(site, "monotonic", None),
        )
        content = getattr(request, "content", None)
        if content is not None:
            content.close()  # Twisted's temporary file for a declared large body, unused
        request.content = io.BytesIO()
        attach(request, body)
        self._streamed = body

    def _refuse_buffered(self, error: RequestBodyError) -> None:
        """Answer a buffered body's ``error`` (its status) and stop reading it."""
        self._refused = True
        if not answer_body_error(self._request, error):
            self._conn.abortRequest(self.streamID)

    # Events of the stream.

    def receiveDataChunk(self, data: bytes, flowControlledLength: int) -> None:
        body = self._streamed
        if body is not None:
            body.feed(data, flowControlledLength)
            return
        if self._refused:
            self._conn.openStreamWindow(self.streamID, flowControlledLength)
            return
        limit = self._limit
        if limit:
            self._received += len(data)
            if self._received > limit:
                self._conn.openStreamWindow(self.streamID, flowControlledLength)
                self._refuse_buffered(
                    RequestBodyTooLarge(
                        f"the body is over the limit of {limit} bytes", self._received, limit
                    )
                )
                return
        super().receiveDataChunk(data, flowControlledLength)  # type: ignore[misc]

    def requestComplete(self) -> None:
        body = self._streamed
        if body is not None:
            body.finish()
        elif not self._refused:
            super().requestComplete()  # type: ignore[misc]

    def requestDone(self, request: Any) -> None:
        body = self._streamed
        if self._refused or (body is not None and not body.complete):
            self.reset_after_end = True
            if body is not None:
                body.lose(
                    RequestBodyIncomplete(
                        "the response ended before the body was read", body.bytes_received
                    ),
                    "discarded",
                )
        super().requestDone(request)  # type: ignore[misc]

    def connectionLost(self, reason: Any) -> None:
        # The request hears first (its body fails from its notifyFinish errback).
        super().connectionLost(reason)  # type: ignore[misc]
        body = self._streamed
        if body is not None:
            body.lose(
                RequestBodyIncomplete(
                    f"the stream was reset after {body.bytes_received} bytes of the body",
                    body.bytes_received,
                )
            )

    # BodySource.

    def want(self, more: bool) -> None:
        pass  # the stream's flow-control window is the backpressure (consumed)

    def consumed(self, flow: int) -> None:
        if self.streamID in self._conn.streams:
            self._conn.openStreamWindow(self.streamID, flow)

    def send_continue(self) -> None:
        if not headers_sent(self._request) and self.streamID in self._conn.streams:
            self._conn._send100Continue(self.streamID)

    def refuse(self, error: RequestBodyError) -> None:
        request = self._request
        if getattr(request, "finished", False) or self.streamID not in self._conn.streams:
            return
        if not answer_body_error(request, error):
            self._conn.abortRequest(self.streamID)


def _declared_length(request: Any) -> int | None:
    found = request.requestHeaders.getRawHeaders(b"content-length")
    if not found:
        return None
    try:
        return int(found[0])
    except ValueError:
        return None

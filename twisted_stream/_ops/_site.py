"""A Site that carries stream settings, owns a thread pool and registers its streams."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.web.http import Request
from twisted.web.server import Site

from .._backends._current import set_channel_backend
from .._backends._shared import SharedBackend
from .._engine._stream import Stream
from .._http._body import RequestBody
from .._http._clients import ClientConnections
from .._http._protocol import h2_connection_class, http_protocol
from .._http._twisted import resume_traversal
from .._settings import StreamSettings
from .._sources._pool import StreamThreadPool
from .._types import Monotonic
from ._limits import refusal
from ._metrics import StreamMetrics

_log = Logger(namespace="twisted_stream")


class StreamSite(Site):
    """``twisted.web.server.Site`` plus site-wide :class:`StreamSettings`, a registry of the
    streams it is serving (for graceful shutdown, limits, metrics and the status page) and
    the thread pool of its ``threaded=True`` sources.

    It implements :class:`~twisted_stream._types.StreamRegistry`: streams are admitted
    (or refused for a limit) and registered here. Its access log stays open after its ports
    stop listening until its last stream has ended, so a stream ended at shutdown (by
    :class:`~twisted_stream.GracefulShutdown` or its client) still gets its line.
    ``monotonic`` is the clock the site's streams measure durations on (``time.monotonic``;
    a test assigns its fake clock's ``seconds``).

    Access-log lines are formatted and written once per reactor turn, in the order their
    responses ended, not inside ``Request.finish()``: a short streamed response ends within
    its first slice, and its bytes are then sent before its line is formatted (the line
    cost as much as a fifth of the time to first byte). Stopping the site writes the lines
    still waiting before it closes the log.

    Its connections are served by our HTTP channel (:mod:`twisted_stream._http._channel`),
    which bounds what a client may send (the settings ``header_timeout``,
    ``max_header_size``, ``max_body_size``, ``max_read_ahead``,
    ``max_connections_per_client``) and says ``server_header`` as ``Server``. For a request
    with a body, resources are found when its head is complete (``getResourceFor`` runs
    then, once); the request bodies streamed to resources (``active_uploads``) are
    registered and counted here too (``UploadRegistry``).
    """

    protocol = http_protocol
    h2_connection = h2_connection_class()
    """The class of the site's HTTP/2 connections (ALPN ``h2``): ours, which bounds memory
    per stream whatever window the client grants; None without the ``http2`` extra."""

    def __init__(
        self,
        resource: Any,
        *args: Any,
        settings: StreamSettings | None = None,
        channel_backend: str | SharedBackend | None = None,
        **kwargs: Any,
    ) -> None:
        """``channel_backend`` (a ``redis://`` URL or a backend) shares the named channels of
        this process through it, as :func:`~twisted_stream.set_channel_backend` does."""
        super().__init__(resource, *args, **kwargs)  # type: ignore[no-untyped-call]
        if channel_backend is not None:
            set_channel_backend(channel_backend)
        self.stream_settings = settings if settings is not None else StreamSettings()
        self.active_streams: set[Stream] = set()
        self.active_uploads: set[RequestBody] = set()
        """Request bodies being streamed to resources now."""
        self.open_uploads: set[RequestBody] = set()
        """Streamed request bodies whose requests are not finished: an upload in flight, or
        the response it produces once the body is in. Graceful shutdown waits for them as
        for open streams."""
        self.metrics = StreamMetrics()
        self.connections = ClientConnections()
        """Open connections per client, counted while ``max_connections_per_client`` is set."""
        settings = self.stream_settings
        self.thread_pool = StreamThreadPool(
            settings.thread_pool_size,
            queue_size=settings.thread_queue_size,
            queue_timeout=settings.thread_queue_timeout,
        )
        """Runs this site's threaded sources; its threads start on first use and stop with
        the reactor."""
        self.monotonic: Monotonic = time.monotonic
        self._log_queue: list[tuple[str | None, Request]] = []
        """Requests whose access-log lines wait for :meth:`_write_log`, with the time of
        their ending as the line will show it."""
        self._log_call: IDelayedCall | None = None

    def log(self, request: Request) -> None:
        """Queue the access-log line of ``request`` (ended now) for the end of this reactor
        turn; nothing when the site has no log open (as ``HTTPFactory.log``)."""
        if self._logFile is None:
            return
        self._log_queue.append((self._logDateTime, request))
        if self._log_call is None:
            self._log_call = self.reactor.callLater(0, self._write_log)

    def _write_log(self) -> None:
        """Format and write the queued access-log lines, in order."""
        self._log_call = None
        queue, self._log_queue = self._log_queue, []
        log_file, formatter = self._logFile, self._logFormatter
        if log_file is None:
            return
        for when, request in queue:
            try:
                line = formatter(when, request)
            except Exception:
                _log.failure("the access-log formatter failed for {uri!r}", uri=request.uri)
                continue
            log_file.write(line + "\n")

    def startFactory(self) -> None:
        if self._logFile is not None:
            return  # restarted while a stop waited for streams: the log is still open
        super().startFactory()

    def stopFactory(self) -> None:
        # The ports stop listening before a graceful shutdown lets open streams end, and
        # their access-log lines are written when they end: close the log after the last.
        streams: list[Deferred[Any]] = [active.when_done() for active in self.active_streams]
        streams += [upload_done(body) for body in self.open_uploads]
        if not streams:
            if self._log_call is not None:
                self._log_call.cancel()
                self._write_log()
            super().stopFactory()
            return

        def ended(_: object) -> None:
            if self.numPorts == 0:
                self.stopFactory()

        DeferredList(streams).addCallback(ended)

    def getResourceFor(self, request: Any) -> Any:
        # A request with a body had its resource tree walked when its head was complete
        # (to know whether its resource streams bodies): not again.
        found = resume_traversal(request)
        if found is None:
            return super().getResourceFor(request)  # type: ignore[no-untyped-call]
        request.site = self
        request.sitepath = []
        return found

    def upload_started(self, body: RequestBody) -> None:
        """Register a request body that starts streaming."""
        self.active_uploads.add(body)
        self.metrics.upload_started()
        request = body.request
        if request is not None:
            self.open_uploads.add(body)
            request.notifyFinish().addBoth(lambda _: self.open_uploads.discard(body))

    def upload_ended(self, body: RequestBody) -> None:
        """Unregister a streamed request body that ended (``body.outcome`` set)."""
        self.active_uploads.discard(body)
        self.metrics.upload_ended(body.bytes_received, body.outcome or "incomplete")

    def admit(self, stream: Stream, settings: StreamSettings) -> str | None:
        """Register ``stream`` as active, or say why a limit refuses it (then counted as
        rejected, never registered)."""
        reason = refusal(self.active_streams, stream.client, settings)
        if reason is not None:
            self.metrics.stream_rejected()
            return reason
        self.active_streams.add(stream)
        self.metrics.stream_started(stream.protocol)
        return None

    def stream_ended(self, stream: Stream) -> None:
        """Unregister an admitted ``stream`` that has ended and count its figures."""
        self.active_streams.discard(stream)
        if stream.first_byte_seconds is not None:
            self.metrics.first_byte(stream.first_byte_seconds)
        if stream.result is not None:
            self.metrics.stream_ended(stream.result, stream.pause_count, stream.paused_seconds)


def upload_done(body: RequestBody) -> Deferred[None]:
    """Fires (never fails) when the request of a streamed ``body`` is finished: its response
    sent, or its connection gone."""
    request = body.request
    if request is None:
        return succeed(None)
    done: Deferred[None] = request.notifyFinish()
    return done.addErrback(lambda _: None)

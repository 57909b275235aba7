"""Graceful shutdown: let active streams and uploads finish for a while, then close them.

:class:`GracefulShutdown` is a service to put beside the port services of a
:class:`~twisted_stream.StreamSite`. When the application stops (``SIGTERM``,
``reactor.stop()``), the port services stop listening and this service's ``stopService``
returns a Deferred that holds the reactor's shutdown until every stream of the site has
ended: streams get ``grace_period`` seconds to end on their own; then endless ones (event
streams, ``Stream.endless``) are ended cleanly so clients reconnect elsewhere, and every other
unfinished one is aborted so its client sees an incomplete body. Either way the stream's
source is closed (a generator's ``finally`` runs) before the Deferred fires. A request whose
body is streamed to its resource (an upload in flight, and the response it produces) counts
as an open stream: it gets the same grace period to finish, then its connection (HTTP/2: its
stream) is aborted, so its handler sees ``RequestBodyIncomplete``. An HTTP/2
connection is sent ``GOAWAY`` as soon as one of its streams is seen: its client opens no new
stream there, and the connection closes once its open streams have ended.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from .._engine._stream import Stream
from .._http._body import RequestBody
from .._http._twisted import (
    abort_connection,
    multiplexed_connection_of,
    request_line,
    transport_of,
)
from .._sources._stream import default_reactor
from .._types import Clock, MultiplexedConnection, StreamRequest
from ._site import StreamSite, upload_done

_log = Logger(namespace="twisted_stream.shutdown")

DEFAULT_GRACE_PERIOD = 5.0
"""Seconds active streams get to end on their own once shutdown starts."""

DEFAULT_CLOSE_TIMEOUT = 5.0
"""Longest wait for closed sources to be released (a threaded generator closes on its worker
thread once its running ``next()`` returns)."""

SHUTDOWN_REASON = "the server is shutting down"


class GracefulShutdown(Service):
    """Drains a :class:`~twisted_stream.StreamSite`'s streams and uploads (requests whose
    bodies stream to their resources) when the application stops.

    Add it to the same parent as the site's port services, *before* them: a
    ``MultiService`` stops its children in reverse order, so the ports stop listening first.
    ``clock`` (an ``IReactorTime``) runs the grace timer; the global reactor by default.
    """

    name = "graceful-shutdown"

    def __init__(
        self,
        site: StreamSite,
        grace_period: float = DEFAULT_GRACE_PERIOD,
        *,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        clock: Clock | None = None,
    ) -> None:
        if not grace_period >= 0:
            raise ValueError(f"grace_period must be zero or more seconds, not {grace_period}")
        if not close_timeout >= 0:
            raise ValueError(f"close_timeout must be zero or more seconds, not {close_timeout}")
        self.site = site
        self.grace_period = grace_period
        self.close_timeout = close_timeout
        self._clock: Clock = clock if clock is not None else default_reactor(None)
        self.draining = False
        """True once shutdown has started."""
        self._drained: Deferred[None] | None = None

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        return self.drain()

    def drain(self) -> Deferred[None]:
        """Start draining (once) and return a Deferred firing when every stream and upload
        has ended and every stream's source has been released. It never fails."""
        if self._drained is None:
            self.draining = True
            self._drained = _Drain(self).done
        out: Deferred[None] = Deferred()

        def fire(result: None) -> None:
            out.callback(None)
            return result

        self._drained.addCallback(fire)
        return out


class _Drain:
    """One run of the shutdown procedure."""

    def __init__(self, owner: GracefulShutdown) -> None:
        self._owner = owner
        self._streams = owner.site.active_streams
        self._uploads = owner.site.open_uploads
        self._released: dict[Stream, Deferred[None]] = {}
        """Each stream followed, and its source's release."""
        self._followed: set[RequestBody] = set()
        """Each upload followed."""
        self._transports: list[Any] = []
        """Transports of the streams' connections (TCP or TLS, in practice)."""
        self._multiplexed: list[MultiplexedConnection] = []
        """HTTP/2 connections of the streams, each sent GOAWAY once."""
        self._timer: IDelayedCall | None = None
        self._finishing = False
        self.done: Deferred[None] = Deferred()
        if not (self._streams or self._uploads):
            self.done.callback(None)
            return
        _log.info(
            "Shutting down: waiting up to {grace} s for {count} active stream(s) and "
            "{uploads} upload(s)",
            grace=owner.grace_period,
            count=len(self._streams),
            uploads=len(self._uploads),
        )
        self._timer = owner._clock.callLater(owner.grace_period, self._close_all)
        self._watch()

    def _watch(self) -> None:
        """Follow every stream and upload of the site (new requests may still arrive on
        open connections while we wait), and finish once none is left."""
        for active in list(self._streams):
            if active not in self._released:
                self._released[active] = active.source_closed
                self._follow_connection(active.request)
                active.when_done().addCallback(lambda _: self._one_ended())
        for body in list(self._uploads):
            if body not in self._followed and body.request is not None:
                self._followed.add(body)
                self._follow_connection(body.request)
                upload_done(body).addCallback(lambda _: self._one_ended())
        if not (self._streams or self._uploads):
            self._finish()

    def _follow_connection(self, request: StreamRequest) -> None:
        """Note the connection of ``request``, to close it gracefully at the end; an HTTP/2
        one is sent GOAWAY now."""
        transport = transport_of(request)
        if transport is not None and transport not in self._transports:
            self._transports.append(transport)
        connection = multiplexed_connection_of(request)
        if connection is not None and connection not in self._multiplexed:
            self._multiplexed.append(connection)
            connection.go_away()

    def _one_ended(self) -> None:
        if not self._finishing:
            self._watch()

    def _close_all(self) -> None:
        self._timer = None
        remaining = list(self._streams)
        ended = aborted = 0
        for active in remaining:
            if active.endless:
                ended += 1
                active.end()
            else:
                aborted += 1
                active.abort(SHUTDOWN_REASON)
        uploads = [body for body in self._uploads if body.request is not None]
        for body in uploads:
            request = body.request
            assert request is not None
            _log.info(
                "Shutting down: aborting the unfinished upload {request} from {client} after "
                "{received} body bytes",
                request=request_line(request),
                client=_client(request),
                received=body.bytes_received,
            )
            abort_connection(request, self._owner._clock, flush=False)
        _log.info(
            "Grace period over: ended {ended} endless stream(s), aborted {aborted} unfinished "
            "one(s) and {uploads} unfinished upload(s)",
            ended=ended,
            aborted=aborted,
            uploads=len(uploads),
        )
        self._watch()
        if not self._finishing:
            # A stream that did not end on end()/abort(): nothing more we can do for it.
            self._finish()

    def _finish(self) -> None:
        if self._finishing:
            return
        self._finishing = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        owner = self._owner
        waited: Deferred[None] = Deferred()
        # Not DeferredList.addTimeout: cancelling a DeferredList fires it with the members'
        # failures as a *result*, so the timeout would never show.
        released: Deferred[Any] = DeferredList(list(self._released.values()), consumeErrors=True)
        timer = owner._clock.callLater(owner.close_timeout, self._give_up, waited)

        def all_released(_: object) -> None:
            if timer.active():
                timer.cancel()
            if not waited.called:
                waited.callback(None)

        released.addCallback(all_released)
        waited.addCallback(lambda _: self._close_connections())
        waited.addBoth(lambda _: self.done.callback(None))

    def _give_up(self, waited: Deferred[None]) -> None:
        """``close_timeout`` passed with sources still busy (a threaded one stuck in a
        blocking call): name them in one line and go on; their threads do not hold the
        process."""
        busy = [active for active, released in self._released.items() if not released.called]
        _log.warn(
            "Shutting down: {count} stream source(s) still busy after {timeout} s, left "
            "behind: {sources}",
            count=len(busy),
            timeout=self._owner.close_timeout,
            sources="; ".join(f"{request_line(a.request)} from {a.client}" for a in busy),
        )
        if not waited.called:
            waited.callback(None)

    def _close_connections(self) -> Deferred[None]:
        """Close the streams' connections once Twisted has sent what it holds for them.

        The reactor's shutdown drops every connection with what is still in its write buffer
        (``disconnectAll``): the end of a stream that finished a moment ago would be lost. So
        each connection is closed gracefully (``loseConnection`` flushes first) and this
        fires once all are closed, or after ``close_timeout`` seconds.
        """
        closing = [t for t in self._transports if _is_open(t)]
        for transport in closing:
            transport.loseConnection()
        # An HTTP/2 connection closes itself once its streams' responses are sent (GOAWAY).
        closing += [c.transport for c in self._multiplexed if _is_open(c.transport)]
        done: Deferred[None] = Deferred()
        if not closing:
            done.callback(None)
            return done
        # This waits on real sockets, so it polls on the real reactor and real time, not on
        # the grace clock (which a test may drive by hand).
        reactor = default_reactor(None)
        deadline = time.monotonic() + self._owner.close_timeout

        def check() -> None:
            # No transport event says "flushed and closed": look again every few ms.
            if not any(_is_open(t) for t in closing) or time.monotonic() >= deadline:
                done.callback(None)
            else:
                reactor.callLater(_FLUSH_CHECK_SECONDS, check)

        check()
        return done


_FLUSH_CHECK_SECONDS = 0.005


def _client(request: StreamRequest) -> str:
    """The peer address of ``request``, for log lines."""
    peer = request.getClientAddress()
    host = getattr(peer, "host", None)
    return f"{host}:{getattr(peer, 'port', '')}" if host is not None else str(peer)


def _is_open(transport: Any) -> bool:
    """Whether ``transport`` (a TCP or TLS transport, in practice) is still connected."""
    if getattr(transport, "disconnected", False):
        return False
    return bool(getattr(transport, "connected", False))

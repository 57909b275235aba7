"""The live status page of a :class:`~twisted_stream.StreamSite`.

:class:`StatusResource` answers:

- ``GET PATH``: an HTML page listing the active streams (path, client, bytes sent, current
  rate, paused or not, age) and the site's totals (the figures of :mod:`._metrics`). It is
  complete as served (it works without JavaScript) and then kept live by a script reading
  the event stream below;
- ``GET PATH?events``: an event stream (:func:`~._events.stream_events`) that sends one
  snapshot (JSON in a ``data:`` line) at once and one every ``interval`` seconds; it is a
  stream of the engine like any other, so it has flow control, a slow viewer is held to
  its pace, and graceful shutdown ends it cleanly;
- ``GET PATH?json``: one snapshot as ``application/json``.

A snapshot lists at most ``max_rows`` streams (oldest first; ``shown`` < ``active`` says some
were left out); the totals always cover all of them. The "current rate" is the bytes a stream
sent since the previous snapshot of the same feed divided by the time between them (for a
stream seen for the first time, and in ``?json``, its average since it started). The event
streams of the status page are streams of the site like any other: they appear in the list
and the totals.

The page shows client addresses and request paths: mount it where only operators reach it.
:class:`~._mounts.Mounts` puts it (and :class:`~._prometheus.MetricsResource`) at a path in
front of any root resource, a leaf such as ``FileResource`` included.
"""

from __future__ import annotations

import itertools
import time
import weakref
from collections.abc import Iterator
from typing import Any, cast

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.web.resource import IResource
from twisted.web.server import Request
from zope.interface import implementer

from .._engine._stream import Stream
from .._events._event_stream import stream_events
from .._events._sse import Event
from .._http._methods import MethodsResource
from .._sources._stream import default_reactor
from .._types import Reactor, StreamRequest
from ._cluster import cluster_of
from ._site import StreamSite
from ._status_page import render_page, script_json

DEFAULT_INTERVAL = 1.0
"""Seconds between two snapshots of the live feed."""
DEFAULT_MAX_ROWS = 500
"""Most streams listed in one snapshot."""
RECONNECT_MS = 2000
"""How long a browser waits before reconnecting a lost feed (the event stream's ``retry``)."""

_JSON = "application/json; charset=utf-8"


class _Rates:
    """Bytes per second of each stream between two snapshots of one feed."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[int, float]] = {}

    def rate(self, key: int, stream: Stream, now: float) -> float:
        sent = stream.bytes_sent
        previous = self._last.get(key)
        self._last[key] = (sent, now)
        if previous is None:
            age = stream.age
            return sent / age if age > 0 else 0.0
        elapsed = now - previous[1]
        return (sent - previous[0]) / elapsed if elapsed > 0 else 0.0

    def forget_except(self, keys: set[int]) -> None:
        for key in [k for k in self._last if k not in keys]:
            del self._last[key]


@implementer(IResource)
class StatusResource(MethodsResource):
    """The live status page of ``site`` (None: of the site serving each request).

    ``interval`` is the seconds between two snapshots of the live feed (keep it below the
    site's ``idle_timeout``, if one is set: the feed is a stream like any other); ``max_rows``
    the most streams one snapshot lists.
    """

    isLeaf = True

    def __init__(
        self,
        site: StreamSite | None = None,
        *,
        interval: float = DEFAULT_INTERVAL,
        max_rows: int = DEFAULT_MAX_ROWS,
        reactor: Reactor | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if not interval > 0:
            raise ValueError(f"interval must be positive, not {interval}")
        if max_rows < 0:
            raise ValueError(f"max_rows must not be negative, not {max_rows}")
        self.site = site
        self.interval = interval
        self.max_rows = max_rows
        self._reactor = reactor
        self._ids: weakref.WeakKeyDictionary[Stream, int] = weakref.WeakKeyDictionary()
        self._next_id = itertools.count(1)

    # Snapshots.

    def _site_for(self, request: StreamRequest) -> StreamSite | None:
        site = self.site if self.site is not None else getattr(request, "site", None)
        return site if isinstance(site, StreamSite) else None

    def _id(self, stream: Stream) -> int:
        found = self._ids.get(stream)
        if found is None:
            found = self._ids[stream] = next(self._next_id)
        return found

    def snapshot(self, site: StreamSite, rates: _Rates | None = None) -> dict[str, Any]:
        """The site's active streams and totals as a JSON-ready mapping (of a worker of
        ``--workers N``: those of every worker, each stream row with its ``worker``)."""
        local = self.local_snapshot(site, rates)
        cluster = cluster_of(site)
        return local if cluster is None else cluster.merge_status(local)

    def local_snapshot(self, site: StreamSite, rates: _Rates | None = None) -> dict[str, Any]:
        """The active streams and totals of ``site`` in this process."""
        active = list(site.active_streams)
        now = site.monotonic()
        listed = sorted(active, key=lambda s: s.started_at)[: self.max_rows]
        streams = []
        for stream in listed:
            key = self._id(stream)
            age = max(0.0, now - stream.started_at)
            if rates is not None:
                rate = rates.rate(key, stream, now)
            else:
                rate = stream.bytes_sent / age if age > 0 else 0.0
            streams.append(
                {
                    "id": key,
                    "path": stream.path,
                    "client": stream.client,
                    "bytes_sent": stream.bytes_sent,
                    "rate": round(rate, 1),
                    "paused": stream.paused,
                    "state": stream.state.value,
                    "age": round(age, 3),
                }
            )
        if rates is not None:
            rates.forget_except({self._id(s) for s in listed})
        totals = site.metrics.snapshot(active)
        return {
            "time": time.time(),
            "active": len(active),
            "shown": len(streams),
            "streams": streams,
            "totals": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in totals.items()},
        }

    # Rendering.

    def render_GET(self, request: Request) -> bytes | int:
        site = self._site_for(request)
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        if request.postpath not in ([], [b""]):
            return _plain(request, 404, "Not Found")
        if site is None:
            return _plain(request, 500, "No status: this site is not a twisted_stream StreamSite.")
        asked = _query_names(request)
        if b"events" in asked:
            # HEAD too: the engine sends the event stream's headers and never reads it.
            return self._feed(request, site)
        if b"json" in asked:
            request.setHeader(b"content-type", _JSON.encode("ascii"))
            return script_json(self.snapshot(site)).encode("utf-8") + b"\n"
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(
            b"content-security-policy",
            b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            b"connect-src 'self'",
        )
        return render_page(self.snapshot(site)).encode("utf-8")

    def _feed(self, request: StreamRequest, site: StreamSite) -> int:
        # No heartbeat: a snapshot goes out every interval anyway.
        return stream_events(
            request, self._events(site), heartbeat=None, retry=RECONNECT_MS, reactor=self._clock()
        )

    def _clock(self) -> Reactor:
        return default_reactor(self._reactor)

    def _events(self, site: StreamSite) -> Iterator[object]:
        """The feed: a snapshot now, then one every ``interval`` seconds, until closed."""
        rates = _Rates()

        def event() -> Event:
            return Event(script_json(self.snapshot(site, rates)))

        yield event()
        clock = self._clock()
        while True:
            # Our Reactor Protocol is part of IReactorTime; deferLater is typed for it.
            yield deferLater(cast(IReactorTime, clock), self.interval, event)


def _query_names(request: StreamRequest) -> set[bytes]:
    """The names in the query string, with or without a value (``?events`` included, which
    ``request.args`` leaves out)."""
    query = bytes(request.uri).partition(b"?")[2]
    return {item.partition(b"=")[0] for item in query.replace(b";", b"&").split(b"&")}


def _plain(request: StreamRequest, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return message.encode("utf-8") + b"\n"

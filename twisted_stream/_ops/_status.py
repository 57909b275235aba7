"""The live status page of a :class:`~twisted_stream.StreamSite`.

:class:`StatusResource` answers:

- ``GET PATH``: an HTML page with charts of the last five minutes (total throughput, active,
  paused and stalled streams, outcomes per interval), the active streams (path, client,
  protocol, kind, bytes sent, current rate with a sparkline, state, time to first byte, age)
  and the request bodies being streamed in (kind ``upload``: bytes received and their rate)
  and the site's totals (the figures of :mod:`._metrics`), every number formatted for
  people. The tables are complete as served (they work without JavaScript); a script then
  keeps everything live from the event stream below and draws the charts as inline SVG (no
  library, nothing fetched: the page works offline);
- ``GET PATH?events``: an event stream (:func:`~._events.stream_events`) that sends one
  snapshot (JSON in a ``data:`` line) at once, with the history the charts need
  (``history``), and one every ``interval`` seconds, each with the newest history sample
  (``sample``) and those taken since the feed's previous snapshot (``samples``); it is a
  stream of the engine like any other, so it has flow control, a slow viewer is held to
  its pace, and graceful shutdown ends it cleanly;
- ``GET PATH?json``: one snapshot, with the history, as ``application/json``.

The chart history (:meth:`StatusResource.history`) is kept from the first request, or from
start-up under ``twistd streamweb --status``, one sample per ``interval``, whether or not
a page is open.

A snapshot lists at most ``max_rows`` streams (oldest first; ``shown`` < ``active`` says
some were left out); the counts and totals always cover all of them. The status page's own event
streams are neither listed nor counted (:class:`~._status_snapshot.FeedLedger`). The
"current rate" is the bytes a stream sent since the previous snapshot of the same feed
divided by the time between them (for a stream seen for the first time, and in ``?json``,
its average since it started). A stream is "stalled" once it has been paused by its client
for :data:`~._status_snapshot.STALLED_AFTER` seconds without sending a byte.

The page shows client addresses and request paths: mount it where only operators reach it.
:class:`~._mounts.Mounts` puts it (and :class:`~._prometheus.MetricsResource`) at a path in
front of any root resource, a leaf such as ``FileResource`` included.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterator
from typing import cast

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.web.resource import IResource
from twisted.web.server import Request
from zope.interface import implementer

from .._engine._outcome import Outcome
from .._engine._stream import Stream, stream_for
from .._events._event_stream import stream_events
from .._events._sse import Event
from .._http._methods import MethodsResource
from .._sources._stream import default_reactor
from .._types import Reactor, StreamRequest
from ._cluster import cluster_of
from ._site import StreamSite
from ._status_page import CONTENT_SECURITY_POLICY, render_page, script_json
from ._status_snapshot import (
    HISTORY_SECONDS,
    STALLED_AFTER,
    History,
    Progress,
    Rates,
    Snapshot,
    ledger_of,
    stream_row,
    upload_row,
    wall_clock,
)

DEFAULT_INTERVAL = 1.0
"""Seconds between two snapshots of the live feed, and between two points of the charts."""
DEFAULT_MAX_ROWS = 500
"""Most streams listed in one snapshot."""
RECONNECT_MS = 2000
"""How long a browser waits before reconnecting a lost feed (the event stream's ``retry``)."""

_JSON = "application/json; charset=utf-8"
_log = Logger(namespace="twisted_stream")


@implementer(IResource)
class StatusResource(MethodsResource):
    """The live status page of ``site`` (None: of the site serving each request).

    ``interval`` is the seconds between two snapshots of the live feed and between two
    points of the charts (keep it below the site's ``idle_timeout``, if one is set: the feed
    is a stream like any other); ``window`` the seconds the charts cover (five minutes);
    ``max_rows`` the most streams one snapshot lists. Raises ``ValueError`` for a
    non-positive interval or window or a negative ``max_rows``.
    """

    isLeaf = True

    def __init__(
        self,
        site: StreamSite | None = None,
        *,
        interval: float = DEFAULT_INTERVAL,
        max_rows: int = DEFAULT_MAX_ROWS,
        window: float = HISTORY_SECONDS,
        reactor: Reactor | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if not interval > 0:
            raise ValueError(f"interval must be positive, not {interval}")
        if not window > 0:
            raise ValueError(f"window must be positive, not {window}")
        if max_rows < 0:
            raise ValueError(f"max_rows must not be negative, not {max_rows}")
        self.site = site
        self.interval = interval
        self.max_rows = max_rows
        self.window = window
        self._reactor = reactor
        self._ids: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        self._next_id = itertools.count(1)
        self._progress = Progress()
        self._histories: weakref.WeakKeyDictionary[StreamSite, History] = (
            weakref.WeakKeyDictionary()
        )

    # Snapshots.

    def _site_for(self, request: StreamRequest) -> StreamSite | None:
        site = self.site if self.site is not None else getattr(request, "site", None)
        return site if isinstance(site, StreamSite) else None

    def _id(self, item: object) -> int:
        found = self._ids.get(item)
        if found is None:
            found = self._ids[item] = next(self._next_id)
        return found

    def history(self, site: StreamSite) -> History:
        """The chart history of ``site``, kept from the first call on: one sample per
        ``interval``, taken by a timer that stops once this page or the site is gone, or
        once the site's ports have all stopped listening. ``twistd streamweb --status``
        calls it at start-up; otherwise it starts with the first request to the page."""
        found = self._histories.get(site)
        if found is None:
            found = self._histories[site] = History(self.interval, self.window)
            _keep_sampling(weakref.ref(self), weakref.ref(site), self.interval, self._clock())
        return found

    def sample(self, site: StreamSite) -> Snapshot | None:
        """Take a history sample of ``site`` if one is due; the newest sample."""
        now = site.monotonic()
        active, paused_for = self._observe(site, now)
        snap = {
            "time": wall_clock(),
            "active": len(active),
            "paused": sum(1 for s in active if s.paused),
            "stalled": sum(1 for s in active if paused_for[s] >= STALLED_AFTER),
            "totals": ledger_of(site).totals(site, active),
        }
        return self.history(site).record(now, snap)

    def _observe(self, site: StreamSite, now: float) -> tuple[list[Stream], dict[Stream, float]]:
        """The site's streams (status feeds left out) and how long each has been paused
        without sending."""
        active = ledger_of(site).streams(site)
        return active, {stream: self._progress.paused_for(stream, now) for stream in active}

    def snapshot(self, site: StreamSite, rates: Rates | None = None) -> Snapshot:
        """The site's active streams (status feeds left out), their counts and the site's
        totals as a JSON-ready mapping; ``rates`` measures each stream's rate since the
        previous snapshot of one feed (None: its average since it started). Served by a
        worker of ``--workers N``: the streams and totals of every worker, each stream row
        with its ``worker`` (the charts' history stays this worker's)."""
        local = self.local_snapshot(site, rates)
        cluster = cluster_of(site)
        return local if cluster is None else cluster.merge_status(local)

    def local_snapshot(self, site: StreamSite, rates: Rates | None = None) -> Snapshot:
        """:meth:`snapshot` of the streams of this process only."""
        ledger = ledger_of(site)
        now = site.monotonic()
        active, paused_for = self._observe(site, now)
        listed = sorted(active, key=lambda s: s.started_at)[: self.max_rows]
        rows = []
        for stream in listed:
            key = self._id(stream)
            if rates is not None:
                rate = rates.rate(key, stream, now)
            else:
                age = now - stream.started_at
                rate = stream.bytes_sent / age if age > 0 else 0.0
            rows.append(stream_row(stream, key, now, rate, paused_for[stream]))
        shown = len(rows)
        uploads = sorted(site.active_uploads, key=lambda b: b.started_at)[: self.max_rows]
        trust = site.stream_settings.trust_forwarded_for
        for body in uploads:
            key = self._id(body)
            age = now - body.started_at
            if rates is not None:
                rate = rates.rate_of(key, body.bytes_received, age, now)
            else:
                rate = body.bytes_received / age if age > 0 else 0.0
            rows.append(upload_row(body, key, now, rate, trust))
        if rates is not None:
            rates.forget_except({self._id(s) for s in listed} | {self._id(b) for b in uploads})
        totals = ledger.totals(site, active)
        return {
            "time": wall_clock(),
            "interval": self.interval,
            "active": len(active),
            "shown": shown,
            "uploads": len(site.active_uploads),
            "paused": sum(1 for s in active if s.paused),
            "stalled": sum(1 for s in active if paused_for[s] >= STALLED_AFTER),
            "streams": rows,
            "totals": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in totals.items()},
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
        self.history(site)  # kept from now on, if it was not already
        asked = _query_names(request)
        if b"events" in asked:
            # HEAD too: the engine sends the event stream's headers and never reads it.
            return self._feed(request, site)
        if b"json" in asked:
            request.setHeader(b"content-type", _JSON.encode("ascii"))
            snap = self.snapshot(site)
            snap["history"] = self.history(site).recent(snap["time"])
            return script_json(snap).encode("utf-8") + b"\n"
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii"))
        return render_page(self.snapshot(site), window=self.window).encode("utf-8")

    def _feed(self, request: StreamRequest, site: StreamSite) -> int:
        # No heartbeat: a snapshot goes out every interval anyway.
        result = stream_events(
            request,
            self._events(request, site),
            heartbeat=None,
            retry=RECONNECT_MS,
            reactor=self._clock(),
        )
        handle = stream_for(request)
        if handle is not None and handle.outcome is Outcome.REJECTED:
            ledger_of(site).refused()
        return result

    def _clock(self) -> Reactor:
        return default_reactor(self._reactor)

    def _events(self, request: StreamRequest, site: StreamSite) -> Iterator[object]:
        """The feed: a snapshot with the chart history now, then one every ``interval``
        seconds with the newest history sample, until closed."""
        handle = stream_for(request)
        if handle is not None:  # known before the first snapshot, which must leave it out
            ledger_of(site).add(handle)
        rates = Rates()
        history = self.history(site)
        sent_until = [float("-inf")]  # the time of the newest sample this feed sent

        def event(first: bool = False) -> Event:
            snap = self.snapshot(site, rates)
            snap["sample"] = history.samples[-1] if history.samples else None
            if first:
                snap["history"] = history.recent(snap["time"])
            else:
                snap["samples"] = [s for s in history.samples if s["t"] > sent_until[0]]
            if history.samples:
                sent_until[0] = history.samples[-1]["t"]
            return Event(script_json(snap))

        yield event(first=True)
        clock = self._clock()
        while True:
            # Our Reactor Protocol is part of IReactorTime; deferLater is typed for it.
            yield deferLater(cast(IReactorTime, clock), self.interval, event)


def _keep_sampling(
    page: weakref.ref[StatusResource],
    site: weakref.ref[StreamSite],
    interval: float,
    clock: Reactor,
) -> None:
    """Call ``page.sample(site)`` every ``interval`` until the page or the site is gone or
    the site, having listened, listens no more. Only weak references are held."""
    listened = False

    def tick() -> None:
        nonlocal listened
        found_page, found_site = page(), site()
        if found_page is None or found_site is None or (listened and not found_site.numPorts):
            loop.stop()
            return
        listened = listened or found_site.numPorts > 0
        found_page.sample(found_site)

    loop = LoopingCall(tick)
    loop.clock = cast(IReactorTime, clock)
    loop.start(interval, now=True).addErrback(
        lambda failure: _log.failure("status page history stopped", failure)
    )


def _query_names(request: StreamRequest) -> set[bytes]:
    """The names in the query string, with or without a value (``?events`` included, which
    ``request.args`` leaves out)."""
    query = bytes(request.uri).partition(b"?")[2]
    return {item.partition(b"=")[0] for item in query.replace(b";", b"&").split(b"&")}


def _plain(request: StreamRequest, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return message.encode("utf-8") + b"\n"

"""What the status page shows, as JSON-ready mappings: snapshots of a site's streams and the
one-point-per-interval history its charts draw.

The status page's own event streams are streams of the site like any other (flow control,
graceful shutdown), but they are not what an operator looks for: a :class:`FeedLedger` per
site remembers them, and snapshots leave them out of the list, the counts and the totals.
"""

from __future__ import annotations

import math
import time
import weakref
from collections import deque
from collections.abc import Iterable
from typing import Any

from .._engine._outcome import Outcome
from .._engine._stream import Stream
from .._http._body import RequestBody
from .._http._twisted import client_address
from ._metrics import StreamMetrics
from ._site import StreamSite

STALLED_AFTER = 5.0
"""Seconds a paused stream must go without sending a byte to be marked stalled (the engine
aborts it after the ``stall_timeout`` setting)."""
HISTORY_SECONDS = 300.0
"""How far back the charts go, unless the status page is told otherwise."""

Snapshot = dict[str, Any]


class FeedLedger:
    """The status feeds of one site: the live ones, and the figures of those that ended, so
    snapshots can leave them all out."""

    def __init__(self) -> None:
        self.live: weakref.WeakSet[Stream] = weakref.WeakSet()
        self.ended = StreamMetrics()

    def refused(self) -> None:
        """Count a feed a limit refused (the site counts it as rejected)."""
        self.ended.stream_rejected()

    def add(self, feed: Stream) -> None:
        """Remember ``feed``, admitted by the site, before its first snapshot."""
        self.ended.stream_started()
        self.live.add(feed)
        feed.when_done().addCallback(lambda _: self._ended(feed))

    def _ended(self, feed: Stream) -> None:
        self.live.discard(feed)
        if feed.first_byte_seconds is not None:
            self.ended.first_byte(feed.first_byte_seconds)
        if feed.result is not None:
            self.ended.stream_ended(feed.result, feed.pause_count, feed.paused_seconds)

    def streams(self, site: StreamSite) -> list[Stream]:
        """The site's active streams except status feeds."""
        return [s for s in site.active_streams if s not in self.live]

    def totals(self, site: StreamSite, active: Iterable[Stream]) -> dict[str, float]:
        """The site's figures for ``active`` (its streams except feeds) and its uploads, less
        those of the feeds that ended."""
        figures = site.metrics.snapshot(active, site.active_uploads)
        feeds = self.ended.snapshot(())
        for key, value in feeds.items():
            if key != "streams_active":
                figures[key] = figures.get(key, 0) - value
        return figures


_LEDGERS: weakref.WeakKeyDictionary[StreamSite, FeedLedger] = weakref.WeakKeyDictionary()


def ledger_of(site: StreamSite) -> FeedLedger:
    """The :class:`FeedLedger` of ``site`` (shared by every status page of the site)."""
    found = _LEDGERS.get(site)
    if found is None:
        found = _LEDGERS[site] = FeedLedger()
    return found


class Rates:
    """Bytes per second of each stream between two snapshots of one feed."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[int, float]] = {}

    def rate(self, key: int, stream: Stream, now: float) -> float:
        return self.rate_of(key, stream.bytes_sent, stream.age, now)

    def rate_of(self, key: int, sent: int, age: float, now: float) -> float:
        """Bytes per second of the item ``key``, which has moved ``sent`` bytes in the
        ``age`` seconds it has lived."""
        previous = self._last.get(key)
        self._last[key] = (sent, now)
        if previous is None:
            return sent / age if age > 0 else 0.0
        elapsed = now - previous[1]
        return (sent - previous[0]) / elapsed if elapsed > 0 else 0.0

    def forget_except(self, keys: set[int]) -> None:
        for key in [k for k in self._last if k not in keys]:
            del self._last[key]


class Progress:
    """When each stream last sent a byte, to tell a stalled stream from a paused one."""

    def __init__(self) -> None:
        self._seen: weakref.WeakKeyDictionary[Stream, tuple[int, float]] = (
            weakref.WeakKeyDictionary()
        )

    def paused_for(self, stream: Stream, now: float) -> float:
        """Seconds ``stream`` has been paused without sending (0 when not paused)."""
        sent = stream.bytes_sent
        seen = self._seen.get(stream)
        if seen is None or seen[0] != sent:
            seen = self._seen[stream] = (sent, now)
        return max(0.0, now - seen[1]) if stream.paused else 0.0


class History:
    """One sample of the site per interval (total throughput, active, paused and stalled
    streams, outcomes in the interval) for the last ``window`` seconds.

    Sampled by a timer of the status page (:meth:`~._status.StatusResource.history`); a
    sample taken early is skipped, and after a gap longer than a few intervals (a reactor
    too busy to run the timer) the next one only sets a new baseline, which the charts
    draw as a gap.
    """

    def __init__(self, interval: float, window: float = HISTORY_SECONDS) -> None:
        self.interval = interval
        self.window = window
        self.samples: deque[Snapshot] = deque(maxlen=math.ceil(window / interval) + 1)
        self._base: tuple[float, float, dict[str, float]] | None = None

    def record(self, now: float, snap: Snapshot) -> Snapshot | None:
        """Take a sample from ``snap`` (a snapshot taken at monotonic ``now``) if one is
        due; return the newest sample."""
        totals = snap["totals"]
        base = self._base
        if base is not None and now - base[0] < 0.9 * self.interval:
            return self.samples[-1] if self.samples else None
        self._base = (now, totals["bytes_sent"], dict(totals))
        if base is None or now - base[0] > 3 * self.interval:
            return self.samples[-1] if self.samples else None
        elapsed = now - base[0]
        sample = {
            "t": round(snap["time"], 3),
            "rate": round(max(0.0, totals["bytes_sent"] - base[1]) / elapsed, 1),
            "active": snap["active"],
            "paused": snap["paused"],
            "stalled": snap["stalled"],
            "outcomes": {
                outcome.value: int(totals[_total_key(outcome)] - base[2][_total_key(outcome)])
                for outcome in Outcome
                if totals[_total_key(outcome)] != base[2][_total_key(outcome)]
            },
        }
        self.samples.append(sample)
        return sample

    def recent(self, wall_now: float) -> list[Snapshot]:
        """The samples of the last ``window`` seconds, oldest first."""
        return [s for s in self.samples if s["t"] >= wall_now - self.window]


def _total_key(outcome: Outcome) -> str:
    return f"streams_{outcome.value.replace('-', '_')}"


def protocol_of(stream: Stream) -> str:
    """The HTTP version the stream is served over (``Stream.protocol``: ``HTTP/1.1``,
    ``HTTP/2``)."""
    return stream.protocol or "-"


def kind_of(item: Stream | RequestBody) -> str:
    """``download`` (a response body streamed out, a :class:`Stream`) or ``upload`` (a
    request body streamed in, a :class:`~twisted_stream.RequestBody`)."""
    return "upload" if isinstance(item, RequestBody) else "download"


def stream_row(
    stream: Stream, key: int, now: float, rate: float, paused_for: float
) -> dict[str, Any]:
    """One stream as the page lists it."""
    age = max(0.0, now - stream.started_at)
    ttfb = stream.first_byte_seconds
    return {
        "id": key,
        "path": stream.path,
        "client": stream.client,
        "protocol": protocol_of(stream),
        "kind": kind_of(stream),
        "bytes_sent": stream.bytes_sent,
        "rate": round(rate, 1),
        "paused": stream.paused,
        "paused_for": round(paused_for, 3),
        "stalled": stream.paused and paused_for >= STALLED_AFTER,
        "state": stream.state.value,
        "ttfb": None if ttfb is None else round(ttfb, 6),
        "age": round(age, 3),
    }


def upload_row(
    body: RequestBody, key: int, now: float, rate: float, trust_forwarded_for: bool
) -> dict[str, Any]:
    """One request body being streamed in, as the page lists it (in the streams table,
    kind ``upload``): ``paused`` while its application has not asked for more (the socket
    or the HTTP/2 window is then held), ``waiting`` while it waits for the client."""
    request: Any = body.request
    state = "paused" if body.paused else "waiting" if body.waiting else "streaming"
    return {
        "id": key,
        "path": bytes(request.uri).decode("latin-1", "replace"),
        "client": client_address(request, trust_forwarded_for),
        "protocol": bytes(request.clientproto).decode("latin-1", "replace"),
        "kind": kind_of(body),
        "bytes_sent": 0,
        "bytes_received": body.bytes_received,
        "rate": round(rate, 1),
        "paused": body.paused,
        "paused_for": 0.0,
        "stalled": False,
        "state": state,
        "ttfb": None,
        "age": round(max(0.0, now - body.started_at), 3),
    }


def wall_clock() -> float:
    """Seconds since the epoch, the time axis of the charts."""
    return time.time()

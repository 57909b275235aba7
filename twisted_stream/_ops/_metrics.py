"""Counters and gauges about the streams a site serves."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from .._engine._outcome import Outcome, StreamResult
from .._engine._stream import Stream
from .._http._body import RequestBody

TTFB_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, float("inf"))
"""Upper bounds (seconds) of the time-to-first-byte histogram."""
UPLOAD_OUTCOMES = ("completed", "too-large", "incomplete", "discarded")
"""How a streamed request body can end (``RequestBody.outcome``)."""


class StreamMetrics:
    """What a :class:`~twisted_stream.StreamSite` has streamed, updated as streams end.

    Totals of ended streams are kept here; :meth:`snapshot` adds the live figures of the
    streams still running, so bytes and paused time are current. Request bodies streamed to
    resources (uploads) are counted too: started, ended by outcome, bytes received.
    """

    def __init__(self) -> None:
        self.started = 0
        self.started_by_protocol: Counter[str] = Counter()
        self.ended: Counter[Outcome] = Counter()
        self.bytes_sent = 0
        self.pauses = 0
        self.paused_seconds = 0.0
        self.ttfb_buckets = [0] * len(TTFB_BUCKETS)
        self.ttfb_sum = 0.0
        self.ttfb_count = 0
        self.uploads_started = 0
        self.uploads_ended: Counter[str] = Counter()
        self.bytes_received = 0

    def upload_started(self) -> None:
        """Count a request body that started streaming to a resource."""
        self.uploads_started += 1

    def upload_ended(self, bytes_received: int, outcome: str) -> None:
        """Count a streamed request body that ended: ``completed``, ``too-large``,
        ``incomplete`` or ``discarded`` (its response ended first)."""
        self.uploads_ended[outcome] += 1
        self.bytes_received += bytes_received

    def stream_started(self, protocol: str = "HTTP/1.1") -> None:
        """Count a stream that started, sent with ``protocol`` (``Stream.protocol``)."""
        self.started += 1
        self.started_by_protocol[protocol] += 1

    def stream_rejected(self) -> None:
        self.ended[Outcome.REJECTED] += 1

    def first_byte(self, seconds: float) -> None:
        """Record one stream's time to first byte."""
        self.ttfb_sum += seconds
        self.ttfb_count += 1
        for i, bound in enumerate(TTFB_BUCKETS):
            if seconds <= bound:
                self.ttfb_buckets[i] += 1
                break

    def stream_ended(self, result: StreamResult, pauses: int, paused_seconds: float) -> None:
        self.ended[result.outcome] += 1
        self.bytes_sent += result.bytes_sent
        self.pauses += pauses
        self.paused_seconds += paused_seconds

    def snapshot(
        self, active: Iterable[Stream], uploads: Iterable[RequestBody] = ()
    ) -> dict[str, float]:
        """All figures as a flat mapping, including the running ``active`` streams and the
        request bodies being streamed in (``uploads``)."""
        live = list(active)
        receiving = list(uploads)
        figures: dict[str, float] = {
            "streams_active": len(live),
            "streams_started": self.started,
            "bytes_sent": self.bytes_sent + sum(s.bytes_sent for s in live),
            "pauses": self.pauses + sum(s.pause_count for s in live),
            "paused_seconds": self.paused_seconds + sum(s.paused_seconds for s in live),
            "ttfb_seconds_sum": self.ttfb_sum,
            "ttfb_seconds_count": self.ttfb_count,
            "uploads_active": len(receiving),
            "uploads_started": self.uploads_started,
            "bytes_received": self.bytes_received + sum(u.bytes_received for u in receiving),
        }
        for outcome in Outcome:
            figures[f"streams_{outcome.value.replace('-', '_')}"] = self.ended[outcome]
        return figures

    def by_protocol(self, active: Iterable[Stream]) -> dict[str, tuple[int, int]]:
        """Streams running now and streams started, per HTTP version (``HTTP/1.1`` and
        ``HTTP/2`` always listed, others once seen)."""
        running = Counter(s.protocol for s in active)
        protocols = sorted({"HTTP/1.1", "HTTP/2", *self.started_by_protocol, *running})
        return {p: (running[p], self.started_by_protocol[p]) for p in protocols}

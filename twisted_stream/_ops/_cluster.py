"""The figures of every worker of ``twistd streamweb --workers N``, for the metrics and status
pages that any one worker serves.

Each worker writes a snapshot of its site (the counters of :mod:`._metrics`, its running
streams) to its own file in a directory the parent made, every ``interval`` seconds and when
it stops; a page served by one worker adds up its own live figures and the files of the
others. When a worker ends, the parent folds its last counters into ``retired.json``, so the
counters of the whole server never go back when a worker is replaced (gauges, such as the
active streams, count running workers only). This is the file-based approach of Prometheus'
own multiprocess mode, applied to our figures: no connection between workers is needed, and
a page is at most ``interval`` seconds behind for the other workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import weakref
from collections import Counter
from collections.abc import Mapping
from typing import Any, cast

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from .._engine._outcome import Outcome
from .._types import Clock
from ._metrics import StreamMetrics
from ._site import StreamSite

DEFAULT_INTERVAL = 0.5
"""Seconds between two snapshots a worker writes."""
RETIRED = "retired.json"
_clusters: weakref.WeakKeyDictionary[StreamSite, Cluster] = weakref.WeakKeyDictionary()


def counters(metrics: StreamMetrics, live: Mapping[str, float]) -> dict[str, Any]:
    """A site's counters as JSON-ready data (``live``: its ``metrics.snapshot(...)``)."""
    return {
        "flat": dict(live),
        "ended": {outcome.value: metrics.ended[outcome] for outcome in Outcome},
        "uploads_ended": dict(metrics.uploads_ended),
        "ttfb_buckets": list(metrics.ttfb_buckets),
    }


GAUGES = frozenset({"streams_active", "uploads_active"})
"""Figures of running things: a retired worker's no longer count."""


def _add(total: dict[str, Any], part: Mapping[str, Any], *, gauges: bool) -> None:
    flat = total.setdefault("flat", {})
    for key, value in part.get("flat", {}).items():
        if gauges or key not in GAUGES:
            flat[key] = flat.get(key, 0) + value
    for kind in ("ended", "uploads_ended"):
        ended = total.setdefault(kind, {})
        for key, value in part.get(kind, {}).items():
            ended[key] = ended.get(key, 0) + value
    buckets = part.get("ttfb_buckets", [])
    mine = total.setdefault("ttfb_buckets", [0] * len(buckets))
    for i, value in enumerate(buckets[: len(mine)]):
        mine[i] += value


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            found = json.load(f)
    except (OSError, ValueError):
        return None  # gone, or being replaced
    return found if isinstance(found, dict) else None


def _write(path: str, data: object) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as f:
        json.dump(data, f, separators=(",", ":"))
    os.replace(temporary, path)


class Cluster:
    """One worker's view of the others: it publishes its own snapshot to ``directory`` and
    reads theirs. ``index`` is its worker number (1 to N)."""

    def __init__(
        self,
        site: StreamSite,
        directory: str,
        index: int,
        *,
        rows: Any = None,
        interval: float = DEFAULT_INTERVAL,
        clock: Clock | None = None,
    ) -> None:
        self.site = site
        self.directory = directory
        self.index = index
        self.path = os.path.join(directory, f"worker-{index}-{os.getpid()}.json")
        self._rows = rows
        self._loop = LoopingCall(self.write)
        if clock is not None:
            self._loop.clock = cast(IReactorTime, clock)
        self._interval = interval
        _clusters[site] = self

    def start(self) -> None:
        self._loop.start(self._interval, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
        self.write()

    def own(self) -> dict[str, Any]:
        """This worker's snapshot now."""
        site = self.site
        live = site.metrics.snapshot(site.active_streams, site.active_uploads)
        snapshot: dict[str, Any] = {
            "worker": self.index,
            "pid": os.getpid(),
            "time": time.time(),
            "counters": counters(site.metrics, live),
        }
        if self._rows is not None:
            snapshot["streams"] = self._rows(site)
        return snapshot

    def write(self) -> None:
        with contextlib.suppress(OSError):  # the parent removed the directory: stopping
            _write(self.path, self.own())

    def others(self) -> list[dict[str, Any]]:
        """The last snapshots of the other running workers, by worker number."""
        found = []
        try:
            names = sorted(os.listdir(self.directory))
        except OSError:
            return []
        for name in names:
            path = os.path.join(self.directory, name)
            if name.startswith("worker-") and name.endswith(".json") and path != self.path:
                snapshot = _read(path)
                if snapshot is not None:
                    found.append(snapshot)
        return sorted(found, key=lambda s: (s.get("worker", 0), s.get("pid", 0)))

    def totals(self, own: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The counters of the whole server: this worker's, the others', the retired."""
        total: dict[str, Any] = {}
        _add(total, (own or self.own())["counters"], gauges=True)
        for snapshot in self.others():
            _add(total, snapshot.get("counters", {}), gauges=True)
        retired = _read(os.path.join(self.directory, RETIRED))
        if retired is not None:
            _add(total, retired, gauges=False)
        return total

    def merge_status(self, local: Mapping[str, Any]) -> dict[str, Any]:
        """A status snapshot of this worker (``local``) made one of the whole server: every
        worker's streams, each row with its ``worker``, the totals of all, and ``workers``
        (number, pid and active streams of each)."""
        own = self.own()
        others = self.others()
        streams = [{**row, "worker": self.index} for row in local["streams"]]
        workers = [{"worker": self.index, "pid": own["pid"], "active": local["active"]}]
        for snapshot in others:
            rows = snapshot.get("streams", [])
            streams += [{**row, "worker": snapshot.get("worker")} for row in rows]
            active = snapshot.get("counters", {}).get("flat", {}).get("streams_active", 0)
            workers.append(
                {"worker": snapshot.get("worker"), "pid": snapshot.get("pid"), "active": active}
            )
        flat = self.totals(own)["flat"]
        totals = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in flat.items()}
        active = sum(int(w["active"] or 0) for w in workers)
        downloads = [row for row in streams if row.get("kind") != "upload"]
        return {
            **local,
            "active": active,
            "paused": sum(1 for row in downloads if row.get("paused")),
            "stalled": sum(1 for row in downloads if row.get("stalled")),
            "shown": len(downloads),
            "uploads": len(streams) - len(downloads),
            "streams": streams,
            "totals": totals,
            "workers": sorted(workers, key=lambda w: (w["worker"] or 0, w["pid"] or 0)),
        }


def cluster_of(site: StreamSite) -> Cluster | None:
    """The :class:`Cluster` of a worker's site, or None for a single process."""
    return _clusters.get(site)


def site_figures(site: StreamSite) -> tuple[StreamMetrics, dict[str, float]]:
    """The metrics to report for ``site``: its own, or those of every worker of its server;
    and their flat snapshot (as :meth:`StreamMetrics.snapshot`)."""
    cluster = cluster_of(site)
    if cluster is None:
        return site.metrics, site.metrics.snapshot(site.active_streams, site.active_uploads)
    total = cluster.totals()
    merged = StreamMetrics()
    flat = total["flat"]
    merged.started = int(flat.get("streams_started", 0))
    merged.ended = Counter({o: int(total["ended"].get(o.value, 0)) for o in Outcome})
    merged.bytes_sent = int(flat.get("bytes_sent", 0))
    merged.pauses = int(flat.get("pauses", 0))
    merged.paused_seconds = float(flat.get("paused_seconds", 0.0))
    merged.ttfb_sum = float(flat.get("ttfb_seconds_sum", 0.0))
    merged.ttfb_count = int(flat.get("ttfb_seconds_count", 0))
    merged.ttfb_buckets = [int(v) for v in total["ttfb_buckets"]]
    merged.uploads_started = int(flat.get("uploads_started", 0))
    merged.uploads_ended = Counter({k: int(v) for k, v in total["uploads_ended"].items()})
    merged.bytes_received = int(flat.get("bytes_received", 0))
    snap = merged.snapshot(())
    snap["streams_active"] = flat.get("streams_active", 0)
    snap["uploads_active"] = flat.get("uploads_active", 0)
    return merged, snap


def retire(directory: str, pid: int) -> None:
    """Fold the last counters of the ended worker ``pid`` into ``retired.json`` (parent)."""
    retired_path = os.path.join(directory, RETIRED)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith("worker-") and name.endswith(f"-{pid}.json"):
            path = os.path.join(directory, name)
            snapshot = _read(path)
            if snapshot is not None:
                total = _read(retired_path) or {}
                _add(total, snapshot.get("counters", {}), gauges=False)
                _write(retired_path, total)
            with contextlib.suppress(OSError):
                os.remove(path)

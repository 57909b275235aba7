"""The figures every worker shares (``_cluster``): sums over workers, the counters of ended
workers kept, gauges of running ones only, and the merged status snapshot."""

from __future__ import annotations

from pathlib import Path

from twisted.internet.testing import MemoryReactorClock
from twisted.web.resource import Resource

from twisted_stream import StreamSite
from twisted_stream._engine._outcome import Outcome
from twisted_stream._ops._cluster import Cluster, cluster_of, retire, site_figures


def worker_site(started: int, completed: int, bytes_sent: int) -> StreamSite:
    site = StreamSite(Resource())
    site.metrics.started = started
    site.metrics.ended[Outcome.COMPLETED] = completed
    site.metrics.bytes_sent = bytes_sent
    site.metrics.ttfb_buckets[0] = completed
    return site


def test_counters_add_up_over_workers_and_survive_their_end(tmp_path: Path) -> None:
    """A worker's figures are its own plus the last snapshot of each other worker; once a
    worker ended (retire), its counters still count, its gauges no longer."""
    clock = MemoryReactorClock()
    one, two = worker_site(5, 4, 1000), worker_site(3, 3, 500)
    first = Cluster(one, str(tmp_path), 1, clock=clock, rows=lambda s: [])
    second = Cluster(two, str(tmp_path), 2, clock=clock, rows=lambda s: [])
    second.path = str(tmp_path / "worker-2-99999.json")  # another process's file
    second.write()
    assert cluster_of(one) is first
    metrics, flat = site_figures(one)
    assert flat["streams_started"] == 8 and flat["bytes_sent"] == 1500
    assert metrics.ended[Outcome.COMPLETED] == 7 and metrics.ttfb_buckets[0] == 7
    retire(str(tmp_path), 99999)
    assert not (tmp_path / "worker-2-99999.json").exists()
    _, flat = site_figures(one)
    assert flat["streams_started"] == 8 and flat["streams_active"] == 0
    plain = worker_site(1, 1, 1)
    assert site_figures(plain)[1]["streams_started"] == 1  # no cluster: its own


def test_the_status_snapshot_lists_every_workers_streams(tmp_path: Path) -> None:
    """merge_status puts each worker's stream rows together, tagged with their worker, and
    lists the workers with their active streams."""
    clock = MemoryReactorClock()
    one, two = worker_site(1, 0, 0), worker_site(1, 0, 0)
    row = {"id": 1, "path": "/x", "client": "c", "bytes_sent": 0, "rate": 0.0,
           "paused": False, "state": "streaming", "age": 1.0}  # fmt: skip
    first = Cluster(one, str(tmp_path), 1, clock=clock, rows=lambda s: [])
    other = Cluster(two, str(tmp_path), 2, clock=clock, rows=lambda s: [row])
    other.path = str(tmp_path / "worker-2-99998.json")
    other.write()
    local = {"time": 0.0, "active": 0, "shown": 0, "streams": [], "totals": {}}
    merged = first.merge_status(local)
    assert merged["streams"] == [{**row, "worker": 2}]
    assert [w["worker"] for w in merged["workers"]] == [1, 2]
    assert merged["shown"] == 1


def test_uploads_add_up_over_workers(tmp_path: Path) -> None:
    """Upload figures are shared like the streams': started, ended by outcome and bytes
    received summed over workers and kept once a worker ended; uploads running count only
    on running workers."""

    class Running:
        bytes_received = 40

    clock = MemoryReactorClock()
    one, two = worker_site(0, 0, 0), worker_site(0, 0, 0)
    for site, started, received in ((one, 2, 100), (two, 3, 1000)):
        site.metrics.uploads_started = started
        site.metrics.uploads_ended["completed"] = started
        site.metrics.bytes_received = received
    two.active_uploads.add(Running())  # type: ignore[arg-type]
    first = Cluster(one, str(tmp_path), 1, clock=clock, rows=lambda s: [])
    second = Cluster(two, str(tmp_path), 2, clock=clock, rows=lambda s: [])
    second.path = str(tmp_path / "worker-2-99998.json")
    second.write()
    assert cluster_of(one) is first
    metrics, flat = site_figures(one)
    assert flat["uploads_started"] == 5 and flat["uploads_active"] == 1
    assert flat["bytes_received"] == 1140
    assert metrics.uploads_ended["completed"] == 5
    retire(str(tmp_path), 99998)
    metrics, flat = site_figures(one)
    assert flat["uploads_active"] == 0 and flat["bytes_received"] == 1140
    assert metrics.uploads_ended["completed"] == 5

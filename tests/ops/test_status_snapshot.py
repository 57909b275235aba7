"""What the status page shows (``twisted_stream._ops._status_snapshot``): rates, pauses and
stalls, the chart history and the ledger of the page's own feeds, on explicit times."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.web.resource import Resource

from twisted_stream import Outcome, StreamResult, StreamSite
from twisted_stream._ops._status_snapshot import (
    HISTORY_SECONDS,
    STALLED_AFTER,
    FeedLedger,
    History,
    Progress,
    Rates,
    stream_row,
)


class FakeStream:
    """What the snapshot reads of a stream."""

    def __init__(self, **values: Any) -> None:
        self.bytes_sent = 0
        self.age = 1.0
        self.paused = False
        self.started_at = 0.0
        self.path = "/x"
        self.client = "127.0.0.1"
        self.first_byte_seconds: float | None = None
        self.pause_count = 0
        self.paused_seconds = 0.0
        self.result: StreamResult | None = None
        self.outcome: Outcome | None = None

        class Request:
            clientproto = b"HTTP/1.1"

        class State:
            value = "streaming"

        self.request = Request()
        self.state = State()
        self.__dict__.update(values)

    def when_done(self) -> Any:
        from twisted.internet.defer import Deferred

        self.done: Deferred[StreamResult] = Deferred()
        return self.done


def test_rates() -> None:
    """``Rates``: average since the start for a first sighting, then the delta per second;
    forgotten streams are dropped."""
    rates = Rates()
    stream: Any = FakeStream(bytes_sent=1000, age=2.0)
    assert rates.rate(1, stream, now=10.0) == 500.0
    stream.bytes_sent = 1300
    assert rates.rate(1, stream, now=10.5) == 600.0
    assert rates.rate(1, stream, now=10.5) == 0.0, "no time passed: no division by zero"
    rates.forget_except(set())
    assert rates._last == {}


def test_progress_tells_stalled_from_paused() -> None:
    """A paused stream's ``paused_for`` counts from the last time it was seen sending; any
    byte sent restarts it; a stream not paused has 0."""
    progress = Progress()
    stream: Any = FakeStream(paused=True, bytes_sent=10)
    assert progress.paused_for(stream, 100.0) == 0.0
    assert progress.paused_for(stream, 100.0 + STALLED_AFTER) == STALLED_AFTER
    stream.bytes_sent = 20
    assert progress.paused_for(stream, 106.0) == 0.0
    assert progress.paused_for(stream, 107.5) == 1.5
    stream.paused = False
    assert progress.paused_for(stream, 120.0) == 0.0


def snap(t: float, sent: float, **totals: float) -> dict[str, Any]:
    figures = {f"streams_{o.value.replace('-', '_')}": 0 for o in Outcome}
    figures.update(bytes_sent=sent, **totals)
    return {"time": t, "active": 2, "paused": 1, "stalled": 0, "totals": figures}


def test_history_samples_once_per_interval() -> None:
    """The first snapshot only sets the baseline; one due an interval later gives a sample
    with the throughput in between and the outcomes counted since; one early does not."""
    history = History(interval=1.0)
    assert history.record(10.0, snap(1000.0, 0)) is None
    assert history.record(10.5, snap(1000.5, 500)) is None, "not due yet"
    sample = history.record(11.0, snap(1001.0, 2_000_000, streams_completed=3))
    assert sample == {
        "t": 1001.0,
        "rate": 2_000_000.0,
        "active": 2,
        "paused": 1,
        "stalled": 0,
        "outcomes": {"completed": 3},
    }
    assert history.record(11.2, snap(1001.2, 2_000_000)) == sample, "the newest, again"
    second = history.record(12.0, snap(1002.0, 2_500_000, streams_completed=3))
    assert second is not None and second["rate"] == 500_000.0 and second["outcomes"] == {}
    assert history.recent(1002.0) == [sample, second]


def test_history_gaps_and_window() -> None:
    """After a gap of several intervals (nobody watching) the next snapshot only sets a new
    baseline, so no average over the gap is drawn; samples older than the window are not
    returned."""
    history = History(interval=1.0)
    history.record(0.0, snap(0.0, 0))
    first = history.record(1.0, snap(1.0, 100))
    assert history.record(60.0, snap(60.0, 10_000)) == first
    after = history.record(61.0, snap(61.0, 10_100))
    assert after is not None and after["rate"] == 100.0
    assert history.recent(1.0 + HISTORY_SECONDS + 1) == [after]
    assert history.samples.maxlen == HISTORY_SECONDS + 1


def test_ledger_subtracts_the_feeds() -> None:
    """The ledger's totals are the site's less its feeds: live feeds are left out of the
    active list, ended ones out of every figure, refused ones out of the rejected count."""
    site = StreamSite(Resource())
    ledger = FeedLedger()
    feed: Any = FakeStream(bytes_sent=300, pause_count=1, paused_seconds=0.5)
    other: Any = FakeStream(bytes_sent=1000)
    site.active_streams.update({feed, other})
    for _ in range(2):
        site.metrics.stream_started()
    ledger.add(feed)
    assert ledger.streams(site) == [other]
    assert ledger.totals(site, [other])["streams_started"] == 1
    assert ledger.totals(site, [other])["bytes_sent"] == 1000
    feed.first_byte_seconds = 0.01
    feed.result = StreamResult(Outcome.CLIENT_GONE, 300, None, 1.0)
    site.active_streams.discard(feed)
    site.stream_ended(feed)
    feed.done.callback(feed.result)
    site.metrics.stream_rejected()
    ledger.refused()
    totals = ledger.totals(site, [other])
    assert totals["streams_started"] == 1
    assert totals["streams_client_gone"] == totals["streams_rejected"] == 0
    assert totals["bytes_sent"] == 1000
    assert totals["pauses"] == 0 and totals["paused_seconds"] == 0.0
    assert totals["ttfb_seconds_count"] == 0


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, {"paused": False, "stalled": False, "ttfb": None, "protocol": "HTTP/1.1"}),
        ({"paused": True}, {"paused": True, "stalled": False}),
        ({"first_byte_seconds": 0.0123}, {"ttfb": 0.0123}),
    ],
)
def test_stream_row(values: dict[str, Any], expected: dict[str, Any]) -> None:
    """A row names the stream's protocol and kind, its time to first byte once there is one
    (None before), and marks it stalled only when paused for ``STALLED_AFTER``."""
    row = stream_row(FakeStream(**values), 7, 3.0, 12.0, 1.0)  # type: ignore[arg-type]
    assert row["kind"] == "download" and row["id"] == 7 and row["age"] == 3.0
    for key, value in expected.items():
        assert row[key] == value, key
    paused: Any = FakeStream(paused=True)
    assert stream_row(paused, 1, 10.0, 0.0, STALLED_AFTER)["stalled"] is True

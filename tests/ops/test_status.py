"""The live status page (``twisted_stream._ops._status``): HTML, the JSON snapshot, the event
stream feeding it."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import Site

from twisted_stream import Outcome, stream, stream_for
from twisted_stream._ops._status import StatusResource

from ..conftest import leaf
from ..rawclient import RawClient, connect, get
from ..waiting import until, within

INTERVAL = 0.1


class App:
    """A site with ``/gate`` streams (each waits on its own Deferred) and the status page at
    ``/status``; ``handles`` are the streams in the order they started."""

    def __init__(self, server: Any, **status: Any) -> None:
        self.gates: list[Deferred[bytes]] = []
        self.handles: list[Any] = []
        self.status = StatusResource(interval=INTERVAL, **status)
        root = Resource()
        root.putChild(b"gate", leaf(self._gated))
        root.putChild(b"status", self.status)
        self.site = server.serve(root)
        self.server = server

    def _gated(self, request: Any) -> Any:
        gate: Deferred[bytes] = Deferred()
        self.gates.append(gate)
        result = stream(request, iter([b"start;", gate]))
        self.handles.append(stream_for(request))
        return result

    async def start(self, path: str = "/gate") -> tuple[RawClient, Any]:
        """Start one gated stream from a raw client; wait until its first bytes arrive."""
        count = len(self.handles)
        raw = await connect(self.server.port, get(path))
        await within(raw.received_at_least(1))
        await until(lambda: len(self.handles) > count, what="the stream to start")
        return raw, self.handles[count]


class Feed:
    """A raw HTTP/1.0 client of the event stream (no chunked framing to undo)."""

    def __init__(self, raw: RawClient) -> None:
        self.raw = raw

    @classmethod
    async def open(cls, server: Any, path: str = "/status?events") -> Feed:
        return cls(await connect(server.port, get(path, version="1.0")))

    def head(self) -> str:
        return bytes(self.raw.received).partition(b"\r\n\r\n")[0].decode("latin-1")

    def events(self) -> list[dict[str, Any]]:
        body = bytes(self.raw.received).partition(b"\r\n\r\n")[2].decode("utf-8")
        found = []
        for block in body.split("\n\n")[:-1]:  # the last one may be incomplete
            data = [line[6:] for line in block.split("\n") if line.startswith("data: ")]
            if data:
                found.append(json.loads("\n".join(data)))
        return found

    async def until(self, condition: Any, what: str) -> dict[str, Any]:
        """The first snapshot, counting from now, for which ``condition`` holds."""
        seen = len(self.events())
        found: list[dict[str, Any]] = []

        def check() -> bool:
            events = self.events()
            found[:] = [e for e in events[seen:] if condition(e)]
            return bool(found)

        await until(check, what=what)
        return found[0]


def paths(snapshot: dict[str, Any]) -> list[str]:
    return [s["path"] for s in snapshot["streams"]]


@pytest_twisted.ensureDeferred
async def test_the_page_lists_active_streams_and_totals(server: Any, client: Any) -> None:
    """The HTML page is complete as served: each active stream with its path, client,
    protocol, kind, bytes, rate, state, time to first byte and age, formatted for people,
    and the totals; it then connects to its own event stream. A hostile path is escaped.
    Only the page's own script and style may run."""
    app = App(server)
    raw, handle = await app.start('/gate?x=<script>alert("x")</script>')
    response = await within(client.get(server.url("/status")))
    page = await within(response.text())
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
    policy = response.headers.getRawHeaders("content-security-policy")[0]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy
    assert "unsafe-inline" not in policy
    assert response.headers.getRawHeaders("cache-control") == ["no-store"]
    assert "<script>alert" not in page
    assert "/gate?x=&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert '<td data-col="client">127.0.0.1</td>' in page
    assert '<td data-col="protocol">HTTP/1.1</td>' in page
    assert '<td data-col="kind">download</td>' in page
    assert '<td data-col="sent" class="num">6 B</td>' in page, "bytes sent: start;"
    assert re.search(r'<span class="badge waiting" title="[^"]*">waiting</span>', page)
    assert re.search(r'id="total-streams_active"[^>]*>1</td>', page)
    assert 'new EventSource("?events")' in page
    assert '<p id="shown">1 stream</p>' in page
    assert 'id="chart-throughput"' in page
    raw.transport.abortConnection()  # type: ignore[union-attr]
    await within(handle.when_done())


@pytest_twisted.ensureDeferred
async def test_json_snapshot(server: Any, client: Any) -> None:
    """``?json`` gives one snapshot: every active stream's figures and the site's totals,
    which include streams that already ended."""
    app = App(server)
    raw, handle = await app.start()
    second, other = await app.start("/gate?n=2")
    second.transport.abortConnection()  # type: ignore[union-attr]
    assert (await within(other.when_done())).outcome is Outcome.CLIENT_GONE
    response = await within(client.get(server.url("/status?json")))
    assert response.headers.getRawHeaders("content-type") == ["application/json; charset=utf-8"]
    snap = json.loads(await within(response.text()))
    assert snap["active"] == snap["shown"] == 1
    (only,) = snap["streams"]
    assert only["path"] == "/gate"
    assert only["client"] == "127.0.0.1"
    assert only["bytes_sent"] == len(b"start;")
    assert only["paused"] is False
    assert only["state"] == "waiting"
    assert 0 <= only["age"] < 30
    assert only["rate"] >= 0
    assert snap["totals"]["streams_active"] == 1
    assert snap["totals"]["streams_started"] == 2
    assert snap["totals"]["streams_client_gone"] == 1
    assert snap["totals"]["bytes_sent"] == 2 * len(b"start;")
    app.gates[0].callback(b"end")
    assert (await within(handle.when_done())).outcome is Outcome.COMPLETED
    del raw


@pytest_twisted.ensureDeferred
async def test_the_feed_follows_streams_as_they_come_and_go(server: Any) -> None:
    """The event stream sends a snapshot at once and one per interval: a stream appears
    while it runs and is gone from the next snapshot after its client disconnects; the
    totals count it as ended by the client. The feed itself is neither listed nor counted."""
    app = App(server)
    feed = await Feed.open(server)
    first = await feed.until(lambda e: True, "the first snapshot")
    assert "retry: 2000" in bytes(feed.raw.received).decode()
    assert "text/event-stream" in feed.head()
    assert paths(first) == [], "the page's own feed is not listed"
    assert first["active"] == first["totals"]["streams_active"] == 0
    assert first["totals"]["streams_started"] == 0
    raw, handle = await app.start("/gate?watched=1")
    seen = await feed.until(lambda e: "/gate?watched=1" in paths(e), "the stream to show")
    row = next(s for s in seen["streams"] if s["path"] == "/gate?watched=1")
    assert row["bytes_sent"] == 6
    assert row["client"] == "127.0.0.1"
    assert row["protocol"] == "HTTP/1.1"
    raw.transport.abortConnection()  # type: ignore[union-attr]
    await within(handle.when_done())
    gone = await feed.until(lambda e: "/gate?watched=1" not in paths(e), "the stream to go")
    assert gone["totals"]["streams_client_gone"] == 1
    assert gone["totals"]["streams_active"] == 0
    assert gone["totals"]["streams_started"] == 1
    assert gone["totals"]["bytes_sent"] == 6
    feed.raw.transport.abortConnection()  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_rate_is_measured_between_snapshots(server: Any) -> None:
    """The rate of a stream is the bytes it sent between two snapshots over the time between
    them: a stream that sends nothing more drops to 0."""
    app = App(server)
    feed = await Feed.open(server)
    raw, handle = await app.start()
    idle = await feed.until(
        lambda e: any(s["path"] == "/gate" and s["rate"] == 0 for s in e["streams"]),
        "the idle stream's rate to fall to 0",
    )
    assert idle["streams"]
    raw.transport.abortConnection()  # type: ignore[union-attr]
    await within(handle.when_done())
    feed.raw.transport.abortConnection()  # type: ignore[union-attr]


def pending_deferreds() -> list[Any]:
    """Delayed calls that would fire a Deferred (what ``deferLater`` schedules)."""
    return [
        call
        for call in reactor.getDelayedCalls()
        if getattr(call.func, "__name__", "") == "callback"
        and isinstance(getattr(call.func, "__self__", None), Deferred)
    ]


@pytest_twisted.ensureDeferred
async def test_closing_the_feed_releases_it(server: Any) -> None:
    """When the page's client leaves, the feed stream ends as client-gone, its source is
    closed and no timer of it remains in the reactor."""
    app = App(server)
    feed = await Feed.open(server)
    await feed.until(lambda e: True, "the first snapshot")
    (handle,) = list(app.site.active_streams)
    assert pending_deferreds(), "the feed waits for its next snapshot"
    assert handle.endless, "graceful shutdown ends the feed cleanly instead of aborting it"
    feed.raw.transport.abortConnection()  # type: ignore[union-attr]
    result = await within(handle.when_done())
    assert result.outcome is Outcome.CLIENT_GONE
    await within(handle.source_closed)
    assert pending_deferreds() == [], "the wait for the next snapshot was cancelled"
    assert not app.site.active_streams


@pytest_twisted.ensureDeferred
async def test_graceful_end_of_the_feed(server: Any) -> None:
    """``Stream.end()`` (what graceful shutdown does to endless streams) finishes the feed
    cleanly: the client sees the end of the body, not a reset."""
    app = App(server)
    feed = await Feed.open(server)
    await feed.until(lambda e: True, "the first snapshot")
    (handle,) = list(app.site.active_streams)
    handle.end()
    assert (await within(handle.when_done())).outcome is Outcome.COMPLETED
    await within(feed.raw.closed)
    assert bytes(feed.raw.received).endswith(b"\n\n")


@pytest_twisted.ensureDeferred
async def test_max_rows_lists_the_oldest(server: Any, client: Any) -> None:
    """Past ``max_rows`` the snapshot lists the oldest streams and says how many it left
    out; the totals still count them all."""
    app = App(server, max_rows=2)
    started = [await app.start(f"/gate?n={n}") for n in range(3)]
    response = await within(client.get(server.url("/status?json")))
    snap = json.loads(await within(response.text()))
    assert snap["active"] == 3
    assert snap["shown"] == 2
    assert paths(snap) == ["/gate?n=0", "/gate?n=1"]
    assert snap["totals"]["streams_active"] == 3
    page = await within((await within(client.get(server.url("/status")))).text())
    assert "showing the 2 oldest of 3 streams" in page
    for raw, handle in started:
        raw.transport.abortConnection()
        await within(handle.when_done())


@pytest_twisted.ensureDeferred
async def test_unknown_subpaths_head_and_plain_sites(server: Any, client: Any) -> None:
    """Paths below the page are 404; HEAD of the feed answers the event stream's headers
    (Kind 2: those its GET sends, no ``Content-Length: 0``) and leaves no stream open; under
    a plain ``Site`` the page explains it has nothing to show."""
    app = App(server)
    response = await within(client.get(server.url("/status/other")))
    assert response.code == 404
    await within(response.content())
    response = await within(client.head(server.url("/status?events")))
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type")[0].startswith("text/event-stream")
    assert response.headers.getRawHeaders("x-accel-buffering") == ["no"]
    assert response.headers.getRawHeaders("content-length") is None
    assert not app.site.active_streams

    port = reactor.listenTCP(0, Site(StatusResource()), interface="127.0.0.1")
    server.ports.append(port)
    response = await within(client.get(server.url("/")))
    assert response.code == 500
    assert "not a twisted_stream StreamSite" in await within(response.text())


def test_constructor_checks() -> None:
    """A non-positive interval or a negative row limit is refused at once."""
    with pytest.raises(ValueError, match="interval"):
        StatusResource(interval=0)
    with pytest.raises(ValueError, match="max_rows"):
        StatusResource(max_rows=-1)


def endless(request: Any) -> Any:
    """An endless stream of 64 KiB blocks, as fast as its client reads."""
    block = b"x" * 65536

    def blocks() -> Any:
        while True:
            yield block

    return stream(request, blocks(), content_type="application/octet-stream")


@pytest_twisted.ensureDeferred
async def test_ended_feeds_are_not_counted_either(server: Any, client: Any) -> None:
    """A feed that ended is left out of the totals too: after a viewer came and went, the
    next viewer and ``?json`` see no stream started, ended or sent by it."""
    App(server)
    feed = await Feed.open(server)
    await feed.until(lambda e: True, "the first snapshot")
    feed.raw.transport.abortConnection()  # type: ignore[union-attr]
    await until(lambda: not server.site.active_streams, what="the feed to end")
    assert server.site.metrics.started == 1, "the site itself counts it"
    response = await within(client.get(server.url("/status?json")))
    totals = json.loads(await within(response.text()))["totals"]
    assert totals["streams_started"] == totals["streams_client_gone"] == 0
    assert totals["bytes_sent"] == totals["pauses"] == totals["ttfb_seconds_count"] == 0
    again = await Feed.open(server)
    first = await again.until(lambda e: True, "the second viewer's first snapshot")
    assert first["totals"]["streams_started"] == 0 and first["streams"] == []
    again.raw.transport.abortConnection()  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_history_has_one_sample_per_interval(server: Any) -> None:
    """Each snapshot of the feed carries the newest history sample: one per interval, with
    the throughput since the previous one, the active, paused and stalled counts, and the
    outcomes of the streams that ended in it; a later viewer's first snapshot carries the
    samples so far."""
    app = App(server)
    feed = await Feed.open(server)
    raw, handle = await app.start()
    busy = await feed.until(
        lambda e: e["sample"] is not None and e["sample"]["active"] == 1, "a sample with it"
    )
    assert busy["sample"]["paused"] == busy["sample"]["stalled"] == 0
    raw.transport.abortConnection()  # type: ignore[union-attr]
    await within(handle.when_done())
    ended = await feed.until(
        lambda e: e["sample"] is not None and e["sample"]["outcomes"] == {"client-gone": 1},
        "the sample of the interval it ended in",
    )
    assert ended["sample"]["active"] == 0
    samples = [e["sample"] for e in feed.events() if e["sample"] is not None]
    times = sorted({s["t"] for s in samples})
    delivered = [s["t"] for e in feed.events()[1:] for s in e["samples"]]
    assert delivered == sorted(set(delivered)), "each sample once, in order"
    assert set(times) <= set(delivered) | {s["t"] for s in feed.events()[0]["history"]}
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps and all(gap >= 0.8 * INTERVAL for gap in gaps), "at most one per interval"
    later = await Feed.open(server)
    first = await later.until(lambda e: True, "the later viewer's first snapshot")
    assert [s["t"] for s in first["history"]][: len(times)] == times
    for viewer in (feed, later):
        viewer.raw.transport.abortConnection()  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_throughput_sample_counts_the_bytes_sent(server: Any) -> None:
    """A sample's rate is the bytes the site's streams sent in the interval per second:
    while a client reads an endless stream, samples show a positive throughput."""
    root = Resource()
    root.putChild(b"endless", leaf(endless))
    root.putChild(b"status", StatusResource(interval=INTERVAL))
    server.serve(root)
    feed = await Feed.open(server)
    raw = await connect(server.port, get("/endless"))
    sample = (
        await feed.until(
            lambda e: e["sample"] is not None and e["sample"]["rate"] > 100_000, "throughput"
        )
    )["sample"]
    assert sample["active"] == 1
    raw.transport.abortConnection()  # type: ignore[union-attr]
    feed.raw.transport.abortConnection()  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_paused_stalled_and_first_byte(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream whose client stops reading is paused, then stalled once it has sent nothing
    for ``STALLED_AFTER`` seconds (the snapshot counts it); a stream that has sent nothing
    yet has no time to first byte, one that has, has it."""
    import twisted_stream._ops._status as status_module
    import twisted_stream._ops._status_snapshot as snapshot_module

    monkeypatch.setattr(snapshot_module, "STALLED_AFTER", 0.3)
    monkeypatch.setattr(status_module, "STALLED_AFTER", 0.3)
    held: list[Deferred[bytes]] = []

    def late(request: Any) -> Any:
        held.append(Deferred())
        return stream(request, iter([held[-1]]))

    root = Resource()
    root.putChild(b"endless", leaf(endless))
    root.putChild(b"late", leaf(late))
    root.putChild(b"status", StatusResource(interval=INTERVAL))
    server.serve(root)
    feed = await Feed.open(server)
    reader = await connect(server.port, get("/endless"))
    reader.stop_reading()
    waiting = await connect(server.port, get("/late"))

    def row(e: dict[str, Any], path: str) -> dict[str, Any] | None:
        return next((s for s in e["streams"] if s["path"] == path), None)

    seen = await feed.until(
        lambda e: (r := row(e, "/endless")) is not None and r["stalled"], "a stalled stream"
    )
    stalled = row(seen, "/endless")
    assert stalled is not None and stalled["paused"] and stalled["paused_for"] >= 0.3
    assert seen["stalled"] == seen["paused"] == 1
    assert stalled["ttfb"] is not None and stalled["ttfb"] >= 0
    pending = row(seen, "/late")
    assert pending is not None and pending["ttfb"] is None and pending["state"] == "waiting"
    assert pending["protocol"] == "HTTP/1.1" and pending["kind"] == "download"
    held[0].callback(b"done")
    for raw in (reader, waiting, feed.raw):
        raw.transport.abortConnection()  # type: ignore[union-attr]


def test_history_is_kept_before_anyone_watches() -> None:
    """Once started (by ``twistd streamweb --status`` at start-up, else by the first
    request), a timer samples the site every interval whether or not a page is open, and
    stops once the site, having listened, stops listening; it holds the page and the site
    only weakly (on a fake clock)."""
    import gc

    from twisted.internet.task import Clock

    from twisted_stream import StreamSite

    clock = Clock()
    site = StreamSite(Resource())
    site.monotonic = clock.seconds
    page = StatusResource(interval=1.0, reactor=clock)
    history = page.history(site)
    assert page.history(site) is history, "one history, one timer per site"
    site.metrics.bytes_sent = 0
    for _ in range(3):
        site.metrics.bytes_sent += 1000
        clock.advance(1.0)
    assert [s["rate"] for s in history.samples] == [1000.0, 1000.0, 1000.0]
    site.numPorts = 1
    clock.advance(1.0)
    site.numPorts = 0
    clock.advance(1.0)
    assert not clock.getDelayedCalls(), "stopped with the site's last port"

    other = StatusResource(interval=1.0, reactor=clock)
    other.history(site)
    assert clock.getDelayedCalls()
    del other
    gc.collect()
    clock.advance(1.0)
    assert not clock.getDelayedCalls(), "stopped once the page was gone"


@pytest_twisted.ensureDeferred
async def test_a_new_viewer_sees_the_minutes_before_it_came(server: Any) -> None:
    """A viewer arriving after the history started gets the samples taken before it, in
    its first snapshot."""
    app = App(server)
    app.status.history(app.site)
    raw, handle = await app.start()
    await until(lambda: len(app.status.history(app.site).samples) >= 3, what="three samples")
    feed = await Feed.open(server)
    first = await feed.until(lambda e: True, "the first snapshot")
    assert len(first["history"]) >= 3 and first["history"][0]["active"] == 1
    raw.transport.abortConnection()  # type: ignore[union-attr]
    await within(handle.when_done())
    feed.raw.transport.abortConnection()  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_uploads_are_listed_with_their_kind(server: Any, client: Any) -> None:
    """A request body being streamed in is listed with kind ``upload``: its path, client,
    protocol, bytes received so far and state (``paused`` while its application has not
    asked for more), in ``?json`` and on the page; the totals count uploads and their
    bytes; it goes once the body is in."""
    from twisted_stream import StreamingResource, StreamSettings, request_body

    hold: Deferred[None] = Deferred()

    class Upload(StreamingResource):
        isLeaf = True
        stream_body = True

        async def render_PUT(self, request: Any) -> bytes:
            async for _ in request_body(request):
                await hold
            return b"ok\n"

    root = Resource()
    root.putChild(b"up", Upload())
    root.putChild(b"status", StatusResource(interval=INTERVAL))
    server.serve(root, settings=StreamSettings(max_body_size=0))
    pending = client.put(server.url("/up"), data=b"u" * (4 * 1024 * 1024))

    async def snapshot() -> dict[str, Any]:
        response = await within(client.get(server.url("/status?json")))
        found: dict[str, Any] = json.loads(await within(response.text()))
        return found

    snap = await snapshot()
    for _ in range(100):
        if snap["streams"] and snap["streams"][0]["paused"]:
            break
        snap = await snapshot()
    (row,) = snap["streams"]
    assert row["kind"] == "upload" and row["path"] == "/up"
    assert row["protocol"] == "HTTP/1.1" and row["client"] == "127.0.0.1"
    assert row["state"] == "paused" and 0 < row["bytes_received"] < 4 * 1024 * 1024
    assert snap["active"] == 0 and snap["uploads"] == 1
    assert snap["totals"]["uploads_active"] == 1
    page = await within((await within(client.get(server.url("/status")))).text())
    assert '<td data-col="kind">upload</td>' in page
    assert "0 streams, 1 upload" in page
    hold.callback(None)
    assert (await within(pending)).code == 200
    snap = await snapshot()
    assert snap["streams"] == [] and snap["totals"]["bytes_received"] == 4 * 1024 * 1024

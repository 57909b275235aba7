"""Stream metrics (``twisted_stream._ops._metrics``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest_twisted
from twisted.internet.defer import Deferred

from twisted_stream import (
    Outcome,
    StreamingResource,
    StreamSettings,
    request_body,
    stream,
    stream_for,
)
from twisted_stream._engine._outcome import StreamResult
from twisted_stream._ops._metrics import StreamMetrics

from ..conftest import leaf
from ..waiting import until, within

MIB = 1024 * 1024


def test_snapshot_counts_outcomes_bytes_and_ttfb() -> None:
    """Ended streams add to the outcome counters, bytes, pauses and the TTFB histogram."""
    metrics = StreamMetrics()
    metrics.stream_started()
    metrics.first_byte(0.002)
    metrics.stream_ended(StreamResult(Outcome.COMPLETED, 100, None, 1.0), 2, 0.5)
    metrics.stream_rejected()
    snap = metrics.snapshot([])
    assert snap["streams_started"] == 1
    assert snap["streams_completed"] == 1
    assert snap["streams_rejected"] == 1
    assert snap["streams_client_gone"] == 0
    assert snap["bytes_sent"] == 100
    assert snap["pauses"] == 2
    assert snap["ttfb_seconds_count"] == 1
    assert metrics.ttfb_buckets[1] == 1, "2 ms falls in the 5 ms bucket"


@pytest_twisted.ensureDeferred
async def test_a_site_counts_what_it_streams(server: Any, client: Any) -> None:
    """A StreamSite's metrics reflect completed and failed streams and their bytes."""
    handles: list[Any] = []

    def render(request: Any) -> Any:
        def body() -> Iterator[bytes]:
            yield b"x" * 10
            if request.args.get(b"fail"):
                raise RuntimeError("fail")

        result = stream(request, body())
        handles.append(stream_for(request))
        return result

    server.serve(leaf(render))
    await (await client.get(server.url())).content()
    response = await client.get(server.url("/?fail=1"))
    await within(handles[-1].when_done())
    del response
    snap = server.site.metrics.snapshot(server.site.active_streams)
    assert snap["streams_completed"] == 1
    assert snap["streams_source_failed"] == 1
    assert snap["bytes_sent"] == 20
    assert snap["streams_active"] == 0


class HeldUpload(StreamingResource):
    """Streams PUT bodies; waits on ``hold`` after the first chunk."""

    isLeaf = True
    stream_body = True

    def __init__(self) -> None:
        super().__init__()
        self.hold: Deferred[None] = Deferred()

    async def render_PUT(self, request: Any) -> bytes:
        count = 0
        async for chunk in request_body(request):
            count += len(chunk)
            if not self.hold.called:
                await self.hold
        return b"%d\n" % count


@pytest_twisted.ensureDeferred
async def test_a_site_counts_uploads(server: Any, keepalive_client: Any) -> None:
    """Request bodies streamed to resources are counted: in flight (and their bytes so far)
    while they are received, then started, ended by outcome and bytes received."""
    resource = HeldUpload()
    site = server.serve(resource, settings=StreamSettings(max_body_size=2 * MIB))
    pending = keepalive_client.put(server.url("/"), data=b"u" * MIB)

    def figures() -> dict[str, float]:
        return site.metrics.snapshot([], site.active_uploads)

    await until(lambda: figures()["bytes_received"] > 0, what="the upload to start")
    snap = figures()
    assert snap["uploads_active"] == 1 and snap["uploads_started"] == 1
    assert 0 < snap["bytes_received"] < MIB  # held: the rest waits in the kernel
    resource.hold.callback(None)
    response = await within(pending)
    assert await response.text() == f"{MIB}\n"
    too_large = await keepalive_client.put(server.url("/"), data=b"u" * (2 * MIB + 1))
    assert too_large.code == 413
    snap = figures()
    assert snap["uploads_active"] == 0 and snap["uploads_started"] == 2
    assert snap["bytes_received"] == MIB
    assert site.metrics.uploads_ended == {"completed": 1, "too-large": 1}

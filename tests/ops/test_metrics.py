"""Stream metrics (``twisted_stream._ops._metrics``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest_twisted

from twisted_stream import Outcome, stream, stream_for
from twisted_stream._engine._outcome import StreamResult
from twisted_stream._ops._metrics import StreamMetrics

from ..conftest import leaf
from ..waiting import within


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

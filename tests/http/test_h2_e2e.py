"""Our HTTP/2 connection (``twisted_stream._http._h2``) against a real HTTP/2 client: the
``h2`` library on a TLS socket that negotiated ``h2`` by ALPN."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import pytest_twisted
from h2.errors import ErrorCodes
from twisted.internet.threads import deferToThread

from twisted_stream import (
    GracefulShutdown,
    Outcome,
    StatusResource,
    Stream,
    StreamSettings,
    StreamSite,
)
from twisted_stream._http._h2 import STREAM_HIGH_WATER

from ..test_faults import rss_kib
from ..waiting import turns, until, within
from .conftest import TLSServer
from .kernel import kernel_queued
from .kinds import BLOCK, KINDS, OURS, WITH_FINALLY, KindsResource, Recorder


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_every_kind_completes(tls_server: TLSServer, kinds: StreamSite, kind: str) -> None:
    """Each kind of response, ours or not, arrives whole over HTTP/2."""
    client = tls_server.h2_client()
    assert await deferToThread(client.connect) == "h2"
    n = 40
    stream_id = await deferToThread(client.get, f"/{kind}?n={n}")
    response = client.responses[stream_id]
    await deferToThread(client.read_until, lambda: response.done)
    assert response.status == 200
    assert response.ended and response.reset is None
    assert KINDS[kind].check(bytes(response.body), n)


async def settled(streams: list[Stream], timeout: float = 20.0) -> int:
    """Wait until every stream is paused and their bytes written stop moving for three
    windows in a row; the total they settled at."""
    deadline = time.monotonic() + timeout
    last, stable = -1, 0
    while stable < 3:
        assert time.monotonic() < deadline, "the streams never settled: " + ", ".join(
            f"{s.path} {s.state.name} {s.bytes_sent}" for s in streams
        )
        await until(lambda: all(s.paused for s in streams), what="every stream to pause")
        await turns(30)
        now = sum(s.bytes_sent for s in streams)
        stable = stable + 1 if now == last and all(s.paused for s in streams) else 0
        last = now
    return last


BUFFER = StreamSettings().buffer_size
QUEUE_ALLOWANCE = STREAM_HIGH_WATER + BUFFER
"""What one stream may hold beyond what it sent: its HTTP/2 queue up to the high-water mark
plus one write of a buffer."""
TRANSPORT_ALLOWANCE = 256 * 1024
"""What the connection's TLS and TCP transports may hold in user space (Twisted's 64 KiB
write buffer, the TLS layer's 64 KB of aggregated small writes, a frame or two over)."""


@pytest_twisted.ensureDeferred
async def test_stalled_client_with_a_16_mib_window_costs_one_buffer_per_stream(
    tls_server: TLSServer, kinds: StreamSite, recorder: Recorder
) -> None:
    """A client that grants 16 MiB windows and then reads nothing: every one of our stream
    kinds on the connection pauses with what it wrote bounded by its buffer plus what the
    kernel holds, and the server's memory stays flat (Twisted queues 16 MiB per stream)."""
    window = 16 * 1024 * 1024
    client = tls_server.h2_client(window=window, rcvbuf=65536)
    assert await deferToThread(client.connect) == "h2"
    warm = await deferToThread(client.get, "/sync?n=4")
    await deferToThread(client.read_until, lambda: client.responses[warm].done)
    rss_before = rss_kib()
    paths = [f"/{kind}?n=0" for kind in OURS]
    await deferToThread(client.get_many, paths)
    await until(lambda: len(recorder.all_streams()) == len(OURS) + 1, what="every stream")
    streams = [s for s in recorder.all_streams() if s.outcome is None]
    assert len(streams) == len(OURS)
    await settled(streams)
    kernel = kernel_queued(tls_server.port, client.local_port)
    assert all(s.bytes_sent > 0 for s in streams), "a stream was starved"
    for handle in streams:
        assert handle.bytes_sent <= kernel + TRANSPORT_ALLOWANCE + QUEUE_ALLOWANCE, (
            handle.path,
            handle.bytes_sent,
            kernel,
        )
    total = sum(s.bytes_sent for s in streams)
    assert total <= kernel + TRANSPORT_ALLOWANCE + len(streams) * QUEUE_ALLOWANCE
    # What the sources gave up (the sync one less the warm-up's 4 blocks; a channel's count
    # is what was published, not pulled): at most one buffer more than was written.
    pulled = dict(recorder.pulled, sync=recorder.pulled["sync"] - 4 * len(BLOCK))
    for kind in set(OURS) - {"channel", "file-resource"}:
        assert pulled[kind] <= kernel + TRANSPORT_ALLOWANCE + QUEUE_ALLOWANCE + BUFFER, kind
    assert rss_kib() - rss_before < 24 * 1024


@pytest_twisted.ensureDeferred
async def test_a_hundred_concurrent_streams_all_progress(
    tls_server: TLSServer, kinds: StreamSite, recorder: Recorder
) -> None:
    """100 endless streams on one connection (h2's default concurrency limit) share it: by
    the time the client has read 25 MiB, every stream has delivered at least a quarter of
    its fair share; none waits for the others to end."""
    client = tls_server.h2_client(window=1024 * 1024, keep_body=False)
    assert await deferToThread(client.connect) == "h2"
    ids = await deferToThread(client.get_many, ["/sync?n=0"] * 100)
    total = 100 * 256 * 1024
    await deferToThread(
        client.read_until,
        lambda: sum(client.responses[i].received for i in ids) >= total,
        30.0,
    )
    received = sorted(client.responses[i].received for i in ids)
    assert received[0] >= total // 100 // 4, received
    assert all(client.responses[i].reset is None for i in ids)
    assert len(recorder.streams["sync"]) == 100
    assert all(s.outcome is None for s in recorder.streams["sync"])


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("kind", WITH_FINALLY)
async def test_reset_mid_stream_closes_that_source_only(
    tls_server: TLSServer, kinds: StreamSite, recorder: Recorder, kind: str
) -> None:
    """RST_STREAM from the client mid-stream closes that stream's source (its ``finally``
    runs) and ends it as CLIENT_GONE; another stream on the connection completes."""
    client = tls_server.h2_client()
    assert await deferToThread(client.connect) == "h2"
    endless, other = await deferToThread(client.get_many, [f"/{kind}?n=0", "/sync?n=64"])
    endless_response = client.responses[endless]
    await deferToThread(client.read_until, lambda: endless_response.received >= 32768)
    await deferToThread(client.reset, endless)
    await until(lambda: recorder.closed[kind] == 1, what=f"the {kind} source to close")
    handle = recorder.streams[kind][0]
    await until(lambda: handle.outcome is Outcome.CLIENT_GONE, what="the stream to end")
    await deferToThread(client.read_until, lambda: client.responses[other].done)
    assert client.responses[other].ended
    assert bytes(client.responses[other].body) == BLOCK * 64


@pytest_twisted.ensureDeferred
async def test_connection_drop_closes_every_source(
    tls_server: TLSServer, kinds: StreamSite, recorder: Recorder
) -> None:
    """The client dropping the connection mid-stream closes every stream's source."""
    client = tls_server.h2_client()
    assert await deferToThread(client.connect) == "h2"
    ids = await deferToThread(client.get_many, [f"/{kind}?n=0" for kind in WITH_FINALLY])
    await deferToThread(
        client.read_until, lambda: all(client.responses[i].received > 0 for i in ids)
    )
    await deferToThread(client.close)
    await until(
        lambda: all(recorder.closed[kind] == 1 for kind in WITH_FINALLY),
        what="every source to close",
    )
    assert all(s.outcome is Outcome.CLIENT_GONE for s in recorder.all_streams())


@pytest_twisted.ensureDeferred
async def test_source_error_resets_that_stream_with_internal_error(
    tls_server: TLSServer, kinds: StreamSite, recorder: Recorder
) -> None:
    """A source failing mid-stream resets its stream with INTERNAL_ERROR (RFC 9113 §7) after
    the data it produced; the other streams on the connection complete."""
    client = tls_server.h2_client()
    assert await deferToThread(client.connect) == "h2"
    failing, other = await deferToThread(client.get_many, ["/fail?n=8", "/sync?n=64"])
    await deferToThread(
        client.read_until, lambda: client.responses[failing].done and client.responses[other].done
    )
    assert client.responses[failing].reset == ErrorCodes.INTERNAL_ERROR
    assert client.responses[failing].status == 200
    assert bytes(client.responses[other].body) == BLOCK * 64
    assert client.responses[other].ended
    assert recorder.streams["fail"][0].outcome is Outcome.SOURCE_FAILED


@pytest_twisted.ensureDeferred
async def test_stall_timeout_fires_for_a_stream_held_by_connection_backpressure(
    tls_server: TLSServer, recorder: Recorder, tmp_path: Path
) -> None:
    """With the largest window HTTP/2 allows and a client that reads nothing, the stream is
    paused by the connection's transport, so the stall timeout aborts it (RST_STREAM)."""
    tls_server.serve(KindsResource(recorder, tmp_path), settings=StreamSettings(stall_timeout=0.3))
    client = tls_server.h2_client(window=2**31 - 1, rcvbuf=65536)
    assert await deferToThread(client.connect) == "h2"
    stream_id = await deferToThread(client.get, "/sync?n=0")
    await until(lambda: bool(recorder.streams.get("sync")), what="the stream to start")
    handle = recorder.streams["sync"][0]
    await until(lambda: handle.outcome is not None, timeout=10, what="the stall timeout")
    assert handle.outcome is Outcome.STALLED
    assert recorder.closed["sync"] == 1
    await deferToThread(client.read_until, lambda: client.responses[stream_id].done)
    assert client.responses[stream_id].reset == ErrorCodes.INTERNAL_ERROR


@pytest_twisted.ensureDeferred
async def test_graceful_shutdown_sends_goaway_and_drains_the_streams(
    tls_server: TLSServer, kinds: StreamSite, recorder: Recorder
) -> None:
    """At shutdown each HTTP/2 connection gets GOAWAY (NO_ERROR, its last stream) at once;
    a stream that ends within the grace period completes, an endless one is ended cleanly
    when the grace period is over, then the connection closes and the drain is done."""
    shutdown = GracefulShutdown(kinds, grace_period=1.0)
    client = tls_server.h2_client()
    assert await deferToThread(client.connect) == "h2"
    finite, endless = await deferToThread(client.get_many, ["/sync?n=64", "/events?n=0"])
    await deferToThread(
        client.read_until,
        lambda: client.responses[finite].received > 0 and client.responses[endless].received > 0,
    )
    drained = shutdown.drain()
    await deferToThread(client.read_until, lambda: bool(client.frames.goaways))
    assert [(f.error_code, f.last_stream_id) for f in client.frames.goaways] == [
        (ErrorCodes.NO_ERROR, endless)
    ]
    assert not client.responses[finite].done and not client.responses[endless].done
    await deferToThread(client.read_until, lambda: client.responses[finite].done)
    assert client.responses[finite].ended and bytes(client.responses[finite].body) == BLOCK * 64
    await deferToThread(client.read_until, lambda: client.responses[endless].done)
    assert client.responses[endless].ended
    await deferToThread(client.read_to_close)
    await within(drained)
    assert recorder.closed["sync"] == 1 and recorder.closed["events"] == 1


@pytest_twisted.ensureDeferred
async def test_protocol_shows_in_status_metrics_and_access_log(
    tls_server: TLSServer, recorder: Recorder, tmp_path: Path
) -> None:
    """An HTTP/2 stream says ``HTTP/2`` in its handle, the status snapshot, the metrics
    (per protocol) and the access log, for a completed and for a reset stream."""
    log = tmp_path / "access.log"
    site = tls_server.serve(KindsResource(recorder, tmp_path), logPath=str(log))
    client = tls_server.h2_client()
    assert await deferToThread(client.connect) == "h2"
    done, endless = await deferToThread(client.get_many, ["/sync?n=1", "/events?n=0"])
    await deferToThread(
        client.read_until,
        lambda: client.responses[done].done and client.responses[endless].received > 0,
    )
    live = recorder.streams["events"][0]
    assert live.protocol == "HTTP/2"
    rows = StatusResource().snapshot(site)["streams"]
    assert [(row["path"], row["protocol"]) for row in rows] == [("/events?n=0", "HTTP/2")]
    assert site.metrics.by_protocol(site.active_streams)["HTTP/2"] == (1, 2)
    await deferToThread(client.reset, endless)
    await until(lambda: live.outcome is not None, what="the reset stream to end")
    await until(lambda: log.read_text().count("\n") == 2, what="two access-log lines")
    lines = log.read_text().splitlines()
    assert any('"GET /sync?n=1 HTTP/2" 200' in line for line in lines), lines
    assert any('"GET /events?n=0 HTTP/2" 200' in line for line in lines), lines

"""Our HTTP/2 connection (``twisted_stream._http._h2``), frame by frame on a fake transport
and clock: backpressure into every stream producer, frames per turn, priority, resets and
GOAWAY. The same behaviours against a real client over TLS are in ``test_h2_e2e.py``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import h2.events
from h2.errors import ErrorCodes
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from twisted_stream import Outcome, StreamSettings, stream, stream_for
from twisted_stream._http._h2 import SEND_BUDGET, STREAM_HIGH_WATER, StreamH2Connection
from twisted_stream._http._twisted import FORCE_ABORT_AFTER

from ..conftest import leaf
from .h2harness import Harness, data_bytes

BIG_WINDOW = 16 * 1024 * 1024
BUFFER = StreamSettings().buffer_size


def endless(pulled: list[int]) -> Iterator[bytes]:
    block = b"x" * 16384
    while True:
        pulled[0] += len(block)
        yield block


class Streams(Resource):
    """``/endless`` streams forever with our engine on the harness's clock; ``/bytes?n=N``
    is a plain resource returning N bytes."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.clock: Any = None
        self.requests: list[Any] = []
        self.pulled: list[list[int]] = []

    def render_GET(self, request: Any) -> Any:
        self.requests.append(request)
        if request.path == b"/bytes":
            return b"y" * int(request.args[b"n"][0])
        pulled = [0]
        self.pulled.append(pulled)
        return stream(request, endless(pulled), reactor=self.clock)


def harness(window: int = BIG_WINDOW, **kwargs: Any) -> tuple[Harness, Streams]:
    resource = Streams()
    h = Harness(resource, window=window, **kwargs)
    resource.clock = h.clock
    return h, resource


def test_a_stream_queues_at_most_its_high_water_mark_whatever_the_window() -> None:
    """With a 16 MiB window and the send loop not yet run, a stream's producer is paused once
    its queue reaches the high-water mark (Twisted's lets it queue the whole window)."""
    h, resource = harness()
    stream_id = h.get("/endless")
    handle = stream_for(resource.requests[0])
    assert handle is not None and handle.paused
    assert h.conn.queued_bytes(stream_id) <= STREAM_HIGH_WATER + BUFFER
    assert resource.pulled[0][0] <= STREAM_HIGH_WATER + 2 * BUFFER


def test_transport_pushback_pauses_every_stream_and_its_drain_resumes_them_all() -> None:
    """The transport pausing the connection pauses every stream's producer; when it resumes
    them, each stream writes more before any DATA is sent (so none is starved)."""
    h, resource = harness()
    for _ in range(3):
        h.get("/endless")
    handles = [stream_for(request) for request in resource.requests]
    h.turn()  # the send loop drains the queues; the producers refill them
    h.conn.pauseProducing()
    assert all(s is not None and s.paused for s in handles)
    before = [s.bytes_sent for s in handles if s is not None]
    h.turn()
    assert [s.bytes_sent for s in handles if s is not None] == before
    h.conn.resumeProducing()
    after = [s.bytes_sent for s in handles if s is not None]
    assert all(a > b for a, b in zip(after, before, strict=True))


def test_one_turn_sends_many_frames_within_the_budget() -> None:
    """A response larger than the turn's budget goes out as many DATA frames per reactor
    turn, at most the budget and a frame (Twisted's loop sends one frame per turn)."""
    h, _ = harness()
    stream_id = h.get(f"/bytes?n={2 * SEND_BUDGET}")
    h.receive()
    h.turn()
    first = data_bytes(h.receive(), stream_id)
    assert SEND_BUDGET // 2 <= first <= SEND_BUDGET + 16384
    for _ in range(3):
        h.turn()
    h.receive()
    assert data_bytes(h.events, stream_id) == 2 * SEND_BUDGET


def test_a_stream_waiting_for_its_window_costs_no_turns() -> None:
    """A stream whose flow-control window is used up waits for WINDOW_UPDATE without a
    send loop spinning every turn, and sends again when it comes."""
    h, _ = harness(window=65535)
    stream_id = h.get("/bytes?n=200000")
    for _ in range(3):
        h.turn()
    sent = data_bytes(h.receive(), stream_id)
    assert sent == 65535
    assert h.pending_turns() == 0
    h.client.acknowledge_received_data(sent, stream_id)
    h.client.increment_flow_control_window(200000)
    h.client.increment_flow_control_window(200000, stream_id)
    h.send()
    h.turn()
    assert data_bytes(h.receive(), stream_id) == 200000 - 65535


def test_priority_order_is_kept() -> None:
    """A stream that depends exclusively on another gets no DATA until the other's is all
    sent (RFC 7540 §5.3 priorities, as Twisted's priority tree orders them)."""
    h, _ = harness()
    first = h.get("/bytes?n=100000")
    second = h.get("/bytes?n=100000")
    h.client.prioritize(second, depends_on=first, exclusive=True)
    h.send()
    h.turn()
    order = [e.stream_id for e in h.receive() if isinstance(e, h2.events.DataReceived)]
    assert order.index(second) > max(i for i, s in enumerate(order) if s == first)


def test_server_abort_resets_with_internal_error_and_tells_the_request() -> None:
    """Aborting a stream sends RST_STREAM with INTERNAL_ERROR and errbacks the request's
    ``notifyFinish`` (Twisted resets with NO_ERROR and leaves the request waiting)."""
    held: list[Any] = []
    gone: list[Failure] = []

    def render(request: Any) -> Any:
        request.notifyFinish().addErrback(gone.append)
        held.append(request)
        return NOT_DONE_YET

    h = Harness(leaf(render))
    stream_id = h.get("/")
    held[0].channel.abortConnection()
    resets = [e for e in h.receive() if isinstance(e, h2.events.StreamReset)]
    assert [(e.stream_id, e.error_code) for e in resets] == [
        (stream_id, ErrorCodes.INTERNAL_ERROR)
    ]
    assert len(gone) == 1


def failing_after(size: int, clock: Any, gone: list[Failure]) -> Resource:
    """A resource streaming ``size`` bytes on ``clock``, then failing (an upstream dying
    mid-body); each request's ``notifyFinish`` failure goes to ``gone``."""

    def body() -> Iterator[bytes]:
        yield b"z" * size
        raise OSError("the source failed")

    def render(request: Any) -> Any:
        request.notifyFinish().addErrback(gone.append)
        return stream(request, body(), reactor=clock)

    return leaf(render)


def resets_of(events: list[h2.events.Event], stream_id: int) -> list[ErrorCodes]:
    return [
        e.error_code
        for e in events
        if isinstance(e, h2.events.StreamReset) and e.stream_id == stream_id
    ]


def test_a_source_failing_mid_body_sends_what_it_wrote_before_the_reset() -> None:
    """A response whose source fails after writing 200,000 bytes to a client with a 64 KiB
    window: the client gets the first 65,535 at once and no reset yet; once it opens its
    window, the rest, then RST_STREAM (INTERNAL_ERROR) and the request learns it is gone
    (Twisted's reset drops what is queued)."""
    gone: list[Failure] = []
    h = Harness(leaf(lambda r: None))
    h.site.resource = failing_after(200_000, h.clock, gone)
    stream_id = h.get("/")
    for _ in range(3):
        h.turn()
    events = h.receive()
    assert data_bytes(events, stream_id) == 65535
    assert resets_of(events, stream_id) == [] and gone == []
    h.client.acknowledge_received_data(65535, stream_id)
    h.client.increment_flow_control_window(1 << 20)
    h.client.increment_flow_control_window(1 << 20, stream_id)
    h.send()
    for _ in range(5):
        h.turn()
    events = h.receive()
    assert data_bytes(h.events, stream_id) == 200_000
    assert resets_of(events, stream_id) == [ErrorCodes.INTERNAL_ERROR]
    assert len(gone) == 1
    assert not h.clock.getDelayedCalls()  # the forced reset was cancelled


def test_a_failed_response_whose_client_never_reads_is_reset_after_the_grace() -> None:
    """If what a failed response queued cannot be sent (here the client stopped reading:
    the transport pushes back), the stream is reset anyway after ``FORCE_ABORT_AFTER``
    seconds, as an HTTP/1.1 connection is; its queue is then dropped."""
    gone: list[Failure] = []
    h = Harness(leaf(lambda r: None))
    h.site.resource = failing_after(30_000, h.clock, gone)
    stream_id = h.get("/")  # writes its 30,000 bytes and fails at once
    assert h.conn.queued_bytes(stream_id) == 30_000 and gone == []
    h.conn.pauseProducing()
    h.clock.advance(FORCE_ABORT_AFTER - 0.1)
    assert gone == []
    h.clock.advance(0.1)
    assert len(gone) == 1
    h.conn.resumeProducing()
    for _ in range(3):
        h.turn()
    events = h.receive()
    assert resets_of(events, stream_id) == [ErrorCodes.INTERNAL_ERROR]
    assert data_bytes(h.events, stream_id) == 0


def test_a_source_failing_within_the_window_sends_everything_then_resets() -> None:
    """The common case: a source writes 30,000 bytes (within the window) and fails before
    the send loop ran; the client gets all 30,000, then RST_STREAM."""
    gone: list[Failure] = []
    h = Harness(leaf(lambda r: None))
    h.site.resource = failing_after(30_000, h.clock, gone)
    stream_id = h.get("/")
    for _ in range(3):
        h.turn()
    events = h.receive()
    assert data_bytes(events, stream_id) == 30_000
    assert resets_of(events, stream_id) == [ErrorCodes.INTERNAL_ERROR]
    assert len(gone) == 1


def test_client_reset_stops_a_producer_that_is_not_ours() -> None:
    """RST_STREAM from the client stops the response's registered producer (``static.File``
    would otherwise keep its file open; Twisted only errbacks ``notifyFinish``)."""

    @implementer(IPushProducer)
    class Producer:
        stopped = 0

        def pauseProducing(self) -> None:
            pass

        def resumeProducing(self) -> None:
            pass

        def stopProducing(self) -> None:
            self.stopped += 1

    producer = Producer()

    def render(request: Any) -> Any:
        request.registerProducer(producer, True)
        request.write(b"x")
        return NOT_DONE_YET

    h = Harness(leaf(render))
    stream_id = h.get("/")
    h.client.reset_stream(stream_id, error_code=ErrorCodes.CANCEL)
    h.send()
    assert producer.stopped == 1


def test_go_away_lets_open_streams_finish_then_closes() -> None:
    """``go_away()`` sends GOAWAY (NO_ERROR, the last stream taken); the open stream runs to
    its end, a stream opened afterwards is refused, and the connection then closes."""
    h, resource = harness()
    first = h.get("/endless")
    h.turn()
    h.receive()
    h.conn.go_away()
    late = h.get("/bytes?n=10")  # sent before the client read the GOAWAY
    events = h.receive()
    goaways = [(f.error_code, f.last_stream_id) for f in h.frames.goaways]
    assert goaways == [(ErrorCodes.NO_ERROR, first)]
    resets = [e for e in events if isinstance(e, h2.events.StreamReset)]
    assert [(e.stream_id, e.error_code) for e in resets] == [(late, ErrorCodes.REFUSED_STREAM)]
    assert len(resource.requests) == 1
    handle = stream_for(resource.requests[0])
    assert handle is not None and not h.transport.disconnecting
    handle.end()
    for _ in range(3):
        h.turn()
    assert any(isinstance(e, h2.events.StreamEnded) and e.stream_id == first for e in h.receive())
    assert handle.outcome is Outcome.COMPLETED
    assert h.transport.disconnecting


def test_go_away_on_an_idle_connection_closes_it_at_once() -> None:
    """With no open stream, ``go_away()`` sends GOAWAY and closes the connection."""
    h, _ = harness()
    h.conn.go_away()
    h.receive()
    assert [(f.error_code, f.last_stream_id) for f in h.frames.goaways] == [(0, 0)]
    assert h.transport.disconnecting


def test_harness_uses_our_connection() -> None:
    """The harness builds the class under test (so the tests above test it)."""
    h, _ = harness()
    assert isinstance(h.conn, StreamH2Connection)

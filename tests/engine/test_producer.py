"""Deterministic tests of the engine (``twisted_stream._engine._producer``).

A real ``Site``/``HTTPChannel`` on a ``StringTransport`` and a ``MemoryReactorClock``: the
tests play the transport (pause, resume, stop, connection loss) and read the bytes written.
The engine measures time on the fake clock too (the site's ``monotonic`` is its ``seconds``),
so a slice ends only when a test moves the clock: nothing depends on the machine's speed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.resource import Resource

from twisted_stream import Outcome, State, StreamSite, stream, stream_for
from twisted_stream._engine._stream import Stream


class Harness:
    """One HTTP/1.1 connection to a site whose only resource streams ``make_source()``."""

    def __init__(self, make_source: Callable[[], object], **stream_kwargs: Any) -> None:
        self.clock = MemoryReactorClock()
        self.requests: list[Any] = []
        harness = self

        class Leaf(Resource):
            isLeaf = True

            def render_GET(self, request: Any) -> Any:
                harness.requests.append(request)
                return stream(request, make_source(), reactor=harness.clock, **stream_kwargs)

        self.site = StreamSite(Leaf())
        self.site.monotonic = self.clock.seconds
        self.channel = self.site.buildProtocol(None)
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)

    def get(self, extra: bytes = b"", method: bytes = b"GET", version: bytes = b"1.1") -> Stream:
        self.channel.dataReceived(
            method + b" /x HTTP/" + version + b"\r\nHost: t\r\n" + extra + b"\r\n"
        )
        handle = stream_for(self.requests[-1])
        assert handle is not None
        return handle

    @property
    def producer(self) -> Any:
        """What the transport sees as its producer (the channel, which relays to ours)."""
        return self.transport.producer

    def pump(self, turns: int = 1000) -> None:
        """Run scheduled slices (reactor turns) until none is left."""
        for _ in range(turns):
            if not self.clock.getDelayedCalls():
                return
            self.clock.advance(0)

    def body(self) -> bytes:
        """Everything written after the response headers."""
        return self.transport.value().partition(b"\r\n\r\n")[2]

    def lose_connection(self, stop_first: bool = True) -> None:
        """The connection goes away as TCP reports it: stopProducing, then connectionLost."""
        if stop_first and self.transport.producer is not None:
            self.transport.producer.stopProducing()
        self.channel.connectionLost(Failure(ConnectionDone()))


def result_of(handle: Stream) -> Any:
    results: list[Any] = []
    handle.when_done().addCallback(results.append)
    assert results, "the stream has not ended"
    return results[0]


def counting(n: int, chunk: bytes = b"x" * 100) -> tuple[Iterator[bytes], list[str]]:
    """A generator of ``n`` chunks recording how far it got and whether its finally ran."""
    events: list[str] = []

    def gen() -> Iterator[bytes]:
        try:
            for i in range(n):
                events.append(f"pulled {i}")
                yield chunk
        finally:
            events.append("finally")

    return gen(), events


def pulled(events: list[str]) -> int:
    return sum(1 for e in events if e.startswith("pulled"))


def test_small_body_is_written_and_finished() -> None:
    """A short generator is written as one chunked body and the stream completes."""
    h = Harness(lambda: iter([b"hello ", "world"]))
    handle = h.get()
    assert h.body() == b"b\r\nhello world\r\n0\r\n\r\n"
    assert result_of(handle).outcome is Outcome.COMPLETED
    assert handle.bytes_sent == 11
    assert handle.state is State.FINISHED


def test_repeated_pause_is_idempotent_and_one_resume_continues() -> None:
    """Twisted pauses repeatedly; a single resume continues exactly where it stopped."""
    gen, events = counting(10_000)
    h = Harness(lambda: gen, buffer_size=1000)
    h.producer.pauseProducing()  # paused before we start: the first write pauses us again
    handle = h.get()
    for _ in range(5):
        h.producer.pauseProducing()
    handle._producer.pauseProducing()
    before = pulled(events)
    h.clock.advance(0)
    assert pulled(events) == before, "nothing is pulled while paused"
    assert handle.state is State.PAUSED
    h.producer.resumeProducing()
    assert pulled(events) > before
    # Keep the transport draining: it resumes whenever it is paused.
    while handle.outcome is None:
        if handle.state is State.PAUSED:
            h.producer.resumeProducing()
        h.clock.advance(0)
    assert handle.bytes_sent == 10_000 * 100
    assert events[-1] == "finally"


def test_resume_when_not_paused_pulls_nothing_extra() -> None:
    """A resume that was not preceded by a pause does not start a second pull loop."""
    gen, events = counting(1_000_000)
    h = Harness(lambda: gen, buffer_size=1000)
    handle = h.get()
    # The first slice wrote two buffers and scheduled the next slice for the next turn.
    first = pulled(events)
    assert 0 < first <= 21
    handle._producer.resumeProducing()
    handle._producer.resumeProducing()
    assert pulled(events) == first
    h.clock.advance(0)
    assert pulled(events) > first
    h.lose_connection()


def test_source_is_pulled_in_slices_so_other_work_runs() -> None:
    """A fast source that never fills the transport yields to the reactor when its slice
    time is up (here each item takes 0.1 ms of the fake clock; the slice is 1 ms)."""
    gen, events = counting(1_000_000, chunk=b"")
    clock_holder: list[Any] = []

    def timed() -> Iterator[bytes]:
        try:
            for item in gen:
                clock_holder[0].rightNow += 0.0001
                yield item
        finally:
            gen.close()

    h = Harness(timed, buffer_size=1000, slice_seconds=0.001)
    clock_holder.append(h.clock)
    handle = h.get()
    # Empty chunks never fill anything: the slice ends on time and the rest waits a turn.
    assert handle.state is State.STREAMING
    assert h.clock.getDelayedCalls(), "the next slice is scheduled, not run inline"
    first = pulled(events)
    assert first < 1_000_000
    assert first <= 11, "the slice ended once 1 ms of the clock had passed"
    h.clock.advance(0)
    assert pulled(events) > first
    h.lose_connection()
    assert events[-1] == "finally"


def test_big_chunks_are_split_into_buffer_sized_writes() -> None:
    """One 10,000-byte chunk goes out as writes of at most the buffer size."""
    h = Harness(lambda: iter([b"a" * 10_000]), buffer_size=4096)
    writes: list[bytes] = []
    original = h.transport.writeSequence
    h.transport.writeSequence = lambda seq: (writes.append(b"".join(seq)), original(seq))[1]
    handle = h.get()
    h.pump()
    sizes = [int(w.split(b"\r\n")[0], 16) for w in writes if w[:1] != b"H"]
    assert sizes == [4096, 4096, 1808]
    assert h.body().endswith(b"\r\n0\r\n\r\n")
    assert result_of(handle).outcome is Outcome.COMPLETED


def test_stop_while_paused_closes_the_source_once() -> None:
    """stopProducing while paused ends the stream (client gone) and runs the finally once."""
    gen, events = counting(1_000_000)
    h = Harness(lambda: gen, buffer_size=1000)
    handle = h.get()
    h.producer.pauseProducing()
    h.lose_connection()
    assert result_of(handle).outcome is Outcome.CLIENT_GONE
    assert events.count("finally") == 1
    h.clock.advance(0)
    assert handle.state is State.ABORTED


def test_notify_finish_errback_alone_ends_the_stream() -> None:
    """When only the notifyFinish errback comes (HTTP/2, unregistered channel), it is enough."""
    gen, events = counting(1_000_000)
    h = Harness(lambda: gen, buffer_size=1000)
    handle = h.get()
    h.lose_connection(stop_first=False)
    assert result_of(handle).outcome is Outcome.CLIENT_GONE
    assert events.count("finally") == 1
    assert not h.clock.getDelayedCalls(), "no slice is left scheduled"


class WaitingAfterFirst:
    """A generator giving ``b"first"``, then waiting on :attr:`pending` (then ``b"never"``);
    records whether the Deferred was cancelled and whether the generator's finally ran."""

    def __init__(self) -> None:
        self.pending: Deferred[bytes] = Deferred()
        self.cancelled: list[bool] = []
        self.pending.addErrback(lambda f: self.cancelled.append(True))
        self.events: list[str] = []

    def __call__(self) -> Iterator[object]:
        try:
            yield b"first"
            yield self.pending
            yield b"never"
        finally:
            self.events.append("finally")


def test_stop_during_pending_deferred_cancels_it_and_closes() -> None:
    """A disconnect while the source waits on a Deferred cancels it and closes the generator."""
    source = WaitingAfterFirst()
    cancelled, events = source.cancelled, source.events
    h = Harness(source)
    handle = h.get()
    assert h.body() == b"5\r\nfirst\r\n"
    assert handle.state is State.WAITING
    h.producer.pauseProducing()
    assert handle.state is State.WAITING_PAUSED
    h.lose_connection()
    assert cancelled == [True]
    assert events == ["finally"]
    assert result_of(handle).outcome is Outcome.CLIENT_GONE


def test_deferred_firing_while_paused_waits_for_resume() -> None:
    """A Deferred result that arrives while paused is written only after resume."""
    pending: Deferred[bytes] = Deferred()
    h = Harness(lambda: iter([b"a", pending, b"c"]))
    handle = h.get()
    h.producer.pauseProducing()
    pending.callback(b"b")
    assert handle.state is State.PAUSED
    assert h.body() == b"1\r\na\r\n"
    h.producer.resumeProducing()
    assert h.body() == b"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n"


def test_buffered_small_chunks_are_flushed_before_waiting() -> None:
    """Coalesced chunks go out as soon as the source has to wait, not held for more."""
    pending: Deferred[bytes] = Deferred()
    h = Harness(lambda: iter([b"a", b"b", pending]))
    h.get()
    assert h.body() == b"2\r\nab\r\n"
    pending.callback(None)
    assert h.body().endswith(b"0\r\n\r\n")


def test_failure_before_headers_answers_500() -> None:
    """A source failing before any byte went out gives a 500 page and SOURCE_FAILED."""

    def gen() -> Iterator[bytes]:
        raise ValueError("boom")
        yield b""  # pragma: no cover

    h = Harness(gen)
    logged = capture_log()
    handle = h.get()
    assert h.transport.value().startswith(b"HTTP/1.1 500 ")
    assert b"boom" not in h.transport.value(), "no traceback unless displayTracebacks"
    assert result_of(handle).outcome is Outcome.SOURCE_FAILED
    assert [e["log_level"] for e in logged] == [LogLevel.critical]
    assert "GET /x HTTP/1.1" in logged[0]["request_line"]


def test_failure_before_headers_shows_traceback_when_enabled() -> None:
    """With the site's displayTracebacks on, the 500 page carries the traceback."""

    def gen() -> Iterator[bytes]:
        raise ValueError("boom <script>")
        yield b""  # pragma: no cover

    h = Harness(gen)
    h.site.displayTracebacks = True
    capture_log()
    h.get()
    assert b"boom &lt;script&gt;" in h.transport.value()


def test_failure_after_headers_aborts_without_terminator() -> None:
    """A mid-stream failure aborts the connection: no final chunk, no error text."""

    def gen() -> Iterator[bytes]:
        yield b"partial"
        raise ValueError("boom")

    h = Harness(gen)
    capture_log()
    pending: Deferred[bytes] = Deferred()
    h2 = Harness(lambda: iter([b"partial", pending]))
    capture_log()
    handle = h.get()
    assert h.transport.value().endswith(b"7\r\npartial\r\n")
    assert h.transport.disconnecting
    assert result_of(handle).outcome is Outcome.SOURCE_FAILED
    # The same for a Deferred that fails.
    handle2 = h2.get()
    pending.errback(ValueError("late"))
    assert h2.transport.disconnecting
    assert not h2.transport.value().endswith(b"0\r\n\r\n")
    assert result_of(handle2).outcome is Outcome.SOURCE_FAILED


def test_wrong_chunk_type_is_a_type_error_naming_it() -> None:
    """Yielding an int fails the stream with a TypeError that names the type."""
    h = Harness(lambda: iter([42]))
    capture_log()
    handle = h.get()
    failure = result_of(handle).failure
    assert failure.check(TypeError)
    assert "builtins.int" in str(failure.value)


@pytest.mark.parametrize("method", [b"HEAD"])
def test_head_never_iterates_the_source(method: bytes) -> None:
    """HEAD sends headers only and closes the generator without running its body."""
    gen, events = counting(10)
    h = Harness(lambda: gen)
    handle = h.get(method=method)
    assert events == []
    assert h.body() == b""
    assert result_of(handle).outcome is Outcome.COMPLETED


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_status_never_iterates(code: int) -> None:
    """204 and 304 responses never pull from the source."""
    gen, events = counting(10)
    h = Harness(lambda: gen)

    class Leaf(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> Any:
            request.setResponseCode(code)
            h.requests.append(request)
            return stream(request, gen, reactor=h.clock)

    h.site.resource = Leaf()
    handle = h.get()
    assert events == []
    assert h.transport.value().startswith(b"HTTP/1.1 %d " % code)
    assert result_of(handle).outcome is Outcome.COMPLETED


def test_content_length_exact_is_sent_without_chunking() -> None:
    """With a matching content_length the body is sent raw and completes."""
    h = Harness(lambda: iter([b"abc", b"de"]), content_length=5)
    handle = h.get()
    assert b"Content-Length: 5" in h.transport.value()
    assert h.body() == b"abcde"
    assert result_of(handle).outcome is Outcome.COMPLETED


def test_content_length_too_short_aborts() -> None:
    """A source producing fewer bytes than declared aborts the connection."""
    h = Harness(lambda: iter([b"abc"]), content_length=5)
    capture_log()
    handle = h.get()
    assert h.body() == b"abc"
    assert h.transport.disconnecting
    assert result_of(handle).outcome is Outcome.SOURCE_FAILED


def test_content_length_too_long_never_completes_the_body() -> None:
    """A source producing more than declared: the client never gets a complete-looking body."""
    more: Deferred[bytes] = Deferred()
    h = Harness(lambda: iter([b"abc", b"de", more]), content_length=5, buffer_size=3)
    capture_log()
    handle = h.get()
    assert h.body() == b"abc", "the last declared bytes are held until the source ends"
    assert not h.transport.disconnecting
    h.pump()
    assert h.body() == b"abc"
    more.callback(b"extra")
    assert h.transport.disconnecting
    assert "produced more" in str(result_of(handle).failure.value)


def test_abort_from_the_server() -> None:
    """Stream.abort() aborts the connection, closes the source and reports ABORTED."""
    gen, events = counting(1_000_000)
    h = Harness(lambda: gen, buffer_size=1000)
    handle = h.get()
    handle.abort("test")
    assert h.transport.disconnecting
    assert events[-1] == "finally"
    assert result_of(handle).outcome is Outcome.ABORTED
    h.lose_connection()  # Twisted's later connectionLost is ignored
    assert result_of(handle).outcome is Outcome.ABORTED


def test_end_finishes_cleanly() -> None:
    """Stream.end() finishes the response cleanly and closes the source."""
    pending: Deferred[bytes] = Deferred()
    h = Harness(lambda: iter([b"a", pending]))
    handle = h.get()
    handle.end()
    assert h.body().endswith(b"0\r\n\r\n")
    assert result_of(handle).outcome is Outcome.COMPLETED
    assert pending.called, "the pending Deferred was cancelled"
    pending.addErrback(lambda _: None)


def test_http10_body_ends_with_the_connection() -> None:
    """HTTP/1.0: no chunking; the connection closes after the body."""
    h = Harness(lambda: iter([b"abc"]))
    h.get(version=b"1.0")
    assert h.transport.value().startswith(b"HTTP/1.0 200 ")
    assert h.body() == b"abc"
    assert h.transport.disconnecting


def test_client_gone_is_logged_at_info() -> None:
    """A client leaving mid-stream is an info line, never an error."""
    gen, _ = counting(1_000_000)
    h = Harness(lambda: gen, buffer_size=1000)
    logged = capture_log()
    h.get()
    h.lose_connection()
    assert [e["log_level"] for e in logged] == [LogLevel.info]


def capture_log() -> list[dict[str, Any]]:
    """Collect twisted_stream's log events for the rest of the test."""
    events: list[dict[str, Any]] = []

    def observer(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "twisted_stream":
            events.append(event)

    globalLogPublisher.addObserver(observer)
    _observers.append(observer)
    return events


_observers: list[Any] = []


@pytest.fixture(autouse=True)
def _remove_observers() -> Iterator[None]:
    yield
    while _observers:
        globalLogPublisher.removeObserver(_observers.pop())


def test_stall_timeout_aborts_a_stream_paused_too_long() -> None:
    """A stream kept paused by its transport for stall_timeout is aborted as STALLED."""
    gen, events = counting(1_000_000)
    h = Harness(lambda: gen, buffer_size=1000, stall_timeout=60)
    logged = capture_log()
    handle = h.get()
    h.producer.pauseProducing()
    h.clock.advance(59)
    assert handle.outcome is None
    h.clock.advance(1)
    assert result_of(handle).outcome is Outcome.STALLED
    assert h.transport.disconnecting
    assert events[-1] == "finally"
    assert "stalled" in logged[-1]["reason"]


def test_stall_timer_restarts_on_each_pause_and_counts_paused_time() -> None:
    """Resuming cancels the stall timer; pauses and paused time are counted."""
    gen, _ = counting(1_000_000)
    h = Harness(lambda: gen, buffer_size=1000, stall_timeout=10)
    handle = h.get()
    for _ in range(3):
        h.producer.pauseProducing()
        h.producer.pauseProducing()
        h.clock.advance(9)
        h.producer.resumeProducing()
    assert handle.outcome is None
    assert handle.pause_count == 3
    h.lose_connection()


def test_stall_timeout_zero_never_fires() -> None:
    """stall_timeout=0 turns the stall timeout off."""
    gen, _ = counting(1_000_000)
    h = Harness(lambda: gen, buffer_size=1000, stall_timeout=0)
    handle = h.get()
    h.producer.pauseProducing()
    assert not [c for c in h.clock.getDelayedCalls() if c.getTime() > 0]
    assert handle.outcome is None
    h.lose_connection()


def test_idle_timeout_fails_a_silent_source_but_heartbeats_do_not_count() -> None:
    """A source that produces nothing for idle_timeout fails; heartbeat bytes do not reset
    the timer, real data does."""
    from twisted_stream._engine._source import Heartbeat

    gates: list[Deferred[object]] = [Deferred() for _ in range(3)]
    h = Harness(lambda: iter([b"a", *gates]), idle_timeout=10)
    capture_log()
    handle = h.get()
    h.clock.advance(6)
    gates[0].callback(b"data")  # real data: the timer starts again at the next wait
    h.clock.advance(6)
    gates[1].callback(Heartbeat(b":\n\n"))  # keep-alive only: the timer keeps running
    assert handle.outcome is None
    h.clock.advance(4)
    result = result_of(handle)
    assert result.outcome is Outcome.SOURCE_FAILED
    assert "produced nothing" in str(result.failure.value)
    assert gates[2].called, "the pending wait was cancelled"
    gates[2].addErrback(lambda _: None)


def test_deadline_aborts_a_long_stream() -> None:
    """A stream still running at its deadline is aborted."""
    gate: Deferred[object] = Deferred()
    gate.addErrback(lambda _: None)
    h = Harness(lambda: iter([b"a", gate]), deadline=30)
    capture_log()
    handle = h.get()
    h.clock.advance(30)
    assert result_of(handle).outcome is Outcome.ABORTED
    assert "deadline" in str(result_of(handle).failure.value)
    assert not h.clock.getDelayedCalls(), "no timer outlives the stream"


def test_stall_timeout_counts_from_the_latest_pause() -> None:
    """A pause that starts long after an earlier one still gets the full stall timeout."""
    gate: Deferred[object] = Deferred()
    gate.addErrback(lambda _: None)
    h = Harness(lambda: iter([b"a", gate]), stall_timeout=10)
    handle = h.get()
    h.producer.pauseProducing()
    h.clock.advance(1)
    h.producer.resumeProducing()
    h.clock.pump([5] * 10)  # 50 s unpaused
    h.producer.pauseProducing()
    h.clock.advance(9.5)
    assert handle.outcome is None, "only 9.5 s into this pause"
    h.clock.advance(0.5)
    assert result_of(handle).outcome is Outcome.STALLED


@pytest.mark.parametrize("paused", [False, True])
def test_end_while_waiting_is_a_clean_finish(paused: bool) -> None:
    """Stream.end() while the source waits on a Deferred (paused or not) finishes the
    response cleanly: state FINISHED beside outcome COMPLETED, the chunked terminator sent,
    the pending Deferred cancelled and the generator closed."""
    source = WaitingAfterFirst()
    h = Harness(source)
    handle = h.get()
    if paused:
        h.producer.pauseProducing()
    assert handle.state is (State.WAITING_PAUSED if paused else State.WAITING)
    handle.end()
    assert handle.state is State.FINISHED
    assert result_of(handle).outcome is Outcome.COMPLETED
    assert h.body() == b"5\r\nfirst\r\n0\r\n\r\n"
    assert source.cancelled == [True] and source.events == ["finally"]

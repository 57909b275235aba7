"""The heartbeat wrapper: a comment after ``interval`` seconds of silence, on a fake clock."""

from __future__ import annotations

import time
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock

from twisted_stream import Outcome, SourceIdleTimeout
from twisted_stream._engine._source import EOF, ReadResult, Ready, SliceDeadline
from twisted_stream._events._event_stream import stream_events
from twisted_stream._sources._heartbeat import HEARTBEAT, HeartbeatSource
from twisted_stream.testing import StreamTestClient, assert_released

from ..conftest import leaf

PAST = SliceDeadline(0.0, time.monotonic)
"""A slice deadline already passed (these sources hand over what they have at once)."""


class Inner:
    """A scripted inner source: each read takes the next scripted result; an empty script
    makes the read wait on a fresh Deferred (``pending``), which close() cancels."""

    def __init__(self, *script: ReadResult) -> None:
        self.script = list(script)
        self.pending: Deferred[Ready] | None = None
        self.reads = 0
        self.closed = False

    def read(self, limit: int, deadline: SliceDeadline) -> ReadResult:
        self.reads += 1
        if self.script:
            return self.script.pop(0)
        self.pending = Deferred()
        return self.pending

    def close(self) -> None:
        self.closed = True
        if self.pending is not None and not self.pending.called:
            self.pending.cancel()


def fired(d: object) -> list[object]:
    """What ``d`` (a Deferred) has fired with so far: [] or [result]."""
    assert isinstance(d, Deferred)
    got: list[object] = []
    d.addBoth(got.append)
    return got


def test_data_flowing_sets_no_timer() -> None:
    """Reads that return data at once go straight through and schedule nothing."""
    clock = MemoryReactorClock()
    source = HeartbeatSource(Inner(b"a", b"b", EOF), 15.0, clock)
    assert source.read(100, PAST) == b"a"
    assert source.read(100, PAST) == b"b"
    assert source.read(100, PAST) is EOF
    assert clock.getDelayedCalls() == []


def test_a_heartbeat_after_interval_seconds_of_silence() -> None:
    """A waiting read fires with the comment exactly ``interval`` seconds into the silence,
    not before."""
    clock = MemoryReactorClock()
    source = HeartbeatSource(Inner(), 15.0, clock)
    got = fired(source.read(100, PAST))
    clock.advance(14.75)
    assert got == []
    clock.advance(0.25)
    assert got == [HEARTBEAT]


def test_silence_counts_from_the_last_data_not_from_the_read() -> None:
    """Data at t=0, the engine busy until t=10, then a wait: the heartbeat comes at t=15."""
    clock = MemoryReactorClock()
    source = HeartbeatSource(Inner(b"a"), 15.0, clock)
    assert source.read(100, PAST) == b"a"
    clock.advance(10)
    got = fired(source.read(100, PAST))
    clock.advance(4.75)
    assert got == []
    clock.advance(0.25)
    assert got == [HEARTBEAT]


def test_no_heartbeat_while_events_flow() -> None:
    """An event at t=10 pushes the next heartbeat to t=25; events every 10 s never let one
    through."""
    clock = MemoryReactorClock()
    inner = Inner()
    source = HeartbeatSource(inner, 15.0, clock)
    comments = 0
    for _ in range(10):
        got = fired(source.read(100, PAST))
        clock.advance(10)
        assert inner.pending is not None
        inner.pending.callback(b"event")
        comments += got.count(HEARTBEAT)
        assert got[-1] == b"event"
    assert comments == 0
    got = fired(source.read(100, PAST))
    clock.advance(14.75)
    assert got == []
    clock.advance(0.25)
    assert got == [HEARTBEAT]


def test_heartbeats_repeat_and_the_inner_wait_is_kept() -> None:
    """During a long silence a heartbeat goes out every interval; the inner source is read
    once, its Deferred kept across heartbeats, and its data is delivered when it comes."""
    clock = MemoryReactorClock()
    inner = Inner()
    source = HeartbeatSource(inner, 5.0, clock)
    beats = []
    for _ in range(3):
        got = fired(source.read(100, PAST))
        clock.advance(5)
        beats += got
    assert beats == [HEARTBEAT] * 3
    assert inner.reads == 1
    got = fired(source.read(100, PAST))
    assert inner.pending is not None
    inner.pending.callback(b"late")
    assert got == [b"late"]
    assert inner.reads == 1


def test_data_arriving_between_reads_is_held_for_the_next_read() -> None:
    """The inner data that comes after a heartbeat fired, before the engine reads again, is
    returned by that next read at once, in order."""
    clock = MemoryReactorClock()
    inner = Inner()
    source = HeartbeatSource(inner, 5.0, clock)
    got = fired(source.read(100, PAST))
    clock.advance(5)
    assert got == [HEARTBEAT]
    assert inner.pending is not None
    inner.pending.callback(b"x")
    assert source.read(100, PAST) == b"x"
    assert inner.reads == 1
    assert source.read(100, PAST) is not None and inner.reads == 2


def test_eof_and_failures_pass_through() -> None:
    """EOF while waiting ends the read; a failure while waiting fails it; a failure that
    arrives between reads is raised by the next read."""
    clock = MemoryReactorClock()
    inner = Inner()
    source = HeartbeatSource(inner, 5.0, clock)
    got = fired(source.read(100, PAST))
    assert inner.pending is not None
    inner.pending.callback(EOF)
    assert got == [EOF]

    inner = Inner()
    source = HeartbeatSource(inner, 5.0, clock)
    got = fired(source.read(100, PAST))
    assert inner.pending is not None
    inner.pending.errback(RuntimeError("boom"))
    assert len(got) == 1 and got[0].check(RuntimeError)  # type: ignore[attr-defined]

    inner = Inner()
    source = HeartbeatSource(inner, 5.0, clock)
    got = fired(source.read(100, PAST))
    clock.advance(5)
    assert got == [HEARTBEAT]
    assert inner.pending is not None
    inner.pending.errback(RuntimeError("later"))
    with pytest.raises(RuntimeError, match="later"):
        source.read(100, PAST)


def test_an_inner_deferred_that_already_fired_is_returned_directly() -> None:
    """An inner read returning a fired Deferred gives its result without waiting."""
    clock = MemoryReactorClock()
    ready: Deferred[Ready] = Deferred()
    ready.callback(b"now")
    source = HeartbeatSource(Inner(ready), 5.0, clock)
    assert source.read(100, PAST) == b"now"
    assert clock.getDelayedCalls() == []


def test_close_while_a_heartbeat_is_pending() -> None:
    """close() cancels the timer, closes the inner source, and the waiting read never fires
    (nor does the inner cancellation surface as an unhandled error)."""
    clock = MemoryReactorClock()
    inner = Inner()
    source = HeartbeatSource(inner, 5.0, clock)
    got = fired(source.read(100, PAST))
    assert len(clock.getDelayedCalls()) == 1
    source.close()
    assert inner.closed
    assert clock.getDelayedCalls() == []
    clock.advance(60)
    assert got == []
    source.close()  # a second close is harmless


def test_close_after_a_heartbeat_swallows_the_inner_cancellation() -> None:
    """The inner wait that outlived a heartbeat is cancelled by the inner close(); its
    CancelledError is consumed."""
    clock = MemoryReactorClock()
    inner = Inner()
    source = HeartbeatSource(inner, 5.0, clock)
    fired(source.read(100, PAST))
    clock.advance(5)
    pending = inner.pending
    assert pending is not None
    source.close()
    errors: list[Any] = []
    pending.addErrback(errors.append)
    assert errors == []  # the CancelledError was already consumed by the wrapper
    assert pending.called and pending.result is None


def test_the_interval_must_be_positive() -> None:
    """A zero or negative interval is refused."""
    with pytest.raises(ValueError):
        HeartbeatSource(Inner(), 0, MemoryReactorClock())
    with pytest.raises(ValueError):
        HeartbeatSource(Inner(), -1, MemoryReactorClock())


def test_heartbeat_timing_on_the_wire() -> None:
    """Over the site's own connection on a fake clock: headers at once, no comment before
    15 s of silence, one at 15 s; an event at 20 s pushes the next one to 35 s."""
    gate: Deferred[object] = Deferred()

    def events() -> Any:
        yield gate
        yield "tick"
        yield Deferred()  # silent for ever

    with StreamTestClient(leaf(lambda request: stream_events(request, events()))) as client:
        response = client.get("/")
        assert response.code == 200
        start = len(response.raw)

        def body() -> bytes:
            return response.raw[start:]

        client.advance(14.75)
        assert body() == b""
        client.advance(0.25)
        assert body() == b"3\r\n:\n\n\r\n"
        client.advance(5)  # t=20
        gate.callback(None)
        client.flush()
        assert b"tick" in body()
        mark = len(body())
        client.advance(14.75)  # t=34.75
        assert len(body()) == mark
        client.advance(0.25)  # t=35
        assert body()[mark:] == b"3\r\n:\n\n\r\n"
        response.disconnect()
        assert_released(response)


def test_heartbeats_do_not_count_as_activity_for_the_idle_timeout() -> None:
    """With heartbeat=5 and idle_timeout=12 on a fake clock, a silent source gets comments at
    5 s and 10 s, and still fails as idle at 12 s: a heartbeat is not data."""

    def render(request: Any) -> Any:
        return stream_events(request, iter([Deferred()]), heartbeat=5, idle_timeout=12)

    with StreamTestClient(leaf(render)) as client:
        response = client.get("/")
        client.advance(10)
        assert response.body.count(b":\n\n") == 2
        client.advance(1.75)  # t=11.75
        assert not response.disconnected and response.result is None
        client.advance(0.25)  # t=12
        result = response.result
        assert result is not None and result.outcome is Outcome.SOURCE_FAILED
        assert result.failure is not None and result.failure.check(SourceIdleTimeout)
        assert response.disconnected and not response.complete

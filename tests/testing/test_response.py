"""What a request gives back (``twisted_stream.testing._response``): a live view of the
response, the client's controls, and ``assert_released``, which must catch resources that
leak what they hold when their client leaves."""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer
from twisted.internet.task import LoopingCall

from twisted_stream import Outcome, stream
from twisted_stream.testing import StreamTestClient, StreamTestClock, assert_released

from ..conftest import leaf


def endless(request: Any) -> int:
    def chunks() -> Iterator[bytes]:
        while True:
            yield b"z" * 4096

    return stream(request, chunks())


def test_the_response_is_live_and_reads_as_the_client_does() -> None:
    """Attributes follow what the client reads; it stops and resumes reading and leaves
    when told, and the stream sees each (paused, resumed, client gone)."""
    with StreamTestClient(leaf(endless)) as client:
        response = client.get("/", read_rate=40_960)
        assert response.code == 200 and len(response.body) < 5000
        client.advance(1)
        assert 40_000 < len(response.body) < 50_000
        response.stop_reading()
        got = len(response.raw)
        client.advance(10)
        assert len(response.raw) == got
        assert response.stream is not None and response.stream.paused
        response.resume_reading()
        client.advance(1)
        assert len(response.raw) > got and not response.complete
        assert re.fullmatch(
            r"<StreamTestResponse GET /: 200, \d+ bytes, incomplete>", repr(response)
        )
        response.disconnect()
        assert response.disconnected and response.result is not None
        assert response.result.outcome is Outcome.CLIENT_GONE and response.source_closed


def test_released_streams_pass() -> None:
    """A stream that completed, and one whose client left, pass ``assert_released``."""
    with StreamTestClient(leaf(lambda request: stream(request, iter([b"a"] * 10)))) as client:
        assert_released(client.get("/"))
    with StreamTestClient(leaf(endless)) as client:
        assert_released(client.get("/", disconnect_after=10_000))


def test_no_stream_and_a_running_stream_are_reported() -> None:
    """``assert_released`` fails for a response no stream served and for a stream still
    running, saying which."""
    with StreamTestClient(leaf(lambda request: b"plain")) as client:
        with pytest.raises(AssertionError, match="no stream was started"):
            assert_released(client.get("/"))
    with StreamTestClient(leaf(endless)) as client:
        with pytest.raises(AssertionError, match=r"still running \(PAUSED"):
            assert_released(client.get("/", stop_reading_after=0))


def leaky_async(request: Any) -> int:
    """A deliberate leak: its ``finally`` waits for something that never comes, so the
    generator is never closed when its client leaves."""

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            await Deferred()
        finally:
            await Deferred()

    return stream(request, chunks())


def test_a_source_never_closed_after_a_disconnect_is_caught() -> None:
    """A source left open when its client left fails ``assert_released``."""
    with StreamTestClient(leaf(leaky_async)) as client:
        response = client.get("/")
        response.disconnect()
        assert response.result is not None and response.result.outcome is Outcome.CLIENT_GONE
        with pytest.raises(AssertionError, match="CLIENT_GONE but its source was never released"):
            assert_released(response)


class Ticker:
    """A deliberate leak: a producer that ignores ``stopProducing``, so its loop keeps
    running on the clock after its client left."""

    def __init__(self, clock: StreamTestClock) -> None:
        self.clock = clock

    def __call__(self, consumer: IConsumer) -> Deferred[None]:
        self.loop = LoopingCall(consumer.write, b"tick\n")
        self.loop.clock = self.clock
        consumer.registerProducer(self, True)
        self.loop.start(1)
        return Deferred()

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


def test_a_timer_left_running_after_a_disconnect_is_caught() -> None:
    """A producer whose loop survives its stream fails ``assert_released``, which names
    the timer; once the loop is stopped the same check passes."""
    clock = StreamTestClock()
    ticker = Ticker(clock)
    with StreamTestClient(leaf(lambda request: stream(request, ticker)), clock=clock) as client:
        response = client.get("/")
        client.advance(2)
        assert response.body == b"tick\ntick\ntick\n"
        response.disconnect()
        assert response.source_closed  # the engine let go; the producer did not
        with pytest.raises(AssertionError, match=r"1 timer\(s\) are still scheduled: LoopingCall"):
            assert_released(response)
        ticker.loop.stop()
        assert_released(response)


def test_timers_are_not_checked_while_another_connection_is_open() -> None:
    """Timers may belong to another open connection: they are checked only once every
    connection of the client is closed."""
    clock = StreamTestClock()
    ticker = Ticker(clock)
    root = leaf(lambda request: stream(request, ticker if request.path == b"/tick" else [b"x"]))
    with StreamTestClient(root, clock=clock) as client:
        ticking = client.get("/tick")
        assert_released(client.get("/other"))
        ticking.disconnect()
        with pytest.raises(AssertionError, match="timer"):
            assert_released(ticking)
        ticker.loop.stop()


def test_a_thread_blocked_in_a_source_after_a_disconnect_is_caught() -> None:
    """A threaded source blocked in ``next()`` cannot be closed when its client leaves:
    ``assert_released`` fails until the thread comes back, then passes."""
    release = threading.Event()

    def rows() -> Iterator[bytes]:
        yield b"row\n"
        release.wait(10)  # a blocking call with no end in sight
        yield b"never sent\n"

    resource = leaf(lambda request: stream(request, rows(), threaded=True))
    with StreamTestClient(resource, thread_timeout=0.05) as client:
        response = client.get("/")
        assert response.body == b"row\n"
        response.disconnect()
        with pytest.raises(AssertionError, match="source was never released"):
            assert_released(response)
        release.set()
        client.clock.thread_timeout = 10
        assert_released(response)
        assert response.body == b"row\n"

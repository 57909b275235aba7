"""The request body sent upstream (``_proxy/_upload.py``), on a fake clock with a fake
reader and consumer: read one piece at a time, only while the connection takes it, only
once asked for with ``Expect: 100-continue``."""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.iweb import UNKNOWN_LENGTH

from twisted_stream._proxy._upload import CONTINUE_TIMEOUT, UpstreamBody


class Reader:
    """A body reader whose reads the test answers (``pending``), or answers at once from
    ``ready``."""

    def __init__(self, length: int | None = None, ready: list[bytes] | None = None) -> None:
        self.length = length
        self.ready = ready
        self.asked: list[int] = []
        self.pending: list[Deferred[bytes]] = []

    def read(self, size: int) -> Deferred[bytes]:
        self.asked.append(size)
        if self.ready is not None:
            return succeed(self.ready.pop(0) if self.ready else b"")
        d: Deferred[bytes] = Deferred()
        self.pending.append(d)
        return d


class Consumer:
    def __init__(self, body: UpstreamBody | None = None, pause_at: int = 0) -> None:
        self.written: list[bytes] = []
        self.body = body
        self.pause_at = pause_at

    def write(self, data: bytes) -> None:
        self.written.append(data)
        if self.body is not None and self.pause_at and len(self.written) % self.pause_at == 0:
            self.body.pauseProducing()  # as a transport does, from inside write()


def started(
    reader: Reader, **kwargs: object
) -> tuple[UpstreamBody, Consumer, Deferred[None], Clock]:
    clock = Clock()
    progress: list[int] = []
    body = UpstreamBody(
        reader, clock=clock, piece_size=100, on_progress=lambda: progress.append(1), **kwargs
    )  # type: ignore[arg-type]
    consumer = Consumer(body)
    done = body.startProducing(consumer)  # type: ignore[arg-type]
    return body, consumer, done, clock


def test_one_piece_is_read_at_a_time_and_none_while_paused() -> None:
    """The next read is asked only once the previous piece was written, and not while the
    connection has paused the body; resuming reads on; ``b""`` ends it."""
    reader = Reader(length=6)
    body, consumer, done, _ = started(reader)
    assert body.length == 6
    assert reader.asked == [100]
    reader.pending[0].callback(b"abc")
    assert consumer.written == [b"abc"] and len(reader.asked) == 2
    body.pauseProducing()
    reader.pending[1].callback(b"def")
    assert len(reader.asked) == 2, "nothing read while paused"
    body.resumeProducing()
    assert len(reader.asked) == 3
    reader.pending[2].callback(b"")
    assert done.called and body.finished and body.bytes_sent == 6


def test_reads_answered_at_once_are_looped_and_a_pause_from_write_is_obeyed() -> None:
    """Thousands of reads answered at once run in a loop (no recursion); a pause from inside
    ``write()`` stops the loop until resumed; unknown lengths are UNKNOWN_LENGTH."""
    pieces = [b"x" * 100] * 5000
    reader = Reader(ready=list(pieces))
    clock = Clock()
    body = UpstreamBody(reader, clock=clock, piece_size=100)
    consumer = Consumer(body, pause_at=1000)
    assert body.length is UNKNOWN_LENGTH
    done = body.startProducing(consumer)  # type: ignore[arg-type]
    assert len(consumer.written) == 1000
    while not done.called:
        body.resumeProducing()
    assert len(consumer.written) == 5000


def test_with_expect_continue_nothing_is_read_until_the_upstream_asks() -> None:
    """With ``Expect: 100-continue`` no byte is read until a ``100`` (other 1xx do not
    count); then the body flows."""
    reader = Reader(length=3)
    body, _consumer, done, clock = started(reader, expect_continue=True)
    assert body.expects_continue
    body.interim_response(103)
    clock.advance(CONTINUE_TIMEOUT / 2)
    assert reader.asked == []
    body.interim_response(100)
    assert reader.asked == [100]
    reader.pending[0].callback(b"abc")
    reader.pending[1].callback(b"")
    assert done.called
    clock.advance(CONTINUE_TIMEOUT)
    assert len(reader.asked) == 2, "the timer was cancelled"


def test_without_an_answer_the_body_goes_after_the_continue_timeout() -> None:
    """An upstream that never sends ``100`` gets the body after ``continue_timeout``."""
    reader = Reader(length=3)
    _, _, _, clock = started(reader, expect_continue=True, continue_timeout=0.5)
    clock.advance(0.49)
    assert reader.asked == []
    clock.advance(0.02)
    assert reader.asked == [100]


def test_stopping_reads_no_more_and_ignores_a_late_piece() -> None:
    """``stopProducing`` (the upstream connection went, or its answer came first) stops
    reading: a piece arriving after is not written and nothing more is asked; the waiting
    timer is cancelled."""
    reader = Reader()
    body, consumer, done, _ = started(reader)
    body.stopProducing()
    reader.pending[0].callback(b"late")
    assert consumer.written == [] and len(reader.asked) == 1
    assert body.finished and not done.called
    waiting, _, _, clock = started(Reader(), expect_continue=True)
    waiting.stopProducing()
    assert clock.getDelayedCalls() == []


def test_a_failed_read_fails_the_body_and_cancelling_stops_it() -> None:
    """A read failing (the client left mid-body) fails the body's Deferred with that
    reason; cancelling the Deferred (Agent cancelling the request) stops the body."""
    reader = Reader()
    _, _, done, _ = started(reader)
    failures: list[Failure] = []
    done.addErrback(failures.append)
    reader.pending[0].errback(Failure(ConnectionError("client gone")))
    assert failures[0].check(ConnectionError)

    other = Reader()
    body, _, done, _ = started(other)
    done.addErrback(failures.append)
    done.cancel()
    assert failures[1].check(CancelledError) and body.finished
    other.pending[0].callback(b"late")
    assert len(other.asked) == 1
